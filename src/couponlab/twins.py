"""The one entry point through which runtime code starts twins: everything here imports
:mod:`couponlab.simulators` lazily, so that drivers and plans never depend on it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from couponlab.labfile import LabFile

if TYPE_CHECKING:
    from couponlab.simulators.background import BackgroundLoop
    from couponlab.simulators.lab_twins import TwinLab
    from couponlab.simulators.world import World

T = TypeVar("T")


class BackgroundTwins:
    """The twins of a lab running on their own event loop and thread.

    Use :attr:`lab` (addresses resolved) to build and connect drivers on your own loop;
    :meth:`call` runs a function on the twins' thread (ground truth, fault injection);
    :meth:`stop` stops every twin and the thread.
    """

    def __init__(self, lab: LabFile) -> None:
        from couponlab.simulators.background import BackgroundLoop
        from couponlab.simulators.lab_twins import start_lab_twins

        self._bg: BackgroundLoop = BackgroundLoop("couponlab-twins")
        try:
            self._running: TwinLab = self._bg.run(start_lab_twins(lab))
        except BaseException:
            self._bg.stop()
            raise
        self.lab: LabFile = self._running.lab

    @property
    def world(self) -> World:
        """Return the shared world (touch it only through :meth:`call`)."""
        return self._running.world

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Call ``fn(*args)`` on the twins' thread and return its result."""
        return self._bg.call(fn, *args)

    async def acall(self, fn: Callable[..., T], *args: Any) -> T:
        """Await ``fn(*args)`` run on the twins' thread."""
        return await self._bg.acall(fn, *args)

    def stop(self) -> None:
        """Stop every twin and the twins' thread (idempotent)."""
        if self._bg is not None:
            try:
                self._bg.run(self._running.stop())
            finally:
                self._bg.stop()

    def __enter__(self) -> BackgroundTwins:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def serve_twins(
    lab: LabFile,
    resolved_path: str | Path | None = None,
    *,
    on_ready: Callable[[LabFile], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve the twins of ``lab`` in this process until SIGINT/SIGTERM (or ``stop`` is set).

    Parameters
    ----------
    lab
        The lab file; only ``twin: true`` devices are started.
    resolved_path
        Where to write the lab file with the real addresses, atomically, once every twin
        listens (a reader that sees the file can connect at once).
    on_ready
        Called with the resolved lab file once every twin listens.
    stop
        An event that ends serving when set (SIGINT and SIGTERM set it too).
    """
    from couponlab.simulators.lab_twins import start_lab_twins

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    running = await start_lab_twins(lab)
    try:
        if resolved_path is not None:
            _write_atomically(running.lab, Path(resolved_path))
        if on_ready is not None:
            on_ready(running.lab)
        await stop.wait()
    finally:
        await running.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def _write_atomically(lab: LabFile, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".yaml.tmp")
    os.close(fd)
    lab.dump(tmp)
    os.replace(tmp, path)


__all__ = ["BackgroundTwins", "serve_twins"]
