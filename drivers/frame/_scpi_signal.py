"""An ophyd-async signal backend that reads and writes one SCPI query/command of the frame."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Generic

from bluesky.protocols import Reading
from event_model import DataKey
from ophyd_async.core import (
    SignalBackend,
    SignalDatatypeT,
    SignalR,
    SignalRW,
    make_datakey,
)
from ophyd_async.core._signal_backend import make_metadata

from couponlab.errors import ProtocolError
from couponlab.transports import ScpiClient

log = logging.getLogger(__name__)


class ScpiSignalBackend(SignalBackend[SignalDatatypeT], Generic[SignalDatatypeT]):
    """Read a value with one SCPI query; write it with one checked command.

    Parameters
    ----------
    datatype
        Python type of the value (float, int, str or a ``StrictEnum``).
    link
        Returns the connected :class:`ScpiClient` (called at each access).
    query
        The query that reads the value (``"CONF:SAMP?"``).
    parse
        Turns the reply into the value; a ``ValueError`` becomes a ``ProtocolError``.
    command
        Header of the command that writes the value (``"CONF:SAMP"``); None: read-only.
    render
        Turns a value into the command's argument text.
    validate
        Called with the value before a write; raises a typed ``InputError`` to refuse it
        before a byte is sent.
    units, precision
        Metadata for the descriptor.
    poll_period
        Wall-clock period of polling while subscribed, s.
    """

    def __init__(
        self,
        datatype: type[SignalDatatypeT],
        link: Callable[[], ScpiClient],
        query: str,
        parse: Callable[[str], SignalDatatypeT],
        *,
        command: str | None = None,
        render: Callable[[SignalDatatypeT], str] = str,
        validate: Callable[[SignalDatatypeT], None] | None = None,
        units: str | None = None,
        precision: int | None = None,
        poll_period: float = 0.5,
    ) -> None:
        super().__init__(datatype)
        self._link = link
        self.query = query
        self._parse = parse
        self.command = command
        self._render = render
        self._validate = validate
        self._metadata = make_metadata(datatype, units, precision)
        self._poll_period = poll_period
        self._last: SignalDatatypeT | None = None
        self._setpoint: SignalDatatypeT | None = None
        self._callback: Callable[[Reading[SignalDatatypeT]], None] | None = None
        self._poll_task: asyncio.Task[None] | None = None
        self._sources: dict[tuple[str, bool], str] = {}

    def source(self, name: str, read: bool) -> str:
        """Return ``scpi://<resource>/<query>`` (cached: ophyd-async asks on every access)."""
        key = (name, read)
        cached = self._sources.get(key)
        if cached is None:
            header = self.query if read or not self.command else self.command
            cached = self._sources[key] = f"scpi://{self._link().address}/{header}"
        return cached

    async def connect(self, timeout: float) -> None:
        """Nothing to do: the device opens the link."""

    async def get_value(self) -> SignalDatatypeT:
        """Query the instrument and return the parsed value."""
        link = self._link()
        reply = await link.transport.query(self.query)
        try:
            value = self._parse(reply)
        except ValueError:
            raise ProtocolError(
                link.device, f"cannot parse reply to {self.query!r}: {reply!r}"
            ) from None
        self._last = value
        return value

    async def get_reading(self) -> Reading[SignalDatatypeT]:
        """Query the instrument and return a reading stamped now."""
        value = await self.get_value()
        return Reading(value=value, timestamp=time.time(), alarm_severity=0)

    async def get_setpoint(self) -> SignalDatatypeT:
        """Return the last value written (or read, if never written)."""
        if self._setpoint is not None:
            return self._setpoint
        return await self.get_value()

    async def put(self, value: SignalDatatypeT | None) -> None:
        """Validate ``value`` and write it with an error check."""
        if self.command is None:
            raise PermissionError(f"{self.query} is read-only")
        if value is None:
            raise ValueError(f"{self.command}: a value is required")
        if self._validate is not None:
            self._validate(value)
        await self._link().command(f"{self.command} {self._render(value)}")
        self._setpoint = value
        if self._callback is not None:
            self._callback(await self.get_reading())

    async def get_datakey(self, source: str) -> DataKey:
        """Return the descriptor (units and precision from the constructor)."""
        value = self._last if self._last is not None else await self.get_value()
        return make_datakey(self.datatype or float, value, source, self._metadata)

    def set_callback(self, callback: Callable[[Reading[SignalDatatypeT]], None] | None) -> None:
        """Poll while subscribed; errors are logged, not swallowed silently."""
        if self._poll_task is not None:
            self._poll_task.cancel()
            self._poll_task = None
        self._callback = callback
        if callback is not None:
            self._poll_task = asyncio.create_task(self._poll(callback))

    async def _poll(self, callback: Callable[[Reading[SignalDatatypeT]], None]) -> None:
        while True:
            try:
                callback(await self.get_reading())
            except Exception as exc:  # keep polling, but say so
                log.warning("polling %s failed: %s", self.query, exc)
            await asyncio.sleep(self._poll_period)


