"""The hardware-in-the-loop suite: the same checks against whatever the ``--lab`` file names.

Without ``--lab`` every check skips. Devices marked ``twin: true`` are served by
``couponlab twin serve`` in a separate process (:class:`couponlab.twins.TwinProcess`, as a
real instrument is another machine); the ``lab`` fixture yields the lab file with their
resolved addresses. Real devices keep theirs. Twins that write files (the camera) write
under one folder of the test session, as a Session's twins write under its output folder
(their data root, decision 0069). A resolved lab file (``twin_control`` set) is used as it
is: its twins already run.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from couponlab.lab import with_data_dir
from couponlab.labfile import LabFile, load_lab
from couponlab.twins import TwinProcess


@pytest.fixture(scope="session")
def lab(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LabFile]:
    """Return the lab under test, with twins (if any) running in a separate process."""
    path = request.config.getoption("--lab")
    if not path:
        pytest.skip("HIL checks need a lab file: pytest hil --lab LABFILE")
    declared = load_lab(path)
    if declared.twin_control is not None or not any(d.twin for d in declared.devices):
        yield declared
        return
    data = tmp_path_factory.mktemp("data")
    writing = [with_data_dir(e, data) if e.twin else e for e in declared.devices]
    declared = declared.model_copy(update={"devices": writing})
    with TwinProcess(declared, workdir=tmp_path_factory.mktemp("twins")) as twins:
        yield twins.lab


def entries_of(lab: LabFile, family: str) -> list[str]:
    """Return the names of the lab's devices of ``family`` (skip the check when none)."""
    names = [d.name for d in lab.by_family(family)]
    if not names:
        pytest.skip(f"lab {lab.name!r} has no {family} device")
    return names
