"""The OPC UA gradient furnace (docs/protocols/furnace-opcua.md), twin or hardware alike.

The device is a declaration: each signal names its node, its value spec (unit, kind, range,
lab limit) and its format hint, and :class:`~couponlab.drivers._opcua.OpcUaDeviceConnector`
fills it at construction. Every write path -- a ``set`` on any signal, a method, a plan --
ends in a signal ``set`` and so passes the same checks. Behaviour (gradients, programs, the
carrier, waiting for instrument time) lives in :class:`~._logic.FurnaceLogic`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import reprlib
from collections.abc import Callable, Coroutine, Iterator, Sequence
from typing import Annotated as A  # noqa: N817 - ophyd-async's declarative idiom
from typing import Any, ClassVar, ParamSpec, TypeVar

import numpy as np
from bluesky.protocols import Location
from ophyd_async.core import (
    DEFAULT_TIMEOUT,
    Array1D,
    AsyncStatus,
    Command,
    Device,
    DeviceMock,
    DeviceVector,
    SignalR,
    StandardReadable,
    TriggerableCommand,
    set_mock_units,
    set_mock_value,
)
from ophyd_async.core import StandardReadableFormat as Format

from couponlab.drivers._opcua import Node, OpcUaDevice, OpcUaDeviceConnector, OpcUaR, OpcUaRW
from couponlab.drivers.furnace._lab_entry import FurnaceLabLimits, FurnaceSettings
from couponlab.drivers.furnace._logic import FurnaceLogic
from couponlab.drivers.furnace._states import FurnaceState, ProgramState
from couponlab.drivers.furnace._validation import (
    COUPON_ID,
    MAX_SEGMENTS,
    POSITION,
    RAMP_RATE,
    TEMPERATURE,
    FurnaceLimits,
    lab_max_temperature,
)
from couponlab.errors import CouponlabError, InputError, InterlockTrippedError, ProtocolError
from couponlab.interfaces.furnace import (
    CouponPlacement,
    FurnaceProfile,
    FurnaceProgram,
    FurnaceRequest,
    GradientSetpoint,
    ProgramSegment,
)
from couponlab.keepalive import KeepAlive
from couponlab.labfile import DeviceEntry
from couponlab.progress import ProgressStatus
from couponlab.registry import DriverSpec
from couponlab.transports import Backoff, ClientSecurity, OpcUaConnection, OpcUaStatusError
from couponlab.units import QuantityLike, to_magnitude
from couponlab.values import ValueSpec

P = ParamSpec("P")
T = TypeVar("T")
log = logging.getLogger(__name__)

NAMESPACE_URI = "urn:couponlab:gradient-furnace"
"""Namespace of the furnace address space (its index is looked up at connect)."""

Float64Array = Array1D[np.float64]
LoadCommand = Command[[Float64Array, Float64Array, Float64Array], None]
WATCHDOG_TIMEOUT = ValueSpec("s", low=0.0, high=3600.0)
"""The communication watchdog's timeout, s (0 = off)."""


