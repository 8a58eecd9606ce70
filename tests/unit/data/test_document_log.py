"""Run documents reach an append-only JSON Lines file; a killed process loses nothing emitted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import bluesky.plans as bp
import numpy as np
from bluesky import RunEngine
from event_model import DocumentNames, schema_validators
from ophyd_async.core import Array1D, init_devices, soft_signal_rw

from couponlab.data import INTERRUPTED_REASON, DocumentLog, event_table, read_run


async def test_a_run_reads_back_with_arrays_and_units(tmp_path: Path) -> None:
    re = RunEngine({}, call_returns_result=True)
    log = DocumentLog(tmp_path)
    re.subscribe(log)
    async with init_devices():
        profile = soft_signal_rw(Array1D[np.float64], np.array([900.0, 850.0]), units="degC")
    re(bp.count([profile], num=3, md={"coupon_id": "C-1"}))
    (path,) = log.paths
    (uid,) = {d["uid"] for n, d in read_run(path) if n == "start"}
    assert log.path(uid) == path
    names = [n for n, _ in read_run(path)]
    assert names[0] == "start"
    assert names[-1] == "stop"
    start = next(d for n, d in read_run(path) if n == "start")
    assert start["coupon_id"] == "C-1"
    desc = next(d for n, d in read_run(path) if n == "descriptor")
    assert desc["data_keys"]["profile"]["units"] == "degC"
    assert event_table(path)["profile"] == [[900.0, 850.0]] * 3


CHILD = """
import sys, time
import bluesky.plan_stubs as bps
from bluesky import RunEngine
from event_model import DocumentNames, schema_validators
from ophyd_async.core import soft_signal_rw
from couponlab.data import DocumentLog
re = RunEngine({})
re.subscribe(DocumentLog(sys.argv[1]))
det = soft_signal_rw(float, 1.5, name="det")
def plan():
    yield from bps.open_run()
    for i in range(100000):
        yield from bps.trigger_and_read([det])
        print(i, flush=True)
        time.sleep(0.002)
re(plan())
"""


def test_sigkill_mid_run_loses_no_emitted_event(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    emitted = -1
    try:
        deadline = time.monotonic() + 60
        while emitted < 50 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, "the child run ended before emitting 50 events"
            emitted = int(line)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    (path,) = tmp_path.glob("*.jsonl")
    events = [d for n, d in read_run(path) if n == "event"]
    assert len(events) >= emitted + 1  # every event printed as emitted is in the file
    assert [e["seq_num"] for e in events] == list(range(1, len(events) + 1))


def test_torn_last_line_is_skipped(tmp_path: Path) -> None:
    p = tmp_path / "r.jsonl"
    p.write_text(json.dumps({"name": "start", "doc": {"uid": "u"}}) + '\n{"name": "ev')
    assert [n for n, _ in read_run(p)] == ["start"]


def _kill_mid_run(folder: Path, events: int = 20) -> int:
    """Run CHILD in a subprocess, SIGKILL it after ``events`` events; return the last printed."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(folder)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    emitted = -1
    try:
        deadline = time.monotonic() + 60
        while emitted < events and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, "the child run ended before emitting its events"
            emitted = int(line)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    return emitted


def test_a_killed_run_is_marked_interrupted_at_the_next_start(tmp_path: Path) -> None:
    _kill_mid_run(tmp_path)
    (path,) = tmp_path.glob("*.jsonl")
    before = path.read_bytes()
    assert [n for n, _ in read_run(path)][-1] != "stop"
    events = sum(1 for n, _ in read_run(path) if n == "event")

    log = DocumentLog(tmp_path)
    assert log.interrupted == [path]
    after = path.read_bytes()
    assert after.startswith(before)  # the original bytes are kept; one line is appended
    docs = list(read_run(path))
    name, stop = docs[-1]
    assert name == "stop"
    assert stop["exit_status"] == "abort"
    assert stop["reason"] == INTERRUPTED_REASON == "interrupted: no stop document (process ended)"
    start = docs[0][1]
    assert stop["run_start"] == start["uid"]
    assert stop["num_events"] == {"primary": events}
    assert stop["time"] == max(d["time"] for n, d in docs[:-1] if "time" in d)
    schema_validators[DocumentNames.stop].validate(stop)
    log.close()

    assert DocumentLog(tmp_path).interrupted == []  # marked once
    assert path.read_bytes() == after


