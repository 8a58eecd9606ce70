"""The SCPI/line client every line-protocol driver uses, over any :class:`LineTransport`.

One parser for the instrument's error status (``code,"message"`` from ``SYST:ERR?``), one
map from instrument errors to typed errors (:func:`raise_for_status`), pyvisa's own parsers
for comma-separated numbers (``from_ascii_block``) and IEEE 488.2 blocks
(``from_binary_block`` after the transport has read the block's header), and the
instrument's clock rate (``SYST:CLOC:RATE?``: instrument seconds per wall second, 1 on
hardware, the speed-up on a twin) so that waits follow the instrument's time.

A setting is sent with its error check in one round trip: ``CMD;:SYST:ERR?`` (reply: the
status), optionally followed by a query whose reply comes after it
(``CMD;:SYST:ERR?;:STAT?``). A query can carry its error check too (``Q?;:SYST:ERR?``:
reply, then the status).
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import numpy as np
from pyvisa.util import BINARY_DATATYPES, from_ascii_block, from_binary_block

from couponlab.errors import InstrumentTimeoutError, InterlockTrippedError, ProtocolError
from couponlab.progress import Countdown
from couponlab.transports._base import LineTransport, RestartProbe

T = TypeVar("T")

NO_ERROR = 0
"""The code of ``SYST:ERR?`` when the queue is empty."""
_HEAD = re.compile(r'^\s*([+-]?\d+)\s*,\s*"([^"]*)"\s*(?:;(.*))?$', re.DOTALL)
"""A status that starts a reply (``CMD;:SYST:ERR?[;:QUERY?]``); its message holds no quote."""
_TAIL = re.compile(r'(?:^|;)\s*([+-]?\d+)\s*,\s*"([^"]*)"\s*$')
"""A status that ends a reply (``QUERY?;:SYST:ERR?``)."""

MIN_POLL_S = 0.0002
"""Below this wall time a poll (one round trip) costs less than a timer sleep, s."""
MAX_POLL_S = 0.05
"""Longest sleep between two polls of a running operation, s of wall time."""
OPC_WAIT_MAX_S = 0.002
"""Operations expected to end within this wall time are awaited with a blocking ``*OPC?``
in the same exchange (cheaper than a poll); longer ones are polled, leaving the loop free."""


def raise_for_status(device: str, command: str, code: int, message: str) -> None:
    """Raise the typed error an instrument's error status stands for (nothing for code 0).

    A message that names an interlock becomes :class:`InterlockTrippedError` (the
    instrument is in its safe state); any other error :class:`ProtocolError`.
    """
    if code == NO_ERROR:
        return
    if "interlock" in message.lower():
        raise InterlockTrippedError(device, f"{command!r} refused: {message} ({code})")
    raise ProtocolError(device, f"{command!r} refused by the instrument: {message} ({code})")


def split_status(device: str, command: str, reply: str) -> str:
    """Check the status that starts ``reply``; return what follows it (after ``;``).

    Raises
    ------
    ProtocolError
        The reply does not start with a status, or the status is an error.
    InterlockTrippedError
        The instrument refused because of an interlock.
    """
    m = _HEAD.match(reply)
    if m is None:
        raise ProtocolError(device, f"unexpected error-status reply to {command!r}: {reply!r}")
    raise_for_status(device, command, int(m.group(1)), m.group(2))
    return m.group(3) or ""


POWER_ON_BIT = 128
"""Bit 7 (PON) of the IEEE 488.2 Standard Event Status Register (``*ESR?``)."""


def _power_on(reply: str) -> bool:
    value = int(reply.strip().lstrip("+"))
    if not 0 <= value <= 255:
        raise ValueError(reply)
    return bool(value & POWER_ON_BIT)


ESR_POWER_ON = RestartProbe("*ESR?", _power_on, "power-on bit PON of *ESR? set")
"""The IEEE 488.2 restart check: ``*ESR?`` on reconnection, bit 7 (PON) set means the
instrument was powered on since its register was last read (reading clears it, as does the
``*CLS`` a driver sends at connection)."""


class ScpiClient:
    """Request/reply with one SCPI (or SCPI-like line) instrument over a line transport.

    Parameters
    ----------
    transport
        The transport (not yet connected); :func:`couponlab.transports.make_transport`
        picks it from an address.
    restart_probe
        Asked on every reconnection: did the instrument restart? (default: ``*ESR?`` and its
        power-on bit, :data:`ESR_POWER_ON`; None: do not ask). A restart raises
        :class:`~couponlab.errors.InstrumentRestartedError` once.
    """

    def __init__(
        self, transport: LineTransport, restart_probe: RestartProbe | None = ESR_POWER_ON
    ) -> None:
        self.transport = transport
        transport.restart_probe = restart_probe
        self.clock_rate = 1.0
        """Instrument seconds per wall second (``SYST:CLOC:RATE?``; > 0; 1 until read)."""

    # -- identity --------------------------------------------------------------------------
    @property
    def device(self) -> str:
        """Return the device name used in error messages."""
        return self.transport.device

    @device.setter
    def device(self, name: str) -> None:
        self.transport.device = name

    @property
    def address(self) -> str:
        """Return where the instrument is (the transport's address)."""
        return self.transport.address

    @property
    def bytes_written(self) -> int:
        """Return how many bytes went to the instrument since construction."""
        return self.transport.bytes_written

    # -- connection ------------------------------------------------------------------------
    async def open(self, *, clear: bool = False, clock: bool = False) -> None:
        """Connect; with ``clear`` send ``*CLS``, with ``clock`` read the clock rate."""
        await self.transport.connect()
        if clear:
            await self.transport.write("*CLS")
        if clock:
            await self.read_clock_rate()

    async def close(self) -> None:
        """Close the link (idempotent)."""
        await self.transport.close()

    async def read_clock_rate(self) -> float:
        """Read the instrument's clock rate into :attr:`clock_rate` and return it.

        Raises
        ------
        ProtocolError
            The rate is not a single number > 0.
        """
        (rate,) = await self.query_floats("SYST:CLOC:RATE?", 1)
        if not (math.isfinite(rate) and rate > 0):
            raise ProtocolError(self.device, f"clock rate {rate} is not > 0")
        self.clock_rate = rate
        return rate

    # -- exchanges -------------------------------------------------------------------------
    async def query(self, command: str) -> str:
        """Send a query and return its reply line (no error check)."""
        return await self.transport.query(command)

    async def write(self, command: str) -> None:
        """Send a command that has no reply (no error check)."""
        await self.transport.write(command)

    async def command(self, command: str, then: str = "") -> str:
        """Send a setting with its error check in one exchange; return the reply of ``then``.

        Raises
        ------
        ProtocolError
            The instrument reported an error for ``command`` (its message is included), or
            the reply is malformed.
        InterlockTrippedError
            The instrument refused ``command`` because of an interlock.
        """
        line = f"{command};:SYST:ERR?" + (f";:{then}" if then else "")
        reply = await self.transport.query(line, idempotent=False)
        m = _HEAD.match(reply)
        if m is None:
            raise ProtocolError(self.device, f"reply to {line!r} is malformed: {reply!r}")
        raise_for_status(self.device, command, int(m.group(1)), m.group(2))
        rest = m.group(3)
        if then and rest is None:
            raise ProtocolError(self.device, f"no reply to {then!r} in {reply!r}")
        return rest or ""

    async def checked_query(self, command: str) -> str:
        """Send a query with its error check (``Q?;:SYST:ERR?``); return the query's reply.

        Raises
        ------
        ProtocolError
            The instrument reported an error (``Undefined header`` for a query it lacks),
            the query got no reply, or the status is missing.
        """
        reply = await self.transport.query(f"{command};:SYST:ERR?")
        m = _TAIL.search(reply)
        if m is None:
            raise ProtocolError(
                self.device, f"unexpected error-status reply to {command!r}: {reply!r}"
            )
        raise_for_status(self.device, command, int(m.group(1)), m.group(2))
        if m.start() == 0 and not reply.startswith(";"):
            # a failed query sends no reply of its own, only the status
            raise ProtocolError(self.device, f"no reply to {command!r}: {reply!r}")
        return reply[: m.start()]

    async def query_floats(self, command: str, n: int | None = None) -> list[float]:
        """Send a query whose reply is comma-separated numbers (exactly ``n`` if given)."""
        return self.floats(command, await self.transport.query(command), n)

    def floats(self, command: str, reply: str, n: int | None = None) -> list[float]:
        """Parse ``reply`` (to ``command``) as comma-separated numbers, ``n`` of them if given.

        Raises
        ------
        ProtocolError
            A field is not a number, or there are not ``n`` of them.
        """
        try:
            values: list[float] = list(from_ascii_block(reply, "f", ","))
        except ValueError:
            raise ProtocolError(
                self.device, f"reply to {command!r} is not numeric: {reply[:120]!r}"
            ) from None
        if n is not None and len(values) != n:
            raise ProtocolError(
                self.device,
                f"reply to {command!r} has {len(values)} values, expected {n}: {reply[:120]!r}",
            )
        return values

    async def query_block(self, command: str) -> bytes:
        """Send a query answered by an IEEE 488.2 definite-length block; return its data."""
        return await self.transport.query_block(command)

    async def query_binary_values(
        self, command: str, *, datatype: BINARY_DATATYPES = "d", columns: int = 1
    ) -> np.ndarray[Any, Any]:
        """Send a query answered by a block of little-endian numbers; return them as an array
        of ``columns`` columns (pyvisa's ``from_binary_block`` parses the data).

        Raises
        ------
        ProtocolError
            The block is not a whole number of rows.
        """
        data = await self.transport.query_block(command)
        size = np.dtype(datatype).itemsize * columns
        if len(data) % size:
            raise ProtocolError(
                self.device,
                f"block from {command!r} of {len(data)} bytes is not rows of {columns}",
            )
        # np.ndarray makes pyvisa take its numpy path (np.frombuffer, no copy per value)
        values = from_binary_block(data, 0, len(data), datatype, False, np.ndarray)  # type: ignore[arg-type]
        return np.asarray(values).reshape(-1, columns)

    # -- instrument time -------------------------------------------------------------------
    def short(self, instrument_s: float) -> bool:
        """Return whether an operation of ``instrument_s`` ends within :data:`OPC_WAIT_MAX_S`."""
        return 0 <= instrument_s / self.clock_rate <= OPC_WAIT_MAX_S

    async def pause(self, remaining: float) -> None:
        """Sleep for ``remaining`` instrument seconds (at most :data:`MAX_POLL_S` of wall time)."""
        wait = remaining / self.clock_rate if math.isfinite(remaining) else MAX_POLL_S
        await asyncio.sleep(min(MAX_POLL_S, wait) if wait > MIN_POLL_S else 0)

    async def sleep_instrument(
        self, seconds: float, *, low: float = 0.002, high: float = 0.1
    ) -> None:
        """Sleep ``seconds`` of instrument time, bounded to ``low .. high`` s of wall time."""
        await asyncio.sleep(min(high, max(low, seconds / self.clock_rate)))

    async def wait_for(
        self,
        poll: Callable[[], Awaitable[tuple[bool, float, T]]],
        *,
        what: str,
        timeout: float,
        countdown: Countdown | None = None,
    ) -> T:
        """Poll until done; sleep the remaining instrument time / clock rate in between.
        Each remaining time is the progress of the status this runs in, if it is watched
        (:class:`couponlab.progress.Countdown`).

        Parameters
        ----------
        poll
            Returns ``(done, remaining_instrument_s, value)``.
        what
            What is awaited, for the timeout message.
        timeout
            Wall-clock limit, s.
        countdown
            The action's progress, if it began before this wait (default: a new one).

        Raises
        ------
        InstrumentTimeoutError
            Not done within ``timeout`` s.
        """
        deadline = time.monotonic() + timeout
        countdown = countdown or Countdown()  # progress of a watched action
        while True:
            done, remaining, value = await poll()
            countdown(0.0 if done else remaining)
            if done:
                return value
            if time.monotonic() > deadline:
                raise InstrumentTimeoutError(
                    self.device, f"{what} not finished within {timeout:g} s"
                )
            await self.pause(remaining)


__all__ = [
    "MAX_POLL_S",
    "MIN_POLL_S",
    "NO_ERROR",
    "OPC_WAIT_MAX_S",
    "ScpiClient",
    "raise_for_status",
    "split_status",
]
