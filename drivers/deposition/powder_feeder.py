"""ophyd-async device for a powder feeder speaking the couponlab ASCII serial protocol
(docs/protocols/feeder-serial.md), on a real serial port or a twin's ``socket://`` URL.

One ``STAT?`` exchange returns every hopper's setpoint, nozzle flow, fill mass, carrier gas
and alarms, so :meth:`AsciiPowderFeeder.read` costs one round trip whatever the number of
hoppers. Every setter validates its input (unit, range, hopper index) before a byte is sent.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, ClassVar

import numpy as np
from bluesky.protocols import Reading
from ophyd_async.core import (
    DEFAULT_TIMEOUT,
    AsyncStatus,
    DeviceMock,
    DeviceVector,
    SignalR,
    SignalRW,
    StandardReadable,
    StandardReadableFormat,
    soft_signal_r_and_setter,
)
from pydantic import Field, StrictInt

from couponlab.drivers.deposition._link import (
    LinkWatchdog,
    SerialSettings,
    transport_from_entry,
)
from couponlab.drivers.deposition._signals import query_signal_r, query_signal_rw
from couponlab.errors import InputError, ProtocolError
from couponlab.interfaces.feeder import FeederStatus, FlowLog, HopperStatus, Powder
from couponlab.lab_settings import DeviceLimits, quantity
from couponlab.labfile import DeviceEntry
from couponlab.registry import DriverSpec
from couponlab.transports import LineTransport, ScpiClient
from couponlab.units import to_magnitude

ALARM_BITS = {1: "empty", 2: "clog", 4: "gas_loss"}
"""Alarm bits of the protocol and their names."""
_STATES = {"IDLE": "idle", "FEEDING": "feeding", "ALARM": "alarm"}


def _alarms(device: str, field: str) -> tuple[str, ...]:
    try:
        bits = int(field)
    except ValueError:
        raise ProtocolError(device, f"garbled alarm field {field!r} in STAT? reply") from None
    return tuple(name for bit, name in ALARM_BITS.items() if bits & bit)


class FeederSettings(SerialSettings):
    """Settings of a powder feeder: serial framing, timeout, watchdog and ``hoppers``
    (how many the instrument must have, 1..16; default 4)."""

    hoppers: Annotated[StrictInt, Field(ge=1, le=16)] = 4


class FeederLabLimits(DeviceLimits):
    """Lab limits of a feeder: ``max_feed_rate`` of any hopper (g/min, > 0; default 30) and
    ``max_gas_flow`` of any carrier gas (L/min, > 0; default 10)."""

    max_feed_rate: Annotated[float, quantity("g/min", gt=0)] = 30.0
    max_gas_flow: Annotated[float, quantity("L/min", gt=0)] = 10.0


class FeederLink:
    """The feeder's protocol client: limits, validation and the parsed status.

    Parameters
    ----------
    link
        Checked serial exchanges.
    hoppers
        Number of hoppers the lab file declares (checked against the instrument at connect).
    max_rate, max_gas
        Lab limits, g/min and L/min; the instrument's own (tighter) limits apply after connect.
    """

    def __init__(self, link: ScpiClient, hoppers: int, max_rate: float, max_gas: float) -> None:
        self.link = link
        self.device = link.device
        self.hoppers = hoppers
        self.max_rate = max_rate
        self.max_gas = max_gas
        self.powders: dict[int, Powder] = {}
        self.identity = ""

    async def open(self) -> None:
        """Connect, clear the error queue, and read identity, hopper count, limits, powders."""
        await self.link.transport.connect()
        await self.link.command("*CLS")
        self.identity = await self.link.query("*IDN?")
        count = int((await self.link.checked_query("HOPP:COUN?")).strip())
        if count != self.hoppers:
            raise InputError(
                self.device,
                f"the lab file declares {self.hoppers} hoppers, the instrument has {count}",
            )
        inst_rate, inst_gas = self.link.floats("LIM?", await self.link.checked_query("LIM?"), 2)
        self.max_rate = min(self.max_rate, inst_rate)
        self.max_gas = min(self.max_gas, inst_gas)
        for i in range(1, count + 1):
            name = (await self.link.checked_query(f"HOPP:POWD? {i}")).strip()
            comp_reply = await self.link.checked_query(f"HOPP:COMP? {i}")
            comp: dict[str, float] = {}
            for item in comp_reply.split():
                element, _, frac = item.partition("=")
                try:
                    comp[element] = float(frac)
                except ValueError:
                    raise ProtocolError(
                        self.device, f"garbled composition of hopper {i}: {comp_reply!r}"
                    ) from None
            self.powders[i] = Powder(name, comp)

    def check_hopper(self, hopper: int) -> int:
        """Return ``hopper`` if it is a valid index (1..N); raise :class:`InputError`."""
        if isinstance(hopper, bool) or not isinstance(hopper, int | np.integer):
            raise InputError(self.device, f"hopper {hopper!r} is not an integer")
        if not 1 <= hopper <= self.hoppers:
            raise InputError(self.device, f"hopper {hopper} is outside 1..{self.hoppers}")
        return int(hopper)

    def rate(self, value: Any) -> float:
        """Validate a feed rate (g/min, 0..max_rate)."""
        return to_magnitude(
            value, "g/min", device=self.device, what="feed rate", low=0.0, high=self.max_rate
        )

    def gas(self, value: Any) -> float:
        """Validate a carrier-gas flow (L/min, 0..max_gas)."""
        return to_magnitude(
            value, "L/min", device=self.device, what="carrier gas", low=0.0, high=self.max_gas
        )

    async def set_rate(self, hopper: int, value: Any) -> float:
        """Validate, then command ``hopper``'s feed rate; return it in g/min."""
        n, rate = self.check_hopper(hopper), self.rate(value)
        await self.link.command(f"RATE {n},{rate:.4f}")
        return rate

    async def set_gas(self, hopper: int, value: Any) -> float:
        """Validate, then set ``hopper``'s carrier gas; return it in L/min."""
        n, flow = self.check_hopper(hopper), self.gas(value)
        await self.link.command(f"GAS {n},{flow:.4f}")
        return flow

    async def number(self, query: str) -> float:
        """Send a single-value query (``FLOW? 1``) and return its number."""
        reply = await self.link.transport.query(query)
        try:
            return float(reply)
        except ValueError:
            raise ProtocolError(self.device, f"garbled reply to {query!r}: {reply!r}") from None

    async def status(self) -> FeederStatus:
        """Return the parsed ``STAT?`` reply (one exchange)."""
        reply = await self.link.query("STAT?")
        parts = reply.split(",")
        if len(parts) != 1 + 5 * self.hoppers or parts[0] not in _STATES:
            raise ProtocolError(self.device, f"malformed STAT? reply: {reply[:120]!r}")
        hoppers = []
        try:
            for k in range(self.hoppers):
                sp, rate, fill, gas, alarm = parts[1 + 5 * k : 6 + 5 * k]
                hoppers.append(
                    HopperStatus(
                        float(sp),
                        float(rate),
                        float(fill),
                        float(gas),
                        _alarms(self.device, alarm),
                    )
                )
        except ValueError:
            raise ProtocolError(self.device, f"garbled STAT? reply: {reply[:120]!r}") from None
        return FeederStatus(_STATES[parts[0]], tuple(hoppers))


