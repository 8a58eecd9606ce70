"""Shared by the protocol fuzz tests: the bundled lab's line devices, and what a long-lived
fixture left open (file descriptors, tasks of its own loop, threads)."""

from __future__ import annotations

import asyncio
import os
import threading
from dataclasses import dataclass, field

LINE_DEVICES = (
    "feeder1", "cell1", "frame1", "stage1", "profiler1", "xrf1", "camera1", "tcs1",
    "pyro1", "robot1",
)  # fmt: skip
"""The bundled lab's devices that speak a line protocol (all but the OPC UA furnace)."""


def _fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def _target(fd: str) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return "?"


@dataclass
class OpenBefore:
    """Descriptors and threads open when the fixture started (take it first)."""

    fds: set[str] = field(default_factory=_fds)
    threads: int = field(default_factory=threading.active_count)

    def close_loop_and_diff(self, loop: asyncio.AbstractEventLoop) -> list[str]:
        """Close ``loop`` (after its async generators) and return what is left open since."""
        loop.run_until_complete(loop.shutdown_asyncgens())
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        loop.close()
        left = [f"task left: {t!r:.120}" for t in pending]
        left += [f"fd left: {fd} -> {_target(fd)}" for fd in sorted(_fds() - self.fds)]
        if threading.active_count() > self.threads:
            left.append(f"threads: {self.threads} -> {threading.active_count()}")
        return left
