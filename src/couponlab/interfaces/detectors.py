"""Interfaces of the instruments that measure a coupon and the stage that carries them.

Plans type their arguments with these protocols and never import a vendor driver:

- :class:`Stage`: the x-y stage; two axes in *coupon coordinates* (mm from the mounted
  coupon's start: x along it, y across it), soft limits, the mounted coupon's identity.
- :class:`ThermocoupleScanner`: a multi-channel scanner of thermocouples along the coupon
  carrier (temperatures in degC, positions in mm along the coupon).
- :class:`OxideProfiler`: oxide thickness at the head's spot (nm), with an out-of-range flag.
- :class:`CompositionProbe`: element fractions at the spot (XRF).
- :class:`Camera`: 2-D frames written to HDF5 files referenced from the run's documents.

Spot heads (profiler, probe) are :class:`DwellDetector` (a step scan triggers one
measurement of ``dwell`` seconds) and :class:`LineSampler` (a fly scan prepares a
hardware-timed line of samples that starts when the stage starts moving; each sample
carries the stage position at its instant).

Every ``check_*`` method validates without any I/O (from limits read at connect) and raises
:class:`~couponlab.errors.OutOfLimitsError` / :class:`~couponlab.errors.UnitError`, so a
plan can refuse bad input before anything moves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from bluesky.protocols import (
    Collectable,
    Flyable,
    Movable,
    Preparable,
    Readable,
    Stoppable,
    Triggerable,
    WritesStreamAssets,
)
from ophyd_async.core import AsyncStatus, SignalR, SignalRW

from couponlab.interfaces._lab_device import LabDevice


@dataclass(frozen=True)
class CouponMount:
    """The coupon mounted on a stage.

    Attributes
    ----------
    coupon_id
        The coupon's identity (as the printer and the furnace know it).
    length_mm, width_mm
        Its size, mm; positions on it run 0..length (x) and 0..width (y).
    """

    coupon_id: str
    length_mm: float
    width_mm: float


@dataclass(frozen=True)
class LineSpec:
    """A hardware-timed line of samples for a fly scan.

    Attributes
    ----------
    points
        Number of samples (>= 1).
    period_s
        Duration of each sample, s (it is also the sample's dwell); within the detector's
        dwell limits.
    """

    points: int
    period_s: float


@runtime_checkable
class StageAxis(Movable[float], Readable[Any], Stoppable, Protocol):
    """One axis of a stage: ``set(mm)`` returns a status done when the axis is there."""

    def limits(self) -> tuple[float, float]:
        """Return the soft limits (low, high) in mm, coupon coordinates."""
        ...

    def check_position(self, value: Any) -> float:
        """Return ``value`` in mm if inside the soft limits, else raise OutOfLimitsError."""
        ...


@runtime_checkable
class Stage(LabDevice, Protocol):
    """An x-y stage carrying detector heads over a mounted coupon."""

    x: StageAxis
    y: StageAxis
    velocity: SignalRW[float]
    """Speed of later moves of each axis, mm/s."""
    pulse_spacing: SignalRW[float]
    """Position-compare output: a trigger pulse at each move's start and every this many mm
    of travel (0 = off); a camera prepared for external triggers takes a frame per pulse."""

    def mounted(self) -> CouponMount | None:
        """Return the mounted coupon (as last read from the stage), or None."""
        ...

    async def load_coupon(self, coupon_id: str, length: Any, width: Any) -> None:
        """Mount a coupon: its id and size (mm, or length quantities)."""
        ...

    async def unload_coupon(self) -> None:
        """Unmount the coupon."""
        ...

    def check_position(self, x: Any, y: Any) -> tuple[float, float]:
        """Return (x, y) in mm if both are inside the stage's soft limits."""
        ...

    def check_velocity(self, value: Any) -> float:
        """Return ``value`` in mm/s if inside the stage's velocity limits."""
        ...

    def check_pulse_spacing(self, value: Any) -> float:
        """Return ``value`` in mm if it is a valid pulse spacing (0 = off)."""
        ...


@runtime_checkable
class DwellDetector(LabDevice, Triggerable, Protocol):
    """A detector whose trigger is one measurement of ``dwell`` seconds."""

    dwell: SignalRW[float]
    """Integration time of one measurement, s."""

    def dwell_limits(self) -> tuple[float, float]:
        """Return the allowed dwell (low, high), s."""
        ...

    def check_dwell(self, value: Any) -> float:
        """Return ``value`` in s if allowed, else raise OutOfLimitsError / UnitError."""
        ...


@runtime_checkable
class LineSampler(Preparable, Flyable, Collectable, Protocol):
    """A detector that samples a line in hardware time while the stage moves."""

    def prepare(self, value: LineSpec) -> AsyncStatus[None]:
        """Configure (not start) a line; it starts at the stage's next motion start."""
        ...

    def check_line(self, value: LineSpec) -> None:
        """Raise OutOfLimitsError if the line cannot be taken."""
        ...


@runtime_checkable
class OxideProfiler(DwellDetector, LineSampler, Protocol):
    """Oxide thickness at the spot under the head."""

    thickness: SignalR[float]
    """Oxide thickness, nm (NaN when out of range)."""
    range_flag: SignalR[str]
    """``"ok"``, ``"under"`` (below the lower limit, or no coupon) or ``"over"``."""

    def thickness_range_nm(self) -> tuple[float, float]:
        """Return the measurable range (low, high), nm."""
        ...


@runtime_checkable
class CompositionProbe(DwellDetector, LineSampler, Protocol):
    """Element fractions at the spot (X-ray fluorescence)."""

    elements: tuple[str, ...]
    """Elements quantified, in the order of the readings."""

    def fraction(self, element: str) -> SignalR[float]:
        """Return the signal of one element's fraction (0..1)."""
        ...


@runtime_checkable
class ThermocoupleScanner(LabDevice, Triggerable, Protocol):
    """Thermocouples along the coupon carrier, read in one scan."""

    temperatures: SignalR[Any]
    """One temperature per channel, degC (NaN for an open thermocouple)."""

    def positions_mm(self) -> tuple[float, ...]:
        """Return each thermocouple's position along the coupon, mm."""
        ...


@runtime_checkable
class Camera(LabDevice, Triggerable, Preparable, Flyable, WritesStreamAssets, Protocol):
    """A surface camera whose frames go to HDF5 files referenced by stream resources."""

    def frame_shape(self) -> tuple[int, int]:
        """Return (height, width) of a frame, pixels."""
        ...

    def check_exposure(self, value: Any, period: float | None = None) -> float:
        """Return ``value`` in s if the camera allows it as an exposure time (and, with
        ``period`` in s, if a frame every ``period`` leaves time for the readout)."""
        ...


__all__ = [
    "Camera",
    "CompositionProbe",
    "CouponMount",
    "DwellDetector",
    "LineSampler",
    "LineSpec",
    "OxideProfiler",
    "Stage",
    "StageAxis",
    "ThermocoupleScanner",
]
