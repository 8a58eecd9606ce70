"""The furnace twin's OPC UA server (asyncua), per ``docs/protocols/furnace-opcua.md``.

Node ids are string ids equal to the browse path (``ns=<i>;s=Furnace.Zones.Zone1.Setpoint``)
in the namespace ``urn:couponlab:gradient-furnace``. Values are kept fresh two ways:

* before every Read request (asyncua's ``PreRead`` server callback) the world is synced to
  "now" and changed values are written into the address space, so a read reflects the model
  at the moment of the request;
* a publish task does the same every ``publish_period_s`` of wall time, so subscriptions see
  changes without anyone reading.

Every request that touches a furnace node (a read, a write, a method call) feeds the
communication watchdog (:class:`~couponlab.simulators.watchdog.CommWatchdog`, wall time):
when it is armed (``Furnace.Watchdog.Timeout`` > 0) and no such request arrives for the
timeout while the furnace is out of standby, the furnace goes to standby and latches
``Furnace.Watchdog.Expired`` / ``Reason``. Requests to namespace 0 only (asyncua's own
session keep-alive reads of the server status) do not feed it: it watches the controlling
application, not the client library.

Client writes go through :class:`_FurnaceAttributeService`, which validates each write to a
furnace node and acts on the model at once, returning a per-node status code (Bad codes leave
everything unchanged). Methods return Bad status codes the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import math
import socket
from collections.abc import Callable, Iterator
from datetime import UTC
from typing import Any

import numpy as np
from asyncua import ua
from asyncua.common.callback import CallbackType, ServerItemCallback
from asyncua.common.node import Node
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.address_space import AddressSpace, AttributeService
from asyncua.server.server import Server
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes

from couponlab.simulators.furnace.model import CommandRefusedError, FurnaceModel
from couponlab.simulators.furnace.units import eu_information
from couponlab.simulators.opcua_security import ServerSecurity
from couponlab.simulators.watchdog import MAX_TIMEOUT_S, CommWatchdog
from couponlab.simulators.world import World

log = logging.getLogger(__name__)

NAMESPACE_URI = "urn:couponlab:gradient-furnace"
"""Namespace of every furnace node (its index is looked up by URI, never hard-coded)."""

WriteHandler = Callable[[ua.Variant], None]
"""Applies a client's write to the model; raises :class:`CommandRefusedError` (nothing changed)."""
MethodHandler = Callable[[list[ua.Variant]], None]
Getter = Callable[[], Any]

_V = ua.VariantType
_ADMIN = User(role=UserRole.Admin)


def _status(name: str) -> ua.StatusCode:
    return ua.StatusCode(getattr(StatusCodes, name))


def _ns0(identifier: int) -> ua.NodeId:
    return ua.NodeId(ua.Int32(identifier), ua.Int16(0))


def _float_list(values: Any) -> list[float]:
    return [float(v) for v in np.asarray(values, dtype=float)]


def _same(a: Any, b: Any) -> bool:
    """Compare published values, NaN equal to NaN."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


def _scalar(variant: ua.Variant, vtype: ua.VariantType) -> Any:
    if variant.VariantType != vtype or variant.is_array:
        raise CommandRefusedError("BadTypeMismatch", f"expected a scalar {vtype.name}")
    return variant.Value


def _double_array(variant: ua.Variant) -> list[float]:
    if variant.VariantType == _V.Null or (variant.Value is None and variant.is_array):
        return []
    if variant.VariantType != _V.Double or not variant.is_array:
        raise CommandRefusedError("BadTypeMismatch", "expected an array of Double")
    return [float(v) for v in variant.Value]


@contextlib.contextmanager
def collection_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for a block (if it was on; restored after).

    asyncua builds the OPC UA standard address space (about 6,200 nodes, 1.5 s of CPU) in
    ``Server.init``. Every object it makes lives as long as the server, yet while it is being
    built the collector ran full collections over the whole heap again and again: 0.6 s more
    in a twin process, more in a test process with a large heap (decision 0073).
    """
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