def typed_errors(
    func: Callable[P, Coroutine[Any, Any, T]],
) -> Callable[P, Coroutine[Any, Any, T]]:
    """Re-raise a couponlab error that ophyd-async wrapped in a bare ``TimeoutError``.

    ophyd-async turns any ``TimeoutError`` (our :class:`~couponlab.errors.InstrumentTimeoutError`
    included) into ``TimeoutError(source)``; the typed error is its ``__cause__``.
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


# -- the address space, as declarations -----------------------------------------------------------


class FurnaceZone(StandardReadable, OpcUaDevice):
    """One heated zone: ``Furnace.Zones.Zone<i>``."""

    process_value: A[
        OpcUaR[float], Node("ProcessValue", units="degC"), Format.HINTED_UNCACHED_SIGNAL
    ]
    """Thermocouple reading, degC (NaN while the thermocouple is broken)."""
    setpoint: A[OpcUaRW[float], Node("Setpoint", TEMPERATURE), Format.UNCACHED_SIGNAL]
    """Target setpoint, degC (0 .. the lower of MaxTemperature and the lab limit)."""
    working_setpoint: A[
        OpcUaR[float], Node("WorkingSetpoint", units="degC"), Format.UNCACHED_SIGNAL
    ]
    """Ramp-limited setpoint the controller follows, degC."""
    output: A[OpcUaR[float], Node("Output", units="%"), Format.UNCACHED_SIGNAL]
    """Heater output, % (0 .. 100)."""
    thermocouple_broken: A[OpcUaR[bool], Node("ThermocoupleBroken"), Format.UNCACHED_SIGNAL]
    """Whether a thermocouple break was detected (output forced to 0)."""


class FurnaceIdentity(StandardReadable, OpcUaDevice):
    """``Furnace.Identity``: manufacturer, model, serial number, firmware (configuration)."""

    manufacturer: A[OpcUaR[str], Node("Manufacturer"), Format.CONFIG_SIGNAL]
    model: A[OpcUaR[str], Node("Model"), Format.CONFIG_SIGNAL]
    serial_number: A[OpcUaR[str], Node("SerialNumber"), Format.CONFIG_SIGNAL]
    firmware_version: A[OpcUaR[str], Node("FirmwareVersion"), Format.CONFIG_SIGNAL]


class FurnaceProgrammer(StandardReadable, OpcUaDevice):
    """``Furnace.Program``: the instrument's ramp/dwell programmer."""

    state: A[OpcUaR[ProgramState], Node("State"), Format.UNCACHED_SIGNAL]
    segment: A[OpcUaR[int], Node("Segment"), Format.UNCACHED_SIGNAL]
    """Current segment index (-1 when idle)."""
    segment_count: A[OpcUaR[int], Node("SegmentCount"), Format.UNCACHED_SIGNAL]
    remaining: A[OpcUaR[float], Node("Remaining", units="s"), Format.UNCACHED_SIGNAL]
    """Instrument time left in the program, s."""
    load_cmd: A[LoadCommand, Node("Load")]
    """Load segments: targets (S x N, degC), rates (K/min), dwells (s)."""
    start_cmd: A[TriggerableCommand, Node("Start")]
    hold_cmd: A[TriggerableCommand, Node("Hold")]
    resume_cmd: A[TriggerableCommand, Node("Resume")]
    abort_cmd: A[TriggerableCommand, Node("Abort")]


class FurnaceInterlock(StandardReadable, OpcUaDevice):
    """``Furnace.Interlock``: the latched over-temperature interlock."""

    tripped: A[OpcUaR[bool], Node("Tripped"), Format.UNCACHED_SIGNAL]
    reason: A[OpcUaR[str], Node("Reason"), Format.UNCACHED_SIGNAL]
    limit: A[OpcUaRW[float], Node("Limit", TEMPERATURE), Format.CONFIG_SIGNAL]
    """Over-temperature limit, degC (writes capped by the lab limit too)."""
    reset_cmd: A[TriggerableCommand, Node("Reset")]
    """Clear the latch (refused while a zone is at or above the limit)."""


class FurnaceWatchdog(OpcUaDevice):
    """``Furnace.Watchdog``: standby when the client goes silent (not read with events)."""

    timeout: A[OpcUaRW[float], Node("Timeout", WATCHDOG_TIMEOUT)]
    """Wall seconds without a request before standby, s (0 = off, up to 3600)."""
    expired: A[OpcUaR[bool], Node("Expired")]
    reason: A[OpcUaR[str], Node("Reason")]
    reset_cmd: A[TriggerableCommand, Node("Reset")]


class FurnaceCarrier(StandardReadable, OpcUaDevice):
    """``Furnace.Carrier``: its offset along the tube, its slot count and slot 1's coupon.

    Each slot's coupon is the furnace's ``slots[k].coupon_id`` (``Carrier.Slot<k>.CouponId``);
    ``coupon_id`` is slot 1's (``Carrier.CouponId``, the same variable).
    """

    coupon_id: A[OpcUaRW[str], Node("CouponId", COUPON_ID), Format.CONFIG_SIGNAL]
    """Coupon in slot 1 ("" = empty; in the configuration as before slots existed)."""
    offset: A[OpcUaRW[float], Node("Offset", POSITION), Format.CONFIG_SIGNAL]
    """Position of the coupons' start along the tube, mm (0 .. TubeLength), every slot."""
    num_slots: A[OpcUaR[int], Node("NumSlots"), Format.CONFIG_SIGNAL]
    """Number of carrier slots N (1 .. 16)."""


class CarrierSlot(StandardReadable, OpcUaDevice):
    """``Furnace.Carrier.Slot<k>``: the coupon in one carrier slot."""

    coupon_id: A[OpcUaRW[str], Node("CouponId", COUPON_ID)]
    """Coupon in the slot ("" = empty)."""


