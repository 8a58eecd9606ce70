"""A lab session on the bundled twins: devices connect on the RunEngine's loop, a hold runs,
its documents reach the log with the lab configuration, and closing leaves nothing running."""

from __future__ import annotations

from pathlib import Path

from couponlab.cli import sample_lab_path
from couponlab.data import read_run
from couponlab.labfile import load_lab
from couponlab.plans.gradient_hold import gradient_oxidation_hold
from couponlab.session import Session


def test_session_runs_a_hold_and_logs_it(tmp_path: Path) -> None:
    lab = load_lab(sample_lab_path())
    lab = lab.model_copy(
        update={
            "devices": [d for d in lab.devices if d.family == "gradient_furnace"],
            "world": {**lab.world, "speedup": 5000},
        }
    )
    with Session(lab, out_dir=tmp_path) as s:
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
    assert sum(1 for n, _ in docs if n == "event") == 5
    assert docs[-1][0] == "stop"
