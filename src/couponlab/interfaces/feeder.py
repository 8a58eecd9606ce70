"""Interfaces of the L-DED deposition family: powder feeders and the deposition cell.

Plans (calibration, graded printing) type their arguments with :class:`PowderFeeder` and
:class:`DepositionCell`, never with a vendor class. Units: feed rates in g/min, masses in g,
gas flows in L/min, positions in mm, speeds in mm/s, laser power in W, times in s.
Setters accept pint quantities, strings such as ``"5 g/min"`` or plain numbers in those units.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from couponlab.interfaces._lab_device import LabDevice

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Powder:
    """The powder in one hopper: its name and element mass fractions (summing to 1)."""

    name: str
    composition: Mapping[str, float]


@dataclass(frozen=True)
class HopperStatus:
    """One hopper at one instant.

    Attributes
    ----------
    setpoint
        Commanded feed rate, g/min.
    rate
        Measured (nozzle-sensor) feed rate, g/min.
    fill
        Powder left on the loss-in-weight scale, g.
    gas
        Measured carrier-gas flow, L/min.
    alarms
        Active alarm names (``"empty"``, ``"clog"``, ``"gas_loss"``); empty when none.
    """

    setpoint: float
    rate: float
    fill: float
    gas: float
    alarms: tuple[str, ...] = ()


@dataclass(frozen=True)
class FeederStatus:
    """A whole feeder at one instant: ``state`` ("idle", "feeding", "alarm") and hoppers."""

    state: str
    hoppers: tuple[HopperStatus, ...]


@dataclass(frozen=True)
class FlowLog:
    """Samples of one hopper logged by the feeder on its own clock.

    Attributes
    ----------
    t
        Instrument time of each sample, s.
    setpoint
        Commanded rate at each sample, g/min.
    rate
        Measured nozzle flow at each sample, g/min.
    """

    t: FloatArray
    setpoint: FloatArray
    rate: FloatArray


@dataclass(frozen=True)
class Track:
    """One track of a multi-track print: a pass along +x at ``y_mm`` across the coupon.

    The nozzle moves from ``x_start_mm`` to ``x_end_mm`` (covering the coupon, 0..length)
    with the laser on; ``points`` is the track's feed schedule, as in :class:`PrintJob`.
    Between tracks the laser is off and the feeders hold the last rates of the finished track.
    """

    y_mm: float
    x_start_mm: float
    x_end_mm: float
    points: Sequence[tuple[float, Sequence[float]]]


@dataclass(frozen=True)
class PrintJob:
    """A print program for the deposition cell.

    Single pass (``tracks`` empty, the original form): the nozzle moves from ``x_start_mm``
    to ``x_end_mm`` at ``speed_mm_s`` with the laser at ``power_w``; the path must cover the
    coupon (``x_start_mm <= 0``, ``x_end_mm >= length_mm``) and the bead is taken as wide as
    the coupon. ``points`` is the feed schedule: from position ``x`` (mm) on, channel ``k``
    (see :attr:`DepositionCell.channels`) runs at ``rates[k]`` g/min.

    Multi-track (``tracks`` given, see :meth:`from_tracks`): the tracks are printed in order
    at ``speed_mm_s`` and ``power_w``, each with its own path and schedule; ``points`` is then
    empty and ``x_start_mm``/``x_end_mm`` are the extremes of the tracks' paths.
    ``width_mm`` is the coupon's width (None: the cell's default, 10 mm on the twin).
    """

    coupon_id: str
    length_mm: float
    x_start_mm: float
    x_end_mm: float
    speed_mm_s: float
    power_w: float
    points: Sequence[tuple[float, Sequence[float]]]
    tracks: Sequence[Track] = ()
    width_mm: float | None = None

    @classmethod
    def from_tracks(
        cls,
        coupon_id: str,
        length_mm: float,
        width_mm: float,
        speed_mm_s: float,
        power_w: float,
        tracks: Sequence[Track],
    ) -> PrintJob:
        """Return a multi-track job (``x_start_mm``/``x_end_mm`` from the tracks)."""
        xs = min((t.x_start_mm for t in tracks), default=0.0)
        xe = max((t.x_end_mm for t in tracks), default=0.0)
        return cls(coupon_id, length_mm, xs, xe, speed_mm_s, power_w, (), tuple(tracks), width_mm)


@dataclass(frozen=True)
class TrackGeometry:
    """What a multi-track cell reports about the tracks it lays (``LIM:TRK?``).

    Attributes
    ----------
    bead_width_mm
        Width of one track, mm (about 95 % of its mass).
    hatch_mm
        The cell's default spacing of neighbouring tracks, mm.
    rapid_speed_mm_s
        Speed of the laser-off moves between tracks, mm/s.
    y_min_mm, y_max_mm
        Range of the y axis (across the coupon), mm.
    max_tracks
        Most tracks in one program.
    """

    bead_width_mm: float
    hatch_mm: float
    rapid_speed_mm_s: float
    y_min_mm: float
    y_max_mm: float
    max_tracks: int


@dataclass(frozen=True)
class CompositionMap:
    """Element mass fractions on a coupon: along x (mm) only, or on the grid
    ``y_mm`` x ``x_mm`` (arrays shaped (ny, nx), x along the length, y across the width).

    Attributes
    ----------
    x_mm
        Nodes along the coupon's length, mm.
    fractions
        Element -> mass fractions, shaped (nx,) without ``y_mm``, (ny, nx) with it.
    y_mm
        Nodes across the coupon's width, mm; None for a map along x only.
    """

    x_mm: FloatArray
    fractions: Mapping[str, FloatArray] = field(default_factory=dict)
    y_mm: FloatArray | None = None

    @property
    def is_2d(self) -> bool:
        """Return whether the map is on an (y, x) grid."""
        return self.y_mm is not None

    def to_dict(self) -> dict[str, Any]:
        """Return plain lists, for run metadata (``{"x_mm": [...], "Cr": [...], ...}``; with
        ``"y_mm"`` and nested lists (rows along x, one per y) for a 2-D map)."""
        out: dict[str, Any] = {"x_mm": [float(x) for x in self.x_mm]}
        if self.y_mm is not None:
            out["y_mm"] = [float(y) for y in self.y_mm]
        for e, f in sorted(self.fractions.items()):
            out[e] = np.asarray(f, float).tolist()
        return out


@runtime_checkable
class PowderFeeder(LabDevice, Protocol):
    """A powder feeder with several hoppers, numbered 1..:attr:`hopper_count`."""

    @property
    def hopper_count(self) -> int:
        """Return the number of hoppers."""
        ...

    @property
    def max_rate(self) -> float:
        """Return the largest feed rate the device accepts, g/min (lab and instrument)."""
        ...

    def powder(self, hopper: int) -> Powder:
        """Return the powder in ``hopper`` (known after connect)."""
        ...

    async def set_rate(self, hopper: int, rate: Any) -> None:
        """Command ``hopper``'s feed rate (g/min, 0..:attr:`max_rate`)."""
        ...

    async def set_gas(self, hopper: int, flow: Any) -> None:
        """Set ``hopper``'s carrier-gas flow (L/min)."""
        ...

    async def status(self) -> FeederStatus:
        """Return every hopper's state in one exchange."""
        ...

    async def stop(self) -> None:
        """Set every hopper to 0 g/min (the safe state)."""
        ...

    async def clear_alarms(self) -> None:
        """Clear latched alarms (clog, gas loss); empty stays until refilled."""
        ...

    async def start_log(self, hopper: int, period: Any) -> None:
        """Start logging ``hopper``'s setpoint and nozzle flow every ``period`` s."""
        ...

    async def log_count(self) -> int:
        """Return how many samples the logger holds."""
        ...

    async def read_log(self) -> FlowLog:
        """Stop logging and return the samples."""
        ...


