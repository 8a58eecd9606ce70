"""Calibrate powder feeders: measure each hopper's step response and fit its transport delay
and time constant (delay + first-order lag, Pan, Landers & Liou 2006), for feed-forward.

The step is logged by the feeder on its own clock (``start_log``), so the fit sees instrument
time whatever the twin's speed-up or the plan's scheduling. Results travel in the run (an
event per hopper in the ``calibration`` stream, with the raw step response) and are saved
by :class:`CalibrationStore` as JSON for later prints.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from bluesky import plan_stubs as bps
from bluesky.utils import MsgGenerator
from numpy.typing import NDArray

from couponlab.errors import InputError, InstrumentTimeoutError
from couponlab.interfaces.feeder import FlowLog, PowderFeeder
from couponlab.plans.cleanup import finalize_keeping_cause
from couponlab.plans.deposition_support import Record, call
from couponlab.units import to_magnitude

FloatArray = NDArray[np.float64]
PRE_STEP_SAMPLES = 10
"""Samples logged before the step (the baseline)."""


@dataclass(frozen=True)
class HopperCalibration:
    """Fitted delivery dynamics of one hopper.

    Attributes
    ----------
    hopper
        Hopper index (1-based).
    powder
        Powder name at calibration time.
    delay_s
        Transport delay, s.
    tau_s
        First-order time constant, s.
    gain
        Steady nozzle flow per commanded flow at ``step_rate_g_min`` (1 = exact).
    step_rate_g_min
        Commanded step, g/min.
    rms_residual_g_min
        Root-mean-square residual of the fit, g/min.
    """

    hopper: int
    powder: str
    delay_s: float
    tau_s: float
    gain: float
    step_rate_g_min: float
    rms_residual_g_min: float


@dataclass(frozen=True)
class FeederCalibration:
    """Calibration of every hopper of one feeder."""

    feeder: str
    identity: str
    hoppers: dict[int, HopperCalibration] = field(default_factory=dict)
    created: float = field(default_factory=time.time)
    """Wall-clock time of the calibration, s since the epoch."""

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (for the store and run metadata)."""
        return {
            "feeder": self.feeder,
            "identity": self.identity,
            "created": self.created,
            "hoppers": {str(k): asdict(v) for k, v in sorted(self.hoppers.items())},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeederCalibration:
        """Rebuild from :meth:`to_dict` output."""
        hoppers = {int(k): HopperCalibration(**v) for k, v in data["hoppers"].items()}
        return cls(data["feeder"], data["identity"], hoppers, float(data["created"]))


class CalibrationStore:
    """Feeder calibrations as JSON files, one per feeder, in ``folder``."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def path(self, feeder: str) -> Path:
        """Return the file of ``feeder``'s calibration."""
        return self.folder / f"{feeder}.calibration.json"

    def save(self, calibration: FeederCalibration) -> Path:
        """Write ``calibration`` (atomically) and return its path."""
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.path(calibration.feeder)
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps(calibration.to_dict(), indent=2))
        tmp.replace(target)
        return target

    def load(self, feeder: str) -> FeederCalibration:
        """Read ``feeder``'s calibration; raise :class:`InputError` if there is none."""
        p = self.path(feeder)
        try:
            return FeederCalibration.from_dict(json.loads(p.read_text()))
        except FileNotFoundError:
            raise InputError(feeder, f"no calibration stored at {p}") from None