class FurnaceClock(StandardReadable, OpcUaDevice):
    """``Furnace.Clock``: the instrument's clock (virtual time on a twin).

    ``set(t)`` returns a status that completes once the clock reads at least ``t`` s (and
    fails if the interlock trips meanwhile): a plan waits with ``bps.mv(furnace.clock, t)``.
    """

    sim_time: A[OpcUaR[float], Node("SimTime", units="s"), Format.HINTED_UNCACHED_SIGNAL]
    speed_up: A[OpcUaR[float], Node("SpeedUp"), Format.CONFIG_SIGNAL]
    """Virtual s per wall s (1 on hardware)."""

    def __init__(self, name: str = "", connector: OpcUaDeviceConnector | None = None) -> None:
        self.waiter: Callable[[QuantityLike], AsyncStatus[None]] | None = None
        """The furnace's ``wait_until`` (set by the furnace)."""
        self.target_s: float | None = None
        super().__init__(name=name, connector=connector)

    def set(self, value: QuantityLike) -> AsyncStatus[None]:
        """Return a status done when the clock reaches ``value`` (s, or ``"2 h"``)."""
        if self.waiter is None:
            raise InputError(self.name, "this clock belongs to no furnace")
        status = self.waiter(value)
        with contextlib.suppress(InputError):
            self.target_s = to_magnitude(value, "s")
        return status

    async def locate(self) -> Location[float]:
        """Return the clock (readback, s) and the last time waited for (setpoint, s)."""
        now = await self.now()
        return Location(setpoint=now if self.target_s is None else self.target_s, readback=now)

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
            node = signal.source.partition("#")[2]
            backend = device.opcua.backends.get(node)
            if backend is not None and backend.expected_units:
                set_mock_units(signal, backend.expected_units)
        n = device.num_zones
        values: tuple[tuple[SignalR[Any], Any], ...] = (
            (device.zone_count, n),
            (device.zone_positions, (np.arange(n) + 0.5) * 300.0 / n),
            (device.tube_length, 300.0),
            (device.max_temperature, 1200.0),
            (device.standby_temperature, 25.0),
            (device.operating_state, FurnaceState.STANDBY),
            (device.profile, np.full(n, 25.0)),
            (device.setpoint_profile, np.full(n, 25.0)),
            (device.program.state, ProgramState.IDLE),
            (device.program.segment, -1),
            (device.carrier.num_slots, device.num_slots),
            (device.interlock.limit, 1225.0),
            (device.clock.speed_up, 1.0),
            (device.identity.manufacturer, "couponlab"),
            (device.identity.model, "mock gradient furnace"),
            (device.identity.serial_number, "MOCK-0"),
            (device.identity.firmware_version, "0"),
        )
        for signal, value in values:
            set_mock_value(signal, value)
        for zone in device.zones.values():
            for zone_signal in (zone.process_value, zone.setpoint, zone.working_setpoint):
                set_mock_value(zone_signal, 25.0)


def _signals(device: Device) -> Iterator[SignalR[Any]]:
    for _name, child in device.children():
        if isinstance(child, SignalR):
            yield child
        else:
            yield from _signals(child)


