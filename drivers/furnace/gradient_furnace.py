"""The OPC UA gradient furnace (docs/protocols/furnace-opcua.md), twin or hardware alike.

Signals are OPC UA variables read through one shared asyncua client; long actions
(a gradient, a program, waiting for the instrument's clock) are statuses that poll a
consistent snapshot of the nodes they need in ONE read request per poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import reprlib
from collections.abc import Callable, Coroutine, Iterator, Sequence
from typing import Any, ClassVar, ParamSpec, TypeVar, cast

import numpy as np
from asyncua import ua
from bluesky.protocols import Location
from ophyd_async.core import (
    DEFAULT_TIMEOUT,
    Array1D,
    AsyncStatus,
    Device,
    DeviceMock,
    DeviceVector,
    SignalR,
    SignalRW,
    StandardReadable,
    StandardReadableFormat,
    StrictEnum,
    TriggerableCommand,
    set_mock_units,
    set_mock_value,
)
from ophyd_async.core import Command as _Command

from couponlab.drivers.furnace._lab_entry import FurnaceLabLimits, FurnaceSettings
from couponlab.drivers.furnace._opcua_backend import (
    OpcUaMethodBackend,
    OpcUaSignalBackend,
    array_signature,
    read_values,
    void_signature,
)
from couponlab.drivers.furnace._validation import (
    COUPON_ID,
    MAX_SEGMENTS,
    POSITION,
    RAMP_RATE,
    TEMPERATURE,
    FurnaceLimits,
    gradient_plan,
    lab_max_temperature,
    placement,
    program_plan,
)
from couponlab.errors import (
    CouponlabError,
    InputError,
    InstrumentError,
    InstrumentTimeoutError,
    InterlockTrippedError,
    ProtocolError,
)
from couponlab.interfaces.furnace import (
    CouponPlacement,
    FurnaceProfile,
    FurnaceProgram,
    FurnaceRequest,
    GradientSetpoint,
    ProgramAbortedError,
    ProgramSegment,
)
from couponlab.keepalive import KeepAlive
from couponlab.labfile import DeviceEntry
from couponlab.registry import DriverSpec
from couponlab.transports import Backoff
from couponlab.transports._opcua import OpcUaConnection, OpcUaStatusError
from couponlab.units import QuantityLike, to_magnitude
from couponlab.values import ValueSpec

P = ParamSpec("P")
T = TypeVar("T")
log = logging.getLogger(__name__)

NAMESPACE_URI = "urn:couponlab:gradient-furnace"
"""Namespace of the furnace address space (its index is looked up at connect)."""

Float64Array = Array1D[np.float64]
LoadCommand = _Command[[Float64Array, Float64Array, Float64Array], None]


class FurnaceState(StrictEnum):
    """``Furnace.State``."""

    STANDBY = "standby"
    MANUAL = "manual"
    PROGRAM = "program"
    INTERLOCK = "interlock"


class ProgramState(StrictEnum):
    """``Furnace.Program.State``."""

    IDLE = "idle"
    RUNNING = "running"
    HELD = "held"
    COMPLETE = "complete"
    ABORTED = "aborted"


def typed_errors(
    func: Callable[P, Coroutine[Any, Any, T]],
) -> Callable[P, Coroutine[Any, Any, T]]:
    """Re-raise a couponlab error that ophyd-async wrapped in a bare ``TimeoutError``.

    ophyd-async runs every signal and command call under its own timeout and turns any
    ``TimeoutError`` (our :class:`~couponlab.errors.InstrumentTimeoutError` included) into
    ``TimeoutError(source)``; the typed error is its ``__cause__``.
    """

    @functools.wraps(func)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await func(*args, **kwargs)
        except TimeoutError as exc:
            cause = exc.__cause__
            if type(exc) is TimeoutError and isinstance(cause, CouponlabError):
                raise cause from cause.__cause__
            raise

    return wrapper


# Signals and commands get no ophyd-async timeout of their own (timeout=None): the backend
# puts a timeout on every OPC UA request (OpcUaConnection.timeout) and raises the typed
# InstrumentTimeoutError, and ophyd-async's extra asyncio.wait_for would cost a task per read
# (about 10 us of the ~300 us a read takes; see bench/furnace_read.py).


class _ArrayValueMixin:
    """``get_value`` of array signals without ophyd-async's eager debug message.

    ``SignalR.get_value`` formats the value into a ``log.debug`` f-string whatever the log
    level; for an 8-element array that costs about 40-250 us, as much as the OPC UA read
    itself (bench/furnace_read.py). Skip it unless debug logging is on.
    """

    async def get_value(self, cached: bool | None = None) -> Any:
        """Return the current value (one request, or the monitored value if cached)."""
        signal = cast(SignalR[Any], self)
        if signal.log.isEnabledFor(logging.DEBUG):
            return await SignalR.get_value(signal, cached)
        return await signal._backend_or_cache(cached).get_value()


class ArraySignalR(_ArrayValueMixin, SignalR[Float64Array]):
    """A read-only array signal (see :class:`_ArrayValueMixin`)."""


class ArraySignalRW(_ArrayValueMixin, SignalRW[Float64Array]):
    """A read-write array signal (see :class:`_ArrayValueMixin`)."""


def _r(conn: OpcUaConnection, dtype: Any, sid: str, units: str | None = None) -> SignalR[Any]:
    cls = ArraySignalR if dtype is Float64Array else SignalR
    return cls(OpcUaSignalBackend(dtype, conn, sid, units=units), timeout=None)


def _rw(conn: OpcUaConnection, dtype: Any, sid: str, spec: ValueSpec) -> SignalRW[Any]:
    cls = ArraySignalRW if dtype is Float64Array else SignalRW
    backend = OpcUaSignalBackend(dtype, conn, sid, units=spec.unit, writable=True, spec=spec)
    return cls(backend, timeout=None)


def _trigger(conn: OpcUaConnection, obj: str, method: str) -> TriggerableCommand:
    return TriggerableCommand(
        OpcUaMethodBackend(conn, obj, method, void_signature()), timeout=None
    )


class FurnaceZone(StandardReadable):
    """One heated zone: ``Furnace.Zones.Zone<i>``.

    Signals: ``process_value`` (degC, NaN while the thermocouple is broken), ``setpoint``
    (degC, 0 .. MaxTemperature), ``working_setpoint`` (degC, the ramp-limited setpoint),
    ``output`` (heater output, %, 0 .. 100), ``thermocouple_broken``.
    """

    def __init__(
        self, conn: OpcUaConnection, index: int, temperature: ValueSpec, name: str = ""
    ) -> None:
        base = f"Furnace.Zones.Zone{index}"
        self.index = index
        with self.add_children_as_readables(StandardReadableFormat.HINTED_UNCACHED_SIGNAL):
            self.process_value: SignalR[float] = _r(conn, float, f"{base}.ProcessValue", "degC")
        with self.add_children_as_readables(StandardReadableFormat.UNCACHED_SIGNAL):
            self.setpoint: SignalRW[float] = _rw(conn, float, f"{base}.Setpoint", temperature)
            self.working_setpoint: SignalR[float] = _r(
                conn, float, f"{base}.WorkingSetpoint", "degC"
            )
            self.output: SignalR[float] = _r(conn, float, f"{base}.Output", "%")
            self.thermocouple_broken: SignalR[bool] = _r(conn, bool, f"{base}.ThermocoupleBroken")
        super().__init__(name)


class FurnaceIdentity(StandardReadable):
    """``Furnace.Identity``: manufacturer, model, serial number, firmware (configuration)."""

    def __init__(self, conn: OpcUaConnection, name: str = "") -> None:
        with self.add_children_as_readables(StandardReadableFormat.CONFIG_SIGNAL):
            self.manufacturer: SignalR[str] = _r(conn, str, "Furnace.Identity.Manufacturer")
            self.model: SignalR[str] = _r(conn, str, "Furnace.Identity.Model")
            self.serial_number: SignalR[str] = _r(conn, str, "Furnace.Identity.SerialNumber")
            self.firmware_version: SignalR[str] = _r(conn, str, "Furnace.Identity.FirmwareVersion")
        super().__init__(name)


class FurnaceProgrammer(StandardReadable):
    """``Furnace.Program``: the instrument's ramp/dwell programmer.

    Signals: ``state`` (:class:`ProgramState`), ``segment`` (-1 when idle),
    ``segment_count``, ``remaining`` (instrument time left, s). Commands: ``load_cmd``
    (targets degC, rates K/min, dwells s), ``start_cmd``, ``hold_cmd``, ``resume_cmd``,
    ``abort_cmd``.
    """

    def __init__(self, conn: OpcUaConnection, name: str = "") -> None:
        with self.add_children_as_readables(StandardReadableFormat.UNCACHED_SIGNAL):
            self.state: SignalR[ProgramState] = _r(conn, ProgramState, "Furnace.Program.State")
            self.segment: SignalR[int] = _r(conn, int, "Furnace.Program.Segment")
            self.segment_count: SignalR[int] = _r(conn, int, "Furnace.Program.SegmentCount")
            self.remaining: SignalR[float] = _r(conn, float, "Furnace.Program.Remaining", "s")
        self.load_cmd: LoadCommand = _Command(
            OpcUaMethodBackend(
                conn,
                "Furnace.Program",
                "Furnace.Program.Load",
                array_signature("targets", "rates", "dwells", annotation=Float64Array),
                [ua.VariantType.Double] * 3,
            ),
            timeout=None,
        )
        self.start_cmd = _trigger(conn, "Furnace.Program", "Furnace.Program.Start")
        self.hold_cmd = _trigger(conn, "Furnace.Program", "Furnace.Program.Hold")
        self.resume_cmd = _trigger(conn, "Furnace.Program", "Furnace.Program.Resume")
        self.abort_cmd = _trigger(conn, "Furnace.Program", "Furnace.Program.Abort")
        super().__init__(name)


class FurnaceInterlock(StandardReadable):
    """``Furnace.Interlock``: latched over-temperature interlock.

    Signals: ``tripped``, ``limit`` (degC), ``reason``. Command: ``reset_cmd`` (refused by the
    instrument while a zone is at or above the limit).
    """

    def __init__(self, conn: OpcUaConnection, temperature: ValueSpec, name: str = "") -> None:
        with self.add_children_as_readables(StandardReadableFormat.UNCACHED_SIGNAL):
            self.tripped: SignalR[bool] = _r(conn, bool, "Furnace.Interlock.Tripped")
            self.reason: SignalR[str] = _r(conn, str, "Furnace.Interlock.Reason")
        with self.add_children_as_readables(StandardReadableFormat.CONFIG_SIGNAL):
            self.limit: SignalRW[float] = _rw(conn, float, "Furnace.Interlock.Limit", temperature)
        self.reset_cmd = _trigger(conn, "Furnace.Interlock", "Furnace.Interlock.Reset")
        super().__init__(name)


class FurnaceCarrier(StandardReadable):
    """``Furnace.Carrier``: the coupon on the carrier and its offset along the tube (mm)."""

    def __init__(self, conn: OpcUaConnection, name: str = "") -> None:
        with self.add_children_as_readables(StandardReadableFormat.CONFIG_SIGNAL):
            self.coupon_id: SignalRW[str] = _rw(conn, str, "Furnace.Carrier.CouponId", COUPON_ID)
            self.offset: SignalRW[float] = _rw(conn, float, "Furnace.Carrier.Offset", POSITION)
        super().__init__(name)


class FurnaceClock(StandardReadable):
    """``Furnace.Clock``: the instrument's clock (virtual time on a twin).

    ``sim_time`` (s) is read with every event; ``speed_up`` (virtual s per wall s, 1 on
    hardware) is configuration. ``set(t)`` returns a status that completes once the clock
    reads at least ``t`` s (and fails if the furnace's interlock trips meanwhile), so a plan
    waits for instrument time with ``bps.mv(furnace.clock, t)``.
    """

    def __init__(self, conn: OpcUaConnection, owner: OpcUaGradientFurnace, name: str = "") -> None:
        with self.add_children_as_readables(StandardReadableFormat.HINTED_UNCACHED_SIGNAL):
            self.sim_time: SignalR[float] = _r(conn, float, "Furnace.Clock.SimTime", "s")
        with self.add_children_as_readables(StandardReadableFormat.CONFIG_SIGNAL):
            self.speed_up: SignalR[float] = _r(conn, float, "Furnace.Clock.SpeedUp")
        self._owner = (owner,)  # a tuple: not a child device
        self._target: float | None = None
        super().__init__(name)

    def set(self, value: QuantityLike) -> AsyncStatus[None]:
        """Return a status done when the instrument clock reaches ``value`` (s, or a time
        quantity such as ``"2 h"``); see :meth:`OpcUaGradientFurnace.wait_until`."""
        status = self._owner[0].wait_until(value)
        with contextlib.suppress(InputError):
            self._target = to_magnitude(value, "s")
        return status

    async def locate(self) -> Location[float]:
        """Return the clock (readback, s) and the last time waited for (setpoint, s)."""
        now = await self.now()
        return Location(setpoint=now if self._target is None else self._target, readback=now)

    async def now(self) -> float:
        """Return the instrument's clock, s."""
        return float(await self.sim_time.get_value())


class FurnaceMock(DeviceMock[Device]):
    """Mock-mode defaults: the contract's default values, and the expected units."""

    async def connect(self, device: Device) -> None:
        """Give every signal of a mock furnace its unit and a sensible start value."""
        if not isinstance(device, OpcUaGradientFurnace):
            return
        for signal in _signals(device):
            backend = signal._connector.backend
            initial = getattr(backend, "initial_backend", None)
            if isinstance(initial, OpcUaSignalBackend) and initial.expected_units:
                set_mock_units(signal, initial.expected_units)
        n = device.num_zones
        positions = (np.arange(n) + 0.5) * 300.0 / n
        set_mock_value(device.zone_count, n)
        set_mock_value(device.zone_positions, positions)
        set_mock_value(device.tube_length, 300.0)
        set_mock_value(device.max_temperature, 1200.0)
        set_mock_value(device.standby_temperature, 25.0)
        set_mock_value(device.operating_state, FurnaceState.STANDBY)
        set_mock_value(device.profile, np.full(n, 25.0))
        set_mock_value(device.setpoint_profile, np.full(n, 25.0))
        set_mock_value(device.program.state, ProgramState.IDLE)
        set_mock_value(device.program.segment, -1)
        set_mock_value(device.interlock.limit, 1225.0)
        set_mock_value(device.clock.speed_up, 1.0)
        for zone in device.zones.values():
            set_mock_value(zone.process_value, 25.0)
            set_mock_value(zone.setpoint, 25.0)
            set_mock_value(zone.working_setpoint, 25.0)
        set_mock_value(device.identity.manufacturer, "couponlab")
        set_mock_value(device.identity.model, "mock gradient furnace")
        set_mock_value(device.identity.serial_number, "MOCK-0")
        set_mock_value(device.identity.firmware_version, "0")


def _signals(device: Device) -> Iterator[SignalR[Any]]:
    for _name, child in device.children():
        if isinstance(child, SignalR):
            yield child
        else:
            yield from _signals(child)


class OpcUaGradientFurnace(StandardReadable):
    """A gradient tube furnace driven over OPC UA (one asyncua client per device).

    ``read()`` gives the whole profile (``profile``, degC, one array, ONE request), the
    setpoint profile (degC) and the instrument clock (s). Configuration: identity, zone
    count and positions (mm), tube length (mm), MaxTemperature (degC), ramp rate (K/min),
    interlock limit (degC), coupon id and offset (mm), clock speed-up.

    Parameters
    ----------
    address
        ``opc.tcp://host:port`` of the furnace (or its twin).
    name
        Device name.
    zones
        Number of zones N expected (checked against ``NumZones`` at connect; 1 .. 32).
    max_temperature
        Lab limit on any setpoint (absolute temperature; degC if a bare number); the
        effective limit is the lower of this and the instrument's ``MaxTemperature``.
    timeout
        Timeout of one OPC UA request, s.
    poll_period
        Wall-clock period of the status polls (gradient, program, clock), s (0.005 .. 5).
    namespace_uri
        Namespace of the address space.
    backoff
        Reconnection policy.
    watchdog
        Communication watchdog armed at connect, s of wall time (0 = off, up to 3600):
        if this client sends nothing for that long while the furnace is out of standby, the
        furnace goes to standby by itself. While connected, a keep-alive task reads one node
        every quarter of it. 10 s suits a lab (a few lost polls never trip it; a killed
        process leaves a hot furnace for at most 10 s more).
    """

    _mock_class = FurnaceMock
    lab_spec: ClassVar[DriverSpec] = DriverSpec(
        family="gradient_furnace",
        settings=FurnaceSettings,
        limits=FurnaceLabLimits,
        twin="opcua_gradient_furnace",
        example={"address": "opc.tcp://127.0.0.1:4840"},
    )
    """Family, lab-entry models and twin (couponlab.registry)."""

    def __init__(
        self,
        address: str,
        name: str = "",
        *,
        zones: int = 8,
        max_temperature: QuantityLike | None = None,
        timeout: float = 2.0,
        poll_period: float = 0.05,
        namespace_uri: str = NAMESPACE_URI,
        backoff: Backoff | None = None,
        watchdog: float = 0.0,
        max_wait: float = 1e7,
    ) -> None:
        label = name or "furnace"
        if not (math.isfinite(max_wait) and max_wait > 0):
            raise InputError(label, f"max_wait = {max_wait} s must be a finite time > 0")
        if not (math.isfinite(watchdog) and 0.0 <= watchdog <= 3600.0):
            raise InputError(label, f"watchdog = {watchdog} s must be in [0, 3600] (0 = off)")
        if isinstance(zones, bool) or not isinstance(zones, int) or not 1 <= zones <= 32:
            raise InputError(label, f"zones = {zones!r} must be an integer in [1, 32]")
        if not 0.005 <= poll_period <= 5.0:
            raise InputError(label, f"poll_period = {poll_period} s must be in [0.005, 5]")
        self.address = address
        self.lab_max_temperature_c = lab_max_temperature(max_temperature, label)
        self.poll_period = poll_period
        self.max_wait_s = float(max_wait)
        """Longest wait for the instrument clock, s of instrument time (default 1e7, 116 d)."""
        self._zones = zones
        self.connection = OpcUaConnection(
            label, address, namespace_uri, timeout=timeout, backoff=backoff
        )
        conn = self.connection
        temperature = TEMPERATURE.capped(high=self.lab_max_temperature_c)
        self._limits: FurnaceLimits | None = None
        self._stops = 0
        """How many times stop() was called: an action started before a stop ends with it."""
        self._stop_event = asyncio.Event()
        self.watchdog_s = float(watchdog)
        """Communication watchdog armed at connect, s (0 = off)."""
        self.keepalive = KeepAlive(label, self._feed_watchdog, max(self.watchdog_s / 4, 0.01))
        """Feeds the watchdog while connected (runs only when ``watchdog_s`` > 0)."""
        with self.add_children_as_readables(StandardReadableFormat.HINTED_UNCACHED_SIGNAL):
            self.profile: SignalR[Float64Array] = _r(conn, Float64Array, "Furnace.Profile", "degC")
        with self.add_children_as_readables(StandardReadableFormat.UNCACHED_SIGNAL):
            self.setpoint_profile: SignalRW[Float64Array] = _rw(
                conn, Float64Array, "Furnace.SetpointProfile", temperature.sized(zones)
            )
            self.operating_state: SignalR[FurnaceState] = _r(conn, FurnaceState, "Furnace.State")
        with self.add_children_as_readables(StandardReadableFormat.CONFIG_SIGNAL):
            self.zone_count: SignalR[int] = _r(conn, int, "Furnace.NumZones")
            self.zone_positions: SignalR[Float64Array] = _r(
                conn, Float64Array, "Furnace.ZonePositions", "mm"
            )
            self.tube_length: SignalR[float] = _r(conn, float, "Furnace.TubeLength", "mm")
            self.max_temperature: SignalR[float] = _r(
                conn, float, "Furnace.MaxTemperature", "degC"
            )
            self.standby_temperature: SignalR[float] = _r(
                conn, float, "Furnace.StandbyTemperature", "degC"
            )
            self.ramp_rate: SignalRW[float] = _rw(conn, float, "Furnace.RampRate", RAMP_RATE)
        with self.add_children_as_readables():
            self.identity = FurnaceIdentity(conn)
            self.interlock = FurnaceInterlock(conn, temperature)
            self.carrier = FurnaceCarrier(conn)
            self.clock = FurnaceClock(conn, self)
        self.program = FurnaceProgrammer(conn)
        self.zones: DeviceVector[FurnaceZone] = DeviceVector(
            {i: FurnaceZone(conn, i, temperature) for i in range(1, zones + 1)}
        )
        self.standby_cmd = _trigger(conn, "Furnace", "Furnace.Standby")
        super().__init__(name)

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def from_lab_entry(cls, entry: DeviceEntry) -> OpcUaGradientFurnace:
        """Build the device of a lab-file entry.

        ``address``: ``opc.tcp://host:port``; ``limits``: ``max_temperature`` (pint string);
        ``settings``: ``zones`` (default 8), ``timeout_s`` (2), ``poll_period_s`` (0.05),
        ``namespace_uri``, ``watchdog_s`` (0 = off; 10 s suggested): :class:`FurnaceSettings`
        and :class:`FurnaceLabLimits`, which refuse unknown keys (a typo must not go unnoticed).
        """
        s = FurnaceSettings.of(entry)
        return cls(
            entry.address,
            entry.name,
            zones=s.zones,
            timeout=s.timeout_s,
            poll_period=s.poll_period_s,
            namespace_uri=s.namespace_uri or NAMESPACE_URI,
            watchdog=s.watchdog_s,
            max_temperature=FurnaceLabLimits.of(entry).max_temperature,
        )

    @property
    def num_zones(self) -> int:
        """Return the number of zones N."""
        return self._zones

    async def connect(
        self,
        mock: bool | DeviceMock[Any] = False,
        timeout: float = DEFAULT_TIMEOUT,
        force_reconnect: bool = False,
    ) -> None:
        """Connect every signal over one client (or in mock mode) and check the zone count.

        Raises
        ------
        ProtocolError
            The server has another number of zones, or a node's unit differs from the one
            this driver expects.
        """
        self._limits = None
        if not mock:
            await self.connection.connect()  # (re)opens the client, also after disconnect()
        await super().connect(mock=mock, timeout=timeout, force_reconnect=force_reconnect)
        if not mock:
            n = await self.zone_count.get_value()
            if n != self._zones:
                raise ProtocolError(
                    self.name, f"instrument has {n} zones; the lab file says {self._zones}"
                )
            if self.watchdog_s > 0:
                await self.connection.write(
                    "Furnace.Watchdog.Timeout", ua.Variant(self.watchdog_s, ua.VariantType.Double)
                )
                self.keepalive.start()

    async def disconnect(self) -> None:
        """Stop the keep-alive, close the OPC UA client; no task is left running.

        The watchdog stays armed: a furnace left out of standby goes to standby once the
        timeout passes (that is the point; see :attr:`watchdog_s`).
        """
        await self.keepalive.stop()
        await self.connection.disconnect()

    async def close(self) -> None:
        """Close the OPC UA client (the same as :meth:`disconnect`)."""
        await self.disconnect()

    async def _feed_watchdog(self) -> None:
        """One keep-alive read; re-arm if the instrument lost the timeout (restarted)."""
        (dv,) = await self.connection.read(["Furnace.Watchdog.Timeout"], "watchdog keep-alive")
        value = dv.Value.Value if dv.Value is not None else None
        if not isinstance(value, float) or abs(value - self.watchdog_s) > 1e-6:
            log.warning(
                "%s: watchdog timeout was %r, re-arming at %g s", self.name, value, self.watchdog_s
            )
            await self.connection.write(
                "Furnace.Watchdog.Timeout", ua.Variant(self.watchdog_s, ua.VariantType.Double)
            )

    # -- communication watchdog ------------------------------------------------------------
    @typed_errors
    async def watchdog_status(self) -> tuple[float, bool, str]:
        """Return the instrument's watchdog: (timeout s (0 = off), expired, reason).

        ``expired`` is latched when the watchdog sent the furnace to standby, until
        :meth:`reset_watchdog`. One request.
        """
        timeout, expired, reason = await self.connection.read(
            ["Furnace.Watchdog.Timeout", "Furnace.Watchdog.Expired", "Furnace.Watchdog.Reason"],
            "read the watchdog",
        )
        values = [
            dv.Value.Value if dv.Value is not None else None for dv in (timeout, expired, reason)
        ]
        return float(values[0] or 0.0), bool(values[1]), str(values[2] or "")

    @typed_errors
    async def reset_watchdog(self) -> None:
        """Clear the latched watchdog indication (the watchdog stays armed)."""
        await self.connection.call("Furnace.Watchdog", "Furnace.Watchdog.Reset", [])

    # -- LabDevice -------------------------------------------------------------------------
    @typed_errors
    async def identify(self) -> str:
        """Return ``"manufacturer, model, serial, firmware"`` (one request)."""
        ident = self.identity
        values = await read_values(
            ident.manufacturer, ident.model, ident.serial_number, ident.firmware_version
        )
        return ", ".join(str(v) for v in values)

    @typed_errors
    async def state(self) -> str:
        """Return ``"standby"``, ``"manual"``, ``"program"`` or ``"interlock"``."""
        return str((await self.operating_state.get_value()).value)

    @typed_errors
    async def safe_state(self) -> None:
        """Abort any program and send every zone to its standby setpoint."""
        await self.stop(success=False)

    @AsyncStatus.wrap
    @typed_errors
    async def stop(self, success: bool = True) -> None:
        """Call ``Furnace.Standby()``: abort any program, all setpoints to standby.

        Every action of this device still in progress (gradient, program, clock wait) then
        fails with :class:`~couponlab.interfaces.furnace.ProgramAbortedError`.
        """
        try:
            await self.standby_cmd.trigger()
        finally:
            self._stops += 1
            event, self._stop_event = self._stop_event, asyncio.Event()
            event.set()

    async def _pause(self, seconds: float, stops: int) -> None:
        """Sleep ``seconds`` (wall), waking early on :meth:`stop`; fail if a stop came."""
        if self._stops == stops:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_event.wait(), seconds)
        if self._stops != stops:
            raise ProgramAbortedError(self.name, "stopped: the furnace was sent to standby")

    # -- limits ----------------------------------------------------------------------------
    @typed_errors
    async def limits(self) -> FurnaceLimits:
        """Return what the instrument and the lab file allow (read once per connection)."""
        if self._limits is not None:
            return self._limits
        positions, length, max_t = await read_values(
            self.zone_positions, self.tube_length, self.max_temperature
        )
        sp_backend = self.zones[1].setpoint._connector.backend
        rate_backend = self.ramp_rate._connector.backend
        low = 0.0
        if isinstance(sp_backend, OpcUaSignalBackend) and sp_backend.limits is not None:
            low = max(low, sp_backend.limits[0])
        max_rate = None
        if isinstance(rate_backend, OpcUaSignalBackend) and rate_backend.limits is not None:
            max_rate = rate_backend.limits[1]
        pos = np.asarray(positions, dtype=float)
        if pos.shape != (self._zones,) or np.any(np.diff(pos) <= 0):
            raise ProtocolError(
                self.name, f"ZonePositions {pos.tolist()} are not {self._zones} increasing values"
            )
        limits = FurnaceLimits(
            device=self.name,
            zone_positions_mm=pos,
            tube_length_mm=float(length),
            max_temperature_c=min(float(max_t), self.lab_max_temperature_c),
            min_temperature_c=low,
            max_ramp_rate_k_per_min=max_rate,
        )
        if self._mock is None:
            self._limits = limits
        return limits

    # -- actions ---------------------------------------------------------------------------
    def set(self, value: FurnaceRequest | object) -> AsyncStatus[None]:
        """Start a request; the status says when it is done.

        - :class:`GradientSetpoint`: ramp to the gradient; done when every zone is within
          tolerance of its setpoint.
        - :class:`FurnaceProgram`: load and start the program; done when it completes.
        - :class:`CouponPlacement`: put a coupon on the carrier.

        Input is validated (units, limits, shape) before anything is written; a refusal
        fails the status with an :class:`~couponlab.errors.InputError`.
        """
        if isinstance(value, GradientSetpoint):
            return AsyncStatus(self._gradient(value), name=self.name)
        if isinstance(value, FurnaceProgram):
            return AsyncStatus(self._program(value), name=self.name)
        if isinstance(value, CouponPlacement):
            return AsyncStatus(self._place(value), name=self.name)
        return AsyncStatus(self._refuse(value), name=self.name)

    @typed_errors
    async def _refuse(self, value: object) -> None:
        raise InputError(
            self.name,
            f"cannot set a furnace to {reprlib.repr(value)}: give a GradientSetpoint, "
            f"FurnaceProgram or CouponPlacement",
        )

    @typed_errors
    async def _refuse_program(self, value: object) -> None:
        if isinstance(value, Sequence) and len(value) > MAX_SEGMENTS:
            raise InputError(
                self.name,
                f"a program of {len(value)} segments: the instrument takes at most {MAX_SEGMENTS}",
            )
        raise InputError(
            self.name,
            f"a program is a sequence of ProgramSegment or a FurnaceProgram, got "
            f"{reprlib.repr(value)}",
        )

    def set_gradient(
        self,
        hot: QuantityLike,
        cold: QuantityLike,
        *,
        hot_position: QuantityLike | None = None,
        cold_position: QuantityLike | None = None,
        ramp_rate: QuantityLike = "10 K/min",
        tolerance: QuantityLike = "2 K",
    ) -> AsyncStatus[None]:
        """Ramp to a linear gradient (hot/cold degC at positions mm, ramp K/min); the status
        completes when every zone is within ``tolerance`` (K) of its setpoint."""
        return self.set(
            GradientSetpoint(hot, cold, hot_position, cold_position, ramp_rate, tolerance)
        )

    def run_program(
        self, segments: Sequence[ProgramSegment] | FurnaceProgram
    ) -> AsyncStatus[None]:
        """Load and start a ramp/dwell program; the status completes when it ends."""
        value: object = segments
        if isinstance(value, FurnaceProgram):
            return self.set(value)
        if isinstance(value, str | bytes) or not isinstance(value, Sequence):
            return AsyncStatus(self._refuse_program(value), name=self.name)
        if len(value) > MAX_SEGMENTS:  # refuse before copying a huge sequence
            return AsyncStatus(self._refuse_program(value), name=self.name)
        return self.set(FurnaceProgram(tuple(value)))

    def load_coupon(self, coupon_id: str, offset: QuantityLike = 0.0) -> AsyncStatus[None]:
        """Put coupon ``coupon_id`` on the carrier at ``offset`` mm (0 .. tube length)."""
        return self.set(CouponPlacement(coupon_id, offset))

    def wait_until(self, sim_time: QuantityLike) -> AsyncStatus[None]:
        """Return a status done when the instrument clock reads at least ``sim_time`` s.

        ``sim_time`` is at most :attr:`max_wait_s` ahead of the clock (a wait of centuries
        is refused with :class:`~couponlab.errors.OutOfLimitsError`, not waited for). Fails
        with :class:`~couponlab.errors.InterlockTrippedError` if the interlock trips while
        waiting.
        """
        return AsyncStatus(self._wait_until(sim_time), name=self.name)

    @typed_errors
    async def reset_interlock(self) -> None:
        """Call ``Interlock.Reset()``.

        Raises
        ------
        InterlockTrippedError
            The instrument refused: a zone is still at or above the limit.
        """
        try:
            await self.interlock.reset_cmd.trigger()
        except OpcUaStatusError as exc:
            raise InterlockTrippedError(
                self.name, f"interlock reset refused ({exc.status}): a zone is still too hot"
            ) from exc

    @typed_errors
    async def read_profile(self) -> FurnaceProfile:
        """Return every zone's PV and setpoint (degC) and the clock (s), in one request."""
        limits = await self.limits()
        pv, sp, t = await read_values(self.profile, self.setpoint_profile, self.clock.sim_time)
        return FurnaceProfile(
            positions_mm=limits.zone_positions_mm.copy(),
            temperatures_c=np.asarray(pv, dtype=float),
            setpoints_c=np.asarray(sp, dtype=float),
            sim_time_s=float(t),
        )

    # -- action bodies ---------------------------------------------------------------------
    @typed_errors
    async def _check_ready(self) -> None:
        """Refuse to start an action while the interlock is tripped or a program runs."""
        tripped, reason, prog = await read_values(
            self.interlock.tripped, self.interlock.reason, self.program.state
        )
        if tripped:
            raise self._tripped(reason)
        if prog in (ProgramState.RUNNING, ProgramState.HELD):
            raise InstrumentError(
                self.name, f"a program is {prog.value}: stop the furnace (standby) first"
            )

    def _tripped(self, reason: str) -> InterlockTrippedError:
        why = f": {reason}" if reason else ""
        return InterlockTrippedError(
            self.name, f"interlock tripped{why}; heaters are off until the interlock is reset"
        )

    @typed_errors
    async def _gradient(self, sp: GradientSetpoint) -> None:
        stops = self._stops
        plan = gradient_plan(sp, await self.limits())
        await self._check_ready()
        await self.ramp_rate.set(plan.ramp_rate_k_per_min)
        await self.setpoint_profile.set(plan.targets_c)
        deadline: float | None = None
        left_standby = False  # the State may follow the setpoint write a little later
        while True:
            pv, state, tripped, reason, now = await read_values(
                self.profile,
                self.operating_state,
                self.interlock.tripped,
                self.interlock.reason,
                self.clock.sim_time,
            )
            if tripped or state == FurnaceState.INTERLOCK:
                raise self._tripped(reason)
            if state != FurnaceState.STANDBY:
                left_standby = True
            elif left_standby:
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
                rate = plan.ramp_rate_k_per_min
                span = float(np.max(np.abs(plan.targets_c - pv)))
                ramp_s = span * 60.0 / rate if rate > 0 else 0.0
                deadline = float(now) + ramp_s + plan.settle_s
            error = np.abs(pv - plan.targets_c)
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
            await self._pause(self.poll_period, stops)

    @typed_errors
    async def _program(self, program: FurnaceProgram) -> None:
        stops = self._stops
        plan = program_plan(program, await self.limits())
        await self._check_ready()
        await self.program.load_cmd.execute(plan.targets_c, plan.rates_k_per_min, plan.dwells_s)
        await self.program.start_cmd.trigger()
        left_standby = False
        while True:
            prog, state, tripped, reason = await read_values(
                self.program.state,
                self.operating_state,
                self.interlock.tripped,
                self.interlock.reason,
            )
            if tripped or state == FurnaceState.INTERLOCK:
                raise self._tripped(reason)
            if prog == ProgramState.COMPLETE:
                return
            left_standby = left_standby or state != FurnaceState.STANDBY
            if prog == ProgramState.ABORTED or (left_standby and state == FurnaceState.STANDBY):
                raise ProgramAbortedError(
                    self.name, f"the program ended without completing (program {prog.value})"
                )
            await self._pause(self.poll_period, stops)

    @typed_errors
    async def _place(self, p: CouponPlacement) -> None:
        coupon_id, offset = placement(p, await self.limits())
        await self.carrier.offset.set(offset)
        await self.carrier.coupon_id.set(coupon_id)

    @typed_errors
    async def _wait_until(self, sim_time: QuantityLike) -> None:
        stops = self._stops
        now = await self.clock.now()
        target = to_magnitude(
            sim_time,
            "s",
            device=self.name,
            what="instrument time",
            low=0.0,
            high=now + self.max_wait_s,
        )
        while True:
            now, speed_up, tripped, reason = await read_values(
                self.clock.sim_time,
                self.clock.speed_up,
                self.interlock.tripped,
                self.interlock.reason,
            )
            if tripped:
                raise self._tripped(reason)
            if now >= target:
                return
            rate = (
                float(speed_up) if speed_up and math.isfinite(speed_up) and speed_up > 0 else 1.0
            )
            await self._pause(min(max((target - now) / rate, 0.001), 20 * self.poll_period), stops)


__all__ = [
    "NAMESPACE_URI",
    "FurnaceCarrier",
    "FurnaceClock",
    "FurnaceIdentity",
    "FurnaceInterlock",
    "FurnaceProgrammer",
    "FurnaceState",
    "FurnaceZone",
    "OpcUaGradientFurnace",
    "ProgramState",
]
