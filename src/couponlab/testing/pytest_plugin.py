"""couponlab's pytest plugin: leak checks, free ports, and the ``--lab`` option.

Loaded by the repository's root ``conftest.py``; a driver developer's own project can load
it with ``-p couponlab.testing.pytest_plugin``.

- ``no_leaked_threads`` / ``no_leaked_tasks`` (autouse): fail a test that leaves a thread or
  an asyncio task running.
- ``free_port``: a TCP port on 127.0.0.1 that is free now.
- ``--lab LABFILE``: the lab file for the hardware-in-the-loop suite (``hil/``).
- ``--thorough``: property tests draw their full example counts
  (:mod:`couponlab.testing.thoroughness`).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator, Iterator

import pytest

from couponlab.testing.thoroughness import THOROUGH_ENV, set_thorough, thorough


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--lab`` and ``--thorough``."""
    parser.addoption(
        "--lab",
        action="store",
        default=None,
        metavar="LABFILE",
        help="lab file for the HIL suite (hil/); twins in it are started by "
        "`couponlab twin serve` in a separate process. Without it the HIL checks skip.",
    )
    parser.addoption(
        "--thorough",
        action="store_true",
        default=False,
        help=f"property tests draw their full example counts (also {THOROUGH_ENV}=1); "
        "the default run draws a share of them (docs/howto/run-the-tests.md)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Pass ``--thorough`` on before the test modules (and their example counts) load."""
    set_thorough(bool(config.getoption("--thorough")))


def pytest_report_header(config: pytest.Config) -> str:
    """Say which example counts the property tests draw."""
    return f"couponlab: property tests draw {'thorough' if thorough() else 'default'} counts"


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves a new non-daemon thread running."""
    before = set(threading.enumerate())
    yield
    leaked = [
        t for t in threading.enumerate() if t not in before and t.is_alive() and not t.daemon
    ]
    for t in leaked:
        t.join(timeout=2.0)
    still = [t.name for t in leaked if t.is_alive()]
    assert not still, f"test leaked threads: {still}"


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    """Fail an async test that leaves asyncio tasks running on its loop."""
    before = asyncio.all_tasks()
    yield
    current = asyncio.current_task()
    pending = [
        t for t in asyncio.all_tasks() if t not in before and t is not current and not t.done()
    ]
    if pending:
        await asyncio.sleep(0.05)  # let cancellations finish
        pending = [t for t in pending if not t.done()]
    assert not pending, f"test leaked asyncio tasks: {[t.get_name() for t in pending]}"


@pytest.fixture
def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
