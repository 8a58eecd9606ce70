"""The powder-feeder twin: :class:`FeederModel` served over the feeder's ASCII serial protocol
(docs/protocols/feeder-serial.md) on TCP, reached by pyserial as ``socket://host:port``."""

from __future__ import annotations

from typing import Generic, Protocol, TypeVar

from couponlab.labfile import DeviceEntry
from couponlab.registry import TwinSpec
from couponlab.simulators._line_twin import LineTwin
from couponlab.simulators.deposition.feeder_model import FeederConfig, FeederModel
from couponlab.simulators.deposition.line_watchdog import LineWatchdog
from couponlab.simulators.faults import Fault, float_param, int_param
from couponlab.simulators.line_faults import FamilyFaults
from couponlab.simulators.scpi import (
    DATA_OUT_OF_RANGE,
    ILLEGAL_PARAMETER,
    MISSING_PARAMETER,
    SETTINGS_CONFLICT,
    ScpiDispatcher,
    ScpiError,
    parse_float,
)
from couponlab.simulators.world import World


def parse_socket_address(device: str, address: str) -> tuple[str, int]:
    """Return ``(host, port)`` of a ``socket://host:port`` address (port 0: any free port)."""
    prefix = "socket://"
    if not address.startswith(prefix):
        raise ValueError(f"{device}: a twin address must be socket://host:port, got {address!r}")
    host, _, port = address[len(prefix) :].rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"{device}: cannot parse host and port from {address!r}")
    return host, int(port)


class _Model(Protocol):
    world: World
    name: str


class WatchedDispatcher(ScpiDispatcher):
    """A dispatcher with a communication watchdog (the cell's and the feeder's)."""

    watchdog: LineWatchdog


M = TypeVar("M", bound=_Model)
P = TypeVar("P", bound=WatchedDispatcher)


class SocketTwin(LineTwin[M], Generic[M, P]):
    """A deposition twin: ``model`` (registered in its world under its name) served by
    ``protocol`` at ``socket://host:port`` (port 0: a free port, resolved on start)."""

    def __init__(
        self, model: M, protocol: P, host: str, port: int, family: FamilyFaults | None = None
    ) -> None:
        super().__init__(
            model.world,
            model.name,
            model,
            protocol.handle,
            host=host,
            port=port,
            address=f"socket://{host}:{port}",
            dispatcher=protocol,
            family=family,
        )
        self.protocol = protocol

    async def start(self) -> None:
        """Start listening, then the communication watchdog."""
        await super().start()
        self.protocol.watchdog.start()

    async def stop(self) -> None:
        """Stop the communication watchdog, then serving."""
        await self.protocol.watchdog.stop()
        await super().stop()


def _fmt(x: float) -> str:
    return f"{x:.4f}"


