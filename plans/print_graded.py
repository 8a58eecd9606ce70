"""Print a graded coupon to a target composition map, with feed-forward of the calibrated
powder-delivery dynamics.

The target map (element fractions along x) becomes a powder mix per position (non-negative
least squares over the hoppers' powders), then a desired nozzle flow per channel. Naive
switching commands each channel with that flow at the position where it is wanted, so the
powder arrives one transport delay and one lag later (a whole gradient shifted and smeared
by ``speed * (delay + tau)``). Feed-forward leads each command by its channel's calibrated
delay and inverts its first-order lag (exactly, for piecewise-constant commands), so the
powder arrives where it is wanted. The cell plays the schedule by position, in its own time.

Every print gets a coupon id; its parameters, target, predicted map and calibration go into
the run's start document, and (from a twin) the as-built map into the ``as_built`` stream.
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
from bluesky import preprocessors as bpp
from bluesky.utils import MsgGenerator
from numpy.typing import NDArray

from couponlab.errors import InputError
from couponlab.interfaces.feeder import (
    CompositionMap,
    DepositionCell,
    Powder,
    PowderFeeder,
    PrintJob,
)
from couponlab.plans.calibrate_feeder import FeederCalibration, HopperCalibration
from couponlab.plans.deposition_support import Record, call
from couponlab.units import to_magnitude

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Channel:
    """One feed channel of the cell: its feeder, hopper, powder and calibration."""

    feeder: str
    hopper: int
    powder: Powder
    calibration: HopperCalibration | None


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


def nnls(a: FloatArray, b: FloatArray, iterations: int = 200) -> FloatArray:
    """Solve ``min ||a x - b||`` with ``x >= 0`` (Lawson-Hanson active set)."""
    n = a.shape[1]
    x = np.zeros(n)
    passive = np.zeros(n, bool)
    w = a.T @ (b - a @ x)
    for _ in range(iterations):
        if passive.all() or w[~passive].max(initial=-np.inf) <= 1e-12:
            break
        j = int(np.argmax(np.where(passive, -np.inf, w)))
        passive[j] = True
        for _ in range(2 * n + 2):
            z = np.zeros(n)
            z[passive] = np.linalg.lstsq(a[:, passive], b, rcond=None)[0]
            if (z[passive] > 0).all():
                x = z
                break
            mask = passive & (z <= 0)
            alpha = np.min(x[mask] / (x[mask] - z[mask]))
            x = x + alpha * (z - x)
            passive &= x > 1e-12
        w = a.T @ (b - a @ x)
    return x


def powder_mix(target: CompositionMap, powders: Sequence[Powder]) -> FloatArray:
    """Return the mass fraction of each powder at each target node, shape (nx, nchannels).

    Fractions are non-negative and sum to 1 (a heavily weighted row enforces the sum).

    Raises
    ------
    InputError
        The target needs an element that no powder contains.
    """
    elements = sorted(set(target.fractions) | {e for p in powders for e in p.composition})
    missing = [
        e for e in target.fractions if not any(p.composition.get(e, 0) > 0 for p in powders)
    ]
    if missing:
        raise InputError("", f"no powder contains {missing}; powders: {[p.name for p in powders]}")
    a = np.array([[p.composition.get(e, 0.0) for p in powders] for e in elements], float)
    a = np.vstack([a, 100.0 * np.ones(len(powders))])
    nx = target.x_mm.size
    mix = np.zeros((nx, len(powders)))
    for i in range(nx):
        b = np.array([float(target.fractions.get(e, np.zeros(nx))[i]) for e in elements] + [100.0])
        w = nnls(a, b)
        mix[i] = w / w.sum() if w.sum() > 0 else w
    return mix


def invert_lag(q: FloatArray, tau: float, h: float) -> FloatArray:
    """Return piecewise-constant commands ``u`` whose first-order lag output (time constant
    ``tau`` s, step ``h`` s, zero-order hold) follows ``q``: ``u[n] = (q[n+1] - a q[n]) / (1-a)``.
    """
    a = math.exp(-h / tau) if tau > 0 else 0.0
    nxt = np.append(q[1:], q[-1])
    u: FloatArray = (nxt - a * q) / (1.0 - a)
    return u


def simulate_channel(u: FloatArray, delay: float, tau: float, gain: float, h: float) -> FloatArray:
    """Return the nozzle flow of a channel (delay + lag + gain) for commands ``u`` at step h."""
    a = math.exp(-h / tau) if tau > 0 else 0.0
    y = np.zeros_like(u)
    state = 0.0
    for n in range(u.size):
        y[n] = state
        state = a * state + (1 - a) * gain * u[n]
    shift = round(delay / h)
    out = np.zeros_like(y)
    if shift < y.size:
        out[shift:] = y[: y.size - shift]
    return out


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
    """Return the rms difference of two maps' fractions (over all elements, on a's grid)."""
    diffs = []
    for e in set(a.fractions) | set(b.fractions):
        fa = a.fractions.get(e, np.zeros(a.x_mm.size))
        fb = np.interp(a.x_mm, b.x_mm, b.fractions.get(e, np.zeros(b.x_mm.size)))
        diffs.append(np.asarray(fa) - fb)
    return float(np.sqrt(np.mean(np.square(diffs))))


def print_graded_coupon(
    cell: DepositionCell,
    feeders: Sequence[PowderFeeder],
    target: CompositionMap,
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
    md: dict[str, Any] | None = None,
) -> MsgGenerator[PrintRecord]:
    """Print one graded coupon to ``target`` and record its identity and maps.

    Parameters
    ----------
    cell
        The deposition cell (any :class:`~couponlab.interfaces.feeder.DepositionCell`).
    feeders
        The feeders behind the cell's channels (matched by device name).
    target
        Target element fractions along the coupon (x from 0 to the coupon length, mm).
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
    md
        Extra run metadata.

    Yields
    ------
    Msg
        One run: start metadata with coupon id, print parameters, target, predicted map and
        calibration; the ``as_built`` stream with the as-built map (twins only).

    Returns
    -------
    PrintRecord
        The coupon's id, job, target, predicted and as-built maps.

    Raises
    ------
    InterlockTrippedError
        The cell aborted the print (empty hopper, clog, gas or shielding loss); the cell and
        feeders are in their safe state.

    See Also
    --------
    couponlab.plans.calibrate_feeder.calibrate_feeder
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
    used = {k for _, rates in job.points for k, r in enumerate(rates) if r > 0}
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
        },
        "coupon_id": cid,
        "sample": cid,
        "print_parameters": {
            "length_mm": job.length_mm,
            "x_start_mm": job.x_start_mm,
            "x_end_mm": job.x_end_mm,
            "speed_mm_s": v,
            "power_w": p,
            "schedule_points": len(job.points),
            "channels": [f"{c.feeder}:{c.hopper}" for c in channels],
            "powders": {f"{c.feeder}:{c.hopper}": c.powder.name for c in channels},
            "feedforward": feedforward,
        },
        "calibration": {
            f"{c.feeder}:{c.hopper}": (
                {"delay_s": c.calibration.delay_s, "tau_s": c.calibration.tau_s}
                if c.calibration
                else None
            )
            for c in channels
        },
        "target_map": target.to_dict(),
        "predicted_map": predicted.to_dict(),
        **(md or {}),
    }
    result: dict[str, Any] = {}

    def body() -> MsgGenerator[None]:
        yield from bps.open_run(md=metadata)
        for k in sorted(used):
            yield from call(_gas_setter(by_name[channels[k].feeder], channels[k].hopper, cgas))
        yield from call(lambda: cell.set_shield_gas(sgas))
        yield from call(lambda: cell.load_print(job))
        yield from call(cell.start_print)
        yield from call(lambda: cell.wait_print(timeout=print_timeout))
        as_built = yield from call(cell.as_built_map)
        result["as_built"] = as_built
        if as_built is not None:
            values: dict[str, Any] = {"x": as_built.x_mm}
            units = {"x": "mm"}
            for e, frac in as_built.fractions.items():
                values[e] = frac
                units[e] = "mass fraction"
            values["rms_error"] = map_error(target, as_built)
            units["rms_error"] = "mass fraction"
            yield from bps.trigger_and_read([Record("as_built", values, units)], name="as_built")
        yield from bps.close_run()

    def safe() -> MsgGenerator[None]:
        yield from call(cell.safe_state)
        for f in feeders:
            yield from call(f.safe_state)

    yield from bpp.finalize_wrapper(body(), safe())
    return PrintRecord(cid, job, target, predicted, result.get("as_built"), metadata)


__all__ = [
    "Channel",
    "PrintRecord",
    "invert_lag",
    "map_error",
    "new_coupon_id",
    "nnls",
    "plan_schedule",
    "powder_mix",
    "print_graded_coupon",
    "simulate_channel",
]
