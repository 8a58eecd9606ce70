"""The furnace's behaviour beside its signals: gradients, programs, the carrier, clock waits.

:class:`FurnaceLogic` turns a request into writes of the furnace's own signals (so every
write passes the signals' value specs) after checking the whole request first
(:mod:`._validation`), then polls a consistent snapshot of the nodes it needs in ONE read
request per poll until the action is done, fails, or the furnace is stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from couponlab.drivers.furnace._states import FurnaceState, ProgramState
from couponlab.drivers.furnace._validation import (
    FurnaceLimits,
    GradientPlan,
    ProgramPlan,
    gradient_plan,
    placement,
    program_plan,
)
from couponlab.errors import (
    InputError,
    InstrumentError,
    InstrumentTimeoutError,
    InterlockTrippedError,
    ProtocolError,
)
from couponlab.interfaces.furnace import (
    CouponPlacement,
    FurnaceProgram,
    GradientSetpoint,
    ProgramAbortedError,
)
from couponlab.progress import report_progress
from couponlab.units import QuantityLike
from couponlab.values import ValueSpec

if TYPE_CHECKING:
    from couponlab.drivers.furnace.gradient_furnace import OpcUaGradientFurnace


@dataclass(eq=False)
class _Ramp:
    """One gradient request in progress, and the request that took over from it, if any."""

    plan: GradientPlan
    outcome: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    successor: _Ramp | None = None

    def taken_over(self) -> bool:
        """Return whether a later request took over from this one (it may happen at any
        await)."""
        return self.successor is not None

    def same_target(self, other: _Ramp) -> bool:
        """Return whether ``other`` asks for the same gradient (targets, rate, tolerance,
        settling)."""
        a, b = self.plan, other.plan
        return (
            bool(np.array_equal(a.targets_c, b.targets_c))
            and a.ramp_rate_k_per_min == b.ramp_rate_k_per_min
            and a.tolerance_k == b.tolerance_k
            and a.settle_s == b.settle_s
        )

    def settle(self, error: BaseException | None) -> None:
        """Give the request's outcome to whoever follows it (once)."""
        if self.outcome.done():
            return
        if error is None:
            self.outcome.set_result(None)
        elif isinstance(error, asyncio.CancelledError):
            self.outcome.cancel()
        else:
            self.outcome.set_exception(error)
            self.outcome.exception()  # retrieved: nobody may follow this request