def test_a_live_run_is_not_marked_until_its_writer_is_gone(tmp_path: Path) -> None:
    writer = DocumentLog(tmp_path)
    writer("start", {"uid": "run-1", "time": 1.0})
    writer("descriptor", {"uid": "d-1", "run_start": "run-1", "name": "primary", "time": 2.0})
    assert DocumentLog(tmp_path).interrupted == []  # the writer holds its file
    writer.close()  # the writer goes away without a stop document
    (path,) = writer.paths
    assert DocumentLog(tmp_path).interrupted == [path]
    name, stop = list(read_run(path))[-1]
    assert (name, stop["run_start"], stop["num_events"]) == ("stop", "run-1", {"primary": 0})


def test_a_torn_last_line_is_kept_and_the_stop_follows_it(tmp_path: Path) -> None:
    p = tmp_path / "run-2.jsonl"
    original = json.dumps({"name": "start", "doc": {"uid": "run-2", "time": 5.0}}) + '\n{"na'
    p.write_text(original)
    (other := tmp_path / "done.jsonl").write_text(
        json.dumps({"name": "start", "doc": {"uid": "run-3", "time": 1.0}})
        + "\n"
        + json.dumps({"name": "stop", "doc": {"uid": "s", "run_start": "run-3", "time": 2.0}})
        + "\n"
    )
    (tmp_path / "orphans.jsonl").write_text(json.dumps({"name": "event", "doc": {}}) + "\n")
    assert DocumentLog(tmp_path).interrupted == [p]
    assert p.read_text().startswith(original + "\n")
    assert [(n, d.get("run_start")) for n, d in read_run(p)] == [
        ("start", None),
        ("stop", "run-2"),
    ]
    assert [n for n, _ in read_run(other)] == ["start", "stop"]


async def test_interleaved_runs_each_reach_their_own_file(tmp_path: Path) -> None:
    """Two runs open at once (run keys): every document lands in its own run's file, none
    lost, none in the other's, whichever run started last."""
    import bluesky.plan_stubs as bps
    import bluesky.preprocessors as bpp

    re = RunEngine({}, call_returns_result=True)
    log = DocumentLog(tmp_path)
    re.subscribe(log)
    async with init_devices():
        a = soft_signal_rw(float, 1.0)
        b = soft_signal_rw(float, 2.0)

    def keyed(key: str, plan: object) -> object:
        return bpp.set_run_key_wrapper(plan, key)

    def both() -> object:
        yield from keyed("long", bps.open_run(md={"which": "long"}))
        yield from keyed("long", bps.trigger_and_read([a]))
        for _ in range(2):  # short runs open and close while the long one records
            yield from keyed("short", bps.open_run(md={"which": "short"}))
            yield from keyed("short", bps.trigger_and_read([b]))
            yield from keyed("long", bps.trigger_and_read([a]))
            yield from keyed("short", bps.close_run())
            yield from keyed("long", bps.trigger_and_read([a]))
        yield from keyed("long", bps.close_run())

    re(both())  # type: ignore[arg-type]
    assert len(log.paths) == 3
    for path in log.paths:
        docs = list(read_run(path))
        which = docs[0][1]["which"]
        assert docs[0][0] == "start" and docs[-1][0] == "stop"
        keys = {k for n, d in docs if n == "event" for k in d["data"]}
        assert keys == ({"a"} if which == "long" else {"b"})
        events = sum(n == "event" for n, _ in docs)
        assert events == (5 if which == "long" else 1)
        assert docs[-1][1]["num_events"] == {"primary": events}
    assert not (tmp_path / "orphans.jsonl").exists()