def fit_step_response(log: FlowLog) -> tuple[float, float, float, float]:
    """Fit ``delay + first-order lag`` to a logged rising step.

    The step instant is the first sample whose setpoint rose, and the step lasts until the
    setpoint next changes (a log read after the rate was set back holds the fall too, which
    is not part of the step); the baseline is the mean flow before it and the plateau the
    mean of the last fifth of the step's samples. Delay and time constant come from a
    least-squares grid search (coarse, then fine).

    Returns
    -------
    delay_s, tau_s, gain, rms_residual
        Delay and time constant in s, steady gain (plateau rise / setpoint rise), rms
        residual in g/min.

    Raises
    ------
    ValueError
        No rising step in the log, or too few samples after it.
    """
    t, sp, y = log.t, log.setpoint, log.rate
    rises = np.nonzero(np.diff(sp) > 0)[0]
    if t.size < 20 or rises.size == 0:
        raise ValueError("the log holds no rising setpoint step")
    k = int(rises[0]) + 1
    t_step = 0.5 * (t[k - 1] + t[k])
    base = float(np.mean(y[:k])) if k > 0 else 0.0
    changes = np.nonzero(np.diff(sp[k:]) != 0)[0]  # the step ends where the setpoint next
    end = k + int(changes[0]) + 1 if changes.size else t.size  # changes (rate set back)
    after = slice(k, end)
    tt, yy = t[after] - t_step, y[after]
    if tt.size < 20:
        raise ValueError("too few samples after the step")
    tail = yy[int(0.8 * yy.size) :]
    plateau = float(np.mean(tail))
    rise = float(sp[k] - sp[k - 1])
    gain = (plateau - base) / rise if rise > 0 else float("nan")

    def sse(delays: FloatArray, taus: FloatArray) -> FloatArray:
        dt = tt[None, None, :] - delays[:, None, None]
        model = base + (plateau - base) * np.where(
            dt > 0, 1.0 - np.exp(-np.maximum(dt, 0.0) / taus[None, :, None]), 0.0
        )
        out: FloatArray = np.sum((model - yy[None, None, :]) ** 2, axis=2)
        return out

    span = float(tt[-1])
    delays = np.arange(0.0, span * 0.8, 0.05)
    taus = np.geomspace(0.05, 5.0, 60)
    err = sse(delays, taus)
    i, j = np.unravel_index(int(np.argmin(err)), err.shape)
    d0, tau0 = float(delays[i]), float(taus[j])
    fine_d = np.clip(np.arange(d0 - 0.06, d0 + 0.06, 0.002), 0.0, None)
    fine_t = np.geomspace(max(tau0 / 1.15, 0.01), tau0 * 1.15, 40)
    err = sse(fine_d, fine_t)
    i, j = np.unravel_index(int(np.argmin(err)), err.shape)
    rms = math.sqrt(float(err[i, j]) / tt.size)
    return float(fine_d[i]), float(fine_t[j]), gain, rms


