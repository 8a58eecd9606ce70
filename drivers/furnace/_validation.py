"""Turn furnace requests into the numbers the instrument speaks, refusing bad input.

Everything here is pure (no I/O): the device reads its instrument limits first, then calls
these functions, and only writes if they return. Every error is a typed
:class:`~couponlab.errors.InputError` that names the device, the value and what is allowed.
Temperatures are absolute (``degC``/``K``; ``delta_degC`` refused), tolerances are
temperature *differences* (``K``/``delta_degC``; ``degC`` refused), rates are ``K/min``
(``degC/min`` refused by the parser as ambiguous).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from couponlab.errors import InputError, OutOfLimitsError
from couponlab.interfaces.furnace import (
    CouponPlacement,
    FurnaceProgram,
    GradientSetpoint,
    LinearGradient,
    ProgramSegment,
)
from couponlab.units import QuantityLike, to_magnitude, to_temperature
from couponlab.values import ValueSpec

FloatArray = NDArray[np.float64]

MAX_SEGMENTS = 64
"""Most segments ``Program.Load`` accepts (docs/protocols/furnace-opcua.md)."""
MAX_DWELL_S = 1e7
"""Longest dwell of one program segment, s (docs/protocols/furnace-opcua.md)."""

TEMPERATURE = ValueSpec("degC", "temperature", low=0.0, lab_limit="max_temperature")
"""An absolute temperature, degC (K and degF converted), 0 .. the lab's max_temperature."""
RAMP_RATE = ValueSpec("K/min", low=0.0, above=True)
"""A setpoint ramp rate, K/min, > 0 (the instrument's 0 = "unlimited" is never sent)."""
POSITION = ValueSpec("mm", low=0.0)
"""A position along the tube, mm (0 .. TubeLength, the node's EURange)."""
COUPON_ID = ValueSpec(kind="text", max_length=64)
"""A coupon id: printable, at most 64 characters."""


@dataclass(frozen=True)
class FurnaceLimits:
    """What the instrument (and the lab file) allow.

    Attributes
    ----------
    device
        Device name for messages.
    zone_positions_mm
        Thermocouple position of each zone, mm (strictly increasing).
    tube_length_mm
        Heated length, mm.
    max_temperature_c
        Highest setpoint allowed: min(lab limit, instrument MaxTemperature), degC.
    min_temperature_c
        Lowest setpoint allowed, degC (the setpoint's EURange low; 0 by the contract).
    max_ramp_rate_k_per_min
        Highest ramp rate the instrument accepts (RampRate's EURange high), K/min, or None.
    max_segments
        Most segments ``Program.Load`` accepts (64 by the contract).
    max_dwell_s
        Longest dwell of one segment, s (1e7 by the contract).
    carrier_slots
        Slots of the coupon carrier (1 .. 16).
    """

    device: str
    zone_positions_mm: FloatArray
    tube_length_mm: float
    max_temperature_c: float
    min_temperature_c: float = 0.0
    max_ramp_rate_k_per_min: float | None = None
    max_segments: int = MAX_SEGMENTS
    max_dwell_s: float = MAX_DWELL_S
    carrier_slots: int = 1

    @property
    def zones(self) -> int:
        """Return the number of zones."""
        return int(self.zone_positions_mm.shape[0])


@dataclass(frozen=True)
class GradientPlan:
    """A validated gradient: zone targets (degC), ramp rate (K/min), tolerance (K), settle (s)."""

    targets_c: FloatArray
    ramp_rate_k_per_min: float
    tolerance_k: float
    settle_s: float


@dataclass(frozen=True)
class ProgramPlan:
    """A validated program as the three flat arrays of ``Program.Load``."""

    targets_c: FloatArray
    """``S * N`` zone targets, degC (segment-major)."""
    rates_k_per_min: FloatArray
    dwells_s: FloatArray

    @property
    def segments(self) -> int:
        """Return the number of segments."""
        return int(self.rates_k_per_min.shape[0])


def to_temperature_difference(
    value: Any,
    *,
    device: str,
    what: str,
    low: float | None = None,
    high: float | None = None,
) -> float:
    """Convert a temperature *difference* to K (bare numbers are K).

    ``2 degC`` and ``2 delta_degC`` are both a difference of 2 K (a tolerance is always a
    difference; reading ``2 degC`` as 275.15 K would accept any temperature).

    Raises
    ------
    UnitError
        Another dimension, NaN or infinite.
    OutOfLimitsError
        Outside ``[low, high]`` K.
    """
    spec = ValueSpec("K", "difference", low=low, high=high)
    x: float = spec.check(value, device=device, what=what)
    return x


def _positive(value: Any, unit: str, *, device: str, what: str, high: float | None) -> float:
    x: float = ValueSpec(unit, low=0.0, high=high, above=True).check(
        value, device=device, what=what
    )
    return x


def zone_targets(gradient: LinearGradient, limits: FurnaceLimits) -> FloatArray:
    """Return each zone's setpoint (degC) for a linear gradient, after checking every input.

    Zones between the two end positions follow the straight line; zones outside hold the
    nearer end's temperature (never extrapolated).
    """
    dev = limits.device
    if not isinstance(gradient, LinearGradient):
        raise InputError(dev, f"{gradient!r} is not a LinearGradient")
    lo, hi = limits.min_temperature_c, limits.max_temperature_c
    hot = to_temperature(
        gradient.hot, "degC", device=dev, what="hot-end temperature", low=lo, high=hi
    )
    cold = to_temperature(
        gradient.cold, "degC", device=dev, what="cold-end temperature", low=lo, high=hi
    )
    pos = limits.zone_positions_mm
    length = limits.tube_length_mm
    x_hot = (
        float(pos[0])
        if gradient.hot_position is None
        else to_magnitude(
            gradient.hot_position, "mm", device=dev, what="hot-end position", low=0, high=length
        )
    )
    x_cold = (
        float(pos[-1])
        if gradient.cold_position is None
        else to_magnitude(
            gradient.cold_position, "mm", device=dev, what="cold-end position", low=0, high=length
        )
    )
    if x_hot == x_cold:
        raise InputError(
            dev, f"hot-end and cold-end positions are both {x_hot:g} mm: they must differ"
        )
    frac = np.clip((pos - x_hot) / (x_cold - x_hot), 0.0, 1.0)
    targets: FloatArray = hot + (cold - hot) * frac
    return targets


