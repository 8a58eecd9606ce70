"""Twin of the x-y stage: two axes moving at constant speed in virtual time, soft limits,
and the coupon mounted on it (protocol: docs/protocols/xy-stage-scpi.md).

Positions are *work coordinates*: mm from the mounted coupon's start (x along the coupon,
y across it), i.e. from the holder's origin, which sits at :attr:`StageConfig.holder_origin_mm`
in machine coordinates. Motion is analytic (position is a function of virtual time), so a
reply always tells where the stage is "now", and other twins (profiler, probe, camera) ask
:meth:`StageModel.position_at` where it was at any instant of a measurement.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from couponlab.labfile import DeviceEntry
from couponlab.registry import TwinSpec
from couponlab.simulators.detectors._opc_server import OpcDispatcher
from couponlab.simulators.detectors._scpi_twin import ScpiTwin, load_config, quoted
from couponlab.simulators.faults import Fault, FaultRefusedError
from couponlab.simulators.line_faults import HARDWARE_ERROR, FamilyFaults
from couponlab.simulators.scpi import (
    DATA_OUT_OF_RANGE,
    EXECUTION_ERROR,
    ILLEGAL_PARAMETER,
    ScpiError,
    parse_float,
)
from couponlab.simulators.world import Coupon, World

AXES = ("X", "Y")


class StageConfig(BaseModel):
    """Parameters of the stage twin (``twin_config``); defaults are *typical* of a bench
    x-y stage."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    idn: str = "couponlab,XY-200,SIM0001,1.0"
    travel_mm: tuple[float, float] = (200.0, 100.0)
    """Machine travel of x and y, mm (each 0..travel)."""
    holder_origin_mm: tuple[float, float] = (20.0, 20.0)
    """Machine position of the coupon holder's origin (the coupon's start), mm."""
    max_velocity_mm_s: float = Field(default=50.0, gt=0)
    min_velocity_mm_s: float = Field(default=0.01, gt=0)
    default_velocity_mm_s: float = Field(default=20.0, gt=0)
    geometry_tolerance_mm: float = Field(default=0.05, ge=0)
    """How far a declared coupon size may differ from the world's coupon, mm."""


@dataclass
class _AxisMotion:
    start: float
    target: float
    t0: float
    velocity: float

    def position(self, t: float) -> float:
        dist = self.target - self.start
        travelled = max(0.0, t - self.t0) * self.velocity
        if travelled >= abs(dist):
            return self.target
        return self.start + math.copysign(travelled, dist)

    def end_time(self) -> float:
        return self.t0 + abs(self.target - self.start) / self.velocity


