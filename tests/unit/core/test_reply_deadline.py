"""reply_deadline: asyncio.timeout with this process's own stalls taken out."""

from __future__ import annotations

import asyncio
import time

import pytest

from couponlab.transports._deadline import _METERS, reply_deadline, stall_note


async def test_a_silent_wait_expires_like_asyncio_timeout() -> None:
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    deadline = reply_deadline(0.05)
    with pytest.raises(TimeoutError):
        async with deadline:
            await never
    assert deadline.expired()
    assert stall_note(deadline) == ""


async def test_a_stall_moves_the_deadline_on_by_its_length() -> None:
    loop = asyncio.get_running_loop()
    reply: asyncio.Future[str] = loop.create_future()
    # the loop stands still 0.5 s (past the 0.1 s deadline); the reply comes 0.1 s of loop
    # time later, inside the deadline once the stall is taken out
    loop.call_soon(time.sleep, 0.5)
    loop.call_later(0.55, reply.set_result, "ok")
    deadline = reply_deadline(0.2)
    async with deadline:
        assert await reply == "ok"
    assert not deadline.expired()
    assert 0.4 < deadline.stalled_s < 5.0
    assert "stood still" in stall_note(deadline)


async def test_without_a_stall_the_deadline_is_not_moved() -> None:
    loop = asyncio.get_running_loop()
    late: asyncio.Future[str] = loop.create_future()
    loop.call_later(1.0, late.set_result, "too late")
    with pytest.raises(TimeoutError):
        async with reply_deadline(0.1):
            await late
    late.cancel()


async def test_no_deadline_and_the_heartbeat_stops_with_the_last_deadline() -> None:
    loop = asyncio.get_running_loop()
    async with reply_deadline(None):
        await asyncio.sleep(0)
    async with reply_deadline(1.0), reply_deadline(2.0):
        await asyncio.sleep(0.12)  # two heartbeats
    assert _METERS[loop]._handle is None  # no timer left on the loop
