"""Run twins on an event loop of their own, in a background thread.

A twin must not share the event loop of a driver whose transport blocks (pyvisa calls run
on the loop): the twin could not answer while the driver waits. Tests and the demo
therefore host twins on a :class:`BackgroundLoop`, the way an instrument is a separate
machine. Code that touches the world (fault injection, ground truth) goes through
:meth:`BackgroundLoop.call` so it runs on the twins' thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")


class BackgroundLoop:
    """An asyncio event loop running in its own (non-daemon) thread until :meth:`stop`.

    Parameters
    ----------
    name
        Thread name.
    """

    def __init__(self, name: str = "twins") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()
        # run_forever returned: cancel what is left and close
        pending = asyncio.all_tasks(self.loop)
        for task in pending:
            task.cancel()
        if pending:
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = 30.0) -> T:
        """Run ``coro`` on the loop and wait (blocking) for its result."""
        fut: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout)

    async def arun(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and await its result from another event loop."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def call(self, fn: Callable[..., T], *args: Any, timeout: float | None = 30.0) -> T:
        """Call ``fn(*args)`` on the loop's thread and return its result (blocking)."""

        async def _call() -> T:
            return fn(*args)

        return self.run(_call(), timeout)

    async def acall(self, fn: Callable[..., T], *args: Any) -> T:
        """Call ``fn(*args)`` on the loop's thread and await its result."""

        async def _call() -> T:
            return fn(*args)

        return await self.arun(_call())

    def stop(self) -> None:
        """Stop the loop and join the thread (idempotent)."""
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10.0)