class OpcUaGradientFurnace(StandardReadable, OpcUaDevice):
    """A gradient tube furnace driven over OPC UA (one asyncua client per device).

    ``read()`` gives the whole profile (``profile``, degC, one array, ONE request), the
    setpoint profile (degC) and the instrument clock (s). Configuration: identity, zone
    count and positions (mm), tube length (mm), MaxTemperature (degC), ramp rate (K/min),
    interlock limit (degC), carrier offset (mm), slot count and each slot's coupon id,
    clock speed-up.

    Parameters
    ----------
    address
        ``opc.tcp://host:port`` of the furnace (or its twin).
    name
        Device name.
    zones
        Number of zones N expected (checked against ``NumZones`` at connect; 1 .. 32).
    max_temperature
        Lab limit on any setpoint and on the interlock limit (absolute temperature; degC
        if a bare number); the lower of this and the instrument's ``MaxTemperature`` applies.
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
        every quarter of it. 10 s suits a lab.
    max_wait
        Longest wait for the instrument clock, s of instrument time (> 0; 1e7 s = 116 d).
    carrier_slots
        Number of carrier slots N expected (checked against ``Carrier.NumSlots`` at connect;
        1 .. 16).
    security
        Basic256Sha256 SignAndEncrypt with certificates and a user (None: NoSecurity,
        anonymous); its client certificate is made now if missing.
    """

    profile: A[OpcUaR[Float64Array], Node("Profile", units="degC"), Format.HINTED_UNCACHED_SIGNAL]
    """Process value of every zone, degC (one request)."""
    setpoint_profile: A[
        OpcUaRW[Float64Array], Node("SetpointProfile", TEMPERATURE), Format.UNCACHED_SIGNAL
    ]
    """Target setpoint of every zone, degC (N values, each within the lab limit)."""
    operating_state: A[OpcUaR[FurnaceState], Node("State"), Format.UNCACHED_SIGNAL]
    zone_count: A[OpcUaR[int], Node("NumZones"), Format.CONFIG_SIGNAL]
    zone_positions: A[
        OpcUaR[Float64Array], Node("ZonePositions", units="mm"), Format.CONFIG_SIGNAL
    ]
    tube_length: A[OpcUaR[float], Node("TubeLength", units="mm"), Format.CONFIG_SIGNAL]
    max_temperature: A[OpcUaR[float], Node("MaxTemperature", units="degC"), Format.CONFIG_SIGNAL]
    standby_temperature: A[
        OpcUaR[float], Node("StandbyTemperature", units="degC"), Format.CONFIG_SIGNAL
    ]
    ramp_rate: A[OpcUaRW[float], Node("RampRate", RAMP_RATE), Format.CONFIG_SIGNAL]
    """Setpoint ramp limit of every zone, K/min (> 0: 0, "unlimited", is never sent)."""
    identity: A[FurnaceIdentity, Node("Identity."), Format.CHILD]
    interlock: A[FurnaceInterlock, Node("Interlock."), Format.CHILD]
    carrier: A[FurnaceCarrier, Node("Carrier."), Format.CHILD]
    clock: A[FurnaceClock, Node("Clock."), Format.CHILD]
    program: A[FurnaceProgrammer, Node("Program.")]
    watchdog: A[FurnaceWatchdog, Node("Watchdog.")]
    standby_cmd: A[TriggerableCommand, Node("Standby")]
    """Abort any program, every setpoint to StandbyTemperature."""

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
        carrier_slots: int = 1,
        security: ClientSecurity | None = None,
    ) -> None:
        label = name or "furnace"
        if not (math.isfinite(max_wait) and max_wait > 0):
            raise InputError(label, f"max_wait = {max_wait} s must be a finite time > 0")
        if not (math.isfinite(watchdog) and 0.0 <= watchdog <= 3600.0):
            raise InputError(label, f"watchdog = {watchdog} s must be in [0, 3600] (0 = off)")
        if isinstance(zones, bool) or not isinstance(zones, int) or not 1 <= zones <= 32:
            raise InputError(label, f"zones = {zones!r} must be an integer in [1, 32]")
        if (
            isinstance(carrier_slots, bool)
            or not isinstance(carrier_slots, int)
            or not 1 <= carrier_slots <= 16
        ):
            raise InputError(
                label, f"carrier_slots = {carrier_slots!r} must be an integer in [1, 16]"
            )
        if not 0.005 <= poll_period <= 5.0:
            raise InputError(label, f"poll_period = {poll_period} s must be in [0.005, 5]")
        self.address = address
        self.lab_max_temperature_c = lab_max_temperature(max_temperature, label)
        self.poll_period = poll_period
        self.max_wait_s = float(max_wait)
        """Longest wait for the instrument clock, s of instrument time."""
        self.num_zones = zones
        """The number of zones N."""
        self.watchdog_s = float(watchdog)
        """Communication watchdog armed at connect, s (0 = off)."""
        if security is not None:
            security.prepare()
        self.connection = OpcUaConnection(
            label, address, namespace_uri, timeout=timeout, backoff=backoff, security=security
        )
        self.opcua = OpcUaDeviceConnector(
            self.connection, "Furnace.", {"max_temperature": self.lab_max_temperature_c}
        )
        """Fills the declarations; reads several signals in one request (``opcua.read``)."""
        self.logic = FurnaceLogic(self)
        """Gradients, programs, the carrier and clock waits."""
        self.keepalive = KeepAlive(label, self._feed_watchdog, max(self.watchdog_s / 4, 0.01))
        """Feeds the watchdog while connected (runs only when ``watchdog_s`` > 0)."""
        self.mocked = False
        self.zones: DeviceVector[FurnaceZone] = DeviceVector(
            {
                i: FurnaceZone(connector=self.opcua.child(f"Zones.Zone{i}."))
                for i in range(1, zones + 1)
            }
        )
        self.num_slots = carrier_slots
        """The number of carrier slots N."""
        self.slots: DeviceVector[CarrierSlot] = DeviceVector(
            {
                k: CarrierSlot(connector=self.opcua.child(f"Carrier.Slot{k}."))
                for k in range(1, carrier_slots + 1)
            }
        )
        """Carrier slot k (1..N): ``slots[k].coupon_id``."""
        super().__init__(name=name, connector=self.opcua)
        self.add_readables([slot.coupon_id for slot in self.slots.values()], Format.CONFIG_SIGNAL)
        self.clock.waiter = self.wait_until

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def from_lab_entry(cls, entry: DeviceEntry) -> OpcUaGradientFurnace:
        """Build the device of a lab-file entry.

        :class:`FurnaceSettings` (``zones``, ``timeout_s``, ``poll_period_s``,
        ``namespace_uri``, ``watchdog_s``, ``carrier_slots``, ``security``) and
        :class:`FurnaceLabLimits` (``max_temperature``) refuse unknown keys.
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
            carrier_slots=s.carrier_slots,
            security=s.security.client_security() if s.security is not None else None,
        )

    async def connect(
        self,
        mock: bool | DeviceMock[Any] = False,
        timeout: float = DEFAULT_TIMEOUT,
        force_reconnect: bool = False,
    ) -> None:
        """Connect every signal over one client (or in mock mode); check the zone and slot
        counts.

        Raises
        ------
        ProtocolError
            The server has another number of zones or carrier slots, or a node's unit
            differs from the one this driver expects.
        """
        self.logic.limits_cache = None
        self.mocked = bool(mock)
        if mock:
            await super().connect(mock=mock, timeout=timeout, force_reconnect=force_reconnect)
            return
        try:
            await self._connect_real(timeout, force_reconnect)
        except BaseException:
            await self.disconnect()  # a failed connect leaves no client (or task) behind
            raise

    async def _connect_real(self, timeout: float, force_reconnect: bool) -> None:
        await self.connection.connect()  # (re)opens the client, also after disconnect()
        await super().connect(timeout=timeout, force_reconnect=force_reconnect)
        n, slots = await self.opcua.read(self.zone_count, self.carrier.num_slots)
        if n != self.num_zones:
            raise ProtocolError(
                self.name, f"instrument has {n} zones; the lab file says {self.num_zones}"
            )
        if slots != self.num_slots:
            raise ProtocolError(
                self.name,
                f"instrument's carrier has {slots} slots; the lab file says {self.num_slots}",
            )
        if self.watchdog_s > 0:
            await self.watchdog.timeout.set(self.watchdog_s)
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
        value = await self.watchdog.timeout.get_value()
        if abs(value - self.watchdog_s) > 1e-6:
            log.warning(
                "%s: watchdog timeout was %r, re-arming at %g s", self.name, value, self.watchdog_s
            )
            await self.watchdog.timeout.set(self.watchdog_s)

    # -- communication watchdog ------------------------------------------------------------
    @typed_errors
    async def watchdog_status(self) -> tuple[float, bool, str]:
        """Return the instrument's watchdog: (timeout s (0 = off), expired, reason).

        ``expired`` is latched when the watchdog sent the furnace to standby, until
        :meth:`reset_watchdog`. One request.
        """
        w = self.watchdog
        timeout, expired, reason = await self.opcua.read(w.timeout, w.expired, w.reason)
        return float(timeout), bool(expired), str(reason)

    @typed_errors
    async def reset_watchdog(self) -> None:
        """Clear the latched watchdog indication (the watchdog stays armed)."""
        await self.watchdog.reset_cmd.trigger()

    # -- LabDevice -------------------------------------------------------------------------
    @typed_errors
    async def identify(self) -> str:
        """Return ``"manufacturer, model, serial, firmware"`` (one request)."""
        i = self.identity
        values = await self.opcua.read(
            i.manufacturer, i.model, i.serial_number, i.firmware_version
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
            self.logic.note_stop()

    # -- pause and resume (bluesky Pausable: the RunEngine calls them on a pause) -------------
    _held_by_pause = False
    """True while a program is held by :meth:`pause` (only such a hold is resumed)."""

    @typed_errors
    async def pause(self) -> None:
        """Hold a running program (``Furnace.Program.Hold()``): the working setpoints and the
        dwell timer freeze, the zones keep their temperature. Without a running program this
        does nothing (a furnace ramping to or at a gradient keeps it)."""
        if await self.program.state.get_value() != ProgramState.RUNNING:
            return
        try:
            await self.program.hold_cmd.trigger()
        except OpcUaStatusError:  # the program ended between the read and the call
            if await self.program.state.get_value() == ProgramState.RUNNING:
                raise
            return
        self._held_by_pause = True

    @typed_errors
    async def resume(self) -> None:
        """Resume a program that :meth:`pause` held (``Furnace.Program.Resume()``); a program
        held by anyone else, or none, is left as it is."""
        if not self._held_by_pause:
            return
        self._held_by_pause = False
        if await self.program.state.get_value() == ProgramState.HELD:
            await self.program.resume_cmd.trigger()

    @typed_errors
    async def limits(self) -> FurnaceLimits:
        """Return what the instrument and the lab file allow (read once per connection)."""
        return await self.logic.limits(cache=not self.mocked)

    # -- actions ---------------------------------------------------------------------------
    def set(self, value: FurnaceRequest | object) -> AsyncStatus[None]:
        """Start a request; the status says when it is done.

        - :class:`GradientSetpoint`: ramp to the gradient; done when every zone is within
          tolerance of its setpoint.
        - :class:`FurnaceProgram`: load and start the program; done when it completes.
        - :class:`CouponPlacement`: put a coupon in a carrier slot (or empty it).

        Input is validated (units, limits, shape) before anything is written; a refusal
        fails the status with an :class:`~couponlab.errors.InputError`.
        """
        return ProgressStatus(self._do(value), name=self.name)

    @typed_errors
    async def _do(self, value: object) -> None:
        if isinstance(value, GradientSetpoint):
            return await self.logic.gradient(value, await self.limits())
        if isinstance(value, FurnaceProgram):
            return await self.logic.program(value, await self.limits())
        if isinstance(value, CouponPlacement):
            return await self.logic.place(value, await self.limits())
        raise InputError(
            self.name,
            f"cannot set a furnace to {reprlib.repr(value)}: give a GradientSetpoint, "
            f"FurnaceProgram or CouponPlacement",
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
        """Ramp to a linear gradient (hot/cold degC at positions mm, ramp K/min > 0); the
        status completes when every zone is within ``tolerance`` (K) of its setpoint."""
        return self.set(
            GradientSetpoint(hot, cold, hot_position, cold_position, ramp_rate, tolerance)
        )

    def run_program(
        self, segments: Sequence[ProgramSegment] | FurnaceProgram
    ) -> AsyncStatus[None]:
        """Load and start a ramp/dwell program (at most 64 segments); the status completes
        when it ends."""
        if isinstance(segments, FurnaceProgram):
            return self.set(segments)
        return ProgressStatus(self._run_segments(segments), name=self.name)

    @typed_errors
    async def _run_segments(self, value: object) -> None:
        if isinstance(value, str | bytes) or not isinstance(value, Sequence):
            raise InputError(
                self.name,
                f"a program is a sequence of ProgramSegment or a FurnaceProgram, got "
                f"{reprlib.repr(value)}",
            )
        if len(value) > MAX_SEGMENTS:  # refused before anything copies it
            raise InputError(
                self.name,
                f"a program of {len(value)} segments: the instrument takes at most {MAX_SEGMENTS}",
            )
        await self.logic.program(FurnaceProgram(tuple(value)), await self.limits())

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
        return ProgressStatus(typed_errors(self.logic.wait_until)(sim_time), name=self.name)

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
        pv, sp, t = await self.opcua.read(self.profile, self.setpoint_profile, self.clock.sim_time)
        return FurnaceProfile(
            positions_mm=limits.zone_positions_mm.copy(),
            temperatures_c=np.asarray(pv, dtype=float),
            setpoints_c=np.asarray(sp, dtype=float),
            sim_time_s=float(t),
        )


__all__ = [
    "NAMESPACE_URI",
    "CarrierSlot",
    "FurnaceCarrier",
    "FurnaceClock",
    "FurnaceIdentity",
    "FurnaceInterlock",
    "FurnaceProgrammer",
    "FurnaceState",
    "FurnaceWatchdog",
    "FurnaceZone",
    "OpcUaGradientFurnace",
    "ProgramState",
]
