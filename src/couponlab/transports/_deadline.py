"""Reply deadlines that count the instrument's time, not this process's own stalls.

A reply deadline answers one question: did the instrument answer in time? While the event
loop that waits for the reply cannot run (a document callback drawing its first figure, a
garbage collection, a busy machine that does not schedule this process), the reply may sit
in the socket unread, and a plain ``asyncio.timeout`` expires all the same: the instrument is
then blamed for the client's stall (the tutorial's furnace "no reply within 2 s" on a loaded
machine was this: 1.7 s of figure set-up on the loop at load 5).

:func:`reply_deadline` is ``asyncio.timeout`` with that stall taken out: a heartbeat on the
loop (a timer every :data:`BEAT_S`, only while a deadline is open) measures how late the
loop ran its callbacks, and a deadline that comes due after such a stall is moved on by
the stall's length. The instrument still gets exactly ``timeout`` seconds of the loop's
attention; a silent instrument still times out (the stall is measured, never guessed).
"""

from __future__ import annotations

import asyncio
import weakref
from types import TracebackType

BEAT_S = 0.05
"""Heartbeat period while a deadline is open, s."""

LATE_S = 0.02
"""A heartbeat later than this counts, in full, as a stall of the loop, s."""


class _StallMeter:
    """How long one event loop could not run its callbacks, measured by a heartbeat that
    runs only while some deadline on the loop is open."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._stalled = 0.0
        self._due = 0.0
        self._users = 0
        self._handle: asyncio.TimerHandle | None = None

    def acquire(self) -> None:
        """Start the heartbeat for one more deadline."""
        self._users += 1
        if self._handle is None:
            self._due = self._loop.time() + BEAT_S
            self._handle = self._loop.call_at(self._due, self._beat)

    def release(self) -> None:
        """Stop the heartbeat when the last open deadline closes."""
        self._users -= 1
        if self._users <= 0 and self._handle is not None:
            self._users = 0
            self._handle.cancel()
            self._handle = None

    def _beat(self) -> None:
        now = self._loop.time()
        late = now - self._due
        if late > LATE_S:
            self._stalled += late
        self._due = now + BEAT_S
        self._handle = self._loop.call_at(self._due, self._beat)

    def stalled(self) -> float:
        """Return the loop's stalls so far, s, including one still in progress (a heartbeat
        overdue now)."""
        if self._handle is None:
            return self._stalled
        late = self._loop.time() - self._due
        return self._stalled + (late if late > LATE_S else 0.0)


_METERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _StallMeter] = (
    weakref.WeakKeyDictionary()
)


def _meter(loop: asyncio.AbstractEventLoop) -> _StallMeter:
    meter = _METERS.get(loop)
    if meter is None:
        meter = _METERS[loop] = _StallMeter(loop)
    return meter


class reply_deadline:  # noqa: N801 - used like asyncio.timeout
    """``async with reply_deadline(t):`` bounds the block to ``t`` seconds of the event
    loop's time, not counting the loop's own stalls; on expiry the block is cancelled and
    ``TimeoutError`` raised, exactly as ``asyncio.timeout(t)`` would.

    Parameters
    ----------
    timeout
        Seconds the awaited reply may take (>= 0), or None for no deadline.
    """

    def __init__(self, timeout: float | None) -> None:
        self._timeout = timeout
        self._inner = asyncio.timeout(None)
        self._meter: _StallMeter | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._stalled_at_start = 0.0
        self._when = 0.0
        self._stalled = 0.0

    @property
    def stalled_s(self) -> float:
        """Return how long the loop stood still since the block began, s (not counted)."""
        if self._meter is None:
            return self._stalled
        return self._meter.stalled() - self._stalled_at_start

    def expired(self) -> bool:
        """Return True if the deadline expired (the block was cancelled by it)."""
        return self._inner.expired()

    async def __aenter__(self) -> reply_deadline:
        await self._inner.__aenter__()
        if self._timeout is not None:
            loop = asyncio.get_running_loop()
            self._meter = _meter(loop)
            self._meter.acquire()
            self._stalled_at_start = self._meter.stalled()
            self._when = loop.time() + max(0.0, self._timeout)
            self._handle = loop.call_at(self._when, self._due)
        return self

    def _due(self) -> None:
        assert self._meter is not None
        loop = asyncio.get_running_loop()
        # the loop stood still meanwhile: the reply gets that long again
        when = self._when + self._meter.stalled() - self._stalled_at_start
        if when > loop.time() + 1e-3:
            self._handle = loop.call_at(when, self._due)
        else:
            self._handle = None
            self._inner.reschedule(loop.time())

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._meter is not None:
            self._stalled = self._meter.stalled() - self._stalled_at_start
            self._meter.release()
            self._meter = None
        await self._inner.__aexit__(exc_type, exc, tb)  # raises TimeoutError if it expired


def stall_note(deadline: reply_deadline) -> str:
    """Return "" or, when the loop stood still during ``deadline``'s block, the words to add
    to a timeout's message ("; this process also stood still 3.1 s, not counted")."""
    stalled = deadline.stalled_s
    if stalled < LATE_S:
        return ""
    return f"; this process also stood still {stalled:.1f} s, not counted"


__all__ = ["BEAT_S", "LATE_S", "reply_deadline", "stall_note"]