def gradient_plan(sp: GradientSetpoint, limits: FurnaceLimits) -> GradientPlan:
    """Validate a :class:`GradientSetpoint` against ``limits``."""
    dev = limits.device
    if not isinstance(sp, GradientSetpoint):
        raise InputError(dev, f"{sp!r} is not a GradientSetpoint")
    targets = zone_targets(sp, limits)
    rate = _positive(
        sp.ramp_rate, "K/min", device=dev, what="ramp rate", high=limits.max_ramp_rate_k_per_min
    )
    tol = to_temperature_difference(sp.tolerance, device=dev, what="tolerance")
    if tol <= 0:
        raise OutOfLimitsError(dev, "tolerance", f"{tol:g}", "0 (exclusive)", "inf", "K")
    settle = _positive(sp.settle_time, "s", device=dev, what="settle time", high=MAX_DWELL_S)
    return GradientPlan(targets, rate, tol, settle)


def _temperature(limits: FurnaceLimits) -> ValueSpec:
    return ValueSpec(
        "degC", "temperature", low=limits.min_temperature_c, high=limits.max_temperature_c
    )


def _segment_targets(seg: ProgramSegment, k: int, limits: FurnaceLimits) -> FloatArray:
    if isinstance(seg.targets, LinearGradient):
        return zone_targets(seg.targets, limits)
    spec = _temperature(limits).sized(limits.zones)
    targets: FloatArray = spec.check(
        seg.targets, device=limits.device, what=f"segment {k} targets"
    )
    return targets


def program_plan(
    program: FurnaceProgram | Sequence[ProgramSegment], limits: FurnaceLimits
) -> ProgramPlan:
    """Validate a program (segments: targets, ramp rate > 0 K/min, dwell >= 0 s).

    The segment count is checked first (at most ``limits.max_segments``), so a huge program
    is refused at once; each segment is then checked as a whole (one array per segment).
    """
    dev = limits.device
    segments: Any = program.segments if isinstance(program, FurnaceProgram) else program
    if isinstance(segments, str | bytes) or not isinstance(segments, Sequence):
        raise InputError(dev, f"a program is a sequence of ProgramSegment, got {program!r:.80}")
    if not segments:
        raise InputError(dev, "a program needs at least one segment")
    if len(segments) > limits.max_segments:
        raise InputError(
            dev,
            f"a program of {len(segments)} segments: the instrument takes at most "
            f"{limits.max_segments}",
        )
    rate_spec = ValueSpec("K/min", low=0.0, high=limits.max_ramp_rate_k_per_min, above=True)
    dwell_spec = ValueSpec("s", low=0.0, high=limits.max_dwell_s)
    targets, rates, dwells = [], [], []
    for k, seg in enumerate(segments):
        if not isinstance(seg, ProgramSegment):
            raise InputError(dev, f"segment {k} is {seg!r:.80}, not a ProgramSegment")
        targets.append(_segment_targets(seg, k, limits))
        rates.append(rate_spec.check(seg.ramp_rate, device=dev, what=f"segment {k} ramp rate"))
        dwells.append(dwell_spec.check(seg.dwell, device=dev, what=f"segment {k} dwell"))
    return ProgramPlan(
        np.concatenate(targets), np.array(rates, dtype=float), np.array(dwells, dtype=float)
    )


def placement(p: CouponPlacement, limits: FurnaceLimits) -> tuple[str, float, int]:
    """Validate a :class:`CouponPlacement`; return (coupon id, offset in mm, slot 1..N)."""
    dev = limits.device
    if not isinstance(p, CouponPlacement):
        raise InputError(dev, f"{p!r} is not a CouponPlacement")
    coupon_id: str = COUPON_ID.check(p.coupon_id, device=dev, what="coupon id")
    offset_spec = POSITION.capped(high=limits.tube_length_mm)
    offset: float = offset_spec.check(p.offset, device=dev, what="coupon offset")
    slot = p.slot
    if isinstance(slot, bool) or not isinstance(slot, int):
        raise InputError(dev, f"carrier slot {slot!r} is not an integer")
    if not 1 <= slot <= limits.carrier_slots:
        raise OutOfLimitsError(dev, "carrier slot", str(slot), "1", str(limits.carrier_slots))
    return coupon_id, offset, slot


def lab_max_temperature(value: QuantityLike | None, device: str) -> float:
    """Return a lab file's ``max_temperature`` limit in degC (``inf`` when not given)."""
    if value is None:
        return math.inf
    return to_temperature(value, "degC", device=device, what="lab limit max_temperature", low=0)


def duration_s(value: QuantityLike, *, device: str, what: str) -> float:
    """Return a time span in s (> 0, finite)."""
    return _positive(value, "s", device=device, what=what, high=None)


__all__ = [
    "FurnaceLimits",
    "GradientPlan",
    "ProgramPlan",
    "duration_s",
    "gradient_plan",
    "lab_max_temperature",
    "placement",
    "program_plan",
    "to_temperature_difference",
    "zone_targets",
]