class ScpiSignalR(SignalR[SignalDatatypeT]):
    """A read-only SCPI signal whose uncached ``get_value`` goes straight to the backend.

    ophyd-async's ``Signal.get_value`` builds a logger adapter and formats a debug message
    on every call (a few microseconds, about 10 % of a query on loopback); with no timeout
    wrapper needed (the transport times out every exchange) an uncached read skips that.
    """

    async def get_value(self, cached: bool | None = None) -> SignalDatatypeT:
        """Return the current value (one query unless a subscription cache is used)."""
        value: SignalDatatypeT
        if cached is None and self._cache is None:
            value = await self._connector.backend.get_value()
        else:
            value = await super().get_value(cached)
        return value


class ScpiSignalRW(SignalRW[SignalDatatypeT]):
    """A read-write SCPI signal with the same direct uncached ``get_value``."""

    async def get_value(self, cached: bool | None = None) -> SignalDatatypeT:
        """Return the current value (one query unless a subscription cache is used)."""
        value: SignalDatatypeT
        if cached is None and self._cache is None:
            value = await self._connector.backend.get_value()
        else:
            value = await super().get_value(cached)
        return value


def scpi_r(
    datatype: type[SignalDatatypeT],
    link: Callable[[], ScpiClient],
    query: str,
    parse: Callable[[str], SignalDatatypeT],
    *,
    units: str | None = None,
    precision: int | None = None,
) -> SignalR[SignalDatatypeT]:
    """Return a read-only signal over one SCPI query (no extra timeout wrapper: the
    transport times out every exchange)."""
    backend = ScpiSignalBackend(datatype, link, query, parse, units=units, precision=precision)
    return ScpiSignalR(backend, timeout=None)


def scpi_rw(
    datatype: type[SignalDatatypeT],
    link: Callable[[], ScpiClient],
    query: str,
    parse: Callable[[str], SignalDatatypeT],
    command: str,
    *,
    render: Callable[[SignalDatatypeT], str] = str,
    validate: Callable[[SignalDatatypeT], None] | None = None,
    units: str | None = None,
    precision: int | None = None,
) -> SignalRW[SignalDatatypeT]:
    """Return a read-write signal over one SCPI query and command."""
    backend = ScpiSignalBackend(
        datatype,
        link,
        query,
        parse,
        command=command,
        render=render,
        validate=validate,
        units=units,
        precision=precision,
    )
    return ScpiSignalRW(backend, timeout=None)


def parse_quoted(reply: str) -> str:
    """Return a SCPI string reply without its quotes."""
    text = reply.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    raise ValueError(f"not a quoted string: {reply!r}")


def suppress_cancel() -> contextlib.AbstractContextManager[Any]:
    """Return a context manager that swallows ``CancelledError`` (for awaiting a cancel)."""
    return contextlib.suppress(asyncio.CancelledError)


__all__ = [
    "ScpiSignalBackend",
    "ScpiSignalR",
    "ScpiSignalRW",
    "parse_quoted",
    "scpi_r",
    "scpi_rw",
    "suppress_cancel",
]