class StageModel:
    """Kinematics and sample of the stage (touch only on the twins' thread).

    Parameters
    ----------
    world
        The shared world (clock, coupons).
    config
        Stage parameters.
    """

    def __init__(self, world: World, config: StageConfig) -> None:
        self.world = world
        self.config = config
        self.velocity = config.default_velocity_mm_s
        self._motion = [_AxisMotion(0.0, 0.0, 0.0, 1.0), _AxisMotion(0.0, 0.0, 0.0, 1.0)]
        self.move_starts: list[float] = []
        """Virtual times at which a move started (the stage's 'motion start' trigger out)."""
        self.coupon_id = ""
        self.coupon_size_mm = (0.0, 0.0)
        self.pulse_spacing = 0.0
        self.following_error = ""
        """Why the stage will not move (a jammed axis: fault injection); "" when it will."""
        """Position-compare output: a pulse every this many mm of travel (0 = off)."""
        self._pulsed_moves: list[tuple[float, float, float, float]] = []
        """(start time, travel mm, velocity mm/s, spacing mm) of moves made with pulses on."""

    # -- geometry --------------------------------------------------------------------------
    def limits(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """Return ((xlo, xhi), (ylo, yhi)): the travel in work coordinates, mm."""
        ox, oy = self.config.holder_origin_mm
        tx, ty = self.config.travel_mm
        return (-ox, tx - ox), (-oy, ty - oy)

    def position_at(self, t: float) -> tuple[float, float]:
        """Return the work position (x, y) in mm at virtual time ``t``."""
        return self._motion[0].position(t), self._motion[1].position(t)

    def position(self) -> tuple[float, float]:
        """Return the work position now, mm."""
        return self.position_at(self.world.now)

    def remaining(self, axis: int | None = None) -> float:
        """Return the virtual seconds until ``axis`` (or both axes) stops; 0 when still."""
        now = self.world.now
        motions = self._motion if axis is None else [self._motion[axis]]
        return max(0.0, *(m.end_time() - now for m in motions))

    def moving(self) -> bool:
        """Return whether an axis is moving."""
        return self.remaining() > 0.0

    def coupon(self) -> Coupon | None:
        """Return the mounted coupon from the world (None if none or unknown to the world)."""
        if not self.coupon_id:
            return None
        return self.world.coupons.get(self.coupon_id)

    # -- actions ---------------------------------------------------------------------------
    def move(self, targets: dict[int, float]) -> None:
        """Start moving axes (index -> work target, mm) from where they are now.

        Refused with -240 while an axis is jammed (a following error, fault injection)."""
        if self.following_error:
            raise ScpiError(HARDWARE_ERROR, f"Hardware error; {self.following_error}")
        lims = self.limits()
        for i, target in targets.items():
            lo, hi = lims[i]
            if not (lo <= target <= hi) or not math.isfinite(target):
                raise ScpiError(
                    DATA_OUT_OF_RANGE,
                    f"Data out of range; {AXES[i]} {target:g} not in [{lo:g},{hi:g}]",
                )
        now = self.world.now
        for i, target in targets.items():
            pos = self._motion[i].position(now)
            self._motion[i] = _AxisMotion(pos, target, now, self.velocity)
        self.move_starts.append(now)
        del self.move_starts[:-64]
        if self.pulse_spacing > 0:
            travel = max(abs(self._motion[i].target - self._motion[i].start) for i in targets)
            self._pulsed_moves.append((now, travel, self.velocity, self.pulse_spacing))
            del self._pulsed_moves[:-64]

    def pulse_times(self, after: float) -> list[float]:
        """Return the times of the position-compare pulses of moves started at or after
        ``after``: one at each move's start and one every ``pulse_spacing`` mm of travel of
        its longest axis (pulses of a move cut short by STOP are not removed)."""
        out: list[float] = []
        for t0, travel, v, d in self._pulsed_moves:
            if t0 >= after:
                n = math.floor(travel / d + 1e-9) + 1
                out.extend(t0 + k * d / v for k in range(n))
        return out

    def set_pulse_spacing(self, mm: float) -> None:
        """Set the position-compare spacing, mm (0 = off, else 0.001..1000)."""
        if mm != 0 and not 0.001 <= mm <= 1000:
            raise ScpiError(DATA_OUT_OF_RANGE, f"Data out of range; PSO:DIST {mm:g}")
        self.pulse_spacing = mm

    def stop(self) -> None:
        """Stop both axes where they are."""
        now = self.world.now
        for i in range(2):
            pos = self._motion[i].position(now)
            self._motion[i] = _AxisMotion(pos, pos, now, self.velocity)

    def set_velocity(self, v: float) -> None:
        """Set the speed of later moves, mm/s."""
        lo, hi = self.config.min_velocity_mm_s, self.config.max_velocity_mm_s
        if not lo <= v <= hi:
            raise ScpiError(
                DATA_OUT_OF_RANGE, f"Data out of range; VEL {v:g} not in [{lo:g},{hi:g}]"
            )
        self.velocity = v

    def load(self, coupon_id: str, length: float, width: float) -> None:
        """Mount a coupon; when the world knows it, its size must match."""
        if not coupon_id or any(c in coupon_id for c in ",;\"'"):
            raise ScpiError(ILLEGAL_PARAMETER, f"Illegal parameter value; coupon id {coupon_id!r}")
        if not (0 < length <= 1000 and 0 < width <= 1000):
            raise ScpiError(DATA_OUT_OF_RANGE, "Data out of range; coupon size")
        known = self.world.coupons.get(coupon_id)
        tol = self.config.geometry_tolerance_mm
        if known is not None and (
            abs(known.length_mm - length) > tol or abs(known.width_mm - width) > tol
        ):
            raise ScpiError(
                EXECUTION_ERROR,
                f"Execution error; coupon {coupon_id} is {known.length_mm:g} x "
                f"{known.width_mm:g} mm, not {length:g} x {width:g}",
            )
        self.coupon_id = coupon_id
        self.coupon_size_mm = (length, width)

    def unload(self) -> None:
        """Unmount the coupon."""
        self.coupon_id = ""
        self.coupon_size_mm = (0.0, 0.0)


class StageDispatcher(OpcDispatcher):
    """The stage's SCPI command set (docs/protocols/xy-stage-scpi.md)."""

    def __init__(self, model: StageModel) -> None:
        super().__init__(model.config.idn, model.world, model.remaining)
        self.model = model
        m = model
        self.register("MOV:X", lambda a: m.move({0: parse_float(a, 0, "x")}))
        self.register("MOV:Y", lambda a: m.move({1: parse_float(a, 0, "y")}))
        self.register(
            "MOV:XY", lambda a: m.move({0: parse_float(a, 0, "x"), 1: parse_float(a, 1, "y")})
        )
        self.register("STOP", lambda a: m.stop())
        self.register("POS?", lambda a: "{:.4f},{:.4f}".format(*m.position()))
        self.register("STAT?", lambda a: self._status())
        self.register("VEL", lambda a: m.set_velocity(parse_float(a, 0, "velocity")))
        self.register("VEL?", lambda a: f"{m.velocity:g}")
        self.register(
            "VEL:LIM?", lambda a: f"{m.config.min_velocity_mm_s:g},{m.config.max_velocity_mm_s:g}"
        )
        self.register(
            "LIM?", lambda a: "{:g},{:g},{:g},{:g}".format(*m.limits()[0], *m.limits()[1])
        )
        self.register("PSO:DIST", lambda a: m.set_pulse_spacing(parse_float(a, 0, "spacing")))
        self.register("PSO:DIST?", lambda a: f"{m.pulse_spacing:g}")
        self.register("SAMP:LOAD", self._load)
        self.register("SAMP:UNL", lambda a: m.unload())
        self.register(
            "SAMP?",
            lambda a: '"{}",{:g},{:g}'.format(m.coupon_id, *m.coupon_size_mm),
        )

    def _status(self) -> str:
        x, y = self.model.position()
        rx, ry = self.model.remaining(0), self.model.remaining(1)
        return f"{int(rx > 0)},{int(ry > 0)},{x:.4f},{y:.4f},{rx:.6g},{ry:.6g}"

    def _load(self, args: list[str]) -> None:
        if len(args) != 3:
            raise ScpiError(
                ILLEGAL_PARAMETER, 'Illegal parameter value; SAMP:LOAD "id",length,width'
            )
        self.model.load(
            quoted(args[0]), parse_float(args, 1, "length"), parse_float(args, 2, "width")
        )

    def reset(self) -> None:
        """``*RST``: stop and restore the default velocity (the coupon stays mounted)."""
        self.model.stop()
        self.model.velocity = self.model.config.default_velocity_mm_s
        self.model.pulse_spacing = 0.0


def stage_faults(model: StageModel, dispatcher: StageDispatcher) -> FamilyFaults:
    """The stage's own faults: ``jam`` on ``axis`` (``X`` or ``Y``, default ``X``) is a
    following error: both axes stop where they are, -240 goes on the error queue, and moves
    are refused with it until the fault ends. Power loss stops the axes (``*RST``)."""

    def jam(fault: Fault) -> None:
        axis = str(fault.params.get("axis", "X")).upper()
        if axis not in AXES:
            raise FaultRefusedError(
                fault.device, f"axis must be one of {list(AXES)}, got {axis!r}"
            )
        fault.params["axis"] = axis
        model.stop()
        model.following_error = f"following error on axis {axis}"
        dispatcher.push_error(HARDWARE_ERROR, f"Hardware error; {model.following_error}")

    def unjam(fault: Fault) -> None:
        model.following_error = ""

    return FamilyFaults(jam=(jam, unjam), power_off=model.stop)


async def start_twin(world: World, entry: DeviceEntry) -> ScpiTwin:
    """Start the stage twin of ``entry`` and register its model in the world by name."""
    config = load_config(StageConfig, entry)
    model = StageModel(world, config)
    dispatcher = StageDispatcher(model)
    twin = ScpiTwin(world, entry, dispatcher, model, stage_faults(model, dispatcher))
    await twin.start()
    return twin


TWIN = TwinSpec(start_twin, StageConfig, ("TCPIP", "socket"))
"""The stage twin, as the ``couponlab.twins`` entry point names it."""


__all__ = ["TWIN", "StageConfig", "StageDispatcher", "StageModel", "start_twin"]
