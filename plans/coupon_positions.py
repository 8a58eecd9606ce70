"""Checks shared by the detector plans: positions on the mounted coupon and within the
stage's soft limits, dwell times, detector kinds -- all before any message is yielded."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from couponlab.errors import InputError, OutOfLimitsError
from couponlab.interfaces.detectors import CouponMount, DwellDetector, Stage
from couponlab.units import to_magnitude

MAX_POINTS_PER_AXIS = 10_000


def describe_arg(value: object) -> object:
    """Return a JSON-friendly form of a plan argument (devices by name, quantities as text)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    name = getattr(value, "name", None)
    if isinstance(name, str):
        return name
    if isinstance(value, list | tuple):
        return [describe_arg(v) for v in value]
    return str(value)


def mounted_coupon(stage: Stage) -> CouponMount:
    """Return the coupon on the stage; refuse a plan when none is mounted."""
    mount = stage.mounted()
    if mount is None:
        raise InputError(stage.name, "no coupon is mounted on the stage (load_coupon first)")
    return mount


def coupon_metadata(mount: CouponMount) -> dict[str, Any]:
    """Return the run metadata that identifies the coupon."""
    return {
        "coupon_id": mount.coupon_id,
        "coupon": {
            "coupon_id": mount.coupon_id,
            "length_mm": mount.length_mm,
            "width_mm": mount.width_mm,
        },
    }


def axis_points(
    stage: Stage, mount: CouponMount, axis: str, start: Any, stop: Any, num: int
) -> tuple[float, float, int]:
    """Convert and check one axis of a region: ``num`` points from ``start`` to ``stop``.

    Every point must lie on the coupon (0..length for x, 0..width for y) and inside the
    stage's soft limits. Returns (start_mm, stop_mm, num).
    """
    if isinstance(num, bool) or not isinstance(num, int | np.integer):
        raise InputError(stage.name, f"number of {axis} points must be an int, got {num!r}")
    if not 1 <= num <= MAX_POINTS_PER_AXIS:
        raise OutOfLimitsError(stage.name, f"number of {axis} points", num, 1, MAX_POINTS_PER_AXIS)
    size = mount.length_mm if axis == "x" else mount.width_mm
    lo_hi = []
    for what, value in (("start", start), ("stop", stop)):
        mm = to_magnitude(
            value,
            "mm",
            device=stage.name,
            what=f"{axis} {what} on coupon {mount.coupon_id}",
            low=0.0,
            high=size,
        )
        axis_dev = stage.x if axis == "x" else stage.y
        axis_dev.check_position(mm)
        lo_hi.append(mm)
    return lo_hi[0], lo_hi[1], int(num)


def dwell_detectors(
    detectors: Sequence[Any], dwell: Any | None
) -> list[tuple[DwellDetector, float]]:
    """Return (detector, dwell in s) for every detector that takes a dwell.

    Raises
    ------
    InputError
        ``dwell`` given but no detector takes one.
    OutOfLimitsError
        ``dwell`` outside a detector's limits.
    """
    if dwell is None:
        return []
    out = [(d, d.check_dwell(dwell)) for d in detectors if isinstance(d, DwellDetector)]
    if not out:
        raise InputError("", f"dwell = {dwell!r} given, but no detector takes a dwell time")
    return out


__all__ = [
    "axis_points",
    "coupon_metadata",
    "describe_arg",
    "dwell_detectors",
    "mounted_coupon",
]