class Hopper(StandardReadable):
    """One hopper: setpoint and measured rate (g/min), fill mass (g), carrier gas (L/min),
    alarms; its powder name and composition as configuration.

    ``set(value)`` commands the feed rate (a quantity, ``"5 g/min"``, or g/min), so a hopper
    is a bluesky ``Movable``; ``stop()`` sets it to 0 g/min.
    """

    def __init__(self, core: FeederLink, index: int, name: str = "") -> None:
        self._core = core
        self._index = index
        # the single-value queries of this hopper, built once (a get is one exchange)
        q_rate, q_flow, q_mass, q_gas, q_alarm = (
            f"{q} {index}" for q in ("RATE?", "FLOW?", "MASS?", "GAS?", "ALRM?")
        )

        async def get_setpoint() -> float:
            return await core.number(q_rate)

        async def put_setpoint(value: float | None) -> float:
            return await core.set_rate(index, 0.0 if value is None else value)

        async def get_rate() -> float:
            return await core.number(q_flow)

        async def get_fill() -> float:
            return await core.number(q_mass)

        async def get_gas() -> float:
            return await core.number(q_gas)

        async def put_gas(value: float | None) -> float:
            return await core.set_gas(index, 0.0 if value is None else value)

        async def get_alarm() -> str:
            reply = await core.link.query(q_alarm)
            return " ".join(_alarms(core.device, reply.strip())) or "none"

        with self.add_children_as_readables():
            self.setpoint: SignalRW[float] = query_signal_rw(
                float, 0.0, get_setpoint, put_setpoint, units="g/min", precision=3
            )
            self.measured_rate: SignalR[float] = query_signal_r(
                float, 0.0, get_rate, units="g/min", precision=3
            )
            self.fill_mass: SignalR[float] = query_signal_r(
                float, 0.0, get_fill, units="g", precision=1
            )
            self.gas_flow: SignalRW[float] = query_signal_rw(
                float, 0.0, get_gas, put_gas, units="L/min", precision=2
            )
            self.alarm: SignalR[str] = query_signal_r(str, "none", get_alarm)
        with self.add_children_as_readables(StandardReadableFormat.CONFIG_SIGNAL):
            self.powder, self._set_powder = soft_signal_r_and_setter(str, "")
            self.composition, self._set_composition = soft_signal_r_and_setter(str, "")
        super().__init__(name=name)

    def _configured(self, powder: Powder) -> None:
        self._set_powder(powder.name)
        self._set_composition(
            " ".join(f"{e}={f:g}" for e, f in sorted(powder.composition.items()))
        )

    @AsyncStatus.wrap
    async def set(self, value: Any) -> None:
        """Command this hopper's feed rate (g/min, 0..max rate; quantities accepted)."""
        await self._core.set_rate(self._index, value)

    async def stop(self, success: bool = True) -> None:
        """Set this hopper's feed rate to 0 g/min."""
        await self._core.set_rate(self._index, 0.0)


