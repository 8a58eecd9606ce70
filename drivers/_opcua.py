"""Declarative OPC UA devices for ophyd-async: one connector for the OPC UA protocol.

A device declares each signal once, as a class annotation, with the variable it reads, its
value spec and its format hint, in the idiom of ophyd-async's EPICS and Tango connectors::

    class Zone(StandardReadable, OpcUaDevice):
        pv: A[OpcUaR[float], Node("ProcessValue", units="degC"), Format.HINTED_SIGNAL]
        setpoint: A[OpcUaRW[float], Node("Setpoint", TEMPERATURE), Format.UNCACHED_SIGNAL]

:class:`OpcUaDeviceConnector` fills the annotations at construction: each :class:`Node` path
is joined to the parent's prefix (``"Furnace.Zones.Zone1."``), every backend shares the
device's one :class:`~couponlab.transports.OpcUaConnection`, and a writable node's
:class:`~couponlab.values.ValueSpec` gets the lab-file limit it names. Every write (a ``set``
on any signal, whatever calls it) then passes through :meth:`OpcUaSignalBackend.validate`:
the spec converts and checks the value, narrowed at connect to the node's ``EURange``, and
refuses it with a typed error before a byte is sent.

:class:`OpcUaSignalBackend` reads the variable's ``EngineeringUnits`` and ``EURange`` into the
descriptor at connect and reads a value with ONE request; :class:`OpcUaMethodBackend` calls
one method; :meth:`OpcUaDeviceConnector.read` reads several signals of a device in ONE
request (one ``get_value`` each in mock mode).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, ParamSpec, TypeVar, cast, get_args, get_origin

import numpy as np
from asyncua import ua
from asyncua.client.client import Client
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds
from bluesky.protocols import Reading
from event_model import DataKey, Limits, LimitsRange
from ophyd_async.core import (
    AsyncStatus,
    CalculatableTimeout,
    Callback,
    CommandBackend,
    Device,
    DeviceConnector,
    DeviceFiller,
    DeviceMock,
    SignalBackend,
    SignalDatatypeT,
    SignalR,
    SignalRW,
    StrictEnum,
    make_datakey,
)

from couponlab.errors import InputError, OutOfLimitsError, ProtocolError
from couponlab.transports import OpcUaConnection
from couponlab.transports._opcua import check_good, source_timestamp
from couponlab.transports._opcua_units import same_unit, unit_from_eu
from couponlab.values import ValueSpec

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")

_NUMERIC_VARIANTS = {
    ua.VariantType.Double,
    ua.VariantType.Float,
    ua.VariantType.Int16,
    ua.VariantType.Int32,
    ua.VariantType.Int64,
    ua.VariantType.UInt16,
    ua.VariantType.UInt32,
    ua.VariantType.UInt64,
    ua.VariantType.Byte,
    ua.VariantType.SByte,
}


def _is_array_type(datatype: Any) -> bool:
    return get_origin(datatype) is np.ndarray


def _array_dtype(datatype: Any) -> np.dtype[Any]:
    # Array1D[np.float64] is np.ndarray[tuple[int], np.dtype[np.float64]]
    dtype_arg = get_args(datatype)[1]
    dtype: np.dtype[Any] = np.dtype(get_args(dtype_arg)[0])
    return dtype


class OpcUaSignalBackend(SignalBackend[SignalDatatypeT]):
    """A signal backed by one OPC UA variable, addressed by its string node id.

    Parameters
    ----------
    datatype
        ``float``, ``int``, ``bool``, ``str``, a ``StrictEnum`` subclass, or
        ``Array1D[np.float64]``.
    connection
        The device's shared connection.
    string_id
        The node's string id in the connection's namespace (``"Furnace.Profile"``).
    units
        The unit the driver expects (``"degC"``); the server's ``EngineeringUnits`` must name
        the same unit or :meth:`connect` fails. ``None``: accept whatever the server says.
    writable
        Whether :meth:`put` is allowed.
    spec
        How a written value is given and checked (unit, kind, range, lab limit already
        applied); at connect its range is narrowed to the node's ``EURange`` and, for an
        array, its size fixed to the node's. ``None``: the value is checked by type only.
    """

    def __init__(
        self,
        datatype: type[SignalDatatypeT],
        connection: OpcUaConnection,
        string_id: str,
        *,
        units: str | None = None,
        writable: bool = False,
        spec: ValueSpec | None = None,
    ) -> None:
        self.connection = connection
        self.spec = spec
        self._write_spec = spec
        self.string_id = string_id
        self.expected_units = units
        self.writable = writable
        self.units: str | None = None
        """The unit the server reported (after connect)."""
        self.limits: tuple[float, float] | None = None
        """``EURange`` (low, high) reported by the server (after connect)."""
        self._variant: ua.VariantType | None = None
        self._setpoint: SignalDatatypeT | None = None
        self._monitor: int | None = None
        self._nodeid: ua.NodeId | None = None
        self._generation = -1
        self._what_read = f"read {string_id}"
        self._enum: type[StrictEnum] | None = (
            datatype if isinstance(datatype, type) and issubclass(datatype, StrictEnum) else None
        )
        self._dtype = _array_dtype(datatype) if _is_array_type(datatype) else None
        self._shape: tuple[int, ...] | None = None
        self._datakey_value: SignalDatatypeT | None = None
        super().__init__(datatype)

    def address(
        self, string_id: str, *, spec: ValueSpec | None = None, units: str | None = None
    ) -> None:
        """Point the backend at a node (before connect); a ``spec`` makes it writable."""
        self.string_id = string_id
        self._what_read = f"read {string_id}"
        self.spec = self._write_spec = spec
        self.expected_units = spec.unit if spec is not None else units
        self.writable = spec is not None

    def value_of(self, dv: ua.DataValue) -> SignalDatatypeT:
        """Return the value of a DataValue of this node (typed errors for a bad one)."""
        return self._reading(dv)["value"]

    # -- metadata ------------------------------------------------------------------------
    def source(self, name: str, read: bool) -> str:
        """Return ``opc.tcp://host:port#StringId``."""
        return f"{self.connection.url}#{self.string_id}"

    async def connect(self, timeout: float) -> None:
        """Connect the shared client, then read the value, units and range (two requests).

        The two requests are bounded by the connect budget ``timeout`` (s), not by the link's
        reply timeout: a device connects all its signals at once, so the last of a furnace's
        ~90 connect requests queues behind the others at the server (on a busy machine for
        longer than one reply may take once connected)."""
        conn = self.connection
        budget = max(conn.timeout, timeout)
        await conn.connect()
        node = conn.node(self.string_id)

        async def browse_properties(client: Client) -> list[tuple[str, ua.NodeId]]:
            refs = await node.get_references(
                refs=ObjectIds.HasProperty, direction=ua.BrowseDirection.Forward
            )
            return [(ref.BrowseName.Name, ref.NodeId) for ref in refs]

        props = dict(
            await conn.request(
                f"browse {self.string_id}", browse_properties, idempotent=True, timeout=budget
            )
        )
        ids = [conn.node_id(self.string_id)]
        wanted = [n for n in ("EngineeringUnits", "EURange") if n in props]
        ids += [props[n] for n in wanted]

        async def read_all(client: Client) -> list[ua.DataValue]:
            return await client.uaclient.read_attributes(ids, AttributeIds.Value)

        values = await conn.request(
            f"read {self.string_id} and its units", read_all, idempotent=True, timeout=budget
        )
        check_good(conn.device, self._what_read, values[0])
        extra = dict(zip(wanted, values[1:], strict=True))
        variant = values[0].Value
        if variant is None:
            raise ProtocolError(conn.device, f"{self.string_id} has no value")
        self._variant = variant.VariantType
        value = self._convert(variant.Value)
        self._datakey_value = value
        if self._dtype is not None:
            self._shape = cast(np.ndarray, value).shape
        self.units = None
        if "EngineeringUnits" in extra and extra["EngineeringUnits"].Value is not None:
            eu = extra["EngineeringUnits"].Value.Value
            self.units = unit_from_eu(eu)
            if self.units is None:
                raise ProtocolError(
                    conn.device, f"{self.string_id}: unknown engineering unit {eu!r}"
                )
        if self.expected_units is not None:
            if self.units is None:
                raise ProtocolError(
                    conn.device,
                    f"{self.string_id} has no EngineeringUnits; expected {self.expected_units}",
                )
            if not same_unit(self.units, self.expected_units):
                raise ProtocolError(
                    conn.device,
                    f"{self.string_id} is in {self.units!r}; this driver expects "
                    f"{self.expected_units!r}",
                )
            self.units = self.expected_units
        self.limits = None
        if "EURange" in extra and extra["EURange"].Value is not None:
            rng = extra["EURange"].Value.Value
            self.limits = (float(rng.Low), float(rng.High))
        self._nodeid = ids[0]
        self._generation = conn.generation
        if self.spec is not None:
            spec = self.spec if self.limits is None else self.spec.capped(*self.limits)
            self._write_spec = spec.sized(self._shape[0]) if self._shape else spec

    async def get_datakey(self, source: str) -> DataKey:
        """Return the descriptor: dtype, shape, units and control limits from the server."""
        value = self._datakey_value
        if value is None:
            value = await self.get_value()
        metadata: dict[str, Any] = {}
        if self.units is not None:
            metadata["units"] = self.units
        if self.limits is not None and not isinstance(value, bool | str):
            low, high = self.limits
            metadata["limits"] = Limits(control=LimitsRange(low=low, high=high))
        if self._enum is not None:
            metadata["choices"] = [m.value for m in self._enum]
        return make_datakey(
            cast(type[SignalDatatypeT], self.datatype),
            value,
            source,
            metadata,  # type: ignore[arg-type]
        )

    # -- values --------------------------------------------------------------------------
    def _convert(self, raw: Any) -> SignalDatatypeT:
        """Turn a raw OPC UA value into the signal's datatype (ProtocolError if it cannot)."""
        dt = self.datatype
        try:
            if self._dtype is not None:
                arr = np.asarray(raw, dtype=self._dtype)
                if arr.ndim != 1:
                    raise ValueError(f"expected a 1-D array, got shape {arr.shape}")
                return cast(SignalDatatypeT, arr)
            if self._enum is not None:
                return cast(SignalDatatypeT, self._enum(raw))
            if dt is bool:
                if not isinstance(raw, bool):
                    raise ValueError(f"{raw!r} is not a boolean")
                return cast(SignalDatatypeT, raw)
            if dt is float:
                if isinstance(raw, bool) or not isinstance(raw, int | float):
                    raise ValueError(f"{raw!r} is not a number")
                return cast(SignalDatatypeT, float(raw))
            if dt is int:
                if isinstance(raw, bool) or not isinstance(raw, int):
                    raise ValueError(f"{raw!r} is not an integer")
                return cast(SignalDatatypeT, int(raw))
            if dt is str:
                if not isinstance(raw, str):
                    raise ValueError(f"{raw!r} is not a string")
                return cast(SignalDatatypeT, raw)
        except ValueError as exc:
            raise ProtocolError(
                self.connection.device, f"{self.string_id}: unexpected value: {exc}"
            ) from exc
        raise TypeError(f"unsupported datatype {dt}")

    def _reading(self, dv: ua.DataValue) -> Reading[SignalDatatypeT]:
        check_good(self.connection.device, self._what_read, dv)
        if dv.Value is None:
            raise ProtocolError(self.connection.device, f"{self.string_id} has no value")
        code = dv.StatusCode
        severity = 1 if code is not None and code.is_uncertain() else 0
        return Reading(
            value=self._convert(dv.Value.Value),
            timestamp=source_timestamp(dv),
            alarm_severity=severity,
        )

    async def _read(self) -> ua.DataValue:
        conn = self.connection
        if self._generation != conn.generation or self._nodeid is None:
            self._nodeid = conn.node_id(self.string_id)
            self._generation = conn.generation
        nodeids = [self._nodeid]

        async def op(client: Client) -> list[ua.DataValue]:
            return await client.uaclient.read_attributes(nodeids, AttributeIds.Value)

        return (await conn.request(self._what_read, op, idempotent=True))[0]

    async def get_reading(self) -> Reading[SignalDatatypeT]:
        """Read the value with one request; return value, source timestamp and severity."""
        return self._reading(await self._read())

    async def get_value(self) -> SignalDatatypeT:
        """Read the value with one request."""
        return self._reading(await self._read())["value"]

    async def get_setpoint(self) -> SignalDatatypeT:
        """Return the last value put, or the current value if none was."""
        if self._setpoint is not None:
            return self._setpoint
        return await self.get_value()

    def set_callback(self, callback: Callback[Reading[SignalDatatypeT]] | None) -> None:
        """Deliver every data change (OPC UA subscription) to ``callback``; ``None`` stops."""
        conn = self.connection
        if callback is None:
            if self._monitor is not None:
                conn.unmonitor(self._monitor)
                self._monitor = None
            return
        if self._monitor is not None:
            raise RuntimeError(f"{self.string_id}: a callback is already set")

        def deliver(dv: ua.DataValue) -> None:
            try:
                reading = self._reading(dv)
            except ProtocolError:
                log.exception("%s: bad update of %s", conn.device, self.string_id)
                return
            callback(reading)

        self._monitor = conn.monitor(self.string_id, deliver)

    # -- writing -------------------------------------------------------------------------
    def checked(self, value: Any) -> Any:
        """Return ``value`` converted and checked by the spec (lab limit included), or raise.

        Used by :meth:`OpcUaRW.set` before the value reaches any backend, so a mock signal
        refuses what the instrument's would (before connect, an array is sized by itself).
        """
        spec = self._write_spec
        if spec is None:
            return value
        if self._dtype is not None and spec.size is None:
            size = len(value) if isinstance(value, Sequence | np.ndarray) else 0
            spec = spec.sized(size or 1)
        return spec.check(value, device=self.connection.device, what=self.string_id)

    def validate(self, value: Any) -> ua.Variant:
        """Check a value and return the variant to write; raise before anything is sent.

        Raises
        ------
        InputError
            Read-only node, wrong type, wrong array length, or not a finite number.
        OutOfLimitsError
            A number (or an array element) outside the node's ``EURange``.
        """
        device, what = self.connection.device, self.string_id
        if not self.writable:
            raise InputError(device, f"{what} is read-only")
        if self._write_spec is not None:
            return self._variant_of(self._write_spec.check(value, device=device, what=what))
        if value is None:
            raise InputError(device, f"{what}: no value given")
        vt = self._variant
        if self._dtype is not None:
            arr = np.asarray(value, dtype=float) if not isinstance(value, str) else None
            if arr is None or arr.ndim != 1:
                raise InputError(device, f"{what} = {value!r} is not a 1-D array of numbers")
            if self._shape is not None and arr.shape != self._shape:
                raise InputError(
                    device, f"{what} needs {self._shape[0]} values, got {arr.shape[0]}"
                )
            for x in arr:
                self._check_number(float(x))
            return ua.Variant([float(x) for x in arr], vt or ua.VariantType.Double)
        if self._enum is not None:
            try:
                return ua.Variant(self._enum(value).value, ua.VariantType.String)
            except ValueError:
                raise InputError(
                    device, f"{what} = {value!r} is not one of {[m.value for m in self._enum]}"
                ) from None
        dt = self.datatype
        if dt is str:
            if not isinstance(value, str):
                raise InputError(device, f"{what} = {value!r} is not a string")
            return ua.Variant(value, ua.VariantType.String)
        if dt is bool:
            if not isinstance(value, bool | np.bool_):
                raise InputError(device, f"{what} = {value!r} is not a boolean")
            return ua.Variant(bool(value), ua.VariantType.Boolean)
        if isinstance(value, bool | str) or not isinstance(value, int | float | np.number):
            raise InputError(device, f"{what} = {value!r} is not a number")
        x = float(value)
        self._check_number(x)
        if dt is int or (
            vt is not None
            and vt
            in _NUMERIC_VARIANTS
            - {
                ua.VariantType.Double,
                ua.VariantType.Float,
            }
        ):
            if not x.is_integer():
                raise InputError(device, f"{what} = {value!r} is not an integer")
            return ua.Variant(int(x), vt or ua.VariantType.Int32)
        return ua.Variant(x, vt or ua.VariantType.Double)

    def _variant_of(self, value: Any) -> ua.Variant:
        """Return the variant of a value already checked by the spec."""
        if isinstance(value, str):
            return ua.Variant(value, ua.VariantType.String)
        if isinstance(value, np.ndarray):
            return ua.Variant([float(x) for x in value], self._variant or ua.VariantType.Double)
        return ua.Variant(float(value), self._variant or ua.VariantType.Double)

    def _check_number(self, x: float) -> None:
        device, what = self.connection.device, self.string_id
        if not math.isfinite(x):
            raise InputError(device, f"{what} = {x} is not a finite number")
        if self.limits is not None:
            low, high = self.limits
            if not low <= x <= high:
                raise OutOfLimitsError(
                    device, what, f"{x:g}", f"{low:g}", f"{high:g}", self.units or ""
                )

    async def put(self, value: SignalDatatypeT | None) -> None:
        """Validate ``value`` (see :meth:`validate`) and write it with one request.

        Raises
        ------
        InputError
            Refused before sending.
        OpcUaStatusError
            The server answered with a Bad status (nothing was changed).
        """
        variant = self.validate(value)
        await self.connection.write(self.string_id, variant)
        self._setpoint = self._convert(variant.Value)


