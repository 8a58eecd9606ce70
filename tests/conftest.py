"""Fixtures for the default test run come from couponlab's pytest plugin (loaded by the root
conftest.py): leak checks for threads and asyncio tasks, and ``free_port``.

Here: the suite's own couponlab state folder, so that certificates and twin passwords are
made once per test session in a temporary folder, never in the user's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from couponlab.credentials import STATE_DIR_ENV
from couponlab.transports import CLIENT_APP_URI, PKI_DIR_ENV, Pki


@pytest.fixture(autouse=True, scope="session")
def couponlab_state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Point ``COUPONLAB_STATE_DIR`` at a folder of this test session (inherited by the
    twin processes tests start); the client's certificate is made once, here."""
    path = tmp_path_factory.mktemp("couponlab-state")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(STATE_DIR_ENV, str(path))
        mp.delenv(PKI_DIR_ENV, raising=False)
        Pki.default().own_certificate("couponlab-client", CLIENT_APP_URI, server=False)
        yield path
