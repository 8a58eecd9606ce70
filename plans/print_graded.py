"""Print a graded coupon to a target composition map, with feed-forward of the calibrated
powder-delivery dynamics.

A target along x (element fractions along the coupon) is printed as one full-width pass:
it becomes a powder mix per position (non-negative least squares over the hoppers'
powders), then a desired nozzle flow per channel. Naive switching commands each channel with
that flow at the position where it is wanted, so the powder arrives one transport delay and
one lag later (a whole gradient shifted and smeared by ``speed * (delay + tau)``).
Feed-forward leads each command by its channel's calibrated delay and inverts its first-order
lag (exactly, for piecewise-constant commands), so the powder arrives where it is wanted.

A 2-D target (graded across the coupon's width, y) is printed as tracks along x stepped
across y (:mod:`couponlab.plans.track_schedule`, decision 0013); there the delay bites at
every track's start, and feed-forward switches each channel a delay before the previous
track ends. The cell plays every schedule by position, in its own time.

Every print gets a coupon id; its parameters, target, predicted map and calibration go into
the run's start document, and (from a twin) the as-built map, 2-D for tracks, into the
``as_built`` stream.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from bluesky import plan_stubs as bps
from bluesky.utils import MsgGenerator
from numpy.typing import NDArray

from couponlab.errors import InputError
from couponlab.interfaces.feeder import (
    CompositionMap,
    DepositionCell,
    PowderFeeder,
    PrintJob,
)
from couponlab.plans.calibrate_feeder import FeederCalibration
from couponlab.plans.cleanup import finalize_keeping_cause
from couponlab.plans.deposition_support import Record, call
from couponlab.plans.feed_model import (
    Channel,
    invert_lag,
    powder_mix,
    simulate_channel,
)
from couponlab.plans.graded_target import GradedTarget, row_errors, tracked_target
from couponlab.plans.track_schedule import plan_tracks
from couponlab.plans.watch import watch_call
from couponlab.units import to_magnitude

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class PrintRecord:
    """What a print produced: the coupon's identity, job, maps and metadata."""

    coupon_id: str
    job: PrintJob
    target: CompositionMap
    predicted: CompositionMap
    as_built: CompositionMap | None
    metadata: dict[str, Any]


def new_coupon_id() -> str:
    """Return a fresh coupon id, ``C<yyyymmdd>-<8 hex>``."""
    return f"C{time.strftime('%Y%m%d')}-{uuid.uuid4().hex[:8]}"


def plan_schedule(
    channels: Sequence[Channel],
    target: CompositionMap,
    *,
    coupon_id: str,
    speed_mm_s: float,
    power_w: float,
    total_rate_g_min: float,
    max_rate_g_min: float,
    feedforward: bool,
    step_mm: float = 0.5,
    run_out_mm: float = 2.0,
) -> tuple[PrintJob, CompositionMap]:
    """Compute the print job (path and schedule) and the map the calibration predicts.

    The path starts early enough (run-in) for every channel to settle before x = 0 and ends
    ``run_out_mm`` past the coupon. Commands are clipped to ``0..max_rate_g_min``.
    """
    mix = powder_mix(target, [c.powder for c in channels])
    used = [k for k in range(len(channels)) if mix[:, k].max() > 1e-6]
    missing = [
        f"{channels[k].feeder}:{channels[k].hopper}" for k in used if not channels[k].calibration
    ]
    if feedforward and missing:
        raise InputError("", f"feed-forward needs a calibration of {missing}")
    length = float(target.x_mm[-1])
    h = step_mm / speed_mm_s
    settle = max(
        (
            cal.delay_s + 5 * cal.tau_s
            for k in used
            if (cal := channels[k].calibration) is not None
        ),
        default=5.0,
    )
    run_in = math.ceil(speed_mm_s * settle / step_mm + 2) * step_mm
    x_start, x_end = -run_in, length + run_out_mm
    x = np.arange(x_start, x_end + 1e-9, step_mm)
    # desired nozzle flow of each channel along the path (ends held)
    q = np.stack(
        [np.interp(x, target.x_mm, mix[:, k]) * total_rate_g_min for k in range(len(channels))]
    )
    u = np.zeros_like(q)
    predicted = np.zeros_like(q)
    for k, c in enumerate(channels):
        cal = c.calibration
        if k not in used:
            continue
        if feedforward and cal is not None:
            lead = cal.delay_s / h  # in steps
            t_idx = np.arange(x.size) + lead
            ahead = np.interp(t_idx, np.arange(x.size), q[k])
            u[k] = invert_lag(ahead, cal.tau_s, h) / max(cal.gain, 1e-3)
        else:
            u[k] = q[k]
        u[k] = np.clip(u[k], 0.0, max_rate_g_min)
        if cal is not None:
            predicted[k] = simulate_channel(u[k], cal.delay_s, cal.tau_s, cal.gain, h)
        else:
            predicted[k] = u[k]
    points = [(float(x[n]), [float(u[k, n]) for k in range(len(channels))]) for n in range(x.size)]
    job = PrintJob(coupon_id, length, float(x[0]), float(x[-1]), speed_mm_s, power_w, points)
    on = (x >= 0) & (x <= length + 1e-9)
    element_mass: dict[str, FloatArray] = {}
    for k, c in enumerate(channels):
        for e, f in c.powder.composition.items():
            element_mass[e] = element_mass.get(e, np.zeros(x.size)) + f * predicted[k]
    total = sum(element_mass.values())
    total_arr = np.where(np.asarray(total) > 1e-9, total, 1.0)
    pred = CompositionMap(
        target.x_mm.copy(),
        {e: np.interp(target.x_mm, x[on], (m / total_arr)[on]) for e, m in element_mass.items()},
    )
    return job, pred