class _FurnaceAttributeService(AttributeService):
    """Routes Value writes to furnace nodes through validating handlers.

    A furnace node without a handler is read-only (``BadNotWritable``); any other attribute
    of a furnace node is refused (``BadUserAccessDenied``). Nodes of other namespaces are
    handled by asyncua as usual.
    """

    def __init__(self, aspace: AddressSpace, twin: FurnaceServer) -> None:
        super().__init__(aspace)
        self._twin = twin

    async def write(self, params: ua.WriteParameters, user: User = _ADMIN) -> list[ua.StatusCode]:
        results: list[ua.StatusCode] = []
        ns = self._twin.ns
        for wv in params.NodesToWrite:
            if wv.NodeId.NamespaceIndex != ns:
                one = ua.WriteParameters(NodesToWrite=[wv])
                results.extend(await super().write(one, user))
                continue
            self._twin.watchdog.feed()
            if getattr(user, "lab_role", "operator") != "operator":  # RolePermissions too
                results.append(_status("BadUserAccessDenied"))
                continue
            if wv.AttributeId != AttributeIds.Value:
                results.append(_status("BadUserAccessDenied"))
                continue
            handler = self._twin.write_handlers.get(wv.NodeId)
            if handler is None:
                results.append(_status("BadNotWritable"))
                continue
            if wv.IndexRange:  # partial writes of arrays are not supported
                results.append(_status("BadWriteNotSupported"))
                continue
            results.append(await self._twin.apply(functools.partial(handler, wv.Value.Value)))
        return results


