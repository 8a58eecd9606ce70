"""The gradient-furnace interface: what plans may ask of any gradient tube furnace.

A gradient furnace holds a coupon in a tube whose zones are set so that the temperature
varies linearly along it; every temperature of an oxidation series is tested at once. Plans
type their arguments with :class:`GradientFurnace` and build requests from the dataclasses
here; they never import a vendor driver.

Requests are plain frozen dataclasses whose fields accept pint quantities, strings such as
``"850 degC"``, or numbers in the documented unit. They are validated by the driver (which
knows its limits) *before* anything is written to the instrument.

Every long action returns an :class:`~ophyd_async.core.AsyncStatus`, so a plan can
``bps.mv(furnace, request)`` or ``bps.abs_set(..., group=...)`` it, and bluesky stops the
furnace (to standby) when a run is aborted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias, runtime_checkable

import numpy as np
from bluesky.protocols import Locatable, Movable, Readable, Stoppable
from numpy.typing import NDArray
from ophyd_async.core import AsyncStatus

from couponlab.errors import InstrumentError
from couponlab.interfaces._lab_device import LabDevice
from couponlab.units import QuantityLike


class ProgramAbortedError(InstrumentError):
    """A furnace program ended without completing (aborted, or the furnace went to standby)."""


@dataclass(frozen=True)
class LinearGradient:
    """A linear temperature profile along the tube.

    Between ``hot_position`` and ``cold_position`` the zone setpoints follow the straight
    line from ``hot`` to ``cold``; zones outside that span hold the nearer end's temperature
    (the profile is never extrapolated, so no zone exceeds ``hot``).

    Attributes
    ----------
    hot, cold
        Absolute temperatures of the two ends (degC when a bare number; ``K`` accepted;
        a temperature difference such as ``delta_degC`` is refused).
    hot_position, cold_position
        Positions along the tube, mm (0 .. tube length). ``None``: the first / last zone's
        thermocouple position. The hot end may be either side of the cold end.
    """

    hot: QuantityLike
    cold: QuantityLike
    hot_position: QuantityLike | None = None
    cold_position: QuantityLike | None = None


@dataclass(frozen=True)
class GradientSetpoint(LinearGradient):
    """Ramp the zones to a :class:`LinearGradient` and wait until they are there.

    The status completes when every zone's process value is within ``tolerance`` of its
    setpoint; it fails if the interlock trips, a thermocouple breaks, the furnace is sent to
    standby, or the zones do not settle within ``settle_time`` of *instrument* time after the
    ramp should have ended.

    Attributes
    ----------
    ramp_rate
        Setpoint ramp limit of every zone, K/min (> 0, up to the instrument's largest rate;
        a temperature *rate*: ``K/min`` or ``delta_degC/min``; ``degC/min`` is refused as
        ambiguous; 0, which an instrument may read as "unlimited", is refused).
    tolerance
        Largest accepted |PV - SP| per zone, K (> 0): a temperature *difference*, so
        ``"2 degC"``, ``"2 delta_degC"`` and ``"2 K"`` all mean 2 K.
    settle_time
        Instrument time allowed after the ramp for the zones to settle, s (> 0, at most
        1e7 s).
    """

    ramp_rate: QuantityLike = "10 K/min"
    tolerance: QuantityLike = "2 K"
    settle_time: QuantityLike = "1 h"


@dataclass(frozen=True)
class ProgramSegment:
    """One ramp/dwell segment of a furnace program (all zones together).

    Attributes
    ----------
    targets
        Either a :class:`LinearGradient` or one absolute temperature per zone (degC when
        bare numbers), in zone order.
    ramp_rate
        Setpoint ramp rate, K/min (> 0).
    dwell
        Time to hold once every zone's working setpoint has reached its target, s (>= 0),
        in instrument time.
    """

    targets: LinearGradient | Sequence[QuantityLike]
    ramp_rate: QuantityLike
    dwell: QuantityLike


@dataclass(frozen=True)
class FurnaceProgram:
    """A ramp/dwell program, run by the instrument's own programmer.

    The status of ``set(program)`` completes when the programmer reports ``complete``; it
    fails with :class:`~couponlab.errors.InterlockTrippedError` if the interlock trips and
    with :class:`ProgramAbortedError` if the program is aborted or the furnace is sent to
    standby.
    """

    segments: tuple[ProgramSegment, ...]

    @classmethod
    def hold(
        cls,
        gradient: LinearGradient,
        duration: QuantityLike,
        ramp_rate: QuantityLike = "10 K/min",
    ) -> FurnaceProgram:
        """Return a one-segment program: ramp to ``gradient`` and dwell ``duration`` (s)."""
        plain = LinearGradient(
            gradient.hot, gradient.cold, gradient.hot_position, gradient.cold_position
        )
        return cls((ProgramSegment(plain, ramp_rate, duration),))


@dataclass(frozen=True)
class CouponPlacement:
    """Put a coupon in a slot of the furnace's carrier (or empty the slot).

    The carrier holds ``carrier_slots`` coupons side by side across it, all at the carrier's
    one offset along the tube, so every coupon on it sees the same gradient.

    Attributes
    ----------
    coupon_id
        Id of the coupon (``""`` empties the slot, leaving the carrier where it is). On a
        twin it names a coupon of the shared world; on hardware it is recorded for the data.
    offset
        Position of the coupons' start along the tube, mm (0 .. tube length). It moves the
        whole carrier: refused while another slot holds a coupon at a different offset.
    slot
        Carrier slot, 1 .. the furnace's ``carrier_slots`` (default 1).
    """

    coupon_id: str
    offset: QuantityLike = 0.0
    slot: int = 1


FurnaceRequest: TypeAlias = GradientSetpoint | FurnaceProgram | CouponPlacement
"""What ``GradientFurnace.set`` accepts."""


@dataclass(frozen=True)
class FurnaceProfile:
    """One snapshot of the furnace's temperature profile.

    Attributes
    ----------
    positions_mm
        Thermocouple position of each zone along the tube, mm (strictly increasing).
    temperatures_c
        Process value of each zone, degC (NaN where a thermocouple is broken).
    setpoints_c
        Target setpoint of each zone, degC.
    sim_time_s
        The instrument's clock when the profile was read, s.
    """

    positions_mm: NDArray[np.float64]
    temperatures_c: NDArray[np.float64]
    setpoints_c: NDArray[np.float64]
    sim_time_s: float
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class InstrumentClock(Readable[Any], Locatable[float], Protocol):
    """The instrument's clock (virtual time on a twin, wall time on hardware).

    ``set(t)`` returns a status that completes once the clock reads at least ``t`` s: a
    plan waits for instrument time with ``bps.mv(furnace.clock, t)``, never with a sleep,
    and reads it with ``bps.rd(furnace.clock)`` (``locate()``'s readback, s).
    """

    async def now(self) -> float:
        """Return the instrument's clock, s."""
        ...


@runtime_checkable
class GradientFurnace(LabDevice, Movable[FurnaceRequest], Stoppable, Protocol):
    """A gradient tube furnace, whatever its vendor.

    ``read()`` gives the whole temperature profile (degC, one array) and the instrument
    clock (s); ``describe()`` carries their units.
    """

    @property
    def clock(self) -> InstrumentClock:
        """Return the instrument's clock (Readable, and Movable to wait for a time)."""
        ...

    @property
    def num_zones(self) -> int:
        """Return the number of heated zones."""
        ...

    def set(self, value: FurnaceRequest) -> AsyncStatus[None]:
        """Start a gradient, a program or a coupon placement; return its status."""
        ...

    def set_gradient(
        self,
        hot: QuantityLike,
        cold: QuantityLike,
        *,
        hot_position: QuantityLike | None = None,
        cold_position: QuantityLike | None = None,
        ramp_rate: QuantityLike = "10 K/min",
        tolerance: QuantityLike = "2 K",
    ) -> AsyncStatus[None]:
        """Ramp to a linear gradient; the status completes at setpoint (see
        :class:`GradientSetpoint`)."""
        ...

    def run_program(
        self, segments: Sequence[ProgramSegment] | FurnaceProgram
    ) -> AsyncStatus[None]:
        """Load and start a program; the status completes when it ends (see
        :class:`FurnaceProgram`)."""
        ...

    def load_coupon(self, coupon_id: str, offset: QuantityLike = 0.0) -> AsyncStatus[None]:
        """Put a coupon on the carrier at ``offset`` mm along the tube."""
        ...

    def wait_until(self, sim_time: QuantityLike) -> AsyncStatus[None]:
        """Return a status that completes when the instrument's clock reaches ``sim_time`` (s);
        it fails with :class:`~couponlab.errors.InterlockTrippedError` if the interlock trips
        while waiting."""
        ...

    async def read_profile(self) -> FurnaceProfile:
        """Return the whole profile (every zone's PV and setpoint, degC) and the clock."""
        ...

    async def reset_interlock(self) -> None:
        """Clear a tripped interlock (the instrument refuses while a zone is over the limit)."""
        ...

    def stop(self, success: bool = True) -> AsyncStatus[None]:
        """Abort any program and send every zone to standby (the furnace's safe state)."""
        ...


__all__ = [
    "CouponPlacement",
    "FurnaceProfile",
    "FurnaceProgram",
    "FurnaceRequest",
    "GradientFurnace",
    "GradientSetpoint",
    "InstrumentClock",
    "LinearGradient",
    "ProgramAbortedError",
    "ProgramSegment",
]