def _gas_setter(feeder: PowderFeeder, hopper: int, flow: float) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        await feeder.set_gas(hopper, flow)

    return run


def map_error(a: CompositionMap, b: CompositionMap) -> float:
    """Return the rms difference of two maps' fractions (over all elements, on a's grid).

    A 2-D ``a`` is compared node by node with ``b`` resampled on its grid (a map along x
    only counts as uniform across y); a map along x with the mean across y of a 2-D ``b``.
    """
    if a.y_mm is not None:
        return float(np.sqrt(np.mean(np.square(row_errors(a, b)))))
    diffs = []
    for e in set(a.fractions) | set(b.fractions):
        fa = a.fractions.get(e, np.zeros(a.x_mm.size))
        fb_raw = np.asarray(b.fractions.get(e, np.zeros(b.x_mm.size)), float)
        if fb_raw.ndim == 2:
            fb_raw = fb_raw.mean(axis=0)
        fb = np.interp(a.x_mm, b.x_mm, fb_raw)
        diffs.append(np.asarray(fa) - fb)
    return float(np.sqrt(np.mean(np.square(diffs))))


def print_graded_coupon(
    cell: DepositionCell,
    feeders: Sequence[PowderFeeder],
    target: GradedTarget,
    calibrations: Mapping[str, FeederCalibration] | None = None,
    *,
    coupon_id: str | None = None,
    speed: Any = 10.0,
    power: Any = 400.0,
    total_rate: Any = 10.0,
    carrier_gas: Any = 4.0,
    shield_gas: Any = 15.0,
    feedforward: bool = True,
    print_timeout: float = 600.0,
    length: Any = None,
    width: Any = None,
    hatch: Any = None,
    track_run_in: Any = 2.0,
    md: dict[str, Any] | None = None,
) -> MsgGenerator[PrintRecord]:
    """Print one graded coupon to ``target`` and record its identity and maps.

    A map along x only is printed as one full-width pass (the original form). Any 2-D form
    (a map on the coupon's (y, x) grid, a function of (x, y), or one composition per track;
    :mod:`couponlab.plans.graded_target`) is printed as tracks along x stepped across y
    (:mod:`couponlab.plans.track_schedule`, decision 0013), which needs a multi-track cell.

    Parameters
    ----------
    cell
        The deposition cell (any :class:`~couponlab.interfaces.feeder.DepositionCell`).
    feeders
        The feeders behind the cell's channels (matched by device name).
    target
        Target element fractions: a :class:`~couponlab.interfaces.feeder.CompositionMap`
        along x (single pass) or on a (y, x) grid, a function ``f(x_mm, y_mm)`` returning
        ``{element: fractions}``, or a sequence of ``{element: fraction}``, one per track.
    calibrations
        Feeder name -> calibration (from
        :func:`~couponlab.plans.calibrate_feeder.calibrate_feeder`); needed for feed-forward.
    coupon_id
        The coupon's identity; a fresh one (:func:`new_coupon_id`) by default.
    speed, power
        Travel speed (mm/s) and laser power (W).
    total_rate
        Total powder flow, g/min, shared among the channels by the powder mix.
    carrier_gas, shield_gas
        Carrier gas of every used hopper and shielding gas, L/min.
    feedforward
        Lead and lag-invert the commands (True) or switch naively (False).
    print_timeout
        Wall-clock limit of the print, s.
    length, width
        Coupon size (mm) for a target function (default 60 x 10) or a per-track list
        (width, default 10); a map gives its own.
    hatch
        Spacing of the tracks, mm (default: the cell's ``hatch_mm``); the per-track form
        spreads its tracks evenly across the width instead.
    track_run_in
        Path before x = 0 of every track after the first, mm (the first track's run-in lets
        every channel settle from rest).
    md
        Extra run metadata.

    Yields
    ------
    Msg
        One run: start metadata with coupon id, print parameters (tracks, hatch, bead width,
        run-ins and transitions for a multi-track print), target, predicted map and
        calibration; the ``as_built`` stream with the as-built map, 2-D for tracks, and its
        rms error overall and per row (twins only).

    Returns
    -------
    PrintRecord
        The coupon's id, job, target, predicted and as-built maps.

    Raises
    ------
    InputError
        A malformed target, a 2-D target for a cell that prints one pass only, feed-forward
        without calibrations; nothing is sent.
    InterlockTrippedError
        The cell aborted the print (empty hopper, clog, gas or shielding loss); the cell and
        feeders are in their safe state.

    See Also
    --------
    couponlab.plans.calibrate_feeder.calibrate_feeder
    couponlab.plans.graded_target.tracked_target
    """
    v = to_magnitude(speed, "mm/s", device=cell.name, what="speed", low=0.1, high=200.0)
    p = to_magnitude(power, "W", device=cell.name, what="laser power", low=1.0)
    total = to_magnitude(total_rate, "g/min", device=cell.name, what="total rate", low=0.1)
    cgas = to_magnitude(carrier_gas, "L/min", device=cell.name, what="carrier gas", low=0.0)
    sgas = to_magnitude(shield_gas, "L/min", device=cell.name, what="shielding gas", low=0.0)
    cid = coupon_id or new_coupon_id()
    by_name = {f.name: f for f in feeders}
    channels = []
    for fname, hopper in cell.channels:
        if fname not in by_name:
            raise InputError(cell.name, f"channel {fname}:{hopper} needs feeder {fname!r}")
        cal = (calibrations or {}).get(fname)
        channels.append(
            Channel(
                fname,
                hopper,
                by_name[fname].powder(hopper),
                cal.hoppers.get(hopper) if cal else None,
            )
        )
    max_rate = min(f.max_rate for f in feeders)
    single = isinstance(target, CompositionMap) and target.y_mm is None
    parameters: dict[str, Any]
    if single:
        assert isinstance(target, CompositionMap)
        target_map = target
        job, predicted = plan_schedule(
            channels,
            target,
            coupon_id=cid,
            speed_mm_s=v,
            power_w=p,
            total_rate_g_min=total,
            max_rate_g_min=max_rate,
            feedforward=feedforward,
        )
        parameters = {"schedule_points": len(job.points)}
    else:
        geometry = cell.track_geometry
        if geometry is None:
            raise InputError(cell.name, "a 2-D target needs a cell that prints tracks")

        def mm(value: Any, what: str) -> float:
            return to_magnitude(value, "mm", device=cell.name, what=what, low=0.0)

        tracked = tracked_target(
            target,
            length_mm=None if length is None else mm(length, "length"),
            width_mm=None if width is None else mm(width, "width"),
            hatch_mm=geometry.hatch_mm if hatch is None else mm(hatch, "hatch"),
            device=cell.name,
        )
        run_in = mm(track_run_in, "track run-in")
        plan = plan_tracks(
            channels,
            tracked,
            coupon_id=cid,
            speed_mm_s=v,
            power_w=p,
            total_rate_g_min=total,
            max_rate_g_min=max_rate,
            feedforward=feedforward,
            geometry=geometry,
            track_run_in_mm=run_in,
        )
        job, predicted, target_map = plan.job, plan.predicted, tracked.target
        ys = [float(y) for y in tracked.tracks_y_mm]
        parameters = {
            "width_mm": tracked.width_mm,
            "tracks": len(ys),
            "tracks_y_mm": ys,
            "hatch_mm": float(np.mean(np.diff(ys))),
            "bead_width_mm": geometry.bead_width_mm,
            "rapid_speed_mm_s": geometry.rapid_speed_mm_s,
            "first_run_in_mm": plan.first_run_in_mm,
            "track_run_in_mm": plan.track_run_in_mm,
            "transitions_s": list(plan.transitions_s),
            "schedule_points": sum(len(t.points) for t in job.tracks),
        }
    schedules = [tr.points for tr in job.tracks] if job.tracks else [job.points]
    used = {k for points in schedules for _, rates in points for k, r in enumerate(rates) if r > 0}
    metadata: dict[str, Any] = {
        "plan_name": "print_graded_coupon",
        "plan_args": {
            "cell": cell.name,
            "feeders": [f.name for f in feeders],
            "speed_mm_s": v,
            "power_w": p,
            "total_rate_g_min": total,
            "carrier_gas_l_min": cgas,
            "shield_gas_l_min": sgas,
            "feedforward": feedforward,
            "target_form": _target_form(target),
            "hatch": None if hatch is None else str(hatch),
            "track_run_in": str(track_run_in),
        },
        "coupon_id": cid,
        "print_parameters": {
            "mode": "single_pass" if single else "tracks",
            "length_mm": job.length_mm,
            "x_start_mm": job.x_start_mm,
            "x_end_mm": job.x_end_mm,
            "speed_mm_s": v,
            "power_w": p,
            "channels": [f"{c.feeder}:{c.hopper}" for c in channels],
            "powders": {f"{c.feeder}:{c.hopper}": c.powder.name for c in channels},
            "feedforward": feedforward,
            **parameters,
        },
        "calibration": {
            f"{c.feeder}:{c.hopper}": (
                {"delay_s": c.calibration.delay_s, "tau_s": c.calibration.tau_s}
                if c.calibration
                else None
            )
            for c in channels
        },
        "target_map": target_map.to_dict(),
        "predicted_map": predicted.to_dict(),
        **(md or {}),
    }
    result: dict[str, Any] = {}

    def body() -> MsgGenerator[None]:
        yield from bps.open_run(md=metadata)
        yield from bps.clear_checkpoint()  # set-up and start are never replayed after a pause
        for k in sorted(used):
            yield from call(_gas_setter(by_name[channels[k].feeder], channels[k].hopper, cgas))
        yield from call(lambda: cell.set_shield_gas(sgas))
        yield from call(lambda: cell.load_print(job))
        yield from call(cell.start_print)
        # the cell prints by itself: the plan watches in slices, so Ctrl-C pauses the run
        # within one; the cell has no paused state (its protocol has no hold), so it
        # finishes the job; RE.resume() goes on, RE.abort() stops it (cell safe state)
        yield from watch_call(lambda: cell.wait_print(timeout=print_timeout))
        as_built = yield from call(cell.as_built_map if single else cell.as_built_map_xy)
        result["as_built"] = as_built
        if as_built is not None:
            values: dict[str, Any] = {"x": as_built.x_mm}
            units = {"x": "mm"}
            if as_built.y_mm is not None:
                values["y"] = as_built.y_mm
                units["y"] = "mm"
            for e, frac in as_built.fractions.items():
                values[e] = frac
                units[e] = "mass fraction"
            values["rms_error"] = map_error(target_map, as_built)
            units["rms_error"] = "mass fraction"
            if not single:
                values["row_rms_error"] = row_errors(target_map, as_built)
                units["row_rms_error"] = "mass fraction"
            yield from bps.trigger_and_read([Record("as_built", values, units)], name="as_built")
        yield from bps.close_run()

    def safe() -> MsgGenerator[None]:
        yield from call(cell.safe_state)
        for f in feeders:
            yield from call(f.safe_state)

    yield from finalize_keeping_cause(body(), safe())
    return PrintRecord(cid, job, target_map, predicted, result.get("as_built"), metadata)


def _target_form(target: GradedTarget) -> str:
    if isinstance(target, CompositionMap):
        return "map_xy" if target.y_mm is not None else "map_x"
    return "function" if callable(target) else "per_track"


__all__ = [
    "Channel",
    "PrintRecord",
    "invert_lag",
    "map_error",
    "new_coupon_id",
    "plan_schedule",
    "powder_mix",
    "print_graded_coupon",
    "simulate_channel",
]
