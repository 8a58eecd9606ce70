"""A communication watchdog for twins: puts the instrument in its safe state when its client
goes silent (docs/decisions/0008-communication-watchdogs.md).

The client arms it with a timeout (s, 0 = off) over the instrument's own protocol; every
request from the client feeds it. When no request has arrived for the timeout while the
instrument is active, the twin's ``trip`` action runs once (safe state + a latched reason).

Time here is **wall** time of the link (``time.monotonic``), never the world's virtual time:
the watchdog watches the client, and the client lives on the wall clock. A twin running at a
speed-up of 1000 would otherwise trip between two polls of a perfectly healthy driver.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

MAX_TIMEOUT_S = 3600.0
"""Longest timeout a client may set, s."""


class CommWatchdog:
    """Wall-clock communication watchdog (runs on the twin's own loop).

    Parameters
    ----------
    is_active
        Return whether the instrument is doing something a lost client must not leave
        running (furnace out of standby, cell lasing or moving).
    trip
        Put the instrument in its safe state and latch ``reason`` (called once per expiry,
        on the twin's loop; it should sync the world itself).
    timeout_s
        Initial timeout, s (0 = off; the instrument's power-on value).
    clock
        Wall clock, s (monotonic); a test may pass its own.
    """

    def __init__(
        self,
        is_active: Callable[[], bool],
        trip: Callable[[str], Awaitable[None]],
        *,
        timeout_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._is_active = is_active
        self._trip = trip
        self._clock = clock
        self._timeout_s = 0.0
        self._last = clock()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.set_timeout(timeout_s)

    # -- what the protocol calls ------------------------------------------------------------
    @property
    def timeout_s(self) -> float:
        """Return the timeout, s (0 = off)."""
        return self._timeout_s

    def set_timeout(self, timeout_s: float) -> None:
        """Arm (``> 0``) or disarm (``0``) the watchdog, s in [0, :data:`MAX_TIMEOUT_S`].

        Raises
        ------
        ValueError
            Not a finite number in range (nothing changed).
        """
        if not (math.isfinite(timeout_s) and 0.0 <= timeout_s <= MAX_TIMEOUT_S):
            raise ValueError(f"watchdog timeout must be in [0, {MAX_TIMEOUT_S:g}] s")
        self._timeout_s = float(timeout_s)
        self.feed()
        self._wake.set()  # the poll period depends on the timeout

    def feed(self) -> None:
        """Record a request from the client (restarts the count)."""
        self._last = self._clock()

    def silent_s(self) -> float:
        """Return the wall time since the last request, s."""
        return self._clock() - self._last

    def expired(self) -> bool:
        """Return whether the watchdog is armed and no request came for its timeout."""
        return self._timeout_s > 0 and self.silent_s() >= self._timeout_s

    def poll_period_s(self) -> float:
        """Return how often :meth:`check` runs, s: a tenth of the timeout, 0.01 .. 0.25."""
        if self._timeout_s <= 0:
            return 0.25
        return min(max(self._timeout_s / 10.0, 0.01), 0.25)

    async def check(self) -> bool:
        """Trip the instrument if the watchdog expired while it is active; return whether."""
        if not self.expired():
            return False
        silent, timeout = self.silent_s(), self._timeout_s
        self.feed()  # one trip per expiry; a still-silent client counts anew
        if not self._is_active():
            return False
        reason = f"watchdog: no request from the client for {silent:.2f} s (timeout {timeout:g} s)"
        log.warning("%s", reason)
        await self._trip(reason)
        return True

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        """Start watching (call on the twin's loop; idempotent)."""
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.create_task(self._run(), name="twin-watchdog")

    async def stop(self) -> None:
        """Stop watching (idempotent)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_period_s())
            self._wake.clear()
            try:
                await self.check()
            except Exception:  # keep watching; a failing trip is logged, not fatal
                log.exception("watchdog trip failed")


__all__ = ["MAX_TIMEOUT_S", "CommWatchdog"]
