"""Declarative SCPI/line devices, in the idiom of ophyd-async's EPICS and Tango connectors.

A signal is declared once, as an annotation that names its query, its command, its unit,
the lab/instrument limit that bounds it and how a value is written::

    class Profiler(ScpiDevice):
        dwell: A[ScpiSignalRW[float], Scpi("CONF:DWEL?", "CONF:DWEL", unit="s",
                                             limits="dwell"), Format.CONFIG_SIGNAL]

:class:`ScpiDeviceConnector` fills such annotations at construction (ophyd-async's public
``DeviceFiller``) with a :class:`ScpiBackend` bound to the device's
:class:`~couponlab.transports.ScpiClient`. Every write path -- ``signal.set(...)``, a
device method, a plan -- goes through :meth:`ScpiBackend.check`: unit conversion (a
quantity, ``"0.2 s"`` or a number in the declared unit), the limit, an explicit on/off
for hazard switches, and a typed :class:`~couponlab.errors.InputError` naming the device,
the value and the range before a byte is sent.

Several signals can be fed by one exchange: ``Scpi(field=("STAT?", 2))`` reads field 2 of
the device's :class:`StatusReply` for ``STAT?``; signals read together (a device's
``read()``) share one exchange.

Signals made at run time (one per hopper, per element) use the same backend through
:func:`scpi_signal`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Generic, TypeVar, get_type_hints

from bluesky.protocols import Reading
from event_model import DataKey
from ophyd_async.core import (
    CommandBackend,
    Device,
    DeviceConnector,
    DeviceFiller,
    SignalBackend,
    SignalDatatypeT,
    SignalMetadata,
    SignalR,
    SignalRW,
    SignalW,
    make_datakey,
    walk_devices,
)

from couponlab.drivers._opcua import fast_get_value
from couponlab.errors import CouponlabError, InputError, ProtocolError
from couponlab.transports import ScpiClient
from couponlab.units import to_switch
from couponlab.values import ValueSpec

log = logging.getLogger(__name__)
T = TypeVar("T")

_BAD_TEXT = set(";\"'\r\n")
"""Characters a string setting may not hold (they would end or split the command)."""


@dataclass(frozen=True)
class Scpi:
    """The declaration of one SCPI signal.

    Attributes
    ----------
    query
        The query that reads the value (``"CONF:DWEL?"``); None with ``field`` or for a
        write-only signal.
    command
        The header of the command that writes it (``"CONF:DWEL"``: the value follows a
        blank), or a template with ``{}`` where the value goes (``"RATE 1,{}"``); None:
        read-only.
    unit
        The unit the instrument speaks: readings carry it, and a write accepts a quantity,
        a string (``"0.2 s"``) or a plain number in it.
    limits
        Name of the limit pair ``(low, high)`` in ``unit`` that bounds every write; the
        device puts it in :attr:`ScpiBinding.limits` at connect (instrument and lab file).
        A write before it is known is refused.
    fmt
        How a number is written (``"{:.6g}"``).
    precision
        Display precision of the reading.
    field
        ``(status query, index)``: the value is field ``index`` of that multi-field reply.
        With a ``query`` too, ``get_value`` asks the query alone and a reading (a device's
        ``read()``) comes from the status exchange shared with the other signals.
    parse
        Turns the reply text into the value (default: by datatype).
    cached
        For a status field: a read returns the field of the last status reply the device
        received (from any exchange: a move's reply ends with one), without an exchange of
        its own; the first read asks.
    validate
        Extra check ``validate(device, value)`` after unit and limits (raises
        :class:`~couponlab.errors.InputError`), for rules a range cannot say.
    """

    query: str | None = None
    command: str | None = None
    unit: str | None = None
    limits: str | None = None
    fmt: str = "{:.6g}"
    precision: int | None = None
    field: tuple[str, int] | None = None
    parse: Callable[[str], Any] | None = None
    cached: bool = False
    validate: Callable[[str, Any], None] | None = None

    def __post_init__(self) -> None:
        """Refuse a declaration that cannot work."""
        if self.query is None and self.field is None and self.command is None:
            raise TypeError("Scpi() needs a query, a field or a command")
        if self.cached and self.field is None:
            raise TypeError("only a status field can be cached")


class StatusReply:
    """One multi-field status query whose fields feed several signals.

    Concurrent readers (the signals of one ``read()``) share one exchange.

    Parameters
    ----------
    binding
        The device's binding (client and name).
    query
        The status query (``"STAT?"``).
    fields
        The number of comma-separated fields a well-formed reply has.
    """

    def __init__(self, binding: ScpiBinding, query: str, fields: int) -> None:
        self.binding = binding
        self.query = query
        self.fields = fields
        self.on_reply: list[Callable[[list[str]], None]] = []
        """Called with every parsed reply (a device's own bookkeeping)."""
        self.last: list[str] | None = None
        """The fields of the last reply (None before the first)."""
        self.pad: list[str] = []
        """Fields appended to every reply (an older instrument's shorter status)."""
        self.check: Callable[[list[str]], bool] | None = None
        """Further check of a reply's fields (a known state word ...)."""
        self._pending: asyncio.Future[list[str]] | None = None
        self._held = 0

    def feed(self, reply: str) -> list[str]:
        """Take a reply that came with another exchange (``MOV ...;:SYST:ERR?;:STAT?``)."""
        return self.split(reply)

    def split(self, reply: str) -> list[str]:
        """Return the reply's fields (``pad`` appended); raise ProtocolError if there are not
        :attr:`fields`."""
        parts = [p.strip() for p in reply.split(",")] + self.pad
        if len(parts) != self.fields + len(self.pad) or (
            self.check is not None and not self.check(parts)
        ):
            raise ProtocolError(self.binding.name, f"malformed {self.query} reply {reply[:120]!r}")
        self.last = parts
        for hook in self.on_reply:
            hook(parts)
        return parts

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[list[str]]:
        """Read a fresh reply, then let every read inside the block use it (no exchange):
        a device's ``read()`` gathers many signals of one status at the cost of one
        exchange and without coordinating the readers."""
        parts = await self.read()
        self._held += 1
        try:
            yield parts
        finally:
            self._held -= 1

    async def read(self) -> list[str]:
        """Return the fields of a fresh reply (one exchange shared by concurrent readers)."""
        if self._held and self.last is not None:
            return self.last
        pending = self._pending
        if pending is not None:
            return await asyncio.shield(pending)
        fut: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
        self._pending = fut
        try:
            await asyncio.sleep(0)  # let the other readers of this read() join
            parts = self.split(await self.binding.client.query(self.query))
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # retrieved: waiters (if any) get it, nobody else is told
            raise
        finally:
            self._pending = None
        fut.set_result(parts)
        return parts


class HeldRead:
    """A device's ``read()`` at the cost of one status exchange, its signals read in turn.

    ``StandardReadable.read()`` gathers one task per signal. Inside a held status reply
    (:meth:`StatusReply.held`) no status signal does I/O, so awaiting the signals one after
    another gives the same readings without a task each: about 0.3 ms less per read of the
    four-hopper feeder's 21 signals (``bench/feeder_read.py``). The first read is the
    gathered one; its keys, resolved to the device's signals through ophyd-async's public
    ``walk_devices``, are the read set from then on. If a key is not a signal's name (a
    child device with a ``read()`` of its own), the device keeps the gathered read.

    Parameters
    ----------
    device
        The device whose signals are read.
    status
        The status reply its read signals share.
    gathered
        The device's ``StandardReadable.read`` (``super().read``).
    """

    def __init__(
        self,
        device: Device,
        status: StatusReply,
        gathered: Callable[[], Awaitable[dict[str, Reading[Any]]]],
    ) -> None:
        self._device = device
        self._status = status
        self._gathered = gathered
        self._signals: list[SignalR[Any]] | None = None
        self._in_turn = True

    def _resolve(self, names: list[str]) -> None:
        devices = walk_devices(self._device).values()
        signals = {d.name: d for d in devices if isinstance(d, SignalR)}
        if all(n in signals for n in names):
            self._signals = [signals[n] for n in names]
        else:
            self._in_turn = False

    async def read(self) -> dict[str, Reading[Any]]:
        """Return every reading of the device's read set from one fresh status reply."""
        async with self._status.held():
            if self._signals is None:
                readings = await self._gathered()
                if self._in_turn:
                    self._resolve(list(readings))
                return readings
            readings = {}
            for signal in self._signals:
                readings.update(await signal.read())
            return readings


@dataclass
class ScpiBinding:
    """What the signals of one device share: its client, name, limits and status replies."""

    client: ScpiClient
    limits: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Limit pairs by name, in each signal's unit (filled at connect)."""
    statuses: dict[str, StatusReply] = field(default_factory=dict)
    backends: dict[str, ScpiBackend[Any]] = field(default_factory=dict)
    """The backend of each declared signal, by attribute name."""

    def last(self, signal: str) -> Any:
        """Return the value of ``signal`` last read or written (None before either)."""
        return self.backends[signal].last

    def check(self, signal: str, value: Any) -> Any:
        """Return ``value`` as signal ``signal`` would write it (its checks), sending nothing.

        Raises
        ------
        InputError
            The value is refused (unit, range, form).
        """
        return self.backends[signal].check(value)

    @property
    def name(self) -> str:
        """Return the device name (the client's, for messages)."""
        return self.client.device

    def status(self, query: str, fields: int) -> StatusReply:
        """Declare (or return) the multi-field reply of ``query``."""
        reply = self.statuses.get(query)
        if reply is None:
            reply = self.statuses[query] = StatusReply(self, query, fields)
        return reply


def _parse_bool(text: str) -> bool:
    t = text.strip().upper()
    if t in ("1", "ON"):
        return True
    if t in ("0", "OFF"):
        return False
    raise ValueError(f"not a boolean: {text!r}")


def _parse_int(text: str) -> int:
    return int(float(text))


def _parse_str(text: str) -> str:
    return text.strip()


_PARSERS: dict[Any, Callable[[str], Any]] = {
    bool: _parse_bool,
    int: _parse_int,
    str: _parse_str,
    float: float,
}


def _default_parse(datatype: Any) -> Callable[[str], Any]:
    if isinstance(datatype, type) and issubclass(datatype, Enum):
        enum_type = datatype
        return lambda text: enum_type(text.strip())
    return _PARSERS.get(datatype, float)


_UNBOUND = Scpi(query="(unbound)")
"""The declaration of a backend not yet bound to a device."""


class ScpiBackend(SignalBackend[SignalDatatypeT], Generic[SignalDatatypeT]):
    """Read a value with one query (or one field of a status reply); write it, after
    :meth:`check`, with one checked command.

    Parameters
    ----------
    datatype
        ``float``, ``int``, ``bool``, ``str`` or a ``StrictEnum``.
    binding, spec
        The device's binding and the signal's declaration (set later by the connector when
        the signal comes from an annotation).
    poll_period
        Wall-clock period of polling while subscribed, s.
    """

    def __init__(
        self,
        datatype: type[SignalDatatypeT] | None,
        binding: ScpiBinding | None = None,
        spec: Scpi | None = None,
        *,
        poll_period: float = 0.5,
    ) -> None:
        super().__init__(datatype)
        self.binding: ScpiBinding | None = None
        self.spec = _UNBOUND
        self._parse: Callable[[str], Any] = float
        self._metadata: SignalMetadata = {}
        self._poll_period = poll_period
        self._last: SignalDatatypeT | None = None
        self._setpoint: SignalDatatypeT | None = None
        self._poll_task: asyncio.Task[None] | None = None
        self._push: Callable[[list[str]], None] | None = None
        self._source = ""
        self.what = ""
        """What the value is, in error messages (the signal's name in its device)."""
        if binding is not None and spec is not None:
            self.bind(binding, spec)

    def bind(self, binding: ScpiBinding, spec: Scpi) -> None:
        """Attach the device's binding and this signal's declaration."""
        self.binding, self.spec = binding, spec
        self._parse = spec.parse or _default_parse(self.datatype)
        meta: SignalMetadata = {}
        if spec.unit is not None:
            meta["units"] = spec.unit
        if spec.precision is not None:
            meta["precision"] = spec.precision
        if self.datatype is not None and issubclass(self.datatype, Enum):
            meta["choices"] = [str(m.value) for m in self.datatype]
        self._metadata = meta
        if spec.field is not None and spec.field[0] not in binding.statuses:
            raise TypeError(f"{binding.name}: {spec.field[0]} is not a declared status reply")

    @property
    def last(self) -> SignalDatatypeT | None:
        """Return the value last read or written (None before either)."""
        return self._last

    def _bound(self) -> ScpiBinding:
        if self.binding is None:
            raise InputError("", "this signal is not bound to an instrument")
        return self.binding

    # -- SignalBackend -------------------------------------------------------------------
    def source(self, name: str, read: bool) -> str:
        """Return ``scpi://<address>/<query or command>``."""
        if not self._source:
            header = self.spec.query or self.spec.command or (self.spec.field or ("",))[0]
            self._source = f"scpi://{self._bound().client.address}/{header}"
        return self._source

    async def connect(self, timeout: float) -> None:
        """Nothing to do: the device's connector opens the client."""

    async def get_value(self) -> SignalDatatypeT:
        """Return the instrument's value: the query's reply, else the status field."""
        if self.spec.query is not None:
            return self._value(self.spec.query, await self._bound().client.query(self.spec.query))
        return await self._field_value()

    async def _field_value(self) -> SignalDatatypeT:
        b, spec = self._bound(), self.spec
        if spec.field is None:
            raise InputError(b.name, f"{self.what or spec.command} is write-only")
        query, index = spec.field
        status = b.statuses[query]
        last = status.last if spec.cached else None
        return self._value(query, (last if last is not None else await status.read())[index])

    def _value(self, query: str, text: str) -> SignalDatatypeT:
        try:
            value: SignalDatatypeT = self._parse(text)
        except (ValueError, TypeError, KeyError):
            raise ProtocolError(
                self._bound().name, f"cannot parse reply to {query!r}: {text!r}"
            ) from None
        self._last = value
        return value

    async def get_reading(self) -> Reading[SignalDatatypeT]:
        """Return a reading stamped now: from the status exchange the device's signals
        share when the signal is a status field, else from its query."""
        value = await (self._field_value() if self.spec.field is not None else self.get_value())
        return Reading(value=value, timestamp=time.time(), alarm_severity=0)

    async def get_setpoint(self) -> SignalDatatypeT:
        """Return the last value written (or read, if never written)."""
        if self._setpoint is not None:
            return self._setpoint
        return await self.get_value()

    async def get_datakey(self, source: str) -> DataKey:
        """Return the descriptor: units, precision and choices from the declaration."""
        value = self._last if self._last is not None else await self.get_value()
        return make_datakey(self.datatype or float, value, source, self._metadata)

    async def put(self, value: Any) -> None:
        """Check ``value`` (:meth:`check`), then write it with an error check."""
        b, spec = self._bound(), self.spec
        if spec.command is None:
            raise InputError(b.name, f"{spec.query or spec.field} is read-only")
        v = self.check(value)
        command = spec.command
        text = self.render(v)
        await b.client.command(command.format(text) if "{}" in command else f"{command} {text}")
        self._setpoint = self._last = v

    def set_callback(self, callback: Callable[[Reading[SignalDatatypeT]], None] | None) -> None:
        """Send readings to ``callback`` while subscribed: a status field pushes every reply
        its status gets (a cached field needs nothing else); a query is polled, and errors
        are logged, not swallowed silently."""
        if self._poll_task is not None:
            self._poll_task.cancel()
            self._poll_task = None
        status = self._status()
        if self._push is not None and status is not None:
            status.on_reply.remove(self._push)
            self._push = None
        if callback is None:
            return
        if status is not None:
            self._push = self._pusher(callback)
            status.on_reply.append(self._push)
            if self.spec.cached and status.last is not None:
                self._push(status.last)
                return
        self._poll_task = asyncio.create_task(self._poll(callback))

    def _status(self) -> StatusReply | None:
        field = self.spec.field
        return None if field is None or self.binding is None else self.binding.statuses[field[0]]

    def _pusher(
        self, callback: Callable[[Reading[SignalDatatypeT]], None]
    ) -> Callable[[list[str]], None]:
        index = (self.spec.field or ("", 0))[1]

        def push(fields: list[str]) -> None:
            try:
                value: SignalDatatypeT = self._parse(fields[index])
            except (ValueError, TypeError, KeyError):
                log.warning("%s: cannot parse status field %r", self.what, fields[index])
                return
            self._last = value
            callback(Reading(value=value, timestamp=time.time(), alarm_severity=0))

        return push

    async def _poll(self, callback: Callable[[Reading[SignalDatatypeT]], None]) -> None:
        while True:
            try:
                callback(await self.get_reading())
            except CouponlabError as exc:  # keep polling, but say so
                log.warning("polling %s failed: %s", self.source("", True), exc)
            await asyncio.sleep(self._poll_period)

    # -- the one place where a value is checked ------------------------------------------
    def limits(self) -> tuple[float, float] | None:
        """Return the declared limit pair in the signal's unit (None when undeclared).

        Raises
        ------
        InputError
            The limit is declared but not known yet (the device is not connected).
        """
        b, key = self._bound(), self.spec.limits
        if key is None:
            return None
        if key not in b.limits:
            raise InputError(b.name, f"not connected: the {key} limits are unknown")
        return b.limits[key]

    def check(self, value: Any) -> SignalDatatypeT:
        """Return ``value`` as the instrument takes it, or raise a typed error (nothing sent).

        Numbers: a quantity, a string with a unit, or a plain number in the declared unit;
        finite and inside the declared limits. Booleans: an explicit on/off. Enums: a
        member or its value. Strings: without quotes, ``;`` or line breaks.
        """
        b, spec, dt = self._bound(), self.spec, self.datatype
        what = self.what or spec.command or "value"
        if value is None:
            raise InputError(b.name, f"{what}: a value is required")
        if dt is bool:
            return to_switch(value, device=b.name, what=what)  # type: ignore[return-value]
        if dt is not None and issubclass(dt, Enum):
            try:
                return dt(value.value if isinstance(value, Enum) else value)  # type: ignore[return-value]
            except (ValueError, TypeError):
                choices = [m.value for m in dt]
                raise InputError(b.name, f"{what} = {value!r} is not one of {choices}") from None
        if dt is str:
            if not isinstance(value, str) or _BAD_TEXT & set(value) or len(value) > 200:
                raise InputError(
                    b.name, f"{what} = {value!r} must be text without quotes, ; or line breaks"
                )
            return value  # type: ignore[return-value]
        lim = self.limits()
        low, high = lim if lim is not None else (None, None)
        number = ValueSpec(unit=spec.unit or "dimensionless", low=low, high=high)
        mag: float = number.check(value, device=b.name, what=what)
        if spec.validate is not None:
            spec.validate(b.name, mag)
        if dt is int:
            if mag != int(mag):
                raise InputError(b.name, f"{what} = {value!r} is not a whole number")
            return int(mag)  # type: ignore[return-value]
        return mag  # type: ignore[return-value]

    def render(self, value: SignalDatatypeT) -> str:
        """Return the command argument for a checked ``value``."""
        if isinstance(value, bool):
            return "ON" if value else "OFF"
        if isinstance(value, Enum):
            return str(value.value)
        if isinstance(value, str):
            return value
        return self.spec.fmt.format(value)


class ScpiSignalR(SignalR[SignalDatatypeT]):
    """A read-only SCPI signal. No extra timeout wrapper by default: the transport bounds
    every exchange and raises :class:`~couponlab.errors.InstrumentTimeoutError` itself."""

    def __init__(
        self, backend: SignalBackend[SignalDatatypeT], timeout: float | None = None, name: str = ""
    ) -> None:
        super().__init__(backend, timeout, name)

    async def get_value(self, cached: bool | None = None) -> SignalDatatypeT:
        """Return the current value (one exchange unless monitored), without ophyd-async's
        eager debug message (the drivers' one pinned fast path, drivers/_opcua.py)."""
        return await fast_get_value(self, cached)


class ScpiSignalRW(SignalRW[SignalDatatypeT]):
    """A read-write SCPI signal (no extra timeout wrapper, as :class:`ScpiSignalR`)."""

    def __init__(
        self, backend: SignalBackend[SignalDatatypeT], timeout: float | None = None, name: str = ""
    ) -> None:
        super().__init__(backend, timeout, name)

    async def get_value(self, cached: bool | None = None) -> SignalDatatypeT:
        """Return the current value, as :meth:`ScpiSignalR.get_value`."""
        return await fast_get_value(self, cached)


class ScpiSignalW(SignalW[SignalDatatypeT]):
    """A write-only SCPI signal (no extra timeout wrapper, as :class:`ScpiSignalR`)."""

    def __init__(
        self, backend: SignalBackend[SignalDatatypeT], timeout: float | None = None, name: str = ""
    ) -> None:
        super().__init__(backend, timeout, name)


def scpi_signal(
    datatype: type[SignalDatatypeT], binding: ScpiBinding, spec: Scpi, what: str = ""
) -> ScpiSignalR[SignalDatatypeT] | ScpiSignalRW[SignalDatatypeT]:
    """Return a signal made at run time (one per hopper, per element) over ``spec``: the
    same backend, and so the same checks, as a declared one. ``what`` names the value in
    error messages (and :meth:`ScpiBinding.check` finds the backend by it)."""
    backend = ScpiBackend(datatype, binding, spec)
    backend.what = what
    if what:
        binding.backends[what] = backend
    if spec.command is None:
        return ScpiSignalR(backend)
    return ScpiSignalRW(backend)


class _NoCommands(CommandBackend[Any, Any]):
    """SCPI devices declare no ophyd-async Commands (their methods are the commands)."""


class ScpiDeviceConnector(DeviceConnector):
    """Fill a device's :class:`Scpi` annotations with bound backends; on connect open the
    client (reading its clock rate), connect the children, then run ``on_connect``.

    Parameters
    ----------
    client
        The device's client.
    statuses
        ``{query: number of fields}`` of the multi-field replies its signals use.
    on_connect
        Called after the link is open: reads the instrument's static state and limits.
    clear, clock
        Send ``*CLS`` / read ``SYST:CLOC:RATE?`` when the link opens.
    """

    def __init__(
        self,
        client: ScpiClient,
        *,
        statuses: dict[str, int] | None = None,
        on_connect: Callable[[], Awaitable[None]] | None = None,
        clear: bool = False,
        clock: bool = True,
    ) -> None:
        self.binding = ScpiBinding(client)
        for query, n in (statuses or {}).items():
            self.binding.status(query, n)
        self.on_connect = on_connect
        self.clear = clear
        self.clock = clock

    def create_children_from_annotations(self, device: Device) -> None:
        """Create every annotated signal with a :class:`ScpiBackend` bound to the device."""

        def no_commands(_sig: inspect.Signature | None) -> _NoCommands:
            raise TypeError(f"{type(device).__name__}: SCPI devices declare no Commands")

        def backend_factory(datatype: Any) -> ScpiBackend[Any]:
            return ScpiBackend(datatype)

        filler = DeviceFiller(
            device,
            signal_backend_factory=backend_factory,
            device_connector_factory=DeviceConnector,
            command_backend_factory=no_commands,
        )
        # The attribute of each Scpi(...) in annotation order. Matched by identity, else by
        # value: with string annotations each get_type_hints call may evaluate them anew (when
        # typing's cache of Annotated[...] forms evicted them in between), giving equal but
        # distinct Scpi objects, so an id() lookup failed in a long test run.
        pending = [
            (extra, attr)
            for attr, hint in get_type_hints(type(device), include_extras=True).items()
            for extra in getattr(hint, "__metadata__", ())
            if isinstance(extra, Scpi)
        ]

        def attribute_of(spec: Scpi) -> str:
            same = [i for i, (e, _) in enumerate(pending) if e is spec]
            equal = same or [i for i, (e, _) in enumerate(pending) if e == spec]
            if not equal:
                raise TypeError(f"{type(device).__name__}: no attribute declares {spec!r}")
            return pending.pop(equal[0])[1]

        for backend, extras in filler.create_signals_from_annotations():
            specs = [e for e in extras if isinstance(e, Scpi)]
            if len(specs) != 1:
                raise TypeError(f"{type(device).__name__}: a signal needs one Scpi(...)")
            extras.remove(specs[0])
            backend.bind(self.binding, specs[0])
            backend.what = attribute_of(specs[0])
            self.binding.backends[backend.what] = backend
        filler.check_created()

    async def connect_real(self, device: Device, timeout: float, force_reconnect: bool) -> None:
        """Open the client, connect the children, then run ``on_connect``."""
        await self.binding.client.open(clear=self.clear, clock=self.clock)
        await super().connect_real(device, timeout, force_reconnect)
        if self.on_connect is not None:
            await self.on_connect()


class ScpiConnector(DeviceConnector):
    """Open a device's :class:`ScpiClient` on connect, then run its ``on_connect`` hook (for
    devices whose signals are not declared, such as ophyd-async's ``StandardDetector``).

    Parameters
    ----------
    client
        The client to open (its clock rate is read at open).
    on_connect
        Called after the link is open (reads static instrument state into signals).
    """

    def __init__(self, client: ScpiClient, on_connect: Callable[[], Awaitable[None]]) -> None:
        self.client = client
        self.on_connect = on_connect

    async def connect_real(self, device: Device, timeout: float, force_reconnect: bool) -> None:
        """Open the link, connect the children, then run ``on_connect``."""
        await self.client.open(clock=True)
        await super().connect_real(device, timeout, force_reconnect)
        await self.on_connect()


__all__ = [
    "Scpi",
    "ScpiBackend",
    "ScpiBinding",
    "ScpiConnector",
    "ScpiDeviceConnector",
    "ScpiSignalR",
    "ScpiSignalRW",
    "ScpiSignalW",
    "StatusReply",
    "scpi_signal",
]
