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
from ophyd_async.core import Array1D, init_devices, soft_signal_rw

from couponlab.data import DocumentLog, event_table, read_run


async def test_a_run_reads_back_with_arrays_and_units(tmp_path: Path) -> None:
    re = RunEngine({}, call_returns_result=True)
    log = DocumentLog(tmp_path)
    re.subscribe(log)
    async with init_devices():
        profile = soft_signal_rw(Array1D[np.float64], np.array([900.0, 850.0]), units="degC")
    re(bp.count([profile], num=3, md={"coupon_id": "C-1"}))
    (path,) = log.paths
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