class FurnaceLogic:
    """Gradients, programs, coupon placement and clock waits of one furnace.

    Parameters
    ----------
    furnace
        The declared device whose signals this logic reads and writes.
    """

    def __init__(self, furnace: OpcUaGradientFurnace) -> None:
        self.furnace = furnace
        self.limits_cache: FurnaceLimits | None = None
        """What the instrument allows, read once per real connection."""
        self.stops = 0
        """How many times the furnace was stopped: an action started before a stop ends."""
        self.stopped = asyncio.Event()
        self.ramp: _Ramp | None = None
        """The latest gradient request (see :meth:`gradient`)."""

    @property
    def name(self) -> str:
        """Return the furnace's name (for messages)."""
        return self.furnace.name

    def note_stop(self) -> None:
        """Wake and fail every action in progress (called by ``stop``)."""
        self.stops += 1
        event, self.stopped = self.stopped, asyncio.Event()
        event.set()

    async def pause(self, seconds: float, stops: int) -> None:
        """Sleep ``seconds`` (wall), waking early on a stop; fail if a stop came."""
        if self.stops == stops:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopped.wait(), seconds)
        if self.stops != stops:
            raise ProgramAbortedError(self.name, "stopped: the furnace was sent to standby")

    # -- limits ------------------------------------------------------------------------------
    async def limits(self, *, cache: bool) -> FurnaceLimits:
        """Return what the instrument and the lab file allow (cached if ``cache``)."""
        if self.limits_cache is not None:
            return self.limits_cache
        f = self.furnace
        positions, length, max_t = await f.opcua.read(
            f.zone_positions, f.tube_length, f.max_temperature
        )
        setpoint_range = f.opcua.eurange(f.zones[1].setpoint)
        rate_range = f.opcua.eurange(f.ramp_rate)
        pos = np.asarray(positions, dtype=float)
        if pos.shape != (f.num_zones,) or np.any(np.diff(pos) <= 0):
            raise ProtocolError(
                self.name, f"ZonePositions {pos.tolist()} are not {f.num_zones} increasing values"
            )
        limits = FurnaceLimits(
            device=self.name,
            zone_positions_mm=pos,
            tube_length_mm=float(length),
            max_temperature_c=min(float(max_t), f.lab_max_temperature_c),
            min_temperature_c=max(0.0, setpoint_range[0]) if setpoint_range else 0.0,
            max_ramp_rate_k_per_min=rate_range[1] if rate_range else None,
            carrier_slots=f.num_slots,
        )
        if cache:
            self.limits_cache = limits
        return limits

    # -- readiness ---------------------------------------------------------------------------
    def tripped(self, reason: str) -> InterlockTrippedError:
        """Return the error of a tripped interlock."""
        why = f": {reason}" if reason else ""
        return InterlockTrippedError(
            self.name, f"interlock tripped{why}; heaters are off until the interlock is reset"
        )

    async def check_ready(self) -> None:
        """Refuse to start an action while the interlock is tripped or a program runs."""
        f = self.furnace
        tripped, reason, prog = await f.opcua.read(
            f.interlock.tripped, f.interlock.reason, f.program.state
        )
        if tripped:
            raise self.tripped(reason)
        if prog in (ProgramState.RUNNING, ProgramState.HELD):
            raise InstrumentError(
                self.name, f"a program is {prog.value}: stop the furnace (standby) first"
            )

    # -- actions -----------------------------------------------------------------------------
    async def gradient(self, sp: GradientSetpoint, limits: FurnaceLimits) -> None:
        """Ramp to a gradient; return when every zone is within tolerance.

        A new gradient request while this one is in progress takes over from it. This one
        then ends as the new one does if both ask for the same gradient (a RunEngine that
        resumes from a suspension replays the request from its checkpoint while the first
        is still waiting); otherwise it fails with
        :class:`~couponlab.interfaces.furnace.ProgramAbortedError`, its gradient replaced.
        """
        stops, plan = self.stops, gradient_plan(sp, limits)
        await self.check_ready()
        ramp, earlier = _Ramp(plan), self.ramp
        self.ramp = ramp
        if earlier is not None and not earlier.outcome.done():
            earlier.successor = ramp
        error: BaseException | None = None
        try:
            await self._ramp(ramp, stops)
        except BaseException as exc:
            error = exc
            raise
        finally:
            ramp.settle(error)
            if self.ramp is ramp:
                self.ramp = None

    async def _follow(self, ramp: _Ramp, successor: _Ramp) -> None:
        """End as ``successor``, the request that took over from ``ramp``, ends."""
        if not ramp.same_target(successor):
            raise ProgramAbortedError(
                self.name, "a different gradient was requested before this one was reached"
            )
        await asyncio.shield(successor.outcome)

    async def _ramp(self, ramp: _Ramp, stops: int) -> None:
        """Write the gradient, then poll until it is reached (or ``ramp`` is taken over)."""
        f, plan = self.furnace, ramp.plan
        await f.ramp_rate.set(plan.ramp_rate_k_per_min)
        await f.setpoint_profile.set(plan.targets_c)
        deadline: float | None = None
        start, worst0, pv0 = 0.0, 0, plan.targets_c
        left_standby = False  # the State may follow the setpoint write a little later
        while True:
            if ramp.successor is not None:
                return await self._follow(ramp, ramp.successor)
            pv, state, tripped, reason, now = await f.opcua.read(
                f.profile,
                f.operating_state,
                f.interlock.tripped,
                f.interlock.reason,
                f.clock.sim_time,
            )
            if tripped or state == FurnaceState.INTERLOCK:
                raise self.tripped(reason)
            if state != FurnaceState.STANDBY:
                left_standby = True
            elif left_standby:
                if ramp.taken_over():  # which may have reached the gradient first
                    continue
                raise ProgramAbortedError(
                    self.name, "the furnace was sent to standby before reaching the gradient"
                )
            pv = np.asarray(pv, dtype=float)
            broken = np.flatnonzero(np.isnan(pv))
            if broken.size:
                raise InstrumentError(
                    self.name,
                    f"thermocouple of zone(s) {', '.join(str(i + 1) for i in broken)} broken: "
                    f"the gradient cannot be confirmed",
                )
            if deadline is None:
                span = float(np.max(np.abs(plan.targets_c - pv)))
                ramp_s = span * 60.0 / plan.ramp_rate_k_per_min
                deadline = float(now) + ramp_s + plan.settle_s
                start, worst0, pv0 = float(now), int(np.argmax(np.abs(plan.targets_c - pv))), pv
            error = np.abs(pv - plan.targets_c)
            report_progress(  # the zone that had the farthest to go, degC
                float(pv[worst0]),
                float(pv0[worst0]),
                float(plan.targets_c[worst0]),
                unit="degC",
                elapsed_s=float(now) - start,
                precision=1,
            )
            if float(np.max(error)) <= plan.tolerance_k:
                return
            if float(now) > deadline:
                worst = int(np.argmax(error))
                raise InstrumentTimeoutError(
                    self.name,
                    f"zone {worst + 1} is {error[worst]:.1f} K from its setpoint "
                    f"{plan.targets_c[worst]:.1f} degC after the ramp and "
                    f"{plan.settle_s:g} s of settling (instrument time)",
                )
            try:
                await self.pause(f.poll_period, stops)
            except ProgramAbortedError:
                if not ramp.taken_over():  # else: the stop may have come after it ended
                    raise

    async def program(self, program: FurnaceProgram, limits: FurnaceLimits) -> None:
        """Load and start a program; return when it completes."""
        f, stops = self.furnace, self.stops
        plan = program_plan(program, limits)
        await self.check_ready()
        await f.program.load_cmd.execute(plan.targets_c, plan.rates_k_per_min, plan.dwells_s)
        await f.program.start_cmd.trigger()
        left_standby = False
        start: float | None = None
        planned_s = 0.0
        while True:
            prog, state, tripped, reason, now, pv = await f.opcua.read(
                f.program.state,
                f.operating_state,
                f.interlock.tripped,
                f.interlock.reason,
                f.clock.sim_time,
                f.profile,
            )
            if start is None:
                start, planned_s = float(now), program_duration_s(plan, pv)
            report_progress(  # instrument s into the program (a held program takes longer)
                min(float(now) - start, planned_s),
                0.0,
                planned_s,
                unit="s",
                elapsed_s=float(now) - start,
                remaining_s=max(planned_s - (float(now) - start), 0.0),
                precision=0,
            )
            if tripped or state == FurnaceState.INTERLOCK:
                raise self.tripped(reason)
            if prog == ProgramState.COMPLETE:
                return
            left_standby = left_standby or state != FurnaceState.STANDBY
            if prog == ProgramState.ABORTED or (left_standby and state == FurnaceState.STANDBY):
                raise ProgramAbortedError(
                    self.name, f"the program ended without completing (program {prog.value})"
                )
            await self.pause(f.poll_period, stops)

    async def place(self, p: CouponPlacement, limits: FurnaceLimits) -> None:
        """Put a coupon in a carrier slot, or empty the slot (every value checked before any
        is written; emptying a slot leaves the carrier's offset as it is).

        Raises
        ------
        InputError
            Another slot holds a coupon and the offset differs from the carrier's: the
            coupons share one offset, and moving the carrier would move them too.
        """
        coupon_id, offset, slot = placement(p, limits)
        f = self.furnace
        if coupon_id:
            keys = [k for k in f.slots if k != slot]
            current, *ids = await f.opcua.read(
                f.carrier.offset, *(f.slots[k].coupon_id for k in keys)
            )
            occupied = [k for k, cid in zip(keys, ids, strict=True) if cid]
            if occupied and abs(float(current) - offset) > 1e-6:
                raise InputError(
                    self.name,
                    f"coupon offset {offset:g} mm: slot(s) {occupied} hold coupons at the "
                    f"carrier's offset {float(current):g} mm (one offset for every slot)",
                )
            if abs(float(current) - offset) > 1e-9:
                await f.carrier.offset.set(offset)
        await f.slots[slot].coupon_id.set(coupon_id)

    async def wait_until(self, sim_time: QuantityLike) -> None:
        """Return when the instrument clock reads at least ``sim_time`` s."""
        f, stops = self.furnace, self.stops
        now = await f.clock.now()
        spec = ValueSpec("s", low=0.0, high=now + f.max_wait_s)
        target: float = spec.check(sim_time, device=self.name, what="instrument time")
        start = now
        while True:
            now, speed_up, tripped, reason = await f.opcua.read(
                f.clock.sim_time, f.clock.speed_up, f.interlock.tripped, f.interlock.reason
            )
            if tripped:
                raise self.tripped(reason)
            report_progress(
                min(float(now), target),
                start,
                target,
                unit="s",
                elapsed_s=float(now) - start,
                remaining_s=max(target - float(now), 0.0),
                precision=0,
            )
            if now >= target:
                return
            rate = float(speed_up) if math.isfinite(speed_up) and speed_up > 0 else 1.0
            await self.pause(min(max((target - now) / rate, 0.001), 20 * f.poll_period), stops)


def program_duration_s(plan: ProgramPlan, start_c: object) -> float:
    """Return the planned length of a program, instrument s: every segment's ramp (the zone
    with the farthest to go, from the zones' temperatures ``start_c``, degC) and dwell."""
    zones = np.asarray(start_c, dtype=float)
    targets = plan.targets_c.reshape(plan.segments, -1)
    total = 0.0
    for k in range(plan.segments):
        step_k = float(np.nanmax(np.abs(targets[k] - zones))) if zones.size else 0.0
        rate = float(plan.rates_k_per_min[k])
        total += (step_k * 60.0 / rate if rate > 0 else 0.0) + float(plan.dwells_s[k])
        zones = targets[k]
    return total


__all__ = ["FurnaceLogic", "program_duration_s"]
