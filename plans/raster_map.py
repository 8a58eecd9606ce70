"""Raster map of a coupon region with any detectors: the stage steps over a grid in coupon
coordinates and every detector is triggered and read at each point."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.plans as bp
from bluesky.protocols import Readable
from bluesky.utils import MsgGenerator

from couponlab.errors import InputError
from couponlab.interfaces.detectors import Stage
from couponlab.plans.coupon_positions import (
    axis_points,
    coupon_metadata,
    describe_arg,
    dwell_detectors,
    mounted_coupon,
)

DWELL_GROUP = "raster_map.dwell"


def raster_map(
    detectors: Sequence[Readable[Any]],
    stage: Stage,
    x_range: tuple[Any, Any, int],
    y_range: tuple[Any, Any, int],
    *,
    dwell: Any | None = None,
    snake: bool = True,
    md: dict[str, Any] | None = None,
) -> MsgGenerator[str]:
    """Map a rectangular region of the mounted coupon, point by point.

    Everything is checked when the plan is called, before any message exists: a coupon
    must be mounted; every grid point must lie on it (0..length along x, 0..width across)
    and inside the stage's soft limits; ``dwell`` must suit every detector that takes one.

    Parameters
    ----------
    detectors
        Readables triggered and read at every point (profiler, XRF probe, camera,
        thermocouple scanner ...).
    stage
        The stage carrying the heads; its mounted coupon gives the coordinates (mm from the
        coupon's start).
    x_range, y_range
        ``(start, stop, num)``: positions in mm (or length quantities) and the number of
        points (>= 1) along each axis. x is the inner (fast) axis.
    dwell
        Integration time of each measurement (s or a time quantity), applied to every
        detector that has one; None keeps their current dwell.
    snake
        Reverse the x direction on alternate rows (fewer long moves).
    md
        Metadata merged into the run's start document (after the coupon's identity).

    Yields
    ------
    Msg
        Messages of a ``grid_scan`` (one event per point in the ``primary`` stream).

    See Also
    --------
    couponlab.plans.fly_line_scan.fly_line_scan
    """
    if not detectors:
        raise InputError(stage.name, "raster_map needs at least one detector")
    mount = mounted_coupon(stage)
    x0, x1, nx = axis_points(stage, mount, "x", *x_range)
    y0, y1, ny = axis_points(stage, mount, "y", *y_range)
    dwells = dwell_detectors(detectors, dwell)
    _md: dict[str, Any] = {
        **coupon_metadata(mount),
        "plan_name": "raster_map",
        "plan_args": {
            "detectors": describe_arg(list(detectors)),
            "stage": describe_arg(stage),
            "x_range": [x0, x1, nx],
            "y_range": [y0, y1, ny],
            "dwell": describe_arg(dwell),
            "snake": snake,
        },
        "region_mm": {"x": [x0, x1], "y": [y0, y1]},
    }
    _md.update(md or {})
    return _raster(list(detectors), stage, x0, x1, nx, y0, y1, ny, dwells, snake, _md)


def _raster(
    detectors: list[Readable[Any]],
    stage: Stage,
    x0: float,
    x1: float,
    nx: int,
    y0: float,
    y1: float,
    ny: int,
    dwells: list[tuple[Any, float]],
    snake: bool,
    md: dict[str, Any],
) -> MsgGenerator[str]:
    for det, seconds in dwells:
        yield from bps.abs_set(det.dwell, seconds, group=DWELL_GROUP)
    if dwells:
        yield from bps.wait(group=DWELL_GROUP)
    uid: str = yield from bp.grid_scan(
        detectors,
        stage.y,
        y0,
        y1,
        ny,
        stage.x,
        x0,
        x1,
        nx,
        snake_axes=snake,
        md=md,
    )
    return uid


__all__ = ["raster_map"]
