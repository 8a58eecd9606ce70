"""Physics and interlocks of the deposition-cell twin: laser, shielding gas, an x-y motion
stage, and the print program that drives the feeders and writes a coupon's as-built
composition map.

A print is one or more *passes* (tracks) along +x, the coupon's length. During a pass the
cell's controller sets the feeders' hopper rates from a position-triggered schedule (as a CNC
does through its analog outputs), and the world integrates what actually reaches the nozzle.
Between passes the laser is off and the nozzle makes a rapid move to the next track's start;
the feeders hold the last rates of the finished track (the powder in the lines keeps coming
and is lost), so the next track starts with whatever powder is in the lines.

Deposition model (docs/decisions/0013-multi-track-printing.md): at each step the element
masses of every hopper's nozzle flow are spread along x with a Gaussian of standard deviation
``melt_pool_sigma_mm`` and across y with a Gaussian of standard deviation
``bead_width_mm / 4`` centred on the track (about 95 % of the mass within the bead width),
as areal densities (g/mm^2) on the coupon's nodes. Overlapping tracks add up, so neighbours
blend by mass. The as-built composition is the element mass fraction at each node. A
program without tracks is the original single pass whose bead covers the whole width
(composition uniform across y).

Interlocks (in the instrument, mirrored by the driver): no laser without shielding gas; no
powder without laser while a track prints (a laser that goes off aborts the print and stops
the feeders); shielding-gas loss and any alarm of a hopper the print uses (empty, clog, gas
loss) abort the print, during a track or between tracks. An aborted print leaves the laser
off, the stage stopped and every hopper at 0 g/min.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Annotated

import numpy as np
import simpy
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from couponlab.lab_settings import DeviceRef
from couponlab.simulators.deposition.feeder_model import FeederModel, alarm_names
from couponlab.simulators.world import Coupon, FloatArray, World


class CellConfig(BaseModel):
    """Parameters of the deposition-cell twin (a lab entry's ``twin_config``; *typical*)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    feeders: list[Annotated[str, DeviceRef("powder_feeder")]] = Field(default_factory=list)
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
    y_min_mm: float = Field(default=-50.0)
    """Lower end of the y axis (across the coupon), mm."""
    y_max_mm: float = Field(default=150.0)
    """Upper end of the y axis, mm."""
    melt_pool_sigma_mm: float = Field(default=0.6, gt=0)
    """Standard deviation of the melt-pool mixing along x, mm."""
    bead_width_mm: float = Field(default=1.6, gt=0, le=20)
    """Width of one track (about 95 % of its mass), mm (*typical* 1-3 mm at 400 W)."""
    hatch_mm: float = Field(default=1.0, gt=0, le=20)
    """The cell's default spacing of neighbouring tracks, mm (*typical*: 30-40 % overlap)."""
    max_tracks: int = Field(default=200, ge=1)
    """Most tracks in one print program."""
    dt_s: float = Field(default=0.02, gt=0, le=0.2)
    """Integration step while moving, s of virtual time."""
    max_points: int = Field(default=5000, ge=2)
    """Most schedule points in one print program."""
    watchdog_timeout_s: float = Field(default=0.0, ge=0, le=3600)
    """Communication watchdog at power-on, s of wall time (0 = off; ``SYST:WDOG`` sets it)."""
    manufacturer: str = "couponlab"
    model: str = "DC-1 L-DED cell (twin)"
    serial_number: str = "TWIN-DC-0001"
    firmware_version: str = "couponlab-twin 0.1"


@dataclass
class TrackProgram:
    """One pass along +x: its y (None: a bead covering the whole width), path from
    ``x_start`` to ``x_end`` (mm), travel speed (mm/s), laser power (W) and feed schedule."""

    y: float | None = None
    x_start: float = 0.0
    x_end: float = 0.0
    speed: float = 0.0
    power: float = 0.0
    points: list[tuple[float, tuple[float, ...]]] = field(default_factory=list)
    """(x mm, rate g/min of every channel) from that x on."""


@dataclass
class PrintProgram(TrackProgram):
    """A print program. Without ``tracks`` it is the original single full-width pass whose
    path and schedule are this object's own fields; with tracks (``PRNT:TRK``), each track
    holds its own path and schedule and the own fields are unused."""

    tracks: list[TrackProgram] = field(default_factory=list)

    def current(self) -> TrackProgram:
        """Return the pass that ``PRNT:PATH`` and ``PRNT:PT`` write to (the last track)."""
        return self.tracks[-1] if self.tracks else self

    def passes(self) -> list[TrackProgram]:
        """Return the passes to print, in order."""
        return list(self.tracks) if self.tracks else [self]

    def point_count(self) -> int:
        """Return the schedule points of every pass."""
        return sum(len(p.points) for p in self.passes())


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
        self.y = 0.0
        self.speed = 10.0
        self.moving = False
        self.coupon_id = ""
        self.program = PrintProgram()
        self.print_state = "IDLE"
        self.reason = ""
        self.progress = 0.0
        self.track = 0
        """Pass being printed or approached (1-based); 0 before a print starts."""
        self._activity: simpy.Process | None = None
        self._mass: dict[str, FloatArray] = {}
        """Element areal densities deposited so far, g/mm^2, shaped (ny, nx)."""
        self._track_mass: dict[str, FloatArray] = {}
        """Element mass per mm of x of the pass in progress, g/mm, shaped (nx,)."""
        self._track_y: FloatArray | None = None
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

    @property
    def active(self) -> bool:
        """Return whether the cell lases, moves or prints (what a lost client must stop)."""
        return self.laser_on or self.busy() or self.print_state == "RUNNING"

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

    def move(self, x: float, y: float | None = None) -> None:
        """Move the nozzle to ``x`` (and ``y``) mm at the travel speed (laser unchanged)."""
        if self.busy():
            raise RuntimeError("busy: a move or a print is running")
        ty = self.y if y is None else y
        self._activity = self.world.env.process(self._move_alone(x, ty, self.speed))

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

    def select_coupon(self, coupon_id: str, length_mm: float, width_mm: float = 10.0) -> None:
        """Create coupon ``coupon_id`` (``length_mm`` x ``width_mm``) in the world, to be
        printed next."""
        if self.busy():
            raise RuntimeError("busy: a move or a print is running")
        self.world.add_coupon(Coupon(coupon_id, length_mm=length_mm, width_mm=width_mm))
        self.coupon_id = coupon_id

    def check_program(self) -> None:
        """Raise ``ValueError`` or ``RuntimeError`` if the program cannot start now."""
        c = self.config
        if self.busy():
            raise RuntimeError("busy: a move or a print is running")
        if not self.coupon_id:
            raise RuntimeError("no coupon selected (COUP)")
        coupon = self.world.coupon(self.coupon_id)
        if coupon.composition:
            raise RuntimeError(f"coupon {self.coupon_id} is already printed")
        passes = self.program.passes()
        for n, p in enumerate(passes, start=1):
            what = f"track {n}: " if self.program.tracks else ""
            if p.speed <= 0:
                raise RuntimeError(f"{what}no path (PRNT:PATH)")
            if not (p.x_start <= 0.0 and p.x_end >= coupon.length_mm):
                raise ValueError(
                    f"{what}path {p.x_start:g}..{p.x_end:g} mm does not cover the coupon "
                    f"0..{coupon.length_mm:g} mm"
                )
            if not p.points:
                raise RuntimeError(f"{what}no schedule points (PRNT:PT)")
            if p.y is not None and not (
                -c.bead_width_mm <= p.y <= coupon.width_mm + c.bead_width_mm
            ):
                raise ValueError(
                    f"{what}y = {p.y:g} mm misses the coupon 0..{coupon.width_mm:g} mm"
                )
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
        self._mass, self._track_mass, self._track_y = {}, {}, None
        self.print_state, self.reason, self.progress, self.track = "RUNNING", "", 0.0, 0
        coupon.metadata["print_status"] = "running"
        self._activity = self.world.env.process(self._print(coupon))

    # -- simulation -------------------------------------------------------------------------
    def _used_channels(self) -> list[tuple[str, int]]:
        chans = self.channels()
        return [
            ch
            for k, ch in enumerate(chans)
            if any(pt[1][k] > 0 for p in self.program.passes() for pt in p.points)
        ]

    def _move(
        self,
        tx: float,
        ty: float,
        speed: float,
        check: Callable[[], str] | None = None,
    ) -> Generator[simpy.Event, None, str]:
        """Move in a straight line to (tx, ty) at ``speed``; return the first fault that
        ``check`` reports at a step ("" if none)."""
        dt = self.config.dt_s
        self.moving = True
        try:
            while True:
                dx, dy = tx - self.x, ty - self.y
                dist = math.hypot(dx, dy)
                if dist <= 1e-9:
                    self.x, self.y = tx, ty
                    return ""
                yield self.world.env.timeout(dt)
                step = speed * dt
                if dist <= step:
                    self.x, self.y = tx, ty
                else:
                    self.x += dx * step / dist
                    self.y += dy * step / dist
                fault = check() if check is not None else ""
                if fault:
                    return fault
        finally:
            self.moving = False

    def _move_alone(
        self, tx: float, ty: float, speed: float
    ) -> Generator[simpy.Event, None, None]:
        with contextlib.suppress(simpy.Interrupt):
            yield from self._move(tx, ty, speed)

    def _print(self, coupon: Coupon) -> Generator[simpy.Event, None, None]:
        passes = self.program.passes()
        used = self._used_channels()
        length = sum(p.x_end - p.x_start for p in passes)
        done = 0.0
        try:
            for n, p in enumerate(passes, start=1):
                self.track = n
                self.laser_on = False
                # to the start of the pass, laser off: the feeders hold their last rates
                ty = self.y if p.y is None else p.y
                fault = yield from self._move(
                    p.x_start, ty, self.config.rapid_speed_mm_s, lambda: self._fault(used, False)
                )
                if fault:
                    self._abort(coupon, fault)
                    return
                self.power = p.power
                try:
                    self.set_laser(True)
                except RuntimeError as exc:
                    self._abort(coupon, str(exc))
                    return
                fault = yield from self._pass(coupon, p, used, done, length)
                if fault:
                    self._abort(coupon, fault)
                    return
                done += p.x_end - p.x_start
        except simpy.Interrupt as stop:
            if self.print_state == "RUNNING":
                self._abort(coupon, str(stop.cause))
            return
        self._feeders_off()
        self.laser_on = False
        self.moving = False
        self._finish(coupon)

    def _pass(
        self,
        coupon: Coupon,
        p: TrackProgram,
        used: list[tuple[str, int]],
        done: float,
        length: float,
    ) -> Generator[simpy.Event, None, str]:
        """Print one pass along +x, playing its schedule; return a fault ("" if none)."""
        dt = self.config.dt_s
        self._track_mass = {}
        self._track_y = self._y_density(coupon, p.y)
        self.moving = True
        try:
            k = -1
            while self.x < p.x_end - 1e-9:
                yield self.world.env.timeout(dt)
                fault = self._fault(used, True)
                if fault:
                    return fault
                x0 = self.x
                self.x = min(p.x_end, self.x + p.speed * dt)
                while k + 1 < len(p.points) and p.points[k + 1][0] <= self.x + 1e-9:
                    k += 1
                if k >= 0:
                    self._set_channels(p.points[k][1])
                self._deposit(coupon, 0.5 * (x0 + self.x), dt)
                self.progress = (done + self.x - p.x_start) / length if length > 0 else 1.0
        finally:
            self.moving = False
            self._commit_track()
        return ""

    def _fault(self, used: list[tuple[str, int]], lasing: bool) -> str:
        if self.shield_flow < self.config.min_shield_l_min:
            return f"interlock: shielding gas lost ({self.shield_flow:g} L/min)"
        if lasing and not self.laser_on:
            return "interlock: laser switched off during the print"
        for name, i in used:
            bits = self.feeder(name).hopper(i).alarms
            if bits:
                return f"{name} hopper {i}: {' '.join(alarm_names(bits))}"
        return ""

    def _y_density(self, coupon: Coupon, y: float | None) -> FloatArray:
        """Return the fraction of a pass's mass per mm of y at each y node, 1/mm."""
        if y is None:  # a bead as wide as the coupon: uniform across y
            return np.full(coupon.y_mm.size, 1.0 / coupon.width_mm)
        sigma = self.config.bead_width_mm / 4.0
        density: FloatArray = np.exp(-0.5 * ((coupon.y_mm - y) / sigma) ** 2) / (
            sigma * math.sqrt(2.0 * math.pi)
        )
        return density

    def _deposit(self, coupon: Coupon, x_mid: float, dt: float) -> None:
        """Add one step's powder to the pass in progress, g per mm of x at each x node."""
        sigma = self.config.melt_pool_sigma_mm
        if x_mid < -5 * sigma or x_mid > coupon.length_mm + 5 * sigma:
            return
        weights = np.exp(-0.5 * ((coupon.x_mm - x_mid) / sigma) ** 2) / (
            sigma * math.sqrt(2.0 * math.pi)
        )
        for name, i in self.channels():
            h = self.feeder(name).hopper(i)
            grams = h.nozzle * dt / 60.0
            if grams <= 0.0:
                continue
            for element, fraction in h.config.composition.items():
                acc = self._track_mass.setdefault(element, np.zeros_like(coupon.x_mm))
                acc += grams * fraction * weights

    def _commit_track(self) -> None:
        """Spread the finished (or interrupted) pass across y into the areal densities."""
        if self._track_y is None:
            return
        for element, along_x in self._track_mass.items():
            add = np.outer(self._track_y, along_x)
            if element in self._mass:
                self._mass[element] += add
            else:
                self._mass[element] = add
        self._track_mass, self._track_y = {}, None

    def _abort(self, coupon: Coupon, reason: str) -> None:
        self._commit_track()
        self.laser_on = False
        self.moving = False
        self._feeders_off()
        self.print_state, self.reason = "ABORTED", reason
        coupon.metadata["print_status"] = f"aborted: {reason}"
        coupon.metadata["aborted_at_mm"] = self.x
        coupon.metadata["aborted_in_track"] = self.track
        coupon.metadata["deposited_g_per_mm2"] = {
            e: m.tolist() for e, m in sorted(self._mass.items())
        }

    def _finish(self, coupon: Coupon) -> None:
        shape = coupon.shape
        total = np.asarray(sum(self._mass.values()), float) if self._mass else np.zeros(shape)
        self.progress = 1.0
        self.print_state = "DONE"
        coupon.metadata["print_status"] = "done"
        coupon.metadata["printed_by"] = self.name
        prog = self.program
        passes = prog.passes()
        coupon.metadata["print"] = {
            "x_start_mm": min(p.x_start for p in passes),
            "x_end_mm": max(p.x_end for p in passes),
            "speed_mm_s": passes[0].speed,
            "power_w": passes[0].power,
            "points": prog.point_count(),
            "tracks_y_mm": [p.y for p in prog.tracks],
            "bead_width_mm": self.config.bead_width_mm if prog.tracks else coupon.width_mm,
            "areal_density_g_per_mm2": {
                "min": float(total.min()),
                "median": float(np.median(total)),
                "max": float(total.max()),
            },
            "finished_at_s": self.world.now,
        }
        ok = total > 1e-12 * max(float(total.max()), 1e-30)
        if not ok.any():
            self.reason = "nothing was deposited"
            coupon.metadata["print_status"] = "done: nothing deposited"
            return
        fractions = {
            e: np.where(ok, m / np.where(ok, total, 1.0), np.nan) for e, m in self._mass.items()
        }
        if not ok.all():
            fractions = {e: _fill_nearest(f, ok) for e, f in fractions.items()}
            coupon.metadata["undeposited_nodes"] = int((~ok).sum())
        coupon.set_composition(fractions)


def _fill_nearest(values: FloatArray, ok: NDArray[np.bool_]) -> FloatArray:
    """Return ``values`` with the nodes outside ``ok`` set from the nearest ``ok`` node (in
    y within their column, then along x from the nearest column that has any)."""
    out = values.copy()
    ny, nx = out.shape
    cols = np.flatnonzero(ok.any(axis=0))
    iy = np.arange(ny)
    for col in cols:
        good = np.flatnonzero(ok[:, col])
        nearest = good[np.abs(iy[:, None] - good[None, :]).argmin(axis=1)]
        out[:, col] = out[nearest, col]
    for j in range(nx):
        if not ok[:, j].any():
            out[:, j] = out[:, cols[np.abs(cols - j).argmin()]]
    return out


__all__ = ["CellConfig", "CellModel", "PrintProgram", "TrackProgram"]