class AsciiPowderFeeder(StandardReadable):
    """A multi-hopper powder feeder on the couponlab ASCII serial protocol.

    Parameters
    ----------
    transport
        Serial transport to the feeder (``/dev/ttyUSB0`` or ``socket://`` for a twin).
    hoppers
        Number of hoppers (1..16), as the lab file declares.
    max_rate
        Lab limit of any feed rate, g/min (the instrument's own limit also applies).
    max_gas
        Lab limit of any carrier-gas flow, L/min.
    name
        ophyd name.
    watchdog
        Communication watchdog armed at connect (``SYST:WDOG``), s of wall time (0 = off,
        up to 3600): if this client sends nothing for that long while a hopper feeds, every
        hopper goes to 0 g/min. While connected a keep-alive task sends ``SYST:WDOG?``
        every quarter of it (re-arming if needed). 2 s suits a print, like the cell's.
    """

    lab_spec: ClassVar[DriverSpec] = DriverSpec(
        family="powder_feeder",
        settings=FeederSettings,
        limits=FeederLabLimits,
        twin="ascii_powder_feeder",
        example={"address": "/dev/ttyUSB0"},
    )
    """Family, lab-entry models and twin (couponlab.registry)."""

    def __init__(
        self,
        transport: LineTransport,
        *,
        hoppers: int = 4,
        max_rate: float = 30.0,
        max_gas: float = 10.0,
        name: str = "",
        watchdog: float = 0.0,
    ) -> None:
        if not 1 <= hoppers <= 16:
            raise InputError(transport.device, f"hoppers = {hoppers} is outside 1..16")
        self.client = ScpiClient(transport)
        self._core = FeederLink(self.client, hoppers, max_rate, max_gas)
        self._watchdog = LinkWatchdog(self._core.link, watchdog)
        self.watchdog_s = self._watchdog.timeout_s
        """Communication watchdog armed at connect, s (0 = off)."""
        self.keepalive = self._watchdog.keepalive
        """Feeds the watchdog while connected (runs only when ``watchdog_s`` > 0)."""
        with self.add_children_as_readables():
            self.hoppers = DeviceVector({i: Hopper(self._core, i) for i in range(1, hoppers + 1)})

        async def get_state() -> str:
            return (await self._core.status()).state

        with self.add_children_as_readables():
            self.feeder_state: SignalR[str] = query_signal_r(str, "idle", get_state)
        super().__init__(name=name)

    @classmethod
    def from_lab_entry(cls, entry: DeviceEntry) -> AsciiPowderFeeder:
        """Build from a lab entry: ``address`` (port or ``socket://``), ``settings``
        (``hoppers``, serial framing, ``timeout_s``, ``watchdog_s`` (0 = off, the default;
        2 s suggested)) and ``limits`` (``max_feed_rate``, ``max_gas_flow``)."""
        s, lim = FeederSettings.of(entry), FeederLabLimits.of(entry)
        return cls(
            transport_from_entry(entry, s),
            hoppers=s.hoppers,
            max_rate=lim.max_feed_rate,
            max_gas=lim.max_gas_flow,
            name=entry.name,
            watchdog=s.watchdog_s,
        )

    # -- connection -------------------------------------------------------------------------
    async def connect(
        self,
        mock: bool | DeviceMock[Any] = False,
        timeout: float = DEFAULT_TIMEOUT,
        force_reconnect: bool = False,
    ) -> None:
        """Connect the signals, then (unless mocked) open the link and read the
        instrument's identity, hopper count, limits and powders."""
        await super().connect(mock=mock, timeout=timeout, force_reconnect=force_reconnect)
        if mock:
            return
        await self._core.open()
        for i, hopper in self.hoppers.items():
            hopper._configured(self._core.powders[i])
        await self._watchdog.arm()

    async def close(self) -> None:
        """Stop the keep-alive and close the serial link (the instrument keeps its state;
        an armed watchdog then stops a feeder left feeding)."""
        await self._watchdog.stop()
        await self._core.link.close()

    async def watchdog_status(self) -> tuple[float, bool, str]:
        """Return the feeder's watchdog: (timeout s (0 = off), expired (latched), reason)."""
        return await self._watchdog.status()

    async def reset_watchdog(self) -> None:
        """Clear the latched watchdog indication (the watchdog stays armed)."""
        await self._watchdog.reset()

    async def disconnect(self) -> None:
        """Close the serial link (the instrument keeps its state); ``connect()`` reopens it."""
        await self.close()

    @property
    def transport(self) -> LineTransport:
        """Return the transport (its ``bytes_written`` proves what was sent)."""
        return self.client.transport

    # -- PowderFeeder interface ----------------------------------------------------------------
    @property
    def hopper_count(self) -> int:
        """Return the number of hoppers."""
        return self._core.hoppers

    @property
    def max_rate(self) -> float:
        """Return the largest accepted feed rate, g/min."""
        return self._core.max_rate

    def powder(self, hopper: int) -> Powder:
        """Return the powder in ``hopper`` (after connect)."""
        n = self._core.check_hopper(hopper)
        if n not in self._core.powders:
            raise InputError(self.name, "powders are known only after connect()")
        return self._core.powders[n]

    async def set_rate(self, hopper: int, rate: Any) -> None:
        """Command ``hopper``'s feed rate in g/min (0..max_rate; quantities accepted)."""
        await self._core.set_rate(hopper, rate)

    async def set_gas(self, hopper: int, flow: Any) -> None:
        """Set ``hopper``'s carrier gas in L/min (0..max gas; quantities accepted)."""
        await self._core.set_gas(hopper, flow)

    async def status(self) -> FeederStatus:
        """Return every hopper's state in one exchange."""
        return await self._core.status()

    async def stop(self, success: bool = True) -> None:
        """Set every hopper to 0 g/min (carrier gas keeps purging the lines)."""
        await self._core.link.command("STOP")

    async def clear_alarms(self) -> None:
        """Clear latched clog and gas-loss alarms."""
        await self._core.link.command("ALRM:CLR")

    async def start_log(self, hopper: int, period: Any) -> None:
        """Log ``hopper``'s setpoint and nozzle flow every ``period`` s (0.02..10 s)."""
        n = self._core.check_hopper(hopper)
        p = to_magnitude(period, "s", device=self.name, what="log period", low=0.02, high=10.0)
        await self._core.link.command(f"LOG:STRT {n},{p:.4f}")

    async def log_count(self) -> int:
        """Return how many samples the feeder's logger holds."""
        return int(await self._core.link.checked_query("LOG:COUN?"))

    async def read_log(self) -> FlowLog:
        """Stop the logger and return its samples (instrument time)."""
        await self._core.link.command("LOG:STOP")
        reply = await self._core.link.checked_query("LOG:DATA?")
        try:
            values = np.array([float(v) for v in reply.split()], float)
        except ValueError:
            raise ProtocolError(self.name, "garbled LOG:DATA? reply") from None
        if values.size % 3:
            raise ProtocolError(self.name, f"LOG:DATA? returned {values.size} numbers")
        rows = values.reshape(-1, 3)
        return FlowLog(rows[:, 0].copy(), rows[:, 1].copy(), rows[:, 2].copy())

    # -- LabDevice --------------------------------------------------------------------------
    async def identify(self) -> str:
        """Return ``maker,model,serial,firmware`` (``*IDN?``)."""
        return await self._core.link.query("*IDN?")

    async def state(self) -> str:
        """Return "idle", "feeding" or "alarm"."""
        return (await self._core.status()).state

    async def safe_state(self) -> None:
        """Stop every hopper (the feeder's safe state)."""
        await self.stop()

    async def read(self) -> dict[str, Reading[Any]]:
        """Read every hopper in one ``STAT?`` exchange."""
        if self._mock is not None:
            return await super().read()
        st = await self._core.status()
        ts = time.time()
        out: dict[str, Reading[Any]] = {
            self.feeder_state.name: Reading(value=st.state, timestamp=ts, alarm_severity=0)
        }
        for i, h in enumerate(st.hoppers, start=1):
            hop = self.hoppers[i]
            out[hop.setpoint.name] = Reading(value=h.setpoint, timestamp=ts, alarm_severity=0)
            out[hop.measured_rate.name] = Reading(value=h.rate, timestamp=ts, alarm_severity=0)
            out[hop.fill_mass.name] = Reading(value=h.fill, timestamp=ts, alarm_severity=0)
            out[hop.gas_flow.name] = Reading(value=h.gas, timestamp=ts, alarm_severity=0)
            out[hop.alarm.name] = Reading(
                value=" ".join(h.alarms) or "none",
                timestamp=ts,
                alarm_severity=2 if h.alarms else 0,
            )
        return out


__all__ = ["ALARM_BITS", "AsciiPowderFeeder", "FeederLink", "Hopper"]