@runtime_checkable
class DepositionCell(LabDevice, Protocol):
    """An L-DED cell: laser, shielding gas, a motion axis along x, and print programs that
    drive the feeders' hoppers (the cell's channels)."""

    @property
    def channels(self) -> Sequence[tuple[str, int]]:
        """Return (feeder device name, hopper) of every channel, in schedule order."""
        ...

    async def set_shield_gas(self, flow: Any) -> None:
        """Set the shielding gas (L/min)."""
        ...

    async def set_laser(self, on: bool | str, power: Any = None) -> None:
        """Switch the laser (refused without shielding gas), optionally setting power (W).

        ``on`` is ``True``/``False`` or ``"on"``/``"off"``; anything else raises
        :class:`~couponlab.errors.InputError` before a byte is sent."""
        ...

    async def move_to(self, x: Any) -> None:
        """Move the nozzle to ``x`` (mm) at the travel speed and wait until it is there."""
        ...

    @property
    def track_geometry(self) -> TrackGeometry | None:
        """Return the cell's track geometry, or None for a cell that prints one full-width
        pass only (known after connect)."""
        ...

    async def load_print(self, job: PrintJob) -> None:
        """Create the job's coupon in the cell and load its path and schedule."""
        ...

    async def start_print(self) -> None:
        """Start the loaded print program."""
        ...

    async def wait_print(self, poll: float = 0.05, timeout: float = 3600.0) -> str:
        """Wait (polling every ``poll`` s, at most ``timeout`` s of wall time) until the print
        ends; return "done" or raise ``InterlockTrippedError`` with the cell's reason."""
        ...

    async def as_built_map(self) -> CompositionMap | None:
        """Return the printed coupon's as-built map along x, the mean across its width
        (twins only; None on hardware)."""
        ...

    async def as_built_map_xy(self) -> CompositionMap | None:
        """Return the printed coupon's as-built map on its (y, x) grid (twins only; None on
        hardware)."""
        ...

    async def stop(self) -> None:
        """Laser off, axis stopped, feeders off, any print aborted (the safe state)."""
        ...


__all__ = [
    "CompositionMap",
    "DepositionCell",
    "FeederStatus",
    "FlowLog",
    "HopperStatus",
    "Powder",
    "PowderFeeder",
    "PrintJob",
    "Track",
    "TrackGeometry",
]