class OpcUaMethodBackend(CommandBackend[P, T], Generic[P, T]):
    """A command backed by one OPC UA method of an object.

    Parameters
    ----------
    connection
        The device's shared connection.
    object_id, method_id
        String ids of the object and of its method (``"Furnace"``, ``"Furnace.Standby"``).
    signature
        Python signature of the command (every parameter annotated).
    arg_types
        The OPC UA variant type of each argument (arrays are passed as lists).
    """

    def __init__(
        self,
        connection: OpcUaConnection,
        object_id: str,
        method_id: str,
        signature: inspect.Signature,
        arg_types: Sequence[ua.VariantType] = (),
    ) -> None:
        self.connection = connection
        super().__init__(signature)
        self.object_id, self.method_id = object_id, method_id
        self.arg_types = list(arg_types)

    def address(self, object_id: str, method_id: str, arg_types: Sequence[ua.VariantType]) -> None:
        """Point the backend at a method of an object, with each argument's variant type."""
        params = self.signature.parameters if self.signature is not None else {}
        if len(arg_types) != len(params):
            raise TypeError(f"{method_id}: {len(arg_types)} variant types for {self.signature}")
        self.object_id = object_id
        self.method_id = method_id
        self.arg_types = list(arg_types)

    def source(self, name: str) -> str:
        """Return ``opc.tcp://host:port#Method()``."""
        return f"{self.connection.url}#{self.method_id}()"

    async def connect(self, timeout: float) -> None:
        """Connect the shared client and check that the method exists (one request)."""
        conn = self.connection
        await conn.connect()
        nid = conn.node_id(self.method_id)

        async def op(client: Client) -> list[ua.DataValue]:
            return await client.uaclient.read_attributes([nid], AttributeIds.NodeClass)

        (dv,) = await conn.request(f"find {self.method_id}", op, idempotent=True)
        check_good(conn.device, f"find {self.method_id}", dv)

    async def execute(self, *args: P.args, **kwargs: P.kwargs) -> T:
        """Call the method (never retried); a Bad status raises ``OpcUaStatusError``."""
        bound = self.signature.bind(*args, **kwargs) if self.signature else None
        values = list(bound.arguments.values()) if bound else []
        variants = []
        for v, vt in zip(values, self.arg_types, strict=True):
            if isinstance(v, np.ndarray):
                v = [float(x) for x in v]
            variants.append(ua.Variant(v, vt))
        return cast(T, await self.connection.call(self.object_id, self.method_id, variants))


