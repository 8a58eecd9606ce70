"""The hardware-in-the-loop suite: the same checks against whatever the ``--lab`` file names.

Without ``--lab`` every check skips. Devices marked ``twin: true`` are served by
``couponlab twin serve`` in a separate process (as a real instrument is another machine); the
``lab`` fixture yields the lab file with their resolved addresses. Real devices keep theirs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from couponlab.labfile import LabFile, load_lab

STARTUP_TIMEOUT_S = 60.0


@pytest.fixture(scope="session")
def lab(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LabFile]:
    """Return the lab under test, with twins (if any) running in a separate process."""
    path = request.config.getoption("--lab")
    if not path:
        pytest.skip("HIL checks need a lab file: pytest hil --lab LABFILE")
    declared = load_lab(path)
    if not any(d.twin for d in declared.devices):
        yield declared
        return
    folder = tmp_path_factory.mktemp("twins")
    resolved = folder / "resolved.yaml"
    log = (folder / "twin-serve.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "couponlab.cli",
            "twin",
            "serve",
            str(path),
            "--resolved",
            str(resolved),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not resolved.exists():
            if proc.poll() is not None:
                pytest.fail(
                    f"couponlab twin serve exited ({proc.returncode}):\n"
                    f"{Path(log.name).read_text()}"
                )
            if time.monotonic() > deadline:
                pytest.fail(f"twins not ready within {STARTUP_TIMEOUT_S:g} s")
            time.sleep(0.05)
        yield load_lab(resolved)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            code = None
        log.close()
        if code not in (0, None):
            print(Path(log.name).read_text(), file=sys.stderr)


def entries_of(lab: LabFile, family: str) -> list[str]:
    """Return the names of the lab's devices of ``family`` (skip the check when none)."""
    names = [d.name for d in lab.by_family(family)]
    if not names:
        pytest.skip(f"lab {lab.name!r} has no {family} device")
    return names