class FeederProtocol(WatchedDispatcher):
    """The feeder's command set on top of the SCPI-style dispatcher (error queue, ``;``)."""

    def __init__(self, model: FeederModel) -> None:
        c = model.config
        super().__init__(f"{c.manufacturer},{c.model},{c.serial_number},{c.firmware_version}")
        self.model = model
        reg = self.register
        reg("HOPP:COUN?", lambda a: str(len(model.hoppers)))
        reg("HOPP:POWD?", lambda a: model.hopper(self._index(a)).config.powder)
        reg("HOPP:COMP?", self._composition)
        reg("LIM?", lambda a: f"{_fmt(c.max_rate_g_min)},{_fmt(c.max_gas_l_min)}")
        reg("RATE", self._set_rate)
        reg("RATE?", lambda a: _fmt(model.hopper(self._index(a)).setpoint))
        reg("GAS", self._set_gas)
        reg("GAS?", lambda a: _fmt(model.hopper(self._index(a)).gas_flow))
        reg("FLOW?", lambda a: _fmt(model.hopper(self._index(a)).sensor))
        reg("MASS?", lambda a: _fmt(model.scale_reading(self._index(a))))
        reg("ALRM?", lambda a: str(model.hopper(self._index(a)).alarms))
        reg("ALRM:CLR", lambda a: model.clear_alarms())
        reg("STAT?", lambda a: self._status())
        reg("STOP", lambda a: model.stop())
        reg("LOG:STRT", self._start_log)
        reg("LOG:STOP", lambda a: model.stop_log())
        reg("LOG:COUN?", lambda a: str(len(model.log)))
        reg("LOG:DATA?", lambda a: self._log_data())
        self.watchdog = LineWatchdog(
            model.world,
            self,
            lambda: model.active,
            lambda reason: model.stop(),
            model.config.watchdog_timeout_s,
        )
        """Communication watchdog (``SYST:WDOG``); every line feeds it."""

    def handle(self, line: str) -> str | bytes | None:
        """Feed the watchdog, then handle the line."""
        self.watchdog.feed()
        return super().handle(line)

    def reset(self) -> None:
        """``*RST``: feeding and gas off, latched alarms cleared, logger off."""
        self.model.stop()
        for i in range(1, len(self.model.hoppers) + 1):
            self.model.set_gas(i, 0.0)
        self.model.clear_alarms()
        self.model.stop_log()

    def _index(self, args: list[str]) -> int:
        if not args:
            raise ScpiError(MISSING_PARAMETER, "Missing parameter; hopper")
        try:
            n = int(args[0])
        except ValueError:
            raise ScpiError(
                ILLEGAL_PARAMETER, f"Illegal parameter value; hopper={args[0]}"
            ) from None
        if not 1 <= n <= len(self.model.hoppers):
            raise ScpiError(
                DATA_OUT_OF_RANGE,
                f"Data out of range; hopper {n} (allowed 1..{len(self.model.hoppers)})",
            )
        return n

    def _composition(self, args: list[str]) -> str:
        comp = self.model.hopper(self._index(args)).config.composition
        return " ".join(f"{e}={f:.6f}" for e, f in sorted(comp.items()))

    def _set_rate(self, args: list[str]) -> None:
        n = self._index(args)
        rate = parse_float(args, 1, "rate")
        top = self.model.config.max_rate_g_min
        if not 0.0 <= rate <= top:
            raise ScpiError(
                DATA_OUT_OF_RANGE,
                f"Data out of range; RATE {n},{rate:g} (allowed 0..{top:g} g/min)",
            )
        try:
            self.model.set_rate(n, rate)
        except RuntimeError as exc:
            raise ScpiError(SETTINGS_CONFLICT, f"Settings conflict; {exc}") from None

    def _set_gas(self, args: list[str]) -> None:
        n = self._index(args)
        flow = parse_float(args, 1, "gas")
        top = self.model.config.max_gas_l_min
        if not 0.0 <= flow <= top:
            raise ScpiError(
                DATA_OUT_OF_RANGE,
                f"Data out of range; GAS {n},{flow:g} (allowed 0..{top:g} L/min)",
            )
        self.model.set_gas(n, flow)

    def _start_log(self, args: list[str]) -> None:
        n = self._index(args)
        period = parse_float(args, 1, "period")
        try:
            self.model.start_log(n, period)
        except ValueError as exc:
            raise ScpiError(DATA_OUT_OF_RANGE, f"Data out of range; {exc}") from None

    def _status(self) -> str:
        m = self.model
        parts = [m.state()]
        for i, h in enumerate(m.hoppers, start=1):
            parts += [
                _fmt(h.setpoint),
                _fmt(h.sensor),
                _fmt(m.scale_reading(i)),
                _fmt(h.gas_flow),
                str(h.alarms),
            ]
        return ",".join(parts)

    def _log_data(self) -> str:
        return " ".join(f"{t:.4f} {sp:.4f} {fl:.4f}" for t, sp, fl in self.model.log)


class FeederTwin(SocketTwin[FeederModel, FeederProtocol]):
    """A running feeder twin: its model, protocol, server and resolved address."""


def feeder_faults(model: FeederModel) -> FamilyFaults:
    """The feeder's own faults: ``jam`` clogs hopper ``hopper`` (1..N, default 1), letting
    ``passing`` (0..1, default 0) of its powder through; the feeder's clog detection raises
    its alarm as on a real feeder. ``gas_loss`` cuts hopper ``hopper``'s carrier-gas supply
    (its alarm latches while it feeds or its gas is on, until ``ALRM:CLR`` after the gas is
    back). Power loss
    stops feeding and gas (the ``*RST`` state)."""

    def jam(fault: Fault) -> None:
        n = int_param(fault.params, "hopper", 1, len(model.hoppers), 1)
        passing = float_param(fault.params, "passing", 0.0, 1.0, 0.0)
        fault.params.update(hopper=n, passing=passing)
        model.inject_clog(n, passing)
        model.wake()

    def unjam(fault: Fault) -> None:
        model.inject_clog(int(fault.params["hopper"]), 1.0)
        model.wake()

    def gas_off(fault: Fault) -> None:
        n = int_param(fault.params, "hopper", 1, len(model.hoppers), 1)
        fault.params.update(hopper=n)
        model.inject_gas_loss(n, True)

    def gas_on(fault: Fault) -> None:
        model.inject_gas_loss(int(fault.params["hopper"]), False)

    return FamilyFaults(jam=(jam, unjam), gas_loss=(gas_off, gas_on), power_off=model.stop)


async def start_twin(world: World, entry: DeviceEntry) -> FeederTwin:
    """Start the feeder twin of ``entry`` (address ``socket://127.0.0.1:PORT``, 0: free)."""
    host, port = parse_socket_address(entry.name, entry.address)
    config = FeederConfig.model_validate(entry.twin_config)
    model = FeederModel(world, config, entry.name)
    twin = FeederTwin(model, FeederProtocol(model), host, port, feeder_faults(model))
    await twin.start()
    return twin


TWIN = TwinSpec(start_twin, FeederConfig, ("socket",))
"""The feeder twin, as the ``couponlab.twins`` entry point names it."""


__all__ = [
    "TWIN",
    "FeederProtocol",
    "FeederTwin",
    "SocketTwin",
    "WatchedDispatcher",
    "parse_socket_address",
    "start_twin",
]
