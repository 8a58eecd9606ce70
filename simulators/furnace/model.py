"""Physics and control of the gradient-furnace twin: N coupled zones, a PID loop per zone,
setpoint ramp limit, ramp/dwell programmer, latching over-temperature interlock, faults, and
the temperature field along the tube.

All state is numpy arrays over the zones; one SimPy process steps the thermal model and the
controllers every ``sample_period_s`` of virtual time. Every method runs on the twins' thread
(the loop that owns the world): tests reach it through ``BackgroundLoop.call``. Methods that
a client can call refuse bad input with :class:`CommandRefusedError` *before* changing anything.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Generator, Sequence
from typing import Concatenate, ParamSpec, TypeVar

import numpy as np
import simpy

from couponlab.simulators.furnace.config import FurnaceConfig
from couponlab.simulators.furnace.program import (
    ProgramError,
    ProgramState,
    Segment,
    build_segments,
)
from couponlab.simulators.world import FloatArray, World

KELVIN = 273.15
"""0 degC in K."""


class CommandRefusedError(Exception):
    """A command refused with nothing changed; ``status`` names the OPC UA status code.

    Parameters
    ----------
    status
        ``"BadOutOfRange"``, ``"BadInvalidState"``, ``"BadNotFound"`` or
        ``"BadInvalidArgument"``.
    message
        What was refused and why.
    """

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


P = ParamSpec("P")
R = TypeVar("R")


def _mutates(
    method: Callable[Concatenate[FurnaceModel, P], R],
) -> Callable[Concatenate[FurnaceModel, P], R]:
    """Count a call of a state-changing method in ``revision`` (the server republishes)."""

    def wrapper(self: FurnaceModel, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        finally:
            self.revision += 1

    functools.update_wrapper(wrapper, method)  # name and docstring of the method
    return wrapper


def _out_of_range(message: str) -> CommandRefusedError:
    return CommandRefusedError("BadOutOfRange", message)


def _invalid_state(message: str) -> CommandRefusedError:
    return CommandRefusedError("BadInvalidState", message)


class FurnaceModel:
    """The multi-zone tube furnace (a :class:`~couponlab.simulators.world.TemperatureField`).

    Parameters
    ----------
    world
        The shared world (SimPy env, rng, coupons, ambient temperature).
    config
        Physics/control parameters.
    name
        Device name (used as the coupon holder's name and in the world's registry).
    """

    def __init__(
        self, world: World, config: FurnaceConfig | None = None, name: str = "furnace"
    ) -> None:
        self.world = world
        self.config = cfg = config or FurnaceConfig()
        self.name = name
        n = cfg.zones
        self.ambient_c = float(world.config.ambient_temperature_c)
        self.positions_mm: FloatArray = (np.arange(n) + 0.5) * cfg.length_mm / n
        """Thermocouple position of each zone along the tube, mm."""
        # physical and controller state (degC, %)
        self.temperature_c: FloatArray = np.full(n, self.ambient_c)
        """True zone temperatures, degC (what the coupon feels)."""
        self.pv_c: FloatArray = self.temperature_c.copy()
        """Thermocouple readings, degC (NaN where the thermocouple is broken)."""
        self.target_c: FloatArray = np.full(n, cfg.standby_temperature_c)
        self.working_c: FloatArray = self.target_c.copy()
        self.output: FloatArray = np.zeros(n)
        self._integral: FloatArray = np.zeros(n)
        self._prev_pv: FloatArray = self.temperature_c.copy()
        self._wsp_rate_k_per_min: FloatArray = np.zeros(n)
        self.tc_broken = np.zeros(n, dtype=bool)
        self.heater_stuck = np.zeros(n, dtype=bool)
        self.stuck_output: FloatArray = np.full(n, 100.0)
        """Output of each stuck heater, % (where :attr:`heater_stuck`)."""
        self.ramp_rate_k_per_min = 0.0
        self.mode = "standby"
        """"standby" | "manual" | "program" (the interlock overrides it in :attr:`state`)."""
        # programmer
        self.segments: list[Segment] = []
        self.program_state = ProgramState.IDLE
        self.segment = -1
        self._ramping = True
        self._dwell_left_s = 0.0
        # interlock
        self.interlock_limit_c = cfg.interlock_default_c
        self.tripped = False
        self.trip_reason = ""
        # communication watchdog (the timer itself lives in the server: wall time)
        self.watchdog_expired = False
        """Latched when the watchdog put the furnace in standby (cleared by a reset)."""
        self.watchdog_reason = ""
        # carrier: slot k (1-based) holds slots[k - 1] ("" = empty), all at one offset
        self.slots: list[str] = [""] * cfg.carrier_slots
        """Coupon id in each carrier slot, slot 1 first ("" = empty)."""
        self.offset_mm = 0.0
        # thermal constants
        self._g_loss: FloatArray = np.full(n, cfg.loss_w_per_k)
        self._g_loss[0] += cfg.end_loss_w_per_k
        self._g_loss[-1] += cfg.end_loss_w_per_k
        self._amb_k4 = (self.ambient_c + KELVIN) ** 4
        self._proc: simpy.Process | None = None
        self._running = False
        self.ticks = 0
        """Controller periods run so far."""
        self.revision = 0
        """Calls of state-changing methods so far (commands and fault injection)."""

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        """Start the controller process on the world's SimPy env and register in the world."""
        if self._running:
            return
        self.world.register_instrument(self.name, self)  # refuses a duplicate name
        self._running = True
        self._proc = self.world.env.process(self._run())

    def stop(self) -> None:
        """Stop the process, take the coupon off the carrier and unregister from the world."""
        self._running = False
        if self._proc is not None and self._proc.is_alive:
            self._proc.interrupt("stop")
        self._proc = None
        for k, coupon_id in enumerate(self.slots):
            if coupon_id and coupon_id in self.world.coupons:
                self.world.place(coupon_id, None)
            self.slots[k] = ""
        if self.world.instruments.get(self.name) is self:
            self.world.unregister_instrument(self.name)

    def _run(self) -> Generator[simpy.Event, object, None]:
        dt = self.config.sample_period_s
        try:
            while self._running:
                yield self.world.env.timeout(dt)
                if self._running:
                    self.step(dt)
        except simpy.Interrupt:
            return

    # -- derived state ----------------------------------------------------------------------
    @property
    def zones(self) -> int:
        """Return the number of zones N."""
        return self.config.zones

    @property
    def state(self) -> str:
        """Return "standby" | "manual" | "program" | "interlock"."""
        return "interlock" if self.tripped else self.mode

    def remaining_s(self) -> float:
        """Return an estimate of the virtual time left in the program, s (0 when not running)."""
        if self.program_state not in (ProgramState.RUNNING, ProgramState.HELD):
            return 0.0
        k = self.segment
        seg = self.segments[k]
        if self._ramping:
            total = _ramp_time(self.working_c, seg.targets_c, seg.rate_k_per_min) + seg.dwell_s
        else:
            total = self._dwell_left_s
        for j in range(k + 1, len(self.segments)):
            nxt = self.segments[j]
            total += _ramp_time(self.segments[j - 1].targets_c, nxt.targets_c, nxt.rate_k_per_min)
            total += nxt.dwell_s
        return max(total, 0.0)

    def temperature_along(self, x_mm: FloatArray) -> FloatArray:
        """Return the temperature (K) at positions ``x_mm`` (mm from the tube's start).

        Linear interpolation between the zone temperatures at the thermocouple positions,
        flat from the first/last thermocouple to the ends of the heated length, and an
        exponential decay to ambient over ``end_decay_mm`` outside ``[0, length_mm]``.
        """
        x = np.asarray(x_mm, dtype=float)
        t = np.interp(x, self.positions_mm, self.temperature_c)
        length = self.config.length_mm
        outside = np.where(x < 0, -x, np.where(x > length, x - length, 0.0))
        decay = np.exp(-outside / self.config.end_decay_mm)
        field: FloatArray = self.ambient_c + (t - self.ambient_c) * decay + KELVIN
        return field

    # -- the controller period ----------------------------------------------------------------
    def step(self, dt: float) -> None:
        """Advance physics and controllers by one period ``dt`` (s); called by the process."""
        cfg = self.config
        self.ticks += 1
        self._integrate(dt)
        noise = (
            self.world.rng_for(self.name).normal(0.0, cfg.noise_k, cfg.zones)
            if cfg.noise_k
            else 0.0
        )
        pv = self.temperature_c + noise
        self.pv_c = np.where(self.tc_broken, np.nan, pv)
        self._check_interlock()
        before = self.working_c
        self._advance_setpoints(dt)
        self._wsp_rate_k_per_min = (self.working_c - before) * 60.0 / dt
        self._control(dt, pv)

    def _integrate(self, dt: float) -> None:
        cfg = self.config
        h = dt / cfg.substeps
        power = cfg.heater_power_w * self.output / 100.0
        t = self.temperature_c
        for _ in range(cfg.substeps):
            d = t[1:] - t[:-1]  # np.diff's result, without its per-call overhead
            q = power - self._g_loss * (t - self.ambient_c)
            if cfg.radiation_w_per_k4:
                q -= cfg.radiation_w_per_k4 * ((t + KELVIN) ** 4 - self._amb_k4)
            if cfg.conduction_w_per_k and t.size > 1:
                q[:-1] += cfg.conduction_w_per_k * d
                q[1:] -= cfg.conduction_w_per_k * d
            t = t + h * q / cfg.heat_capacity_j_per_k
        self.temperature_c = t

    def _check_interlock(self) -> None:
        if self.tripped:
            return
        over = self.pv_c > self.interlock_limit_c  # a broken thermocouple's NaN is not over
        if over.any():
            i = int(np.argmax(np.where(over, self.pv_c, -np.inf)))
            self._trip(
                f"Zone{i + 1} PV {self.pv_c[i]:.1f} degC > limit {self.interlock_limit_c:.1f} degC"
            )

    def _trip(self, reason: str) -> None:
        self.tripped = True
        self.trip_reason = reason
        if self.program_state in (ProgramState.RUNNING, ProgramState.HELD):
            self.program_state = ProgramState.ABORTED
            self.segment = -1
        self.mode = "standby"
        self.target_c = np.full(self.zones, self.config.standby_temperature_c)
        self.working_c = self.target_c.copy()
        self.output = np.zeros(self.zones)
        self._integral = np.zeros(self.zones)

    def _advance_setpoints(self, dt: float) -> None:
        if self.tripped or self.program_state == ProgramState.HELD:
            return
        if self.program_state != ProgramState.RUNNING:
            self.working_c = _ramp(self.working_c, self.target_c, self.ramp_rate_k_per_min, dt)
            return
        seg = self.segments[self.segment]
        if self._ramping:
            self.working_c = _ramp(self.working_c, seg.targets_c, seg.rate_k_per_min, dt)
            if np.array_equal(self.working_c, seg.targets_c):
                self._ramping = False
                self._dwell_left_s = seg.dwell_s
                return
        else:
            self._dwell_left_s -= dt
        if not self._ramping and self._dwell_left_s <= 1e-9:
            self._next_segment()

    def _next_segment(self) -> None:
        k = self.segment + 1
        if k >= len(self.segments):
            self.program_state = ProgramState.COMPLETE
            self.segment = -1
            self.mode = "manual"
            return
        self.segment = k
        self.target_c = self.segments[k].targets_c.copy()
        self._ramping = True
        self._dwell_left_s = 0.0

    def _control(self, dt: float, pv: FloatArray) -> None:
        cfg = self.config
        if self.tripped:
            self.output = np.zeros(self.zones)
            self._prev_pv = pv
            return
        err = self.working_c - pv
        deriv = -cfg.kp_percent_per_k * cfg.td_s * (pv - self._prev_pv) / dt
        self._prev_pv = pv
        prop = cfg.kp_percent_per_k * err
        # feed-forward of the setpoint ramp: the power that heats the zone's mass at that rate
        deriv = deriv + cfg.ramp_feedforward_percent_per_k_per_min * self._wsp_rate_k_per_min
        unsat = prop + self._integral + deriv
        # anti-windup: integrate only while the output is not pushing against a limit
        frozen = ((unsat >= 100.0) & (err > 0)) | ((unsat <= 0.0) & (err < 0)) | self.tc_broken
        step = np.where(frozen, 0.0, cfg.kp_percent_per_k * dt / cfg.ti_s * err)
        # np.minimum(np.maximum(...)) is np.clip's result at a fraction of its cost (8 zones)
        self._integral = np.minimum(np.maximum(self._integral + step, 0.0), 100.0)
        out = np.minimum(np.maximum(prop + self._integral + deriv, 0.0), 100.0)
        out = np.where(self.tc_broken, 0.0, out)
        self.output = np.where(self.heater_stuck, self.stuck_output, out)

    # -- commands (what a client can do) ---------------------------------------------------
    def _check_temperature(self, what: str, values: FloatArray) -> None:
        top = self.config.max_temperature_c
        if not np.all(np.isfinite(values)) or np.any(values < 0) or np.any(values > top):
            raise CommandRefusedError(
                "BadOutOfRange", f"{what} must be finite and in [0, {top}] degC"
            )

    def _check_setpoints_allowed(self) -> None:
        if self.tripped:
            raise _invalid_state("interlock tripped: reset it first")
        if self.program_state in (ProgramState.RUNNING, ProgramState.HELD):
            raise _invalid_state("a program is running: abort it first")

    @_mutates
    def set_setpoints(self, values_c: Sequence[float] | FloatArray) -> None:
        """Set the target setpoint of every zone, degC (N values in 0..MaxTemperature)."""
        v = np.asarray(values_c, dtype=float)
        if v.shape != (self.zones,):
            raise CommandRefusedError(
                "BadOutOfRange", f"need {self.zones} setpoints, got {v.size}"
            )
        self._check_temperature("setpoints", v)
        self._check_setpoints_allowed()
        self._enter_manual()
        self.target_c = v.copy()

    def set_setpoint(self, zone: int, value_c: float) -> None:
        """Set the target setpoint of zone ``zone`` (0-based), degC (0..MaxTemperature)."""
        if not 0 <= zone < self.zones:
            raise CommandRefusedError(
                "BadOutOfRange", f"zone index {zone} not in [0, {self.zones - 1}]"
            )
        v = self.target_c.copy()
        v[zone] = value_c
        self.set_setpoints(v)

    def _enter_manual(self) -> None:
        if self.mode == "standby":
            # servo to PV: ramp from where the furnace is, not from the standby setpoint
            self.working_c = np.where(self.tc_broken, self.working_c, self.temperature_c)
        self.mode = "manual"

    @_mutates
    def set_ramp_rate(self, rate_k_per_min: float) -> None:
        """Set the setpoint ramp limit of all zones, K/min (0 = unlimited, up to the max)."""
        top = self.config.max_ramp_rate_k_per_min
        if not (math.isfinite(rate_k_per_min) and 0 <= rate_k_per_min <= top):
            raise _out_of_range(f"ramp rate must be in [0, {top}] K/min")
        self.ramp_rate_k_per_min = float(rate_k_per_min)

    @_mutates
    def standby(self) -> None:
        """Abort any program and send every setpoint to the standby temperature at once."""
        if self.program_state in (ProgramState.RUNNING, ProgramState.HELD):
            self.program_state = ProgramState.ABORTED
            self.segment = -1
        self.mode = "standby"
        self.target_c = np.full(self.zones, self.config.standby_temperature_c)
        self.working_c = self.target_c.copy()

    @_mutates
    def load_program(
        self, targets: Sequence[float], rates: Sequence[float], dwells: Sequence[float]
    ) -> None:
        """Load a program (see :func:`~couponlab.simulators.furnace.program.build_segments`)."""
        if self.program_state in (ProgramState.RUNNING, ProgramState.HELD):
            raise _invalid_state("cannot load while a program runs")
        cfg = self.config
        try:
            segments = build_segments(
                targets,
                rates,
                dwells,
                zones=cfg.zones,
                max_temperature_c=cfg.max_temperature_c,
                max_rate_k_per_min=cfg.max_ramp_rate_k_per_min,
                max_dwell_s=cfg.max_dwell_s,
                max_segments=cfg.max_segments,
            )
        except ProgramError as exc:
            status = "BadOutOfRange" if exc.out_of_range else "BadInvalidArgument"
            raise CommandRefusedError(status, str(exc)) from None
        self.segments = segments
        self.program_state = ProgramState.IDLE
        self.segment = -1

    @_mutates
    def start_program(self) -> None:
        """Run the loaded program from segment 0 (servo to PV first)."""
        if self.tripped:
            raise _invalid_state("interlock tripped: reset it first")
        if not self.segments:
            raise _invalid_state("no program loaded")
        if self.program_state in (ProgramState.RUNNING, ProgramState.HELD):
            raise _invalid_state("a program is already running")
        self.working_c = np.where(self.tc_broken, self.working_c, self.temperature_c)
        self.mode = "program"
        self.program_state = ProgramState.RUNNING
        self.segment = -1
        self._next_segment()

    @_mutates
    def hold(self) -> None:
        """Freeze the working setpoints and the dwell timer of a running program."""
        if self.program_state != ProgramState.RUNNING:
            raise CommandRefusedError(
                "BadInvalidState", f"program is {self.program_state.value}, not running"
            )
        self.program_state = ProgramState.HELD

    @_mutates
    def resume(self) -> None:
        """Continue a held program."""
        if self.program_state != ProgramState.HELD:
            raise CommandRefusedError(
                "BadInvalidState", f"program is {self.program_state.value}, not held"
            )
        self.program_state = ProgramState.RUNNING

    @_mutates
    def abort(self) -> None:
        """Stop a running/held program; setpoints stay where they are (no-op otherwise)."""
        if self.program_state in (ProgramState.RUNNING, ProgramState.HELD):
            self.program_state = ProgramState.ABORTED
            self.segment = -1
            self.target_c = self.working_c.copy()
            self.mode = "manual"

    @property
    def active(self) -> bool:
        """Return whether the furnace heats to anything but standby (manual or program)."""
        return self.mode != "standby"

    @_mutates
    def watchdog_expire(self, reason: str) -> None:
        """The client went silent: go to standby (as :meth:`standby`) and latch ``reason``."""
        self.standby()
        self.watchdog_expired = True
        self.watchdog_reason = reason

    @_mutates
    def reset_watchdog(self) -> None:
        """Clear the latched watchdog indication (the watchdog stays armed)."""
        self.watchdog_expired = False
        self.watchdog_reason = ""

    @_mutates
    def set_interlock_limit(self, limit_c: float) -> None:
        """Set the over-temperature limit, degC (0..interlock_limit_max_c)."""
        top = self.config.interlock_limit_max_c
        if not (math.isfinite(limit_c) and 0 <= limit_c <= top):
            raise CommandRefusedError(
                "BadOutOfRange", f"interlock limit must be in [0, {top}] degC"
            )
        self.interlock_limit_c = float(limit_c)

    @_mutates
    def reset_interlock(self) -> None:
        """Clear a tripped interlock if every (readable) PV is below the limit."""
        if not self.tripped:
            return
        if np.any(np.nan_to_num(self.pv_c, nan=-np.inf) >= self.interlock_limit_c):
            raise CommandRefusedError(
                "BadInvalidState", "a zone is still at or above the interlock limit"
            )
        self.tripped = False
        self.trip_reason = ""

    @property
    def coupon_id(self) -> str:
        """Return the coupon in slot 1 ("" = empty)."""
        return self.slots[0]

    @_mutates
    def set_coupon(self, coupon_id: str, slot: int = 1) -> None:
        """Place the world's coupon ``coupon_id`` in carrier slot ``slot`` (1..carrier_slots;
        "" empties the slot).

        Refused (``BadNotFound``) for a coupon the world does not have, (``BadOutOfRange``)
        for a slot the carrier does not have, and (``BadInvalidState``) for a coupon that
        already sits in another slot (one coupon is in one place). Placing a slot's own coupon
        again changes nothing.
        """
        if not 1 <= slot <= len(self.slots):
            raise _out_of_range(f"slot must be in [1, {len(self.slots)}]")
        if coupon_id and coupon_id not in self.world.coupons:
            raise CommandRefusedError("BadNotFound", f"no coupon {coupon_id!r} in the world")
        if coupon_id and coupon_id in self.slots and self.slots[slot - 1] != coupon_id:
            other = self.slots.index(coupon_id) + 1
            raise CommandRefusedError(
                "BadInvalidState", f"coupon {coupon_id!r} is already in slot {other}"
            )
        current = self.slots[slot - 1]
        if current and current != coupon_id and current in self.world.coupons:
            self.world.place(current, None)
        self.slots[slot - 1] = coupon_id
        if coupon_id:
            self.world.place(coupon_id, self, self.name, self.offset_mm)

    @_mutates
    def set_offset(self, offset_mm: float) -> None:
        """Move the carrier (every slot's coupon start) to ``offset_mm`` along the tube
        (0..length_mm)."""
        top = self.config.length_mm
        if not (math.isfinite(offset_mm) and 0 <= offset_mm <= top):
            raise _out_of_range(f"offset must be in [0, {top}] mm")
        self.offset_mm = float(offset_mm)
        for coupon_id in self.slots:
            if coupon_id:
                self.world.place(coupon_id, self, self.name, self.offset_mm)

    # -- fault injection (tests) -------------------------------------------------------------
    def _zone(self, zone: int) -> int:
        if not 0 <= zone < self.zones:
            raise IndexError(f"zone index {zone} not in [0, {self.zones - 1}]")
        return zone

    @_mutates
    def break_thermocouple(self, zone: int) -> None:
        """Break the thermocouple of zone ``zone`` (0-based): PV NaN, output forced to 0."""
        i = self._zone(zone)
        self.tc_broken[i] = True
        self.pv_c[i] = np.nan
        self.output[i] = 0.0

    @_mutates
    def repair_thermocouple(self, zone: int) -> None:
        """Repair the thermocouple of zone ``zone`` (0-based)."""
        i = self._zone(zone)
        self.tc_broken[i] = False
        self.pv_c[i] = self.temperature_c[i]
        self._prev_pv[i] = self.temperature_c[i]

    @_mutates
    def controller_fault(self, reason: str) -> None:
        """Latch a controller fault: heaters off, state ``interlock`` with ``reason``, until
        ``Interlock.Reset()`` (fault injection: an instrument error)."""
        self._trip(reason)

    @_mutates
    def power_cycle(self) -> None:
        """Lose power and restart (fault injection): heaters off, standby, the program, the
        ramp rate, the interlock limit and every latch back to power-on defaults. The tube
        keeps its heat, the carrier its coupons; broken thermocouples stay broken."""
        cfg = self.config
        self.mode = "standby"
        self.target_c = np.full(self.zones, cfg.standby_temperature_c)
        self.working_c = self.target_c.copy()
        self.output = np.zeros(self.zones)
        self._integral = np.zeros(self.zones)
        self._wsp_rate_k_per_min = np.zeros(self.zones)
        self.ramp_rate_k_per_min = 0.0
        self.segments = []
        self.program_state = ProgramState.IDLE
        self.segment = -1
        self._ramping = True
        self._dwell_left_s = 0.0
        self.interlock_limit_c = cfg.interlock_default_c
        self.tripped, self.trip_reason = False, ""
        self.watchdog_expired, self.watchdog_reason = False, ""

    @_mutates
    def set_heater_stuck(self, zone: int, stuck: bool = True, output: float = 100.0) -> None:
        """Force zone ``zone``'s heater to ``output`` % (0 < output <= 100; 100: a welded
        relay, less: a power controller whose firing stage is stuck at one phase angle) until
        cleared (``stuck`` False: the controller has the zone again).

        The interlock's contactor still cuts it: a tripped furnace outputs 0 everywhere.
        """
        i = self._zone(zone)
        if stuck and not (math.isfinite(output) and 0.0 < output <= 100.0):
            raise ValueError(f"output = {output!r} is outside the allowed range (0, 100] %")
        self.heater_stuck[i] = stuck
        if stuck:
            self.stuck_output[i] = float(output)


def _ramp(current: FloatArray, target: FloatArray, rate_k_per_min: float, dt: float) -> FloatArray:
    """Move ``current`` toward ``target`` by at most ``rate * dt`` (0 = jump)."""
    if rate_k_per_min <= 0:
        return target.copy()
    step = rate_k_per_min * dt / 60.0
    diff = target - current
    # land exactly on the target (a + (b - a) need not equal b in floating point)
    out: FloatArray = np.where(np.abs(diff) <= step, target, current + np.sign(diff) * step)
    return out


def _ramp_time(start: FloatArray, target: FloatArray, rate_k_per_min: float) -> float:
    """Return the time to ramp every zone from ``start`` to ``target``, s."""
    return float(np.max(np.abs(target - start))) * 60.0 / rate_k_per_min


__all__ = ["KELVIN", "CommandRefusedError", "FurnaceModel"]
