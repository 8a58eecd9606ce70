"""A lab session on the bundled twins: devices connect on the RunEngine's loop, a hold runs,
its documents reach the log with the lab configuration, and closing leaves nothing running."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from couponlab.cli import sample_lab_path
from couponlab.data import event_table, read_run
from couponlab.labfile import LabFile, load_lab
from couponlab.plans.gradient_hold import gradient_oxidation_hold
from couponlab.session import Session
from couponlab.twins import TwinProcess


def test_session_runs_a_hold_and_logs_it(tmp_path: Path) -> None:
    lab = load_lab(sample_lab_path())
    lab = lab.model_copy(
        update={
            "devices": [d for d in lab.devices if d.family == "gradient_furnace"],
            "world": {**lab.world, "speedup": 5000},
        }
    )
    with Session(lab, out_dir=tmp_path, store=False) as s:  # the log is checked, not the store
        furnace = s.devices["furnace1"]
        assert "furnace" in s.call(furnace.identify).lower()  # type: ignore[attr-defined]
        result = s.run(
            gradient_oxidation_hold(
                furnace, "900 degC", "850 degC", "2 h", "30 min", ramp_rate="50 K/min"
            )
        )
        assert result.exit_status == "success"
        assert s.call(furnace.state) == "standby"  # type: ignore[attr-defined]
    (path,) = tmp_path.glob("*.jsonl")
    docs = list(read_run(path))
    start = docs[0][1]
    assert start["lab"] == lab.name
    assert start["lab_file"]["devices"][0]["address"].startswith("opc.tcp://127.0.0.1:")
    assert sum(1 for n, _ in docs if n == "event") == 5 + 2  # primary + baseline
    assert len(next(iter(event_table(path).values()))) == 5
    clock = event_table(path, "baseline")  # the twins' clock at the run's start and end
    assert len(clock["twin_clock-virtual_time"]) == 2
    assert clock["twin_clock-virtual_time"][1] >= clock["twin_clock-virtual_time"][0] + 2 * 3600
    assert all(0 < a <= 5000 * 1.05 for a in clock["twin_clock-achieved_speedup"])
    assert docs[-1][0] == "stop"


def test_session_twins_live_in_another_process_and_end_with_it(tmp_path: Path) -> None:
    lab = _furnace_lab()
    with Session(lab, out_dir=tmp_path) as s:
        assert s.twins is not None
        pid = s.twins.pid
        assert pid is not None and pid != os.getpid()
        status = s.twins.control.status()
        assert set(status["twins"]) == {"furnace1"}
        assert status["seed"] == lab.world["seed"]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_resolved_lab_file_opens_in_a_session(tmp_path: Path) -> None:
    with TwinProcess(_furnace_lab()) as twins:
        resolved = tmp_path / "resolved.yaml"
        twins.lab.dump(resolved)
        with Session.open(resolved, out_dir=tmp_path / "runs") as s:
            assert s.twins is not None and s.twins.pid is None  # attached, not started
            assert "furnace" in s.call(s.devices["furnace1"].identify).lower()  # type: ignore[attr-defined]
        # closing the session left the twins it did not start running
        assert twins.control.call("ping") == "pong"


def _furnace_lab() -> LabFile:
    lab = load_lab(sample_lab_path())
    return lab.model_copy(
        update={"devices": [d for d in lab.devices if d.family == "gradient_furnace"]}
    )
