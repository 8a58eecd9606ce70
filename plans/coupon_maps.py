"""From run tables to the analysis' input: shared by the demo and the campaign.

- :func:`map_measurements` turns a raster map's table (profiler and XRF on the stage) and the
  exposure's thermocouple scans into the analysis' ``CouponMeasurements``;
- :func:`scanner_temperatures` reads the carrier thermocouples' scans from a run's table;
- :func:`first_device` and :func:`calibration_lines` are small helpers of the main jobs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from couponlab.errors import InputError
from couponlab.labfile import LabFile

PROFILER_NOISE = (2e-9, 0.01, 0.1)
"""The bundled profiler's noise specification: floor (m), relative, at reference dwell (s)."""

FloatArray = NDArray[np.float64]


def first_device(lab: LabFile, family: str, who: str = "the demo") -> str:
    """Return the name of the lab's first device of ``family``.

    Raises
    ------
    InputError
        The lab has none (``who`` needs one).
    """
    names = [d.name for d in lab.by_family(family)]
    if not names:
        raise InputError("", f"lab {lab.name!r} has no {family}: {who} needs one")
    return names[0]


def calibration_lines(cal: Any) -> list[str]:
    """Return one line per calibrated hopper: powder, transport delay and time constant (s)."""
    return [
        f"hopper {h.hopper} ({h.powder}): transport delay {h.delay_s:.2f} s, "
        f"time constant {h.tau_s:.2f} s"
        for h in cal.hoppers.values()
    ]


def scanner_temperatures(
    table: dict[str, list[Any]], scanner: str, lab: LabFile
) -> tuple[FloatArray, FloatArray]:
    """Return (thermocouple positions mm, every scan degC shaped (scans, thermocouples)) of
    the carrier scanner ``scanner`` from a run's table."""
    key = next(k for k in table if k.startswith(f"{scanner}-") and "temp" in k)
    positions = np.asarray(lab.device(scanner).settings["positions_mm"], float)
    return positions, np.asarray(table[key], float)


def grid(table: dict[str, list[Any]], key: str, rows: int, points: int) -> FloatArray:
    """Return a raster column as a (rows, points) array (rows: y, points: x)."""
    values: FloatArray = np.asarray(table[key], float).reshape(rows, points)
    return values


def map_measurements(
    table: dict[str, list[Any]],
    *,
    profiler: str,
    xrf: str,
    x_mm: Sequence[float] | FloatArray,
    rows: int,
    dwell_s: float,
    tc_positions_mm: FloatArray,
    tc_scans_c: FloatArray,
    hold_s: float,
    elements: Sequence[str] = (),
    noise: tuple[float, float, float] = PROFILER_NOISE,
) -> Any:
    """Return the analysis' input from a raster map's table (rows x points, row by row, no
    snake) and the exposure's thermocouple scans.

    The profiler's standard uncertainty follows its noise specification (``noise``: floor m,
    relative, at a reference dwell s) scaled to ``dwell_s``; a point the profiler flagged out
    of range is NaN. XRF fractions carry their counting uncertainty
    sqrt(f (1 - f) / counts); ``elements`` other than Cr go to ``fractions``.
    """
    from couponlab.plans.oxidation_analysis import CouponMeasurements

    x = np.asarray(x_mm, float)
    n = x.size
    thickness_m = grid(table, f"{profiler}-thickness", rows, n) * 1e-9
    flags = np.asarray(table[f"{profiler}-range_flag"]).reshape(rows, n)
    counts = np.maximum(grid(table, f"{xrf}-counts", rows, n), 1.0)

    def fraction(element: str) -> tuple[FloatArray, FloatArray]:
        f = grid(table, f"{xrf}-fraction_{element.lower()}", rows, n)
        sigma: FloatArray = np.sqrt(np.clip(f * (1 - f), 1e-6, None) / counts)
        return f, sigma

    floor, rel, ref_dwell = noise
    sigma_m = np.hypot(floor, rel * np.nan_to_num(thickness_m)) * np.sqrt(ref_dwell / dwell_s)
    cr, cr_sigma = fraction("Cr")
    others = {e: fraction(e) for e in elements if e != "Cr"}
    return CouponMeasurements(
        x_mm=x,
        thickness_m=np.where(flags == "ok", thickness_m, np.nan),
        thickness_sigma_m=sigma_m,
        cr=cr,
        cr_sigma=cr_sigma,
        tc_positions_mm=np.asarray(tc_positions_mm, float),
        tc_scans_c=np.asarray(tc_scans_c, float),
        hold_s=hold_s,
        fractions={e: f for e, (f, _) in others.items()},
        fraction_sigmas={e: s for e, (_, s) in others.items()},
    )


__all__ = [
    "PROFILER_NOISE",
    "calibration_lines",
    "first_device",
    "grid",
    "map_measurements",
    "scanner_temperatures",
]
