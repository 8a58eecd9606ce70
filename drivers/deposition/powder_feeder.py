"""ophyd-async device for a powder feeder speaking the couponlab ASCII serial protocol
(docs/protocols/feeder-serial.md), on a real serial port or a twin's ``socket://`` URL.

One ``STAT?`` exchange returns every hopper's setpoint, nozzle flow, fill mass, carrier gas
and alarms, so :meth:`AsciiPowderFeeder.read` costs one round trip whatever the number of
hoppers. Every setter validates its input (unit, range, hopper index) before a byte is sent.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import numpy as np
from bluesky.protocols import Reading
from ophyd_async.core import (
    DEFAULT_TIMEOUT,
    AsyncStatus,
    DeviceMock,
    DeviceVector,
    StandardReadable,
    StandardReadableFormat,
    soft_signal_r_and_setter,
)
from pydantic import Field, StrictInt

from couponlab.drivers._scpi_device import HeldRead, Scpi, ScpiBinding, scpi_signal
from couponlab.drivers.deposition._link import (
    LinkWatchdog,
    SerialSettings,
    transport_from_entry,
)
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


STATUS = "STAT?"
"""``state, then per hopper: setpoint g/min, flow g/min, fill g, gas L/min, alarm bits``."""


def _known_state(fields: list[str]) -> bool:
    return fields[0] in _STATES


def _alarm_text(field: str) -> str:
    bits = int(field)
    return " ".join(name for bit, name in ALARM_BITS.items() if bits & bit) or "none"


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

    def __init__(
        self, binding: ScpiBinding, hoppers: int, max_rate: float, max_gas: float
    ) -> None:
        self.binding = binding
        self.link = binding.client
        self.device = binding.client.device
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
        self.binding.limits.update(rate=(0.0, self.max_rate), gas=(0.0, self.max_gas))
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

    def rate(self, value: Any, hopper: int = 1) -> float:
        """Validate a feed rate (g/min, 0..max_rate): the hopper setpoint's own check."""
        self._known()
        rate: float = self.binding.check(f"feed rate of hopper {hopper}", value)
        return rate

    def gas(self, value: Any, hopper: int = 1) -> float:
        """Validate a carrier-gas flow (L/min, 0..max_gas): the gas signal's own check."""
        self._known()
        flow: float = self.binding.check(f"carrier gas of hopper {hopper}", value)
        return flow

    def _known(self) -> None:
        if "rate" not in self.binding.limits:  # lab limits only, until connect reads LIM?
            self.binding.limits.update(rate=(0.0, self.max_rate), gas=(0.0, self.max_gas))

    async def set_rate(self, hopper: int, value: Any) -> float:
        """Validate, then command ``hopper``'s feed rate; return it in g/min."""
        n = self.check_hopper(hopper)
        rate = self.rate(value, n)
        await self.link.command(f"RATE {n},{rate:.4f}")
        return rate

    async def set_gas(self, hopper: int, value: Any) -> float:
        """Validate, then set ``hopper``'s carrier gas; return it in L/min."""
        n = self.check_hopper(hopper)
        flow = self.gas(value, n)
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
        """Return the parsed ``STAT?`` reply (one exchange, shared with the signals)."""
        parts = await self.binding.statuses[STATUS].read()
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
            raise ProtocolError(self.device, f"garbled STAT? reply: {parts!r:.120}") from None
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
        b, k = core.binding, 1 + 5 * (index - 1)

        def signal(datatype: Any, what: str, spec: Scpi) -> Any:
            return scpi_signal(datatype, b, spec, what=f"{what} of hopper {index}")

        with self.add_children_as_readables():
            self.setpoint = signal(float, "feed rate", Scpi(
                f"RATE? {index}", f"RATE {index},{{}}", unit="g/min", limits="rate",
                fmt="{:.4f}", precision=3, field=(STATUS, k),
            ))  # fmt: skip
            self.measured_rate = signal(float, "measured_rate", Scpi(
                f"FLOW? {index}", unit="g/min", precision=3, field=(STATUS, k + 1)
            ))  # fmt: skip
            self.fill_mass = signal(float, "fill_mass", Scpi(
                f"MASS? {index}", unit="g", precision=1, field=(STATUS, k + 2)
            ))  # fmt: skip
            self.gas_flow = signal(float, "carrier gas", Scpi(
                f"GAS? {index}", f"GAS {index},{{}}", unit="L/min", limits="gas",
                fmt="{:.4f}", precision=2, field=(STATUS, k + 3),
            ))  # fmt: skip
            self.alarm = signal(str, "alarm", Scpi(
                f"ALRM? {index}", field=(STATUS, k + 4), parse=_alarm_text
            ))  # fmt: skip
        with self.add_children_as_readables(StandardReadableFormat.CONFIG_SIGNAL):
            self.powder, self._set_powder = soft_signal_r_and_setter(str, "")
            self.composition, self._set_composition = soft_signal_r_and_setter(str, "")
        super().__init__(name=name)

    def configured(self, powder: Powder) -> None:
        """Show the powder (name and composition) the feeder reported at connect."""
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
        self._binding = ScpiBinding(self.client)
        self._held_read: HeldRead | None = None
        self._binding.status(STATUS, 1 + 5 * hoppers).check = _known_state
        self._core = FeederLink(self._binding, hoppers, max_rate, max_gas)
        self._watchdog = LinkWatchdog(self._core.link, watchdog)
        self.watchdog_s = self._watchdog.timeout_s
        """Communication watchdog armed at connect, s (0 = off)."""
        self.keepalive = self._watchdog.keepalive
        """Feeds the watchdog while connected (runs only when ``watchdog_s`` > 0)."""
        with self.add_children_as_readables():
            self.hoppers = DeviceVector({i: Hopper(self._core, i) for i in range(1, hoppers + 1)})

        with self.add_children_as_readables():
            self.feeder_state = scpi_signal(
                str, self._binding, Scpi(field=(STATUS, 0), parse=_STATES.__getitem__), "state"
            )
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
            hopper.configured(self._core.powders[i])
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

    async def read(self) -> dict[str, Reading[Any]]:
        """Read every signal from one status exchange (the signals' own readings)."""
        if self._held_read is None:
            status = self._binding.statuses[STATUS]
            self._held_read = HeldRead(self, status, super().read)
        return await self._held_read.read()

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


__all__ = ["ALARM_BITS", "AsciiPowderFeeder", "FeederLink", "Hopper"]
