"""A session fills the store when it closes, and when it opens with what an earlier one left;
SIGKILLs at random moments (of a session running a plan, of a session copying a killed one's
runs as it opens, of ``couponlab data recover`` writing the store) lose no emitted document:
after the next session's start, or ``couponlab.ingest.recover``, every document of the log is
in Tiled, none twice."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import dask
import pytest
from bluesky.plans import count
from ophyd_async.core import init_devices, soft_signal_rw

from couponlab.data import read_run
from couponlab.ingest import missing, recover
from couponlab.labfile import LabFile
from couponlab.session import Session
from couponlab.store import open_store

pytestmark = pytest.mark.slow

EMPTY_LAB = LabFile(name="store-test", devices=[])

PLAN = textwrap.dedent(
    """
    import sys

    import numpy as np
    from bluesky.plans import count
    from ophyd_async.core import init_devices, soft_signal_rw

    from couponlab.labfile import LabFile
    from couponlab.session import Session

    s = Session(LabFile(name="kill", devices=[]), out_dir=sys.argv[1])
    with init_devices():
        x = soft_signal_rw(float, 1.0, name="x", units="mm")
        profile = soft_signal_rw(np.ndarray, np.linspace(0.0, 1.0, 50), name="profile")
    print("ready", flush=True)
    while True:
        s.RE(count([x, profile], 300))
    """
)


@pytest.fixture(autouse=True)
def dask_in_this_thread() -> Any:
    """Read tables in the calling thread (dask's default pool outlives a test)."""
    with dask.config.set(scheduler="synchronous"):
        yield


@pytest.mark.timeout(240)
def test_a_session_stores_its_runs_and_an_earlier_sessions(tmp_path: Path) -> None:
    with Session(EMPTY_LAB, out_dir=tmp_path, store=False) as s:  # only the log
        with init_devices():
            x = soft_signal_rw(float, 2.0, name="x", units="mm")
        first = s.run(count([x], 5)).run_start_uids[0]
    assert not (tmp_path / "store" / "catalog.db").exists()
    with Session(EMPTY_LAB, out_dir=tmp_path) as s:  # takes the earlier run in too
        second = s.run(count([x], 7)).run_start_uids[0]
    with open_store(tmp_path) as store:
        assert sorted(store) == sorted([first, second])
        assert store[second]["primary"]["x"].read().tolist() == [2.0] * 7
        assert store[second].metadata["start"]["versions"]["couponlab"]
        assert missing(tmp_path, store) == {}


def _kill_at_random(args: list[str], rng: random.Random, latest: float, ready: bool) -> None:
    """Start a process (in a group of its own) and SIGKILL the group at a random moment up to
    ``latest`` s after it started (``ready``: after it printed its first line)."""
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        assert proc.stdout is not None
        if ready:
            proc.stdout.readline()
        # no wait on a clock here: the moment is what varies, the assertion does not
        subprocess.run(["sleep", f"{rng.uniform(0.3, latest):.2f}"], check=True)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _each_event_once(folder: Path, store: Any) -> None:
    """Assert that the store holds every run of the log folder, whole, each event once."""
    runs_in_log = {p.stem for p in folder.glob("*.jsonl")}
    assert runs_in_log
    assert missing(folder, store) == {}
    assert set(store) == runs_in_log
    for uid in runs_in_log:  # every event of the log once in the store, none twice
        events = [d["seq_num"] for n, d in read_run(folder / f"{uid}.jsonl") if n == "event"]
        stored = store[uid]["primary"].base["internal"].read(["seq_num"])["seq_num"].tolist()
        assert sorted(stored) == sorted(events)
        assert store[uid].metadata["stop"]["exit_status"] in ("success", "abort")


@pytest.mark.timeout(240)
def test_sigkill_at_random_moments_loses_no_emitted_document(tmp_path: Path) -> None:
    rng = random.Random()
    for _ in range(2):
        _kill_at_random([sys.executable, "-c", PLAN, str(tmp_path)], rng, 3.0, ready=True)
    recovery = [sys.executable, "-u", "-m", "couponlab.cli", "data", "recover", str(tmp_path)]
    _kill_at_random(recovery, rng, 12.0, ready=False)  # may leave a run half-written
    with open_store(tmp_path) as store:
        report = recover(tmp_path, store, wait=60.0)
        assert report.failed == {}
        _each_event_once(tmp_path, store)


@pytest.mark.timeout(240)
def test_a_new_session_starts_by_storing_what_a_killed_one_logged(tmp_path: Path) -> None:
    rng = random.Random()
    _kill_at_random([sys.executable, "-c", PLAN, str(tmp_path)], rng, 3.0, ready=True)
    # the next session is killed too: while it copies the first one's runs as it opens (a run
    # may be left half-written in the store) or later, while it runs its own plan
    _kill_at_random([sys.executable, "-c", PLAN, str(tmp_path)], rng, 10.0, ready=False)
    # nothing runs in the new session: its start did the work
    with Session(EMPTY_LAB, out_dir=tmp_path), open_store(tmp_path) as store:
        _each_event_once(tmp_path, store)
