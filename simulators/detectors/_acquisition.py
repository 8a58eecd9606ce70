"""Timed acquisitions in the instrument's own (virtual) time: a single dwell, and a
hardware-timed line of samples started by the stage's motion-start trigger.

A measurement is a function ``sample(t, x_mm, y_mm, dwell_s) -> tuple[float, ...]`` taken at
virtual time ``t`` with the stage's work position (x, y) at that time; both acquisition kinds
evaluate it lazily, so nothing runs between queries.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from couponlab.simulators.scpi import DATA_OUT_OF_RANGE, EXECUTION_ERROR, ScpiError
from couponlab.simulators.world import Coupon, World

Sample = Callable[[float, float, float, float], tuple[float, ...]]
"""``(t, x_mm, y_mm, dwell_s) -> values`` of one measurement."""

MAX_LINE_POINTS = 100_000


class StageLike(Protocol):
    """What a detector head needs from the stage twin it rides on."""

    move_starts: list[float]

    def position_at(self, t: float) -> tuple[float, float]:
        """Return the work position (x, y) in mm at virtual time ``t``."""
        ...

    def coupon(self) -> Coupon | None:
        """Return the mounted coupon, or None."""
        ...


def find_stage(world: World, name: str) -> StageLike:
    """Return the stage twin called ``name``; SCPI execution error if it is absent."""
    model = world.instruments.get(name)
    if model is None or not hasattr(model, "position_at"):
        raise ScpiError(EXECUTION_ERROR, f"Execution error; no stage {name!r} in the world")
    stage: StageLike = model  # type: ignore[assignment]
    return stage


@dataclass
class SingleAcquisition:
    """One measurement of ``dwell`` virtual seconds started at ``t0``."""

    t0: float
    dwell: float
    values: tuple[float, ...]

    def remaining(self, now: float) -> float:
        """Return the virtual seconds left (0 when done)."""
        return max(0.0, self.t0 + self.dwell - now)


@dataclass
class LineAcquisition:
    """``n`` samples of ``period`` s each, starting at the stage's next motion start.

    Sample k covers [start + k period, start + (k+1) period] and is taken at its middle,
    with the stage position at that instant.
    """

    n: int
    period: float
    armed_at: float
    start: float | None = None
    rows: list[tuple[float, ...]] = field(default_factory=list)

    def state(self, now: float) -> str:
        """Return ``ARMED``, ``RUNNING`` or ``DONE``."""
        if self.start is None:
            return "ARMED"
        return "DONE" if len(self.rows) >= self.n else "RUNNING"

    def update(self, now: float, stage: StageLike, sample: Sample) -> None:
        """Take every sample whose window has ended by ``now``."""
        if self.start is None:
            starts = [t for t in stage.move_starts if t >= self.armed_at]
            if not starts:
                return
            self.start = starts[0]
        due = min(self.n, math.floor((now - self.start) / self.period + 1e-9))
        while len(self.rows) < due:
            k = len(self.rows)
            t = self.start + (k + 0.5) * self.period
            x, y = stage.position_at(t)
            self.rows.append((t, x, y, *sample(t, x, y, self.period)))


def check_line(n: float, period: float, dwell_range: tuple[float, float]) -> int:
    """Validate a line configuration; return ``n`` as an int."""
    lo, hi = dwell_range
    if n != int(n) or not 1 <= n <= MAX_LINE_POINTS:
        raise ScpiError(
            DATA_OUT_OF_RANGE, f"Data out of range; points {n:g} not in [1,{MAX_LINE_POINTS}]"
        )
    if not lo <= period <= hi:
        raise ScpiError(
            DATA_OUT_OF_RANGE, f"Data out of range; period {period:g} not in [{lo:g},{hi:g}]"
        )
    return int(n)


def rows_block(rows: list[tuple[float, ...]], width: int) -> bytes:
    """Pack rows as little-endian float64, ``width`` values per row."""
    arr = np.asarray(rows, dtype="<f8").reshape(len(rows), width) if rows else np.zeros((0, width))
    return arr.astype("<f8").tobytes()


__all__ = [
    "LineAcquisition",
    "Sample",
    "SingleAcquisition",
    "StageLike",
    "check_line",
    "find_stage",
    "rows_block",
]