def void_signature() -> inspect.Signature:
    """Return the signature of a command with no arguments and no result."""
    return inspect.Signature([], return_annotation=None)


async def fast_get_value(signal: SignalR[SignalDatatypeT], cached: bool | None) -> SignalDatatypeT:
    """``SignalR.get_value`` without its eager debug message.

    ophyd-async 0.21 formats the value into a ``log.debug`` f-string whatever the log level;
    for an 8-element array that costs as much as the OPC UA read itself
    (bench/furnace_read.py). This is the one use of an ophyd-async private part in the
    drivers, pinned to ophyd-async 0.21 and tested (tests/unit/drivers/test_opcua_backend.py).
    """
    if signal.log.isEnabledFor(logging.DEBUG):
        value: SignalDatatypeT = await SignalR.get_value(signal, cached)
        return value
    source: Any = signal._backend_or_cache(cached)  # noqa: SLF001 - a backend or its cache
    fresh: SignalDatatypeT = await source.get_value()
    return fresh


# -- signals that time out in the transport, not in ophyd-async --------------------------------
# Signals get no ophyd-async timeout of their own (timeout=None): the connection puts a timeout
# on every OPC UA request and raises the typed InstrumentTimeoutError, and ophyd-async's extra
# asyncio.wait_for would cost a task per read (see bench/furnace_read.py).


