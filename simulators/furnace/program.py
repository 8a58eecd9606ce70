"""Ramp/dwell programs of the furnace twin (a Eurotherm-like programmer, all zones at once).

A program is a list of segments. Segment k ramps every zone's working setpoint to its
target at ``rate`` K/min, then dwells ``dwell_s`` seconds (virtual time) once every working
setpoint has reached its target. Validation happens here so that the server can refuse a
malformed program before anything changes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


class ProgramState(StrEnum):
    """States of the programmer (the strings of ``Program.State``)."""

    IDLE = "idle"
    RUNNING = "running"
    HELD = "held"
    COMPLETE = "complete"
    ABORTED = "aborted"


class ProgramError(ValueError):
    """A program refused as malformed (wrong lengths) or out of range."""

    def __init__(self, message: str, *, out_of_range: bool) -> None:
        super().__init__(message)
        self.out_of_range = out_of_range


@dataclass(frozen=True)
class Segment:
    """One ramp/dwell segment: zone targets (degC), ramp rate (K/min > 0), dwell (s >= 0)."""

    targets_c: FloatArray
    rate_k_per_min: float
    dwell_s: float


def build_segments(
    targets: Sequence[float],
    rates: Sequence[float],
    dwells: Sequence[float],
    *,
    zones: int,
    max_temperature_c: float,
    max_rate_k_per_min: float,
    max_dwell_s: float,
    max_segments: int,
) -> list[Segment]:
    """Validate the three flat arrays of ``Program.Load`` and return the segments.

    Parameters
    ----------
    targets
        ``S * zones`` zone targets, degC, each in ``[0, max_temperature_c]``.
    rates
        ``S`` ramp rates, K/min, each in ``(0, max_rate_k_per_min]``.
    dwells
        ``S`` dwell times, s, each in ``[0, max_dwell_s]``.

    Raises
    ------
    ProgramError
        ``out_of_range=False`` when the shapes are wrong, ``True`` when a value is out of range
        or not finite.
    """
    s = len(rates)
    if s == 0:
        raise ProgramError("a program needs at least one segment", out_of_range=False)
    if s > max_segments:
        raise ProgramError(f"{s} segments; at most {max_segments}", out_of_range=False)
    if len(dwells) != s:
        raise ProgramError(f"{len(dwells)} dwells for {s} rates", out_of_range=False)
    if len(targets) != s * zones:
        raise ProgramError(
            f"{len(targets)} targets; {s} segments x {zones} zones need {s * zones}",
            out_of_range=False,
        )
    t = np.asarray(targets, dtype=float)
    r = [float(x) for x in rates]
    d = [float(x) for x in dwells]
    if not np.all(np.isfinite(t)) or np.any(t < 0) or np.any(t > max_temperature_c):
        raise ProgramError(
            f"targets must be finite and in [0, {max_temperature_c}] degC", out_of_range=True
        )
    if not all(math.isfinite(x) and 0 < x <= max_rate_k_per_min for x in r):
        raise ProgramError(f"rates must be in (0, {max_rate_k_per_min}] K/min", out_of_range=True)
    if not all(math.isfinite(x) and 0 <= x <= max_dwell_s for x in d):
        raise ProgramError(f"dwells must be in [0, {max_dwell_s}] s", out_of_range=True)
    return [Segment(t[k * zones : (k + 1) * zones].copy(), r[k], d[k]) for k in range(s)]


__all__ = ["ProgramError", "ProgramState", "Segment", "build_segments"]
