"""The transfer robot twin's command set and server (docs/protocols/transfer-robot.md).

A cobot's text control interface (job, motion and gripper commands, status, stop, E-stop,
reset, watchdog), framed as SCPI lines so that the project's one line client checks each
command with ``;:SYST:ERR?`` in the same round trip. ``*OPC?`` waits until the running job
has ended on the instrument's clock.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from couponlab.labfile import DeviceEntry
from couponlab.registry import TwinSpec
from couponlab.simulators.deposition.line_watchdog import LineWatchdog
from couponlab.simulators.detectors._opc_server import OpcDispatcher
from couponlab.simulators.detectors._scpi_twin import ScpiTwin, load_config, quoted
from couponlab.simulators.robot.model import RefusedError, RobotConfig, RobotModel
from couponlab.simulators.scpi import (
    DATA_OUT_OF_RANGE,
    EXECUTION_ERROR,
    ILLEGAL_PARAMETER,
    MISSING_PARAMETER,
    SETTINGS_CONFLICT,
    ScpiError,
    parse_float,
)
from couponlab.simulators.world import World

_BAD = set(",;\"'\r\n ")


def _text(args: list[str], index: int, what: str) -> str:
    if index >= len(args):
        raise ScpiError(MISSING_PARAMETER, f"Missing parameter; {what}")
    value = quoted(args[index])
    if len(value) > 64 or _BAD & set(value):
        raise ScpiError(ILLEGAL_PARAMETER, f"Illegal parameter value; {what} {value[:64]!r}")
    return value


def _q(text: str) -> str:
    return f'"{text}"'


class RobotDispatcher(OpcDispatcher):
    """The robot's command set; every line feeds the communication watchdog."""

    def __init__(self, model: RobotModel) -> None:
        super().__init__(model.config.idn, model.world, model.remaining_s)
        self.model = model
        m = model
        reg = self.register
        reg("STN:CAT?", lambda a: ",".join(_q(s) for s in m.stations))
        reg("STN:OCC?", lambda a: ",".join(_q(v) for v in m.stations.values()))
        reg("STN:SET", self._record)
        reg("XFER", self._transfer)
        reg("MOVE:STN", lambda a: self._do(lambda: m.move(_text(a, 0, "station"))))
        reg("MOVE:HOME", lambda a: self._do(lambda: m.move("home")))
        reg("GRIP:CLOS", lambda a: self._do(lambda: m.grip(True)))
        reg("GRIP:OPEN", lambda a: self._do(lambda: m.grip(False)))
        reg("GRIP?", lambda a: _q(m.held))
        reg("STAT?", lambda a: self.status())
        reg("STAT:REAS?", lambda a: _q(m.reason.replace('"', "'")))
        reg("STOP", lambda a: m.stop())
        reg("ESTOP", lambda a: m.emergency_stop("E-stop (ESTOP command)"))
        reg("RES", lambda a: m.reset())
        reg("LIM:FURN", self._set_limit)
        reg("LIM:FURN?", lambda a: f"{m.furnace_limit_c:g}")
        reg("LIM:FURN:MAX?", lambda a: f"{m.config.max_furnace_entry_c:g}")
        self.watchdog = LineWatchdog(
            m.world,
            self,
            lambda: m.state == "BUSY",
            m.protective_stop,
            m.config.watchdog_timeout_s,
        )
        """Communication watchdog (``SYST:WDOG``): halts a running job, the grip kept."""

    def handle(self, line: str) -> Any:
        """Feed the watchdog, then handle the line."""
        self.watchdog.feed()
        return super().handle(line)

    def status(self) -> str:
        """Return ``state,remaining s,"held","position"``."""
        m = self.model
        return f"{m.state},{m.remaining_s():.3f},{_q(m.held)},{_q(m.position)}"

    def reset(self) -> None:
        """``*RST``: stop a running job (the grip kept). Safety settings stay as they are: the
        furnace limit, and a latched fault or E-stop (``RES`` clears it)."""
        self.model.stop("reset (*RST)")

    @staticmethod
    def _do(action: Callable[[], None]) -> None:
        """Run a model action; a refusal goes on the error queue: -221 while busy or latched,
        else -200 (an interlock's message starts with ``interlock:``)."""
        try:
            action()
        except RefusedError as exc:
            if str(exc).startswith(("busy", "FAULT", "ESTOP")):
                raise ScpiError(SETTINGS_CONFLICT, f"Settings conflict; {exc}") from None
            raise ScpiError(EXECUTION_ERROR, f"Execution error; {exc}") from None

    def _transfer(self, args: list[str]) -> None:
        if len(args) != 3:
            raise ScpiError(
                MISSING_PARAMETER, 'Missing parameter; XFER "sample","source","destination"'
            )
        sample, source, dest = (
            _text(args, i, w) for i, w in enumerate(("sample", "source", "dest"))
        )
        if not sample:
            raise ScpiError(ILLEGAL_PARAMETER, "Illegal parameter value; empty sample id")
        self._do(lambda: self.model.transfer(sample, source, dest))

    def _record(self, args: list[str]) -> None:
        if len(args) != 2:
            raise ScpiError(MISSING_PARAMETER, 'Missing parameter; STN:SET "station","sample"')
        station, sample = _text(args, 0, "station"), _text(args, 1, "sample")
        self._do(lambda: self.model.record(station, sample))

    def _set_limit(self, args: list[str]) -> None:
        value = parse_float(args, 0, "limit")
        try:
            self.model.set_furnace_limit(value)
        except RefusedError as exc:
            raise ScpiError(DATA_OUT_OF_RANGE, f"Data out of range; {exc}") from None


class RobotTwin(ScpiTwin):
    """A running robot twin: its model, command set, server and watchdog."""

    def __init__(self, world: World, entry: DeviceEntry, model: RobotModel) -> None:
        self.protocol = RobotDispatcher(model)
        super().__init__(world, entry, self.protocol, model)
        self.robot = model

    async def start(self) -> None:
        """Start listening, then the communication watchdog."""
        await super().start()
        self.protocol.watchdog.start()

    async def stop(self) -> None:
        """Stop the watchdog, halt a running job and stop serving."""
        await self.protocol.watchdog.stop()
        self.robot.stop("twin stopped")
        await super().stop()


async def start_twin(world: World, entry: DeviceEntry) -> RobotTwin:
    """Start the robot twin of ``entry``; its stations are ``twin_config.stations`` or, when
    empty, the entry's ``settings.stations``."""
    config = load_config(RobotConfig, entry)
    if not config.stations:
        config = config.model_copy(update={"stations": list(entry.settings.get("stations", []))})
    twin = RobotTwin(world, entry, RobotModel(world, config, entry.name))
    await twin.start()
    return twin


TWIN = TwinSpec(start_twin, RobotConfig, ("TCPIP", "socket"))
"""The robot twin, as the ``couponlab.twins`` entry point names it."""


__all__ = ["TWIN", "RobotDispatcher", "RobotTwin", "start_twin"]