class OpcUaR(SignalR[SignalDatatypeT]):
    """A read-only signal of an OPC UA variable (no ophyd-async timeout: the link has one)."""

    def __init__(
        self, backend: SignalBackend[SignalDatatypeT], timeout: float | None = None, name: str = ""
    ) -> None:
        super().__init__(backend, timeout, name)

    async def get_value(self, cached: bool | None = None) -> SignalDatatypeT:
        """Return the current value (one request, or the monitored value if cached)."""
        return await fast_get_value(self, cached)


class OpcUaRW(SignalRW[SignalDatatypeT]):
    """A read-write signal of an OPC UA variable; every ``set`` is checked by its spec."""

    def __init__(
        self, backend: SignalBackend[SignalDatatypeT], timeout: float | None = None, name: str = ""
    ) -> None:
        self.checker = backend if isinstance(backend, OpcUaSignalBackend) else None
        super().__init__(backend, timeout, name)

    @AsyncStatus.wrap
    async def set(
        self, value: SignalDatatypeT, timeout: CalculatableTimeout = "CALCULATE_TIMEOUT"
    ) -> None:
        """Check ``value`` with the signal's spec (converting it), then write it."""
        if self.checker is not None:
            value = self.checker.checked(value)
        await SignalRW.set(self, value, timeout)

    async def get_value(self, cached: bool | None = None) -> SignalDatatypeT:
        """Return the current value (one request, or the monitored value if cached)."""
        return await fast_get_value(self, cached)