def calibrate_feeder(
    feeder: PowderFeeder,
    hoppers: Sequence[int] | None = None,
    *,
    step_rate: Any = 10.0,
    carrier_gas: Any = 4.0,
    duration: Any = 15.0,
    period: Any = 0.05,
    store: CalibrationStore | None = None,
    wall_timeout: float = 600.0,
    md: dict[str, Any] | None = None,
) -> MsgGenerator[FeederCalibration]:
    """Measure each hopper's step response and fit its transport delay and time constant.

    Parameters
    ----------
    feeder
        The feeder (any :class:`~couponlab.interfaces.feeder.PowderFeeder`).
    hoppers
        Hoppers to calibrate (1-based); all by default.
    step_rate
        Commanded step, g/min (quantity or number).
    carrier_gas
        Carrier gas during the test, L/min.
    duration
        Logged time per hopper, instrument s (long enough for delay + 5 time constants).
    period
        Logging period, instrument s.
    store
        Where to save the result (not saved when None).
    wall_timeout
        Wall-clock limit per hopper, s (the feeder is stopped when it runs out).
    md
        Extra run metadata.

    Yields
    ------
    Msg
        One run with a ``calibration`` stream: per hopper, the fit and the raw step response.

    Returns
    -------
    FeederCalibration
        The fitted parameters (also saved to ``store`` if given).

    See Also
    --------
    couponlab.plans.print_graded.print_graded_coupon : uses the calibration for feed-forward.
    """
    name = feeder.name
    rate = to_magnitude(step_rate, "g/min", device=name, what="step rate", low=0.1)
    gas = to_magnitude(carrier_gas, "L/min", device=name, what="carrier gas", low=0.0)
    span = to_magnitude(duration, "s", device=name, what="duration", low=1.0, high=600.0)
    dt = to_magnitude(period, "s", device=name, what="log period", low=0.02, high=1.0)
    which = list(hoppers) if hoppers is not None else list(range(1, feeder.hopper_count + 1))
    for h in which:
        if not 1 <= h <= feeder.hopper_count:
            raise InputError(name, f"hopper {h} is outside 1..{feeder.hopper_count}")
    if rate > feeder.max_rate:
        raise InputError(name, f"step rate {rate:g} g/min exceeds {feeder.max_rate:g} g/min")
    samples = PRE_STEP_SAMPLES + int(span / dt)
    _md = {
        "plan_name": "calibrate_feeder",
        "plan_args": {
            "feeder": name,
            "hoppers": which,
            "step_rate_g_min": rate,
            "carrier_gas_l_min": gas,
            "duration_s": span,
            "period_s": dt,
        },
        "feeder": name,
        **(md or {}),
    }
    result: dict[str, Any] = {}
    rec = Record(
        "cal",
        {},
        {
            "delay": "s",
            "tau": "s",
            "rms_residual": "g/min",
            "t": "s",
            "setpoint": "g/min",
            "rate": "g/min",
        },
    )

    def one_hopper(h: int) -> MsgGenerator[HopperCalibration]:
        yield from call(lambda: feeder.set_rate(h, 0.0))
        yield from call(lambda: feeder.set_gas(h, gas))
        yield from _wait_quiet(feeder, h, wall_timeout)
        yield from call(lambda: feeder.start_log(h, dt))
        yield from _wait_samples(feeder, PRE_STEP_SAMPLES, wall_timeout)  # a baseline first
        yield from call(lambda: feeder.set_rate(h, rate))
        yield from _wait_samples(feeder, samples, wall_timeout)
        yield from call(lambda: feeder.set_rate(h, 0.0))
        log = yield from call(feeder.read_log)
        delay, tau, gain, rms = fit_step_response(log)
        cal = HopperCalibration(h, feeder.powder(h).name, delay, tau, gain, rate, rms)
        n = min(samples, log.t.size)
        rec.update(
            {
                "hopper": h,
                "delay": delay,
                "tau": tau,
                "gain": gain,
                "rms_residual": rms,
                "t": (log.t - log.t[0])[:n],
                "setpoint": log.setpoint[:n],
                "rate": log.rate[:n],
            }
        )
        yield from bps.trigger_and_read([rec], name="calibration")
        return cal

    def body() -> MsgGenerator[None]:
        identity = yield from call(feeder.identify)
        _md["feeder_identity"] = identity
        yield from bps.open_run(md=_md)
        cals = {}
        for h in which:
            # Ctrl-C pauses between hoppers, with the feeder idle: a hopper's step response
            # is measured whole (a hard pause inside one aborts the run, feeder safe)
            yield from bps.checkpoint()
            yield from bps.clear_checkpoint()
            cals[h] = yield from one_hopper(h)
        yield from bps.checkpoint()
        result["cal"] = FeederCalibration(name, identity, cals)
        yield from bps.close_run()

    def safe() -> MsgGenerator[None]:
        yield from call(feeder.safe_state)

    yield from finalize_keeping_cause(body(), safe())
    calibration: FeederCalibration = result["cal"]
    if store is not None:
        store.save(calibration)
    return calibration


def _wait_samples(feeder: PowderFeeder, count: int, wall_timeout: float) -> MsgGenerator[None]:
    """Wait until the feeder's logger holds ``count`` samples (instrument time)."""
    deadline = time.monotonic() + wall_timeout
    while (yield from call(feeder.log_count)) < count:
        if time.monotonic() > deadline:
            raise InstrumentTimeoutError(feeder.name, f"logger did not reach {count} samples")
        yield from bps.sleep(0.02)


def _wait_quiet(feeder: PowderFeeder, hopper: int, wall_timeout: float) -> MsgGenerator[None]:
    """Wait until ``hopper``'s nozzle flow is below 0.05 g/min (a clean baseline)."""
    deadline = time.monotonic() + wall_timeout
    while True:
        status = yield from call(feeder.status)
        if status.hoppers[hopper - 1].rate < 0.05:
            return
        if time.monotonic() > deadline:
            raise InstrumentTimeoutError(feeder.name, f"hopper {hopper} never stopped flowing")
        yield from bps.sleep(0.05)


__all__ = [
    "CalibrationStore",
    "FeederCalibration",
    "HopperCalibration",
    "calibrate_feeder",
    "fit_step_response",
]
