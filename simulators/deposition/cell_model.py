"""Physics and interlocks of the deposition-cell twin: laser, shielding gas, one motion axis,
and the print program that drives the feeders and writes a coupon's as-built composition.

The nozzle moves along x (the coupon's length). During a print the cell's controller sets
the feeders' hopper rates from a position-triggered schedule (as a CNC does through its
analog outputs), and the world integrates what actually reaches the nozzle: at each step the
element masses of every hopper's nozzle flow are spread over the coupon's nodes with a
Gaussian of width ``melt_pool_sigma_mm`` (mixing in the melt pool). The as-built composition
is the element mass fraction at each node.

Interlocks (in the instrument, mirrored by the driver): no laser without shielding gas; no
powder without laser during a print (a laser that goes off aborts the print and stops the
feeders); any alarm of a hopper the print uses (empty, clog, gas loss) aborts the print.
An aborted print leaves the laser off, the axis stopped and every hopper at 0 g/min.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Generator
from dataclasses import dataclass, field

import numpy as np
import simpy
from pydantic import BaseModel, ConfigDict, Field

from couponlab.simulators.deposition.feeder_model import FeederModel, alarm_names
from couponlab.simulators.world import Coupon, FloatArray, World


class CellConfig(BaseModel):
    """Parameters of the deposition-cell twin (a lab entry's ``twin_config``; *typical*)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    feeders: list[str] = Field(default_factory=list)
    """Device names of the feeders this cell drives, in channel order."""
    max_power_w: float = Field(default=2000.0, gt=0)
    """Largest laser power, W."""
    min_shield_l_min: float = Field(default=5.0, ge=0)
    """Shielding gas needed before the laser may fire, L/min."""
    max_shield_l_min: float = Field(default=30.0, gt=0)
    """Largest shielding-gas setpoint, L/min."""
    max_speed_mm_s: float = Field(default=50.0, gt=0)
    """Largest travel speed, mm/s."""
    rapid_speed_mm_s: float = Field(default=50.0, gt=0)
    """Speed of the move to the start of a print, mm/s."""
    x_min_mm: float = Field(default=-300.0)
    """Lower end of the axis, mm."""
    x_max_mm: float = Field(default=400.0)
    """Upper end of the axis, mm."""
    melt_pool_sigma_mm: float = Field(default=0.6, gt=0)
    """Standard deviation of the melt-pool mixing along x, mm."""
    dt_s: float = Field(default=0.02, gt=0, le=0.2)
    """Integration step while moving, s of virtual time."""
    max_points: int = Field(default=5000, ge=2)
    """Most schedule points in one print program."""
    manufacturer: str = "couponlab"
    model: str = "DC-1 L-DED cell (twin)"
    serial_number: str = "TWIN-DC-0001"
    firmware_version: str = "couponlab-twin 0.1"


@dataclass
class PrintProgram:
    """A print: path along x, travel speed, laser power and the feed schedule."""

    x_start: float = 0.0
    x_end: float = 0.0
    speed: float = 0.0
    power: float = 0.0
    points: list[tuple[float, tuple[float, ...]]] = field(default_factory=list)
    """(x mm, rate g/min of every channel) from that x on."""


class CellModel:
    """SimPy model of the deposition cell.

    Parameters
    ----------
    world
        The shared world; feeders are found with ``world.instrument(name)``.
    config
        Twin parameters.
    name
        Device name (registered in the world).
    """

    def __init__(self, world: World, config: CellConfig, name: str) -> None:
        self.world = world
        self.config = config
        self.name = name
        self.laser_on = False
        self.power = 0.0
        self.shield_setpoint = 0.0
        self.shield_supply_ok = True
        self.x = 0.0
        self.speed = 10.0
        self.moving = False
        self.coupon_id = ""
        self.program = PrintProgram()
        self.print_state = "IDLE"
        self.reason = ""
        self.progress = 0.0
        self._activity: simpy.Process | None = None
        self._mass: dict[str, FloatArray] = {}
        world.register_instrument(name, self)

    # -- feeders ----------------------------------------------------------------------------
    def feeder(self, name: str) -> FeederModel:
        """Return the feeder twin called ``name``."""
        model = self.world.instrument(name)
        if not isinstance(model, FeederModel):
            raise TypeError(f"{name!r} is not a powder feeder")
        return model

    def channels(self) -> list[tuple[str, int]]:
        """Return (feeder name, hopper index) of every channel, in schedule order."""
        return [
            (f, i) for f in self.config.feeders for i in range(1, len(self.feeder(f).hoppers) + 1)
        ]

    def _set_channels(self, rates: tuple[float, ...]) -> None:
        for (f, i), r in zip(self.channels(), rates, strict=True):
            model = self.feeder(f)
            if model.hopper(i).setpoint != r:
                model.set_rate(i, r)

    def _feeders_off(self) -> None:
        for f in self.config.feeders:
            self.feeder(f).stop()

    # -- commands ---------------------------------------------------------------------------
    @property
    def shield_flow(self) -> float:
        """Return the measured shielding-gas flow, L/min."""
        return self.shield_setpoint if self.shield_supply_ok else 0.0

    def busy(self) -> bool:
        """Return whether a move or a print is running."""
        return self._activity is not None and self._activity.is_alive

    def set_laser(self, on: bool) -> None:
        """Switch the laser; refuse on without shielding gas (interlock)."""
        if on and self.shield_flow < self.config.min_shield_l_min:
            raise RuntimeError(
                f"interlock: shielding gas {self.shield_flow:g} L/min below "
                f"{self.config.min_shield_l_min:g} L/min, laser stays off"
            )
        self.laser_on = on

    def set_shield(self, flow: float) -> None:
        """Set the shielding gas, L/min; too little switches the laser off."""
        self.shield_setpoint = flow
        self._check_shield()

    def inject_shield_loss(self, lost: bool = True) -> None:
        """Cut (or restore) the shielding-gas supply (fault injection)."""
        self.shield_supply_ok = not lost
        self._check_shield()

    def _check_shield(self) -> None:
        if self.laser_on and self.shield_flow < self.config.min_shield_l_min:
            self.laser_on = False

    def move(self, x: float) -> None:
        """Move the nozzle to ``x`` mm at the travel speed (laser state unchanged)."""
        if self.busy():
            raise RuntimeError("busy: a move or a print is running")
        self._activity = self.world.env.process(self._move_alone(x, self.speed))

    def stop(self, reason: str = "stopped by command") -> None:
        """Safe state: laser off, axis stopped, feeders off, a running print aborted."""
        if self.print_state == "RUNNING":
            self._abort(self.world.coupon(self.coupon_id), reason)
        if self.busy():
            assert self._activity is not None
            self._activity.interrupt(reason)
        self.laser_on = False
        self.moving = False
        self._feeders_off()

    def select_coupon(self, coupon_id: str, length_mm: float) -> None:
        """Create coupon ``coupon_id`` (``length_mm`` long) in the world, to be printed next."""
        if self.busy():
            raise RuntimeError("busy: a move or a print is running")
        self.world.add_coupon(Coupon(coupon_id, length_mm=length_mm))
        self.coupon_id = coupon_id

    def check_program(self) -> None:
        """Raise ``ValueError`` or ``RuntimeError`` if the program cannot start now."""
        p, c = self.program, self.config
        if self.busy():
            raise RuntimeError("busy: a move or a print is running")
        if not self.coupon_id:
            raise RuntimeError("no coupon selected (COUP)")
        coupon = self.world.coupon(self.coupon_id)
        if coupon.composition:
            raise RuntimeError(f"coupon {self.coupon_id} is already printed")
        if p.speed <= 0:
            raise RuntimeError("no path (PRNT:PATH)")
        if not (p.x_start <= 0.0 and p.x_end >= coupon.length_mm):
            raise ValueError(
                f"path {p.x_start:g}..{p.x_end:g} mm does not cover the coupon "
                f"0..{coupon.length_mm:g} mm"
            )
        if not p.points:
            raise RuntimeError("no schedule points (PRNT:PT)")
        if self.shield_flow < c.min_shield_l_min:
            raise RuntimeError(
                f"interlock: shielding gas {self.shield_flow:g} L/min below "
                f"{c.min_shield_l_min:g} L/min"
            )
        for name, i in self._used_channels():
            bits = self.feeder(name).hopper(i).alarms
            if bits:
                raise RuntimeError(f"{name} hopper {i}: {' '.join(alarm_names(bits))}")

    def start_print(self) -> None:
        """Start the loaded program (after :meth:`check_program`)."""
        self.check_program()
        coupon = self.world.coupon(self.coupon_id)
        self._mass = {}
        self.print_state, self.reason, self.progress = "RUNNING", "", 0.0
        coupon.metadata["print_status"] = "running"
        self._activity = self.world.env.process(self._print(coupon))

    # -- simulation -------------------------------------------------------------------------
    def _used_channels(self) -> list[tuple[str, int]]:
        chans = self.channels()
        return [
            ch for k, ch in enumerate(chans) if any(pt[1][k] > 0 for pt in self.program.points)
        ]

    def _move(self, target: float, speed: float) -> Generator[simpy.Event, None, None]:
        dt = self.config.dt_s
        self.moving = True
        try:
            while abs(target - self.x) > 1e-9:
                yield self.world.env.timeout(dt)
                step = speed * dt
                if abs(target - self.x) <= step:
                    self.x = target
                else:
                    self.x += math.copysign(step, target - self.x)
        finally:
            self.moving = False

    def _move_alone(self, target: float, speed: float) -> Generator[simpy.Event, None, None]:
        with contextlib.suppress(simpy.Interrupt):
            yield from self._move(target, speed)

    def _print(self, coupon: Coupon) -> Generator[simpy.Event, None, None]:
        p, dt = self.program, self.config.dt_s
        used = self._used_channels()
        try:
            yield from self._move(p.x_start, self.config.rapid_speed_mm_s)
            self.power = p.power
            self.set_laser(True)
            self.moving = True
            k = -1
            length = p.x_end - p.x_start
            while self.x < p.x_end - 1e-9:
                yield self.world.env.timeout(dt)
                fault = self._fault(used)
                if fault:
                    self._abort(coupon, fault)
                    return
                x0 = self.x
                self.x = min(p.x_end, self.x + p.speed * dt)
                while k + 1 < len(p.points) and p.points[k + 1][0] <= self.x + 1e-9:
                    k += 1
                if k >= 0:
                    self._set_channels(p.points[k][1])
                self._deposit(coupon, 0.5 * (x0 + self.x), dt)
                self.progress = (self.x - p.x_start) / length if length > 0 else 1.0
        except simpy.Interrupt as stop:
            if self.print_state == "RUNNING":
                self._abort(coupon, str(stop.cause))
            return
        self._feeders_off()
        self.laser_on = False
        self.moving = False
        self._finish(coupon)

    def _fault(self, used: list[tuple[str, int]]) -> str:
        if not self.laser_on:
            if self.shield_flow < self.config.min_shield_l_min:
                return f"interlock: shielding gas lost ({self.shield_flow:g} L/min)"
            return "interlock: laser switched off during the print"
        for name, i in used:
            bits = self.feeder(name).hopper(i).alarms
            if bits:
                return f"{name} hopper {i}: {' '.join(alarm_names(bits))}"
        return ""

    def _deposit(self, coupon: Coupon, x_mid: float, dt: float) -> None:
        sigma = self.config.melt_pool_sigma_mm
        if x_mid < -5 * sigma or x_mid > coupon.length_mm + 5 * sigma:
            return
        weights = np.exp(-0.5 * ((coupon.x_mm - x_mid) / sigma) ** 2)
        for name, i in self.channels():
            h = self.feeder(name).hopper(i)
            grams = h.nozzle * dt / 60.0
            if grams <= 0.0:
                continue
            for element, fraction in h.config.composition.items():
                acc = self._mass.setdefault(element, np.zeros_like(coupon.x_mm))
                acc += grams * fraction * weights

    def _abort(self, coupon: Coupon, reason: str) -> None:
        self.laser_on = False
        self.moving = False
        self._feeders_off()
        self.print_state, self.reason = "ABORTED", reason
        coupon.metadata["print_status"] = f"aborted: {reason}"
        coupon.metadata["aborted_at_mm"] = self.x
        coupon.metadata["deposited_g_per_node"] = {
            e: m.tolist() for e, m in sorted(self._mass.items())
        }

    def _finish(self, coupon: Coupon) -> None:
        total = sum(self._mass.values()) if self._mass else np.zeros_like(coupon.x_mm)
        total = np.asarray(total, float)
        self.progress = 1.0
        self.print_state = "DONE"
        coupon.metadata["print_status"] = "done"
        coupon.metadata["printed_by"] = self.name
        coupon.metadata["print"] = {
            "x_start_mm": self.program.x_start,
            "x_end_mm": self.program.x_end,
            "speed_mm_s": self.program.speed,
            "power_w": self.program.power,
            "points": len(self.program.points),
            "finished_at_s": self.world.now,
        }
        ok = total > 1e-12 * max(float(total.max()), 1e-30)
        if not ok.any():
            self.reason = "nothing was deposited"
            coupon.metadata["print_status"] = "done: nothing deposited"
            return
        idx = np.arange(total.size)
        nearest = np.interp(idx, idx[ok], idx[ok]).round().astype(int)
        coupon.set_composition(
            {e: (m / np.where(ok, total, 1.0))[nearest] for e, m in self._mass.items()}
        )
        if not ok.all():
            coupon.metadata["undeposited_mm"] = coupon.x_mm[~ok].tolist()


__all__ = ["CellConfig", "CellModel", "PrintProgram"]