# -- the declaration ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """Address a signal, command or sub-device by its path under the parent's node.

    Attributes
    ----------
    path
        Browse path below the parent (``"Setpoint"``, ``"Zones.Zone1."`` for a sub-device,
        ``"Standby"`` for a method of the parent object).
    spec
        How a written value is given and checked (makes the signal writable); its unit is
        the unit the node must carry.
    units
        The unit a read-only node must carry (``"degC"``); ``None``: whatever it says.
    """

    path: str
    spec: ValueSpec | None = None
    units: str | None = None


def _variant_type(annotation: Any) -> ua.VariantType:
    if annotation is str:
        return ua.VariantType.String
    if annotation is bool:
        return ua.VariantType.Boolean
    if annotation is int:
        return ua.VariantType.Int32
    return ua.VariantType.Double  # float, and arrays of float


class OpcUaDeviceConnector(DeviceConnector):
    r"""Fill a declarative device's signals, commands and sub-devices from :class:`Node`\ s.

    Parameters
    ----------
    connection
        The device's one OPC UA client, shared by every child.
    prefix
        Node path of the device, ending in ``"."`` (``"Furnace."``).
    lab_limits
        Lab-file limits by name, in the unit of the specs that name them
        (``{"max_temperature": 1150.0}``).
    """

    def __init__(
        self,
        connection: OpcUaConnection,
        prefix: str,
        lab_limits: Mapping[str, float] | None = None,
        registry: dict[str, OpcUaSignalBackend[Any]] | None = None,
    ) -> None:
        self.connection = connection
        self.prefix = prefix
        self.lab_limits = dict(lab_limits or {})
        self.backends: dict[str, OpcUaSignalBackend[Any]] = {} if registry is None else registry
        """Every signal backend of the device (children included), by node id."""

    def child(self, path: str) -> OpcUaDeviceConnector:
        """Return the connector of a sub-device at ``path`` (same client, limits, registry)."""
        return OpcUaDeviceConnector(
            self.connection, self.prefix + path, self.lab_limits, self.backends
        )

    def _spec(self, spec: ValueSpec | None) -> ValueSpec | None:
        if spec is None or spec.lab_limit is None or spec.lab_limit not in self.lab_limits:
            return spec
        return spec.capped(high=self.lab_limits[spec.lab_limit])

    def create_children_from_annotations(self, device: Device) -> None:
        """Create every annotated child, addressed under :attr:`prefix` (once)."""
        if hasattr(self, "filler"):
            return
        conn = self.connection
        self.filler: DeviceFiller[Any, OpcUaDeviceConnector, Any] = DeviceFiller(
            device,
            signal_backend_factory=lambda dt: OpcUaSignalBackend(dt or float, conn, ""),
            device_connector_factory=lambda: OpcUaDeviceConnector(
                conn, "", self.lab_limits, self.backends
            ),
            command_backend_factory=lambda sig: OpcUaMethodBackend(
                conn, "", "", sig or void_signature()
            ),
        )
        for backend, extras in self.filler.create_signals_from_annotations():
            node = _pop_node(device, extras)
            spec = self._spec(node.spec)
            backend.address(self.prefix + node.path, spec=spec, units=node.units)
            self.backends[backend.string_id] = backend
        for command, extras in self.filler.create_commands_from_annotations():
            node = _pop_node(device, extras)
            sig = command.signature or void_signature()
            if sig.return_annotation is type(None):  # Command[[...], None]: a void command
                command.signature = sig = sig.replace(return_annotation=None)
            types = [_variant_type(p.annotation) for p in sig.parameters.values()]
            command.address(self.prefix.rstrip("."), self.prefix + node.path, types)
        for connector, extras in self.filler.create_devices_from_annotations():
            connector.prefix = self.prefix + _pop_node(device, extras).path

    async def connect_mock(self, device: Device, mock: DeviceMock[Any]) -> None:
        """Connect every child in mock mode (no client is opened)."""
        await super().connect_mock(device, mock)

    async def connect_real(self, device: Device, timeout: float, force_reconnect: bool) -> None:
        """Open the shared client once, then connect every child over it."""
        await self.connection.connect()
        await super().connect_real(device, timeout, force_reconnect)

    def eurange(self, signal: SignalR[Any]) -> tuple[float, float] | None:
        """Return a connected signal's ``EURange`` (low, high), or None (mock, or none)."""
        node = _node_id(signal.source, self.connection.url)
        backend = self.backends.get(node) if node is not None else None
        return backend.limits if backend is not None else None

    async def read(self, *signals: SignalR[Any]) -> list[Any]:
        """Return the values of several signals, read in ONE request.

        Signals of this device that are connected for real are read together; in mock mode
        (or for a signal of another device) each value is read on its own.
        """
        ids = [_node_id(s.source, self.connection.url) for s in signals]
        backends = [self.backends.get(i) if i is not None else None for i in ids]
        if all(b is not None for b in backends):
            opc = cast(list[OpcUaSignalBackend[Any]], backends)
            dvs = await self.connection.read([b.string_id for b in opc])
            return [b.value_of(dv) for b, dv in zip(opc, dvs, strict=True)]
        return list(await asyncio.gather(*(s.get_value() for s in signals)))


def _node_id(source: str, url: str) -> str | None:
    """Return the node id of a real signal's source (``opc.tcp://h:p#Id``), else None."""
    head, sep, node = source.partition("#")
    return node if sep and head == url else None


def _pop_node(device: Device, extras: list[Any]) -> Node:
    nodes = [e for e in extras if isinstance(e, Node)]
    if len(nodes) != 1:
        raise TypeError(f"{type(device).__name__}: every child needs exactly one Node(...)")
    extras.remove(nodes[0])
    return nodes[0]


class OpcUaDevice(Device):
    """Base of a declarative OPC UA device: its children are filled from annotations.

    Give ``connector`` (built by the top-level device, which owns the connection), or let
    a parent's :class:`OpcUaDeviceConnector` build it for a sub-device.
    """

    def __init__(self, name: str = "", connector: DeviceConnector | None = None) -> None:
        super().__init__(name=name, connector=connector)


__all__ = [
    "Node",
    "OpcUaDevice",
    "OpcUaDeviceConnector",
    "OpcUaMethodBackend",
    "OpcUaR",
    "OpcUaRW",
    "OpcUaSignalBackend",
    "fast_get_value",
    "void_signature",
]