class FurnaceServer:
    """Serve one :class:`FurnaceModel` over OPC UA.

    Parameters
    ----------
    world
        The shared world (synced before every request).
    model
        The furnace.
    host, port
        Where to listen (127.0.0.1; port 0 picks a free port, see :attr:`port`).
    publish_period_s
        Wall-clock period of the background publish (for subscriptions), s (> 0).
    security
        Endpoint security, accounts and roles (default: NoSecurity, anonymous operators).
    """

    def __init__(
        self,
        world: World,
        model: FurnaceModel,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        publish_period_s: float = 0.05,
        security: ServerSecurity | None = None,
    ) -> None:
        if publish_period_s <= 0:
            raise ValueError(f"publish_period_s must be > 0, got {publish_period_s}")
        self.world = world
        self.model = model
        self.host = host
        self.port = port
        self.publish_period_s = publish_period_s
        self.security = security or ServerSecurity.open()
        self.ns = 0
        self.server: Server | None = None
        self.write_handlers: dict[ua.NodeId, WriteHandler] = {}
        self._dynamic: list[tuple[ua.NodeId, Getter, ua.VariantType]] = []
        self._clock: list[tuple[ua.NodeId, Getter, ua.VariantType]] = []
        self._last: dict[ua.NodeId, Any] = {}
        self._version: tuple[int, int] = (-1, -1)
        self._publisher: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.watchdog = CommWatchdog(
            lambda: self.model.active,
            self._watchdog_trip,
            timeout_s=model.config.watchdog_timeout_s,
        )

    @property
    def address(self) -> str:
        """Return the endpoint URL with the real port."""
        return f"opc.tcp://{self.host}:{self.port}"

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        """Build the address space and start listening."""
        last_error: OSError | None = None
        for _ in range(5):
            port = self.port or _free_port(self.host)
            server = Server()
            with collection_paused():
                await server.init()
            server.set_endpoint(f"opc.tcp://{self.host}:{port}/")
            server.set_server_name("couponlab gradient furnace twin")
            await self.security.apply(server)
            self.server = server
            self.ns = await server.register_namespace(NAMESPACE_URI)
            await self._build(server)
            server.iserver.attribute_service = _FurnaceAttributeService(
                server.iserver.aspace, self
            )
            server.subscribe_server_callback(CallbackType.PreRead, self._pre_read)
            await self.publish(force=True)
            try:
                await server.start()
            except OSError as exc:  # a port picked as free was taken meanwhile
                last_error = exc
                with contextlib.suppress(Exception):
                    await server.stop()
                if self.port:
                    raise
                continue
            self.port = port
            self._publisher = asyncio.create_task(self._publish_loop(), name="furnace-publish")
            self.watchdog.start()
            return
        raise OSError(f"could not bind a free port on {self.host}") from last_error

    async def stop(self) -> None:
        """Stop watching, publishing and serving (idempotent)."""
        await self.watchdog.stop()
        if self._publisher is not None:
            self._publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._publisher
            self._publisher = None
        if self.server is not None:
            server, self.server = self.server, None
            server.unsubscribe_server_callback(CallbackType.PreRead, self._pre_read)
            # asyncua's stop waits up to 1 s for its once-a-second clock task: cancel it
            clock = getattr(server.iserver, "time_task", None)
            if isinstance(clock, asyncio.Task) and not clock.done():
                clock.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await clock
                server.iserver.time_task = None
            await server.stop()

    # -- freshness --------------------------------------------------------------------------
    async def _pre_read(self, event: ServerItemCallback, _dispatcher: Any) -> None:
        params = event.request_params
        nodes = getattr(params, "NodesToRead", None) or []
        if any(r.NodeId.NamespaceIndex == self.ns for r in nodes):
            self.watchdog.feed()
            await self.publish()

    async def _publish_loop(self) -> None:
        while True:
            await asyncio.sleep(self.publish_period_s)
            try:
                await self.publish()
            except Exception:  # keep serving; a failing publish is logged, not fatal
                log.exception("furnace publish failed")

    async def publish(self, *, force: bool = False) -> None:
        """Sync the world to now and write every changed value into the address space.

        Between controller periods only the clock nodes can change, so only they are looked
        at; ``force`` writes every node whether it changed or not.
        """
        if self.server is None:
            return
        async with self._lock:
            self.world.sync()
            version = (self.model.ticks, self.model.revision)
            nodes = self._clock
            if force or version != self._version:
                nodes = self._clock + self._dynamic
                self._version = version
            aspace = self.server.iserver.aspace
            stamp = ua.DateTime.now(UTC)  # OPC UA timestamps are wall-clock UTC
            for nid, getter, vtype in nodes:
                value = getter()
                if not force and nid in self._last and _same(self._last[nid], value):
                    continue
                self._last[nid] = value
                dv = ua.DataValue(
                    ua.Variant(value, vtype), SourceTimestamp=stamp, ServerTimestamp=stamp
                )
                await aspace.write_attribute_value(nid, AttributeIds.Value, dv)

    async def apply(self, action: Callable[[], None]) -> ua.StatusCode:
        """Run a client command on the model at "now"; return its status; publish after."""
        self.world.sync()
        try:
            action()
        except CommandRefusedError as exc:
            log.info("furnace refused a command: %s", exc)
            return _status(exc.status)
        await self.publish()
        return ua.StatusCode()

    async def _watchdog_trip(self, reason: str) -> None:
        """The client went silent: standby and latch ``reason`` (if still active at "now")."""

        def expire() -> None:
            if self.model.active:
                self.model.watchdog_expire(reason)

        await self.apply(expire)

    def _set_watchdog_timeout(self, variant: ua.Variant) -> None:
        value = float(_scalar(variant, _V.Double))
        try:
            self.watchdog.set_timeout(value)
        except ValueError as exc:
            raise CommandRefusedError("BadOutOfRange", str(exc)) from None
        self._version = (-1, -1)  # not a model change: republish the nodes anyway

    # -- the address space ------------------------------------------------------------------
    def nid(self, path: str) -> ua.NodeId:
        """Return the node id of a browse path such as ``"Furnace.State"``."""
        return ua.NodeId(ua.String(path), ua.Int16(self.ns))

    async def _build(self, server: Server) -> None:
        m, cfg = self.model, self.model.config
        n = cfg.zones
        objects = server.nodes.objects
        furnace = await objects.add_object(
            self.nid("Furnace"), ua.QualifiedName("Furnace", self.ns)
        )
        t_range = (0.0, cfg.max_temperature_c)
        pv_range = (0.0, cfg.interlock_limit_max_c)

        ident = await self._obj(furnace, "Furnace.Identity")
        for name, value in (
            ("Manufacturer", cfg.manufacturer),
            ("Model", cfg.model),
            ("SerialNumber", cfg.serial_number),
            ("FirmwareVersion", cfg.firmware_version),
        ):
            await self._var(ident, f"Furnace.Identity.{name}", value, _V.String)
        await self._var(furnace, "Furnace.NumZones", n, _V.UInt32)
        await self._var(
            furnace, "Furnace.TubeLength", cfg.length_mm, _V.Double, "mm", (0, cfg.length_mm)
        )
        await self._var(
            furnace,
            "Furnace.ZonePositions",
            _float_list(m.positions_mm),
            _V.Double,
            "mm",
            (0, cfg.length_mm),
        )
        await self._var(
            furnace, "Furnace.MaxTemperature", cfg.max_temperature_c, _V.Double, "degC", t_range
        )
        await self._var(
            furnace,
            "Furnace.StandbyTemperature",
            cfg.standby_temperature_c,
            _V.Double,
            "degC",
            t_range,
        )
        await self._var(furnace, "Furnace.State", lambda: m.state, _V.String)
        await self._var(
            furnace,
            "Furnace.Profile",
            lambda: _float_list(m.pv_c),
            _V.Double,
            "degC",
            pv_range,
        )
        await self._var(
            furnace,
            "Furnace.SetpointProfile",
            lambda: _float_list(m.target_c),
            _V.Double,
            "degC",
            t_range,
            write=lambda v: m.set_setpoints(_double_array(v)),
        )
        await self._var(
            furnace,
            "Furnace.RampRate",
            lambda: m.ramp_rate_k_per_min,
            _V.Double,
            "K/min",
            (0, cfg.max_ramp_rate_k_per_min),
            write=lambda v: m.set_ramp_rate(_scalar(v, _V.Double)),
        )
        await self._method(furnace, "Furnace.Standby", [], lambda args: m.standby())

        zones = await self._obj(furnace, "Furnace.Zones")
        for i in range(n):
            p = f"Furnace.Zones.Zone{i + 1}"
            zone = await self._obj(zones, p)
            await self._var(
                zone, f"{p}.ProcessValue", _item(m, "pv_c", i), _V.Double, "degC", pv_range
            )
            await self._var(
                zone,
                f"{p}.Setpoint",
                _item(m, "target_c", i),
                _V.Double,
                "degC",
                t_range,
                write=functools.partial(_write_zone_setpoint, m, i),
            )
            await self._var(
                zone, f"{p}.WorkingSetpoint", _item(m, "working_c", i), _V.Double, "degC", t_range
            )
            await self._var(zone, f"{p}.Output", _item(m, "output", i), _V.Double, "%", (0, 100))
            await self._var(
                zone, f"{p}.ThermocoupleBroken", lambda i=i: bool(m.tc_broken[i]), _V.Boolean
            )

        prog = await self._obj(furnace, "Furnace.Program")
        await self._method(
            prog,
            "Furnace.Program.Load",
            [
                ("targets", "zone targets, degC: segment k's N targets at [k*N, (k+1)*N)"),
                ("rates", "ramp rate of each segment, K/min (> 0)"),
                ("dwells", "dwell of each segment after its ramp ends, s (>= 0)"),
            ],
            lambda args: m.load_program(*(_double_array(a) for a in args)),
        )
        await self._method(prog, "Furnace.Program.Start", [], lambda args: m.start_program())
        await self._method(prog, "Furnace.Program.Hold", [], lambda args: m.hold())
        await self._method(prog, "Furnace.Program.Resume", [], lambda args: m.resume())
        await self._method(prog, "Furnace.Program.Abort", [], lambda args: m.abort())
        await self._var(prog, "Furnace.Program.State", lambda: m.program_state.value, _V.String)
        await self._var(prog, "Furnace.Program.Segment", lambda: m.segment, _V.Int32)
        await self._var(prog, "Furnace.Program.SegmentCount", lambda: len(m.segments), _V.Int32)
        await self._var(prog, "Furnace.Program.Remaining", m.remaining_s, _V.Double, "s", (0, 1e9))

        lock = await self._obj(furnace, "Furnace.Interlock")
        await self._var(
            lock,
            "Furnace.Interlock.Limit",
            lambda: m.interlock_limit_c,
            _V.Double,
            "degC",
            (0, cfg.interlock_limit_max_c),
            write=lambda v: m.set_interlock_limit(_scalar(v, _V.Double)),
        )
        await self._var(lock, "Furnace.Interlock.Tripped", lambda: m.tripped, _V.Boolean)
        await self._var(lock, "Furnace.Interlock.Reason", lambda: m.trip_reason, _V.String)
        await self._method(lock, "Furnace.Interlock.Reset", [], lambda args: m.reset_interlock())

        dog = await self._obj(furnace, "Furnace.Watchdog")
        await self._var(
            dog,
            "Furnace.Watchdog.Timeout",
            lambda: self.watchdog.timeout_s,
            _V.Double,
            "s",
            (0, MAX_TIMEOUT_S),
            write=self._set_watchdog_timeout,
        )
        await self._var(dog, "Furnace.Watchdog.Expired", lambda: m.watchdog_expired, _V.Boolean)
        await self._var(dog, "Furnace.Watchdog.Reason", lambda: m.watchdog_reason, _V.String)
        await self._method(dog, "Furnace.Watchdog.Reset", [], lambda args: m.reset_watchdog())

        carrier = await self._obj(furnace, "Furnace.Carrier")
        await self._var(
            carrier,
            "Furnace.Carrier.CouponId",
            lambda: m.coupon_id,
            _V.String,
            write=lambda v: m.set_coupon(_scalar(v, _V.String) or ""),
        )
        await self._var(carrier, "Furnace.Carrier.NumSlots", lambda: len(m.slots), _V.Int32)
        for k in range(1, len(m.slots) + 1):
            slot = await self._obj(carrier, f"Furnace.Carrier.Slot{k}")
            await self._var(
                slot,
                f"Furnace.Carrier.Slot{k}.CouponId",
                _slot(m, k),
                _V.String,
                write=functools.partial(_write_slot, m, k),
            )
        await self._var(
            carrier,
            "Furnace.Carrier.Offset",
            lambda: m.offset_mm,
            _V.Double,
            "mm",
            (0, cfg.length_mm),
            write=lambda v: m.set_offset(_scalar(v, _V.Double)),
        )

        clock = await self._obj(furnace, "Furnace.Clock")
        await self._var(
            clock,
            "Furnace.Clock.SimTime",
            lambda: self.world.now,
            _V.Double,
            "s",
            (0, 1e12),
            clock=True,
        )
        await self._var(
            clock,
            "Furnace.Clock.SpeedUp",
            lambda: self.world.speedup,
            _V.Double,
            "1",
            (0, 1e6),
            clock=True,
        )

    async def _obj(self, parent: Node, path: str) -> Node:
        name = path.rsplit(".", 1)[-1]
        return await parent.add_object(self.nid(path), ua.QualifiedName(name, self.ns))

    async def _var(
        self,
        parent: Node,
        path: str,
        value: Any,
        vtype: ua.VariantType,
        unit: str | None = None,
        eu_range: tuple[float, float] | None = None,
        *,
        write: WriteHandler | None = None,
        clock: bool = False,
    ) -> Node:
        """Add a variable; a callable ``value`` is a getter published on every change."""
        nid = self.nid(path)
        name = path.rsplit(".", 1)[-1]
        getter: Getter | None = value if callable(value) else None
        initial = getter() if getter is not None else value
        node = await parent.add_variable(
            nid, ua.QualifiedName(name, self.ns), ua.Variant(initial, vtype)
        )
        self._last[nid] = initial
        if getter is not None:
            (self._clock if clock else self._dynamic).append((nid, getter, vtype))
        if write is not None:
            await node.set_writable(True)
            self.write_handlers[nid] = write
        if unit is not None:
            await node.add_property(
                self.nid(f"{path}.EngineeringUnits"),
                ua.QualifiedName("EngineeringUnits", 0),
                ua.Variant(eu_information(unit), _V.ExtensionObject),
                datatype=_ns0(ObjectIds.EUInformation),
            )
        if eu_range is not None:
            await node.add_property(
                self.nid(f"{path}.EURange"),
                ua.QualifiedName("EURange", 0),
                ua.Variant(ua.Range(float(eu_range[0]), float(eu_range[1])), _V.ExtensionObject),
                datatype=_ns0(ObjectIds.Range),
            )
        return node

    async def _method(
        self,
        parent: Node,
        path: str,
        args: list[tuple[str, str]],
        handler: MethodHandler,
    ) -> Node:
        name = path.rsplit(".", 1)[-1]
        n_args = len(args)
        inargs = [
            ua.Argument(
                Name=a,
                DataType=_ns0(ObjectIds.Double),
                ValueRank=1,
                ArrayDimensions=[0],
                Description=ua.LocalizedText(desc),
            )
            for a, desc in args
        ]

        async def call(_parent: ua.NodeId, *variants: ua.Variant) -> ua.StatusCode | list[Any]:
            self.watchdog.feed()
            if len(variants) < n_args:
                return _status("BadArgumentsMissing")
            if len(variants) > n_args:
                return _status("BadTooManyArguments")
            status = await self.apply(lambda: handler(list(variants)))
            return status if status.is_bad() else []

        return await parent.add_method(
            self.nid(path), ua.QualifiedName(name, self.ns), call, inargs, []
        )


def _write_zone_setpoint(model: FurnaceModel, i: int, variant: ua.Variant) -> None:
    model.set_setpoint(i, _scalar(variant, _V.Double))


def _write_slot(model: FurnaceModel, slot: int, variant: ua.Variant) -> None:
    model.set_coupon(_scalar(variant, _V.String) or "", slot)


def _slot(model: FurnaceModel, slot: int) -> Getter:
    def get() -> str:
        return model.slots[slot - 1]

    return get


def _item(model: FurnaceModel, attr: str, i: int) -> Getter:
    def get() -> float:
        return float(getattr(model, attr)[i])

    return get


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


__all__ = ["NAMESPACE_URI", "FurnaceServer"]
