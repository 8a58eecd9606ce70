"""The main job: a simulated campaign on the twins of a lab, with its results printed.

Step 1 (issue 2): a gradient-oxidation hold on the furnace twin; prints the temperature
profile along the coupon as the instrument recorded it. Later steps (printing, measuring,
testing) are added as their instrument families land.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from couponlab.data import event_table, read_run
from couponlab.labfile import LabFile
from couponlab.session import Session

HOT_C, COLD_C = 1100.0, 800.0
"""Gradient of the demo hold, degC."""
HOLD = "20 h"
INTERVAL = "1 h"
COUPON_LENGTH_MM = 60.0


def _first(lab: LabFile, family: str) -> str:
    names = [d.name for d in lab.by_family(family)]
    if not names:
        raise SystemExit(f"lab {lab.name!r} has no {family}: the demo needs one")
    return names[0]


def _hold_table(run_file: Path, furnace: str, offset_mm: float) -> list[str]:
    """Return lines: the recorded profile interpolated along the coupon, first and last."""
    table = event_table(run_file)
    profiles = np.asarray(table[f"{furnace}-profile"], float)
    times = np.asarray(table[f"{furnace}-clock-sim_time"], float)
    start = next(d for n, d in read_run(run_file) if n == "start")
    positions = np.asarray(start["zone_positions_mm"], float)
    x = np.arange(0.0, COUPON_LENGTH_MM + 1e-9, 10.0)
    lines = [f"{'t (h)':>7} | " + " ".join(f"x={v:4.0f}mm" for v in x)]
    for k in (0, len(profiles) // 2, len(profiles) - 1):
        t_along = np.interp(offset_mm + x, positions, profiles[k])
        rel_h = (times[k] - times[0]) / 3600
        lines.append(f"{rel_h:7.1f} | " + " ".join(f"{v:6.1f} C " for v in t_along))
    return lines


def run_demo(lab: LabFile, out_dir: Path) -> int:
    """Run the simulated campaign on ``lab`` (every device a twin); print the results.

    Returns the process exit code.
    """
    from couponlab.plans.gradient_hold import gradient_oxidation_hold

    if not all(d.twin for d in lab.devices):
        raise SystemExit("the demo drives twins only: use a lab whose devices are all twins")
    furnace_name = _first(lab, "gradient_furnace")
    t0 = time.monotonic()
    print(f"couponlab demo: lab {lab.name!r}, {len(lab.devices)} twins; documents in {out_dir}/")
    with Session(lab, out_dir=out_dir) as s:
        furnace: Any = s.devices[furnace_name]
        print(f"  {furnace_name}: {s.call(furnace.identify)}")
        positions = (s.call(furnace.read_profile)).positions_mm
        offset = float(positions[0] + positions[-1]) / 2 - COUPON_LENGTH_MM / 2
        print(
            f"\n[1] gradient-oxidation hold: {HOT_C:g} -> {COLD_C:g} degC over the tube, "
            f"{HOLD} (instrument time), profile every {INTERVAL}"
        )
        s.run(
            gradient_oxidation_hold(
                furnace,
                f"{HOT_C} degC",
                f"{COLD_C} degC",
                HOLD,
                INTERVAL,
                ramp_rate="25 K/min",
                md={
                    "zone_positions_mm": [float(p) for p in positions],
                    "coupon_offset_mm": offset,
                },
            )
        )
        run_file = s.log.paths[-1]
        print(
            f"    temperature along a {COUPON_LENGTH_MM:g} mm coupon centred in the tube "
            f"(offset {offset:.0f} mm):"
        )
        for line in _hold_table(run_file, furnace_name, offset):
            print("    " + line)
        print(f"    run documents: {run_file}")
    print(f"\ndone in {time.monotonic() - t0:.1f} s wall time")
    return 0
