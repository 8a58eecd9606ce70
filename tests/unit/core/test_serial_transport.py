"""The serial transport's lock-free fast path and its line reader keep the transport's
contract: a whole-reply deadline (not only per byte), no interleaving of concurrent
exchanges, no re-sent commands after a broken link."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from couponlab.errors import ConnectionLostError, InstrumentTimeoutError
from couponlab.simulators.background import BackgroundLoop
from couponlab.transports import Backoff, SerialLineTransport

FAST = Backoff(attempts=2, initial=0.01, maximum=0.02)


class SlowServer:
    """A TCP server on 127.0.0.1: ``TRICKLE?`` answers ``123\\n`` one byte every 0.15 s,
    ``DROP`` closes the connection without a reply, anything else is echoed at once."""

    def __init__(self) -> None:
        self.bg = BackgroundLoop("slow-server")
        self.lines: list[str] = []
        self.server: asyncio.Server | None = None
        self.port = 0
        self.clients: set[asyncio.Task[None]] = set()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.clients.add(task)
        try:
            while line := await reader.readline():
                text = line.decode().strip()
                self.lines.append(text)
                if text == "TRICKLE?":
                    for b in b"123\n":
                        await asyncio.sleep(0.15)
                        writer.write(bytes([b]))
                        await writer.drain()
                elif text == "DROP":
                    break
                else:
                    writer.write(line)
                    await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            self.clients.discard(task)

    async def _start(self) -> None:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for task in list(self.clients):
            task.cancel()
        await asyncio.gather(*self.clients, return_exceptions=True)
        await self.server.wait_closed()

    def start(self) -> None:
        self.bg.run(self._start())

    def stop(self) -> None:
        try:
            self.bg.run(self._stop())
        finally:
            self.bg.stop()


@pytest.fixture
def slow() -> Iterator[SlowServer]:
    srv = SlowServer()
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


async def test_a_trickling_reply_times_out_as_a_whole(slow: SlowServer) -> None:
    # every byte comes within the 0.3 s timeout, the line as a whole takes 0.6 s (the other
    # exchanges keep the default 2 s: this process's stalls count in a native timeout)
    t = SerialLineTransport("dut", f"socket://127.0.0.1:{slow.port}", backoff=FAST)
    try:
        assert await t.query("HELLO?") == "HELLO?"  # connected: the fast path is taken
        with pytest.raises(InstrumentTimeoutError, match=r"dut: no reply to 'TRICKLE\?'"):
            await t.query("TRICKLE?", timeout=0.3)
        assert not t.connected  # dropped, so the late bytes cannot answer the next query
        assert await t.query("AGAIN?") == "AGAIN?"
    finally:
        await t.close()


async def test_concurrent_queries_never_interleave(slow: SlowServer) -> None:
    t = SerialLineTransport("dut", f"socket://127.0.0.1:{slow.port}", backoff=FAST)
    try:
        await t.connect()
        replies = await asyncio.gather(*(t.query(f"Q{k}?") for k in range(50)))
        assert replies == [f"Q{k}?" for k in range(50)]
        assert t.bytes_written == sum(len(f"Q{k}?\n") for k in range(50))
    finally:
        await t.close()


async def test_a_broken_link_never_resends_a_setting(slow: SlowServer) -> None:
    t = SerialLineTransport("dut", f"socket://127.0.0.1:{slow.port}", timeout=0.5, backoff=FAST)
    try:
        await t.connect()
        with pytest.raises(ConnectionLostError, match="lost during 'DROP'"):
            await t.query("DROP", idempotent=False)
        await asyncio.sleep(0.05)
        assert slow.lines.count("DROP") == 1  # sent once, not retried behind the caller
        # a query is retried once on a fresh connection
        assert await t.query("X?") == "X?"
        assert t.reconnects == 1
    finally:
        await t.close()
