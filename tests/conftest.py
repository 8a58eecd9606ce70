"""Shared fixtures: leak checks (tasks, threads), free ports, a twin lab on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator, Iterator

import pytest


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves a new thread running."""
    before = set(threading.enumerate())
    yield
    leaked = [
        t for t in threading.enumerate() if t not in before and t.is_alive() and not t.daemon
    ]
    for t in leaked:
        t.join(timeout=2.0)
    still = [t.name for t in leaked if t.is_alive()]
    assert not still, f"test leaked threads: {still}"


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    """Fail an async test that leaves asyncio tasks running on its loop."""
    before = asyncio.all_tasks()
    yield
    current = asyncio.current_task()
    pending = [
        t for t in asyncio.all_tasks() if t not in before and t is not current and not t.done()
    ]
    if pending:
        await asyncio.sleep(0.05)  # let cancellations finish
        pending = [t for t in pending if not t.done()]
    assert not pending, f"test leaked asyncio tasks: {[t.get_name() for t in pending]}"


@pytest.fixture
def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
