"""The transfer robot's twin model: taught stations, a gripper, jobs that take virtual time,
and the interlocks (docs/protocols/transfer-robot.md).

A job is a list of steps (move to a station or home, close or open the gripper), run by a
SimPy process on the world's clock; each step takes :attr:`RobotConfig.move_s` or
:attr:`RobotConfig.grip_s` virtual seconds. The interlocks are checked when a job is
accepted and again when each step starts, so they hold whatever a client sends:

- no move into or out of a furnace station (``<furnace>.slot<k>``) while that furnace's
  hottest zone (its model's ``temperature_c``, the true zone temperatures) is above the
  entry limit, or while its temperature is unknown (no furnace twin, NaN);
- the gripper opens with a sample only at an empty station (a destination);
- a stop (``STOP``), an E-stop or the communication watchdog halts the arm where it is with
  the gripper as it was: a held sample stays gripped and is reported as held.

A refused step latches ``FAULT`` (the held sample stays gripped) until ``RES``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Generator
from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
import simpy
from pydantic import BaseModel, ConfigDict, Field, field_validator

from couponlab.lab_settings import DeviceRef
from couponlab.simulators.world import World

HOME = "home"
"""The arm's retracted position, outside every station."""
TRANSIT = "transit"
"""The arm's position between two stations (a move under way or cut short)."""
SLOT = re.compile(r"^(?P<device>.+)\.slot\d+$")
"""A furnace carrier's station: ``<furnace>.slot<k>``."""
STATES = ("IDLE", "BUSY", "FAULT", "ESTOP")
"""What ``STAT?`` reports: ready, running a job, latched fault, latched E-stop."""


class RefusedError(Exception):
    """A command or step the robot does not carry out (the message says why)."""

    def __init__(self, message: str, *, interlock: bool = False) -> None:
        super().__init__(message)
        self.interlock = interlock


class RobotConfig(BaseModel):
    """Parameters of the transfer robot twin (``twin_config``); defaults are *typical* of a
    bench cobot with a parallel gripper (no source: about 0.5 m at 150 mm/s per move)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    idn: str = "couponlab,CR-6 sample cobot,SIM0012,1.0"
    stations: list[str] = Field(default_factory=list)
    """Taught stations; empty: the lab entry's ``settings.stations``."""
    samples: dict[str, str] = Field(default_factory=dict)
    """Samples at stations at power-on (station -> sample id)."""
    furnace: Annotated[str, DeviceRef("gradient_furnace")] = ""
    """Device name of the furnace whose carrier slots (``<furnace>.slot<k>``) are stations."""
    max_furnace_entry_c: float = Field(default=100.0, gt=-273.15, le=400.0)
    """Interlock ceiling, degC: the hottest zone at which the arm may enter or leave a
    furnace station (``LIM:FURN`` may lower the working limit, never raise it above this)."""
    move_s: float = Field(default=4.0, gt=0, le=600)
    """Virtual seconds of one move between stations (or home)."""
    grip_s: float = Field(default=1.0, gt=0, le=60)
    """Virtual seconds to close or open the gripper."""
    watchdog_timeout_s: float = Field(default=0.0, ge=0, le=3600)
    """Communication watchdog at power-on, wall s (0 = off; ``SYST:WDOG`` sets it)."""

    @field_validator("samples")
    @classmethod
    def _distinct(cls, value: dict[str, str]) -> dict[str, str]:
        ids = [v for v in value.values() if v]
        if len(set(ids)) != len(ids):
            raise ValueError("a sample can be at one station only")
        return value


@dataclass(frozen=True)
class Step:
    """One step of a job: ``move`` to ``station`` (or :data:`HOME`), ``close`` or ``open``."""

    kind: Literal["move", "close", "open"]
    station: str = ""


