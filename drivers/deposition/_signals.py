"""Signals of the deposition drivers: ophyd-async soft signals whose value comes from one
query over the serial link, with the least per-get overhead.

Two things make them cheaper than ``soft_signal_r_and_setter(getter=...)``
(bench/feeder_read.py, about 1.8x a raw pyserial round trip before, 1.15-1.2x after):

- ``timeout=None`` on the signal. ophyd-async wraps every ``get_value``/``read``/``set`` in
  ``asyncio.wait_for(..., signal timeout)``, which on Python 3.11 creates a task and a timer
  per call and costs about 15 us; the transport already bounds every exchange with its own
  timeout and raises ``InstrumentTimeoutError``, so the wrapper bought nothing.
- :class:`QueryBackend.get_value` returns the query's value directly instead of building a
  cached ``Reading`` first (it still does when someone is subscribed, so monitors see it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from ophyd_async.core import Primitive, SignalR, SignalRW, SoftSignalBackend

T = TypeVar("T", bound=Primitive)


class QueryBackend(SoftSignalBackend[T]):
    """A :class:`SoftSignalBackend` that gets its value from ``query()`` on every get.

    Parameters
    ----------
    datatype
        Python type of the value (``float``, ``int``, ``bool`` or ``str``).
    initial_value
        Value before the first get.
    query
        Coroutine function returning the instrument's current value.
    setter
        Coroutine function sending a new value and returning the value in effect (or None).
    units, precision
        Descriptor metadata.
    """

    def __init__(
        self,
        datatype: type[T],
        initial_value: T,
        query: Callable[[], Awaitable[T]],
        setter: Callable[[T | None], Awaitable[T | None]] | None = None,
        units: str | None = None,
        precision: int | None = None,
    ) -> None:
        super().__init__(datatype, initial_value, units, precision, getter=query, setter=setter)
        self._query: Callable[[], Awaitable[T]] = query

    async def get_value(self) -> T:
        """Return the instrument's value (one exchange); update the cache for monitors."""
        value: T = await self._query()
        if self.callback is not None:
            self.set_value(value)
        return value


def query_signal_r(
    datatype: type[T],
    initial_value: T,
    query: Callable[[], Awaitable[T]],
    *,
    units: str | None = None,
    precision: int | None = None,
) -> SignalR[T]:
    """Return a read-only signal whose every get is ``await query()`` (no signal timeout:
    the transport bounds the exchange)."""
    backend = QueryBackend(datatype, initial_value, query, None, units, precision)
    return SignalR(backend, timeout=None)


def query_signal_rw(
    datatype: type[T],
    initial_value: T,
    query: Callable[[], Awaitable[T]],
    setter: Callable[[T | None], Awaitable[T | None]],
    *,
    units: str | None = None,
    precision: int | None = None,
) -> SignalRW[T]:
    """Return a read-write signal: gets are ``await query()``, puts ``await setter(value)``
    (no signal timeout: the transport bounds every exchange)."""
    backend = QueryBackend(datatype, initial_value, query, setter, units, precision)
    return SignalRW(backend, timeout=None)


__all__ = ["QueryBackend", "query_signal_r", "query_signal_rw"]
