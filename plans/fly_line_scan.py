"""Fly-style line scan: the stage moves continuously along one axis while each detector
samples on the way, in hardware time. Spot heads (profiler, XRF probe) take a line of
samples that starts with the stage's motion and record the stage position of each sample
(one event page per head); a camera takes one frame per pulse of the stage's
position-compare output, written to its HDF5 file with the position of each frame and
referenced by stream documents."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
from bluesky.utils import MsgGenerator
from ophyd_async.core import DetectorTrigger, TriggerInfo

from couponlab.errors import InputError
from couponlab.interfaces.detectors import Camera, LineSampler, LineSpec, Stage
from couponlab.plans.cleanup import finalize_keeping_cause
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
    detectors: Sequence[LineSampler | Camera],
    stage: Stage,
    *,
    start: Any,
    stop: Any,
    at: Any,
    points: int,
    velocity: Any,
    axis: str = "x",
    exposure: Any | None = None,
    md: dict[str, Any] | None = None,
) -> MsgGenerator[str]:
    """Fly the stage along a line of the mounted coupon while the detectors sample it.

    The line runs from ``start`` to ``stop`` along ``axis`` at ``at`` on the other axis. The
    stage first moves to the start at its current speed, then runs the line at
    ``velocity``; each spot head takes ``points`` samples of ``period = length / velocity /
    points`` seconds each (which is also their dwell), starting with that motion; a camera
    takes ``points`` frames of ``exposure`` s, one per pulse of the stage's position-compare
    output every ``length / points`` mm from the start. The stage's previous speed is
    restored and its pulses switched off at the end, also on failure or abort.

    Everything is checked when the plan is called, before any message exists: a mounted
    coupon; start, stop and ``at`` on the coupon and within the soft limits; ``velocity``
    within the stage's limits; the period within every detector's dwell limits.

    Parameters
    ----------
    detectors
        Line samplers (oxide profiler, XRF probe) and cameras.
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
    exposure
        Exposure of each camera frame, s (default: half the time between pulses).
    md
        Metadata merged into the run's start document.

    Yields
    ------
    Msg
        Messages of one run with one stream ``<detector>_line`` per detector (event pages
        for spot heads, stream resources and datums for cameras).

    See Also
    --------
    couponlab.plans.raster_map.raster_map
    """
    if axis not in ("x", "y"):
        raise InputError(stage.name, f"axis must be 'x' or 'y', got {axis!r}")
    if not detectors:
        raise InputError(stage.name, "fly_line_scan needs at least one detector")
    for det in detectors:
        if not isinstance(det, LineSampler | Camera):
            raise InputError(
                getattr(det, "name", ""),
                "this detector cannot sample a line (neither a LineSampler nor a Camera)",
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
    heads = [d for d in detectors if isinstance(d, LineSampler)]
    cameras = [d for d in detectors if isinstance(d, Camera) and not isinstance(d, LineSampler)]
    for head in heads:
        head.check_line(spec)
    to_magnitude(period, "s", what="sample period", low=0.0)
    spacing = stage.check_pulse_spacing(length / n) if cameras else 0.0
    exposure_s = exposure if exposure is not None else period / 2
    frames = TriggerInfo(
        number_of_events=n,
        trigger=DetectorTrigger.EXTERNAL_EDGE,
        livetime=cameras[0].check_exposure(exposure_s, period) if cameras else 0.0,
    )
    for cam in cameras:
        cam.check_exposure(exposure_s, period)
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
            "exposure": describe_arg(exposure),
        },
        "line": {"axis": axis, "start_mm": a0, "stop_mm": a1, "at_mm": b},
        "sample_period_s": period,
        "pulse_spacing_mm": spacing,
        "velocity_mm_s": v,
    }
    _md.update(md or {})
    fly_axis = stage.x if axis == "x" else stage.y
    targets = (stage.x, a0, stage.y, b) if axis == "x" else (stage.x, b, stage.y, a0)

    def fly() -> MsgGenerator[None]:
        # a line is flown whole: a pause (one Ctrl-C) lands at the checkpoint after it; a
        # hard pause during it aborts the run (RunAborted), stage and heads in safe state
        yield from bps.clear_checkpoint()
        yield from bps.mv(*targets)
        yield from bps.mv(stage.velocity, v)
        if cameras:
            yield from bps.mv(stage.pulse_spacing, spacing)
        for head in heads:
            yield from bps.prepare(head, spec, group=PREPARE_GROUP)
        for cam in cameras:
            yield from bps.prepare(cam, frames, group=PREPARE_GROUP)  # armed for pulses
        yield from bps.wait(group=PREPARE_GROUP)
        for det in detectors:
            yield from bps.declare_stream(det, name=f"{det.name}_line", collect=True)
        for det in detectors:
            yield from bps.kickoff(det, wait=True)
        yield from bps.abs_set(fly_axis, a1, group=FLY_GROUP)
        for det in detectors:
            yield from bps.complete(det, group=FLY_GROUP)
        yield from bps.wait(group=FLY_GROUP)
        for det in detectors:
            yield from bps.collect(det, name=f"{det.name}_line")
        yield from bps.checkpoint()

    def run() -> MsgGenerator[str]:
        previous = yield from bps.rd(stage.velocity)

        def restore() -> MsgGenerator[None]:
            if cameras:
                yield from bps.mv(stage.pulse_spacing, 0.0)
            yield from bps.mv(stage.velocity, previous)

        inner = bpp.stage_wrapper(bpp.run_wrapper(fly(), md=_md), list(detectors))
        uid: str = yield from finalize_keeping_cause(inner, restore())
        return uid

    return run()


__all__ = ["fly_line_scan"]