class RobotModel:
    """Stations, gripper, arm position and the running job (touch only on the twins' thread).

    Parameters
    ----------
    world
        The shared world (clock; the furnace twin is found in ``world.instruments``).
    config
        Robot parameters (with the stations filled in).
    name
        Device name.

    Raises
    ------
    ValueError
        No stations, a duplicate, a sample at an unknown station, or a ``.slot`` station of a
        furnace other than :attr:`RobotConfig.furnace`.
    """

    def __init__(self, world: World, config: RobotConfig, name: str = "robot") -> None:
        self.world = world
        self.config = config
        self.name = name
        names = list(config.stations)
        if not names or len(set(names)) != len(names) or HOME in names or TRANSIT in names:
            raise ValueError(f"{name}: stations {names} must be unique, non-empty names")
        for station in names:
            m = SLOT.match(station)
            if m and m["device"] != config.furnace:
                raise ValueError(
                    f"{name}: station {station} is a slot of {m['device']}, but the twin's "
                    f"furnace is {config.furnace or 'not set'} (twin_config.furnace)"
                )
        self.stations: dict[str, str] = dict.fromkeys(names, "")
        for station, sample in config.samples.items():
            if station not in self.stations:
                raise ValueError(f"{name}: sample {sample} at unknown station {station}")
            self.stations[station] = sample
        self.held = ""
        """Id of the sample in the gripper ("" when empty)."""
        self.gripper_closed = False
        self.position = HOME
        """Station the arm is at, :data:`HOME`, or :data:`TRANSIT`."""
        self.near: tuple[str, ...] = ()
        """Stations the arm is at or between (a move cut short leaves it between two)."""
        self.state = "IDLE"
        self.reason = ""
        """Why the last job stopped short or the robot latched (``STAT:REAS?``)."""
        self.furnace_limit_c = config.max_furnace_entry_c
        self.jobs = 0
        """Jobs accepted so far."""
        self.history: list[tuple[float, str]] = []
        """(virtual time, event) of every step done and every stop, for tests and logs."""
        self._steps: list[Step] = []
        self._step_end = 0.0
        self._proc: simpy.Process | None = None

    # -- interlocks --------------------------------------------------------------------------
    def furnace_of(self, station: str) -> str:
        """Return the furnace a station belongs to ("" for any other station)."""
        m = SLOT.match(station)
        return m["device"] if m else ""

    def furnace_temperature_c(self, furnace: str) -> float:
        """Return the hottest zone of ``furnace`` (its twin's true temperatures), degC; NaN
        when it is unknown (no furnace twin in the world, or no finite temperature)."""
        model = self.world.instruments.get(furnace)
        temps = getattr(model, "temperature_c", None)
        if temps is None:
            return math.nan
        arr = np.asarray(temps, dtype=float)
        if arr.size == 0 or not np.all(np.isfinite(arr)):
            return math.nan
        return float(arr.max())

    def check_furnace(self, station: str, what: str) -> None:
        """Raise :class:`RefusedError` (interlock) if ``station`` is a furnace station whose
        furnace is above the limit or of unknown temperature; ``what`` is entry or exit."""
        furnace = self.furnace_of(station)
        if not furnace:
            return
        t = self.furnace_temperature_c(furnace)
        limit = self.furnace_limit_c
        if math.isnan(t):
            raise RefusedError(
                f"interlock: no {what} of {station}: {furnace} temperature unknown",
                interlock=True,
            )
        if t > limit:
            raise RefusedError(
                f"interlock: no {what} of {station}: {furnace} at {t:.1f} degC > {limit:g} degC",
                interlock=True,
            )

    def check_step(self, step: Step) -> None:
        """Raise :class:`RefusedError` if ``step`` may not start now (interlocks, gripper)."""
        if step.kind == "move":
            for station in self.near:
                if station != step.station:
                    self.check_furnace(station, "exit")
            if step.station != self.position:
                self.check_furnace(step.station, "entry")
            return
        if self.position not in self.stations:
            raise RefusedError(f"gripper: the arm is not at a station ({self.position})")
        if step.kind == "close":
            if self.held or self.gripper_closed:
                raise RefusedError(f"gripper: already closed (holding {self.held or 'nothing'})")
            return
        occupant = self.stations[self.position]
        if self.held and occupant:
            raise RefusedError(
                f"gripper: opens with {self.held} only at a destination; "
                f"{self.position} holds {occupant}"
            )

    # -- jobs --------------------------------------------------------------------------------
    def _ready(self) -> None:
        if self.state == "BUSY":
            raise RefusedError("busy: a job is running")
        if self.state in ("FAULT", "ESTOP"):
            raise RefusedError(f"{self.state}: {self.reason}; reset first (RES)")

    def transfer_steps(self, sample: str, source: str, destination: str) -> list[Step]:
        """Return the steps of a pick-and-place, after checking it against the stations.

        Raises
        ------
        RefusedError
            Unknown station, source == destination, destination occupied, gripper holding
            another sample, sample not at the source, or an interlock now.
        """
        for station in (source, destination):
            if station not in self.stations:
                raise RefusedError(f"unknown station {station}")
        if source == destination:
            raise RefusedError(f"source and destination are both {source}")
        if self.stations[destination]:
            raise RefusedError(f"destination {destination} holds {self.stations[destination]}")
        place = [Step("move", destination), Step("open", destination), Step("move", HOME)]
        if self.held == sample:
            return place
        if self.held:
            raise RefusedError(f"gripper holds {self.held}")
        if self.stations[source] != sample:
            raise RefusedError(
                f"no {sample} at {source} (holds {self.stations[source] or 'nothing'})"
            )
        return [Step("move", source), Step("close", source), *place]

    def start_job(self, steps: list[Step]) -> None:
        """Start a job (checked now against every furnace station it touches, and each step
        again when it starts).

        Raises
        ------
        RefusedError
            Busy, latched, or a step refused now.
        """
        self._ready()
        self.check_step(steps[0])
        for step in steps[1:]:
            if step.kind == "move":
                self.check_furnace(step.station, "entry")
        self._steps = list(steps)
        self._step_end = self.world.now + self._duration(steps[0])  # the process starts next
        self.state, self.reason = "BUSY", ""
        self.jobs += 1
        self._proc = self.world.env.process(self._run())

    def _duration(self, step: Step) -> float:
        return self.config.move_s if step.kind == "move" else self.config.grip_s

    def _run(self) -> Generator[simpy.Event, object, None]:
        env = self.world.env
        try:
            while self._steps:
                step = self._steps[0]
                self.check_step(step)
                self._step_end = env.now + self._duration(step)
                if step.kind == "move":
                    self.near = tuple(dict.fromkeys([*self.near, step.station]))
                    self.near = tuple(s for s in self.near if s in self.stations)
                    self.position = TRANSIT
                yield env.timeout(self._duration(step))
                self._apply(step)
                self._steps.pop(0)
        except simpy.Interrupt:
            return  # whoever interrupted set the state
        except RefusedError as exc:
            self._halt("FAULT", str(exc))
            return
        self._proc = None
        self.state = "IDLE"

    def _apply(self, step: Step) -> None:
        if step.kind == "move":
            self.position = step.station
            self.near = (step.station,) if step.station in self.stations else ()
        elif step.kind == "close":
            self.held, self.stations[self.position] = self.stations[self.position], ""
            self.gripper_closed = True
        else:
            if self.held:
                self.stations[self.position] = self.held
            self.held, self.gripper_closed = "", False
        self.history.append((self.world.now, f"{step.kind} {step.station}".strip()))

    def _halt(self, state: str, reason: str) -> None:
        """Stop the job where it is; the gripper stays as it is (a held sample stays held)."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.is_alive and proc is not self.world.env.active_process:
            proc.interrupt(reason)
        self._steps = []
        self.state, self.reason = state, reason
        self.history.append((self.world.now, f"{state.lower()}: {reason}"))

    def remaining_s(self) -> float:
        """Return the virtual seconds until the running job ends (0 when none runs)."""
        if self.state != "BUSY" or not self._steps:
            return 0.0
        now = self.world.now
        rest = sum(self._duration(s) for s in self._steps[1:])
        return max(0.0, self._step_end - now) + rest

    # -- commands ----------------------------------------------------------------------------
    def transfer(self, sample: str, source: str, destination: str) -> None:
        """Start a pick-and-place of ``sample`` (or a place, if it is already gripped)."""
        self._ready()
        self.start_job(self.transfer_steps(sample, source, destination))

    def move(self, station: str) -> None:
        """Start moving the arm to ``station`` or :data:`HOME`."""
        if station != HOME and station not in self.stations:
            raise RefusedError(f"unknown station {station}")
        self.start_job([Step("move", station)])

    def grip(self, close: bool) -> None:
        """Start closing (picking what sits at the arm's station) or opening the gripper."""
        self.start_job([Step("close" if close else "open", self.position)])

    def stop(self, reason: str = "stopped by command") -> None:
        """Halt a running job (not latched): the arm stays where it is, the grip as it was."""
        if self.state == "BUSY":
            self._halt("IDLE", reason)

    def protective_stop(self, reason: str) -> None:
        """Halt and latch ``FAULT`` (the watchdog's action); the grip stays as it was."""
        if self.state != "ESTOP":
            self._halt("FAULT", reason)

    def emergency_stop(self, reason: str = "E-stop") -> None:
        """Halt and latch ``ESTOP``; the grip stays as it was (a held sample stays held)."""
        self._halt("ESTOP", reason)

    def reset(self) -> None:
        """Clear a latched ``FAULT`` or ``ESTOP`` (the arm and the grip stay as they are)."""
        if self.state in ("FAULT", "ESTOP"):
            self.state, self.reason = "IDLE", ""

    def record(self, station: str, sample: str) -> None:
        """Record that ``sample`` ("" = nothing) sits at ``station`` (put there by hand or by
        another instrument); refused while a job runs or if the sample is elsewhere."""
        if station not in self.stations:
            raise RefusedError(f"unknown station {station}")
        if self.state == "BUSY":
            raise RefusedError("busy: a job is running")
        if (
            sample
            and (sample == self.held or sample in self.stations.values())
            and (self.stations[station] != sample)
        ):
            raise RefusedError(f"{sample} is already at another place")
        self.stations[station] = sample

    def set_furnace_limit(self, limit_c: float) -> None:
        """Set the furnace entry limit, degC (-273.15 < limit <= the configured ceiling)."""
        ceiling = self.config.max_furnace_entry_c
        if not (math.isfinite(limit_c) and -273.15 < limit_c <= ceiling):
            raise RefusedError(f"furnace limit {limit_c:g} degC not in (-273.15, {ceiling:g}]")
        self.furnace_limit_c = limit_c


__all__ = ["HOME", "STATES", "TRANSIT", "RefusedError", "RobotConfig", "RobotModel", "Step"]
