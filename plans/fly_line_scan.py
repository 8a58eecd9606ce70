"""Fly-style line scan: the stage moves continuously along one axis while each detector
samples a hardware-timed line that starts with the stage's motion, recording the stage
position of every sample; the samples reach the documents as one event page per detector."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
from bluesky.utils import MsgGenerator

from couponlab.errors import InputError
from couponlab.interfaces.detectors import LineSampler, LineSpec, Stage
from couponlab.plans.coupon_positions import (
    axis_points,
    coupon_metadata,
    describe_arg,
    mounted_coupon,
)
from couponlab.units import to_magnitude

PREPARE_GROUP = "fly_line_scan.prepare"
FLY_GROUP = "fly_line_scan.fly"


def fly_line_scan(
    detectors: Sequence[LineSampler],
    stage: Stage,
    *,
    start: Any,
    stop: Any,
    at: Any,
    points: int,
    velocity: Any,
    axis: str = "x",
    md: dict[str, Any] | None = None,
) -> MsgGenerator[str]:
    """Fly the stage along a line of the mounted coupon while the detectors sample it.

    The line runs from ``start`` to ``stop`` along ``axis`` at ``at`` on the other axis. The
    stage first moves to the start at its current speed, then runs the line at
    ``velocity``; each detector takes ``points`` samples of ``period = length / velocity /
    points`` seconds each (which is also their dwell), starting with that motion. The
    stage's previous speed is restored at the end, also on failure or abort.

    Everything is checked when the plan is called, before any message exists: a mounted
    coupon; start, stop and ``at`` on the coupon and within the soft limits; ``velocity``
    within the stage's limits; the period within every detector's dwell limits.

    Parameters
    ----------
    detectors
        Line samplers (oxide profiler, XRF probe).
    stage
        The stage carrying the heads.
    start, stop
        Ends of the line along ``axis``, mm from the coupon's start (or length quantities).
    at
        Position on the other axis, mm.
    points
        Samples per detector (>= 1).
    velocity
        Stage speed along the line, mm/s (or a speed quantity).
    axis
        ``"x"`` (along the coupon, the default) or ``"y"``.
    md
        Metadata merged into the run's start document.

    Yields
    ------
    Msg
        Messages of one run with one stream ``<detector>_line`` per detector.

    See Also
    --------
    couponlab.plans.raster_map.raster_map
    """
    if axis not in ("x", "y"):
        raise InputError(stage.name, f"axis must be 'x' or 'y', got {axis!r}")
    if not detectors:
        raise InputError(stage.name, "fly_line_scan needs at least one detector")
    for det in detectors:
        if not isinstance(det, LineSampler):
            raise InputError(
                getattr(det, "name", ""), "this detector cannot sample a line (not a LineSampler)"
            )
    mount = mounted_coupon(stage)
    a0, a1, n = axis_points(stage, mount, axis, start, stop, points)
    other = "y" if axis == "x" else "x"
    b, _, _ = axis_points(stage, mount, other, at, at, 1)
    v = stage.check_velocity(velocity)
    length = abs(a1 - a0)
    if length == 0:
        raise InputError(stage.name, "a fly line needs start != stop")
    period = length / v / n
    spec = LineSpec(n, period)
    for det in detectors:
        det.check_line(spec)
    to_magnitude(period, "s", what="sample period", low=0.0)
    _md: dict[str, Any] = {
        **coupon_metadata(mount),
        "plan_name": "fly_line_scan",
        "plan_args": {
            "detectors": describe_arg(list(detectors)),
            "stage": describe_arg(stage),
            "start": a0,
            "stop": a1,
            "at": b,
            "points": n,
            "velocity": v,
            "axis": axis,
        },
        "line": {"axis": axis, "start_mm": a0, "stop_mm": a1, "at_mm": b},
        "sample_period_s": period,
        "velocity_mm_s": v,
    }
    _md.update(md or {})
    fly_axis = stage.x if axis == "x" else stage.y
    targets = (stage.x, a0, stage.y, b) if axis == "x" else (stage.x, b, stage.y, a0)

    def fly() -> MsgGenerator[None]:
        for det in detectors:
            yield from bps.declare_stream(det, name=f"{det.name}_line", collect=True)
        yield from bps.mv(*targets)
        yield from bps.mv(stage.velocity, v)
        for det in detectors:
            yield from bps.prepare(det, spec, group=PREPARE_GROUP)
        yield from bps.wait(group=PREPARE_GROUP)
        for det in detectors:
            yield from bps.kickoff(det, wait=True)
        yield from bps.abs_set(fly_axis, a1, group=FLY_GROUP)
        for det in detectors:
            yield from bps.complete(det, group=FLY_GROUP)
        yield from bps.wait(group=FLY_GROUP)
        for det in detectors:
            yield from bps.collect(det, name=f"{det.name}_line")

    def run() -> MsgGenerator[str]:
        previous = yield from bps.rd(stage.velocity)

        def restore() -> MsgGenerator[None]:
            yield from bps.mv(stage.velocity, previous)

        inner = bpp.stage_wrapper(bpp.run_wrapper(fly(), md=_md), list(detectors))
        uid: str = yield from bpp.finalize_wrapper(inner, restore())
        return uid

    return run()


__all__ = ["fly_line_scan"]
