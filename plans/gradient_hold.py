"""Gradient oxidation hold: ramp a furnace to a linear gradient, hold it, record the profile.

The hold is a furnace program (time lives in the instrument, never in a sleep here), and the
plan records the whole temperature profile at a fixed interval of *instrument* time by
waiting on the furnace's clock, so a 100 h hold on a twin at 5000x takes about 72 s of wall
time and the same plan runs on hardware unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import bluesky.plan_stubs as bps
from bluesky.protocols import Readable
from bluesky.utils import MsgGenerator

from couponlab.errors import InputError, OutOfLimitsError
from couponlab.interfaces.furnace import (
    CouponPlacement,
    FurnaceProgram,
    GradientFurnace,
    GradientSetpoint,
    LinearGradient,
)
from couponlab.plans.cleanup import finalize_keeping_cause
from couponlab.plans.deposition_support import Record
from couponlab.plans.watch import watch
from couponlab.units import QuantityLike, to_magnitude, to_temperature

RAMP_GROUP = "gradient_oxidation_hold.ramp"
"""Status group of the ramp to the gradient."""
HOLD_GROUP = "gradient_oxidation_hold.hold"
"""Status group of the hold program."""
TICK_GROUP = "gradient_oxidation_hold.tick"
"""Status group of each wait for the instrument clock."""
EXPOSURE_STREAM = "exposure"
"""Stream of the coupon's exposure record: one event with ``coupon_in_s`` and
``coupon_out_s`` (instrument clock, s), ``coupon_exposure_s`` (out - in: the programmed hold
plus any time the program was held by a pause) and ``coupon_programmed_s``."""
MAX_EVENTS = 100_000
"""Most profile events one hold may record (duration / interval + 1)."""


def _describe(value: object) -> object:
    """Return a JSON-friendly form of a plan argument (quantities as strings)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def gradient_oxidation_hold(
    furnace: GradientFurnace,
    hot: QuantityLike,
    cold: QuantityLike,
    duration: QuantityLike,
    interval: QuantityLike,
    *,
    ramp_rate: QuantityLike = "10 K/min",
    hot_position: QuantityLike | None = None,
    cold_position: QuantityLike | None = None,
    tolerance: QuantityLike = "2 K",
    coupon_id: str | None = None,
    coupon_offset: QuantityLike = 0.0,
    remove_coupon: bool = True,
    detectors: Sequence[Readable[Any]] = (),
    md: dict[str, Any] | None = None,
) -> MsgGenerator[str]:
    """Hold a coupon in a linear temperature gradient and record the profile over time.

    The plan (1) opens a run, (2) ramps the zones to the gradient and waits until every zone
    is within ``tolerance``, (3) puts ``coupon_id`` on the carrier if one is given (into the
    hot furnace, so that the coupon's exposure is the hold, not the ramp), (4) starts a
    one-segment furnace program that dwells ``duration`` at that gradient, (5) records one
    event of the furnace (whole profile, setpoints, state, interlock and the instrument
    clock) at the start, then one each time the instrument clock has advanced another
    ``interval`` (event k comes at least k * interval after the first), and (6) waits for
    the program to complete, (7) takes the coupon off the hot carrier (with
    ``remove_coupon``) and records its exposure in the ``exposure`` stream
    (:data:`EXPOSURE_STREAM`: clock at coupon in and out). Whatever happens -- completion,
    an error, a tripped interlock, stop or abort -- the furnace is sent to standby at the
    end, and then (with ``remove_coupon``) the coupon is taken off the carrier rather than
    left to cool with the furnace.

    Ctrl-C pauses, as at a beamline: the plan watches the ramp and the hold in slices with a
    checkpoint before each (:func:`couponlab.plans.watch.watch`), so a pause lands within a
    slice; the RunEngine then calls the furnace's ``pause()``, which holds the program (the
    dwell timer stops, the zones keep their temperature, the coupon stays in). ``RE.resume()``
    resumes the program and the recording; the exposure record then includes the time held.
    ``RE.stop()`` / ``RE.abort()`` end in standby with the coupon out.

    Parameters
    ----------
    furnace
        Any :class:`~couponlab.interfaces.furnace.GradientFurnace`.
    hot, cold
        Absolute temperatures of the two ends (degC if bare numbers; K accepted).
    duration
        Hold time, s of instrument time (> 0; e.g. ``"100 h"``).
    interval
        Recording interval, s of instrument time (> 0, at most ``duration``).
    ramp_rate
        Setpoint ramp rate to reach the gradient, K/min (> 0).
    hot_position, cold_position
        End positions along the tube, mm (default: the first and last zone).
    tolerance
        Largest |PV - SP| accepted as "at the gradient", K.
    coupon_id
        Coupon to put on the carrier (recorded as ``coupon_id`` in the start document).
    coupon_offset
        Position of the coupon's start along the tube, mm.
    remove_coupon
        Take the coupon off the carrier when the hold ends (True: its exposure is the hold;
        False: it stays in the cooling furnace).
    detectors
        Other readables recorded in every event beside the furnace, e.g. a thermocouple
        scanner on the coupon carrier (the gradient the coupon really saw).
    md
        Metadata merged into the start document (the caller's keys win).

    Yields
    ------
    Msg
        Messages for the RunEngine.

    Returns
    -------
    str
        The run's uid.

    Raises
    ------
    InputError
        Bad duration, interval or temperature units (before any message); the furnace
        refuses the rest (limits, rates, positions) before anything is written.

    See Also
    --------
    couponlab.interfaces.furnace.GradientFurnace : what the furnace must offer.
    couponlab.plans.oxidation_analysis : the activation energy from the exposed coupon.
    """
    name = furnace.name or "furnace"
    duration_s = to_magnitude(duration, "s", device=name, what="hold duration")
    interval_s = to_magnitude(interval, "s", device=name, what="recording interval")
    if duration_s <= 0:
        raise OutOfLimitsError(
            name, "hold duration", f"{duration_s:g}", "0 (exclusive)", "inf", "s"
        )
    if not 0 < interval_s <= duration_s:
        raise OutOfLimitsError(
            name, "recording interval", f"{interval_s:g}", "0 (exclusive)", f"{duration_s:g}", "s"
        )
    ticks = math.floor(duration_s / interval_s + 1e-9)
    if ticks + 1 > MAX_EVENTS:
        raise InputError(
            name,
            f"{ticks + 1} events (duration {duration_s:g} s / interval {interval_s:g} s) is more "
            f"than {MAX_EVENTS}: record less often",
        )
    hot_c = to_temperature(hot, device=name, what="hot-end temperature")
    cold_c = to_temperature(cold, device=name, what="cold-end temperature")
    if coupon_id is not None and not isinstance(coupon_id, str):
        raise InputError(name, f"coupon id {coupon_id!r} is not a string")

    gradient = GradientSetpoint(hot, cold, hot_position, cold_position, ramp_rate, tolerance)
    program = FurnaceProgram.hold(
        LinearGradient(hot, cold, hot_position, cold_position), duration_s, ramp_rate
    )
    args = {
        "furnace": name,
        "hot": hot,
        "cold": cold,
        "duration": duration,
        "interval": interval,
        "ramp_rate": ramp_rate,
        "hot_position": hot_position,
        "cold_position": cold_position,
        "tolerance": tolerance,
        "coupon_id": coupon_id,
        "coupon_offset": coupon_offset,
        "remove_coupon": remove_coupon,
        "detectors": [d.name for d in detectors],
    }
    start_md: dict[str, Any] = {
        "plan_name": "gradient_oxidation_hold",
        "plan_args": {k: _describe(v) for k, v in args.items()},
        "detectors": [name, *(d.name for d in detectors)],
        "coupon_id": coupon_id,
        "hot_end_c": hot_c,
        "cold_end_c": cold_c,
        "hold_duration_s": duration_s,
        "record_interval_s": interval_s,
        "num_points": ticks + 1,
    }
    start_md.update(md or {})

    def hold() -> MsgGenerator[str]:
        uid: str = yield from bps.open_run(md=start_md)
        ramp = yield from bps.abs_set(furnace, gradient, group=RAMP_GROUP)
        yield from watch(ramp)  # a pause during the ramp: the furnace keeps ramping
        t_in = math.nan
        if coupon_id is not None:  # into the hot furnace: the exposure is the hold
            yield from bps.mv(furnace, CouponPlacement(coupon_id, coupon_offset))
            t_in = float((yield from bps.rd(furnace.clock)))
        held = yield from bps.abs_set(furnace, program, group=HOLD_GROUP)
        yield from bps.checkpoint()  # from here a resume must not start the program again
        yield from bps.trigger_and_read([furnace, *detectors])
        # ticks count from the clock read just after the first event, so that event k is
        # recorded at least k * interval of instrument time after the first
        t0 = float((yield from bps.rd(furnace.clock)))
        for k in range(1, ticks + 1):
            tick = yield from bps.abs_set(furnace.clock, t0 + k * interval_s, group=TICK_GROUP)
            # watched in slices with checkpoints: a pause holds the program (the furnace's
            # pause()) within a slice; the program's own failure ends the plan at once
            # (the RunEngine throws a failed status into the plan at its next message)
            yield from watch(tick)
            if held is not None and held.done and not held.success:
                yield from watch(held)  # raises the program's error
            yield from bps.trigger_and_read([furnace, *detectors])
        yield from watch(held)
        if coupon_id is not None:
            t_out = math.nan
            if remove_coupon:  # out while hot: the exposure ends with the hold
                yield from bps.mv(furnace, CouponPlacement("", 0.0))
                removed.append(True)
                t_out = float((yield from bps.rd(furnace.clock)))
            record = Record(
                "coupon",
                {
                    "in_s": t_in,
                    "out_s": t_out,
                    "exposure_s": t_out - t_in,
                    "programmed_s": duration_s,
                },
                dict.fromkeys(("in_s", "out_s", "exposure_s", "programmed_s"), "s"),
            )
            yield from bps.trigger_and_read([record], name=EXPOSURE_STREAM)
        yield from bps.close_run()
        return uid

    removed: list[bool] = []  # the coupon came out at the end of the hold

    def finish() -> MsgGenerator[None]:
        yield from bps.stop(furnace)
        if coupon_id is not None and remove_coupon and not removed:
            yield from bps.mv(furnace, CouponPlacement("", 0.0))

    uid: str = yield from finalize_keeping_cause(hold(), finish())
    return uid


__all__ = [
    "EXPOSURE_STREAM",
    "HOLD_GROUP",
    "MAX_EVENTS",
    "RAMP_GROUP",
    "TICK_GROUP",
    "gradient_oxidation_hold",
]
