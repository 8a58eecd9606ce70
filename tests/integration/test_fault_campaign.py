"""A fault campaign on the twins: a schedule of faults, recoverable and not, each injected
into a run through the control channel. Recoverable faults (a link lost then back, the
feeder's shielding gas lost then back and its alarm reset by the operator) suspend the run
and it completes; non-recoverable ones (a power loss) end it with every device safe by the
twins' ground truth; no emitted document is missing from the JSON-lines log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from twin_entries import FEEDER_TWIN, STAGE_TWIN, twin_lab

from couponlab.cli import main
from couponlab.labfile import LabFile
from couponlab.plans.fault_campaign import (
    LINK_DOWN,
    ScheduledFault,
    faults_table,
    feeding_while_reading,
    run_fault_campaign,
)
from couponlab.session import Session
from couponlab.suspenders import SuspenderSettings

SCHEDULE = [
    ScheduledFault("stage1", "drop", LINK_DOWN, recoverable=True),
    ScheduledFault("stage1", "power_loss"),
    ScheduledFault("feeder1", "drop", LINK_DOWN, recoverable=True, after_events=2),
    ScheduledFault("feeder1", "gas_loss", recoverable=True),
    ScheduledFault("feeder1", "power_loss", after_events=2),
]


def _lab() -> LabFile:
    return LabFile.model_validate(LAB)


LAB: dict[str, Any] = twin_lab("faults", 9, STAGE_TWIN, FEEDER_TWIN)


@pytest.mark.timeout(180)
def test_a_schedule_of_faults_ends_as_the_policy_says(tmp_path: Path) -> None:
    settings = SuspenderSettings(link_probe_s=0.1)
    with Session(_lab(), out_dir=tmp_path, store=False, suspenders=settings) as s:
        plan = feeding_while_reading(s.lab, s.devices)
        outcomes = run_fault_campaign(s, SCHEDULE, plan, say=lambda _: None)
    table = faults_table(outcomes)
    assert [o.as_expected for o in outcomes] == [True] * len(SCHEDULE), "\n".join(table)
    assert table[0] == "faults injected by kind: drop 2, gas_loss 1, power_loss 2"
    assert table[1].startswith("runs completed:          3 of 5 (3 of 3 after")
    assert table[2].startswith("safe states reached:     2 of 2")
    assert table[3].startswith("documents lost:          0 of ")
    assert all(o.emitted > 0 for o in outcomes)
    assert all(set(o.active) == {"feeder1"} for o in outcomes)  # the truth covers the feeder
    fatal = [o for o in outcomes if not o.fault.recoverable]
    assert all("the instrument restarted" in o.error for o in fatal)
    assert all(o.lab.startswith("safe: ") for o in fatal)  # as the devices read back


@pytest.mark.timeout(180)
def test_the_command_runs_a_schedule_file_and_prints_the_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lab, schedule = tmp_path / "lab.yaml", tmp_path / "faults.yaml"
    lab.write_text(yaml.safe_dump(LAB))
    schedule.write_text(
        "- {device: stage1, kind: drop, params: {for_s: 1.0e9}, recoverable: true}\n"
        "- {device: feeder1, kind: power_loss, after_events: 2}\n"
    )
    out = tmp_path / "runs"
    args = ["faults", "run", "--lab", str(lab), "--schedule", str(schedule), "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "faults injected by kind: drop 1, power_loss 1" in printed
    assert "safe states reached:     1 of 1 non-recoverable" in printed
    assert "documents lost:          0 of " in printed
    assert len(list(out.glob("*.jsonl"))) == 2  # one run per fault, logged


def test_a_schedule_naming_no_twin_of_the_lab_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lab, schedule = tmp_path / "lab.yaml", tmp_path / "faults.yaml"
    lab.write_text(yaml.safe_dump(LAB))
    schedule.write_text("- {device: robot9, kind: drop}\n")
    args = ["faults", "run", "--lab", str(lab), "--schedule", str(schedule)]
    assert main([*args, "--out", str(tmp_path / "runs")]) == 2
    assert "schedule names ['robot9'], not twins of lab 'faults'" in capsys.readouterr().err
