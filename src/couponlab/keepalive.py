"""A light keep-alive task a driver owns to feed its instrument's communication watchdog.

The instrument (or its twin) puts itself in its safe state when its client sends nothing for
the watchdog timeout (docs/decisions/0008-communication-watchdogs.md). Between a driver's
own polls (a plan that does something else for an hour while the furnace holds a gradient)
this task sends one cheap request every ``period_s`` of wall time, so only a client that is
really gone (killed, hung loop, cable pulled) lets the watchdog expire. The driver starts it
when it arms the watchdog at connect and stops it at disconnect: no task outlives the device.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class KeepAlive:
    """Call ``feed`` every ``period_s`` (wall time) on the running loop until stopped.

    Parameters
    ----------
    device
        Device name (for the log).
    feed
        One cheap request to the instrument; its errors are logged and the loop goes on
        (the transport reconnects on its own; a lost link is what the watchdog is for).
    period_s
        Wall-clock period, s (> 0); a quarter of the watchdog timeout is a good value.
    """

    def __init__(
        self, device: str, feed: Callable[[], Awaitable[object]], period_s: float
    ) -> None:
        if not period_s > 0:
            raise ValueError(f"keep-alive period must be > 0 s, got {period_s}")
        self.device = device
        self.period_s = float(period_s)
        self._feed = feed
        self._task: asyncio.Task[None] | None = None
        self.feeds = 0
        """Requests sent so far."""
        self.failures = 0
        """Requests that raised so far."""

    @property
    def running(self) -> bool:
        """Return whether the task is running."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the task on the running loop (idempotent)."""
        if not self.running:
            self._task = asyncio.create_task(self._run(), name=f"{self.device}-keepalive")

    async def stop(self) -> None:
        """Cancel the task and wait for it (idempotent)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.period_s)
            try:
                await self._feed()
                self.feeds += 1
            except Exception as exc:  # keep going: the watchdog decides, not this task
                self.failures += 1
                log.warning("%s keep-alive failed: %s", self.device, exc)


__all__ = ["KeepAlive"]
