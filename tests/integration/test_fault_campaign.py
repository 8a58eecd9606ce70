"""A fault campaign on the twins: the campaign (a shortened one: two coupons, a small map)
with a schedule of faults injected at points of it, recoverable and not, through the
control channel. Recoverable faults (a furnace heater stuck at 65 % in the hold, which
raises the over-temperature alarm until it is cleared; the feeder's carrier gas lost while
it purges between prints, during a map, then back) suspend the campaign and it completes;
non-recoverable ones (the feeder's power lost during its calibration, the stage's during a
map) end it with every device safe by the twins' ground truth; no emitted document is
missing from the JSON-lines log, nor from the store (Tiled) once the logs are written into
it, nor in it twice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from twin_entries import FEEDER_TWIN, STAGE_TWIN, twin_lab

from couponlab.cli import main
from couponlab.plans.fault_campaign import ScheduledFault, campaign_runs

pytestmark = pytest.mark.slow

CAMPAIGN: dict[str, Any] = {
    "id": "faults",
    "lab": "sim",
    "carrier_batch": 2,
    "exposure": {"hold": "1 h", "scan_interval": "30 min"},
    "map": {"x_points": 4, "y_rows": 8, "dwell": "0.5 s"},
    "specimens": [],
    "coupons": [
        {"system": "Ni-Cr", "gradient": {"low": 0.0, "high": 0.5}},
        {"system": "Ni-Al", "gradient": "proposed"},
    ],
}
"""Two coupons in one furnace batch, a 4 x 8 map each (long enough for the feeder alarm poll,
every 0.5 s of wall time, to find its gas alarm while the map runs), no tensile specimen.
The exposure's third event (its baseline, the scan as the program starts, then the first
scan in the hold, 25 min into it) leaves 35 min of hold for the stuck heater to raise the
alarm (about 23 min)."""
SCHEDULE = [
    {
        "device": "furnace1",
        "kind": "jam",
        "params": {"zone": 2, "output": 65.0},
        "recoverable": True,
        "after_events": 3,
        "plan": "campaign_exposure",
    },
    {
        "device": "feeder1",
        "kind": "gas_loss",
        "params": {"hopper": 1},
        "recoverable": True,
        "after_events": 3,
        "plan": "raster_map",
    },
    {"device": "feeder1", "kind": "power_loss", "after_events": 2, "plan": "calibrate_feeder"},
    {"device": "stage1", "kind": "power_loss", "after_events": 3, "plan": "raster_map"},
]


def test_a_schedule_is_played_as_one_campaign_run_of_recoverable_faults_then_one_each() -> None:
    schedule = [ScheduledFault(**entry) for entry in SCHEDULE]
    runs = campaign_runs(schedule)
    assert runs == [schedule[:2], [schedule[2]], [schedule[3]]]
    assert campaign_runs([schedule[2]]) == [[schedule[2]]]


@pytest.mark.timeout(420)
def test_the_campaign_with_a_schedule_of_faults_ends_as_the_policy_says(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    campaign, schedule = tmp_path / "campaign.yaml", tmp_path / "faults.yaml"
    campaign.write_text(yaml.safe_dump(CAMPAIGN))
    schedule.write_text(yaml.safe_dump(SCHEDULE))
    out = tmp_path / "runs"
    args = ["faults", "run", "--campaign", str(campaign), "--schedule", str(schedule)]
    code = main([*args, "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "faults injected by kind: gas_loss 1, jam 1, power_loss 2" in printed
    assert "runs completed:          1 of 3 campaign runs (2 of 2 recoverable" in printed
    assert "safe states reached:     2 of 2 non-recoverable faults" in printed
    lost = next(line for line in printed.splitlines() if line.startswith("documents lost:"))
    emitted = int(lost.split(" of ")[1].split()[0])
    assert emitted > 100
    assert (
        lost
        == f"documents lost:          0 of {emitted} emitted (run logs); 0 of {emitted} (store)"
    )
    table = printed[printed.index("faults injected by kind") :]
    assert table.count(" yes\n") == 4 and " NO\n" not in table
    # each power loss ended its campaign as the devices read back: safe, the restart named
    ended = [line for line in printed.splitlines() if line.startswith("  campaign ended: ")]
    assert len(ended) == 2 and all("lab: safe: " in line for line in ended)
    assert all("restarted" in line or "lost during" in line for line in ended)
    assert len(list((out / "campaign-1").glob("samples.sqlite"))) == 1
    assert len(list(out.glob("*.jsonl"))) > 8  # every run of every campaign run, logged


def test_a_schedule_naming_no_twin_of_the_lab_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lab, schedule = tmp_path / "lab.yaml", tmp_path / "faults.yaml"
    lab.write_text(yaml.safe_dump(twin_lab("faults", 9, STAGE_TWIN, FEEDER_TWIN)))
    schedule.write_text("- {device: robot9, kind: drop}\n")
    args = ["faults", "run", "--lab", str(lab), "--schedule", str(schedule)]
    assert main([*args, "--out", str(tmp_path / "runs")]) == 2
    assert "schedule names ['robot9'], not twins of lab 'faults'" in capsys.readouterr().err
