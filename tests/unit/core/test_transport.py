"""The TCP line transport against a real LineServer on 127.0.0.1: timeouts, reconnection,
garbled replies, block transfers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest

from couponlab.errors import ConnectionLostError, InstrumentTimeoutError, ProtocolError
from couponlab.simulators.background import BackgroundLoop
from couponlab.simulators.line_server import LineServer
from couponlab.simulators.scpi import ScpiDispatcher, ieee_block
from couponlab.simulators.world import World
from couponlab.transports import (
    Backoff,
    LineTransport,
    SerialLineTransport,
    TcpLineTransport,
    VisaLineTransport,
)

FAST = Backoff(attempts=3, initial=0.01, maximum=0.02)
LOOPS: dict[LineServer, BackgroundLoop] = {}


class Echo(ScpiDispatcher):
    def __init__(self) -> None:
        super().__init__("couponlab,ECHO,0,1")
        self.register("SILENT?", lambda a: None)
        self.register("GARBLED?", lambda a: b"\xff\xfe\n")
        self.register("BLOCK?", lambda a: ieee_block(bytes(range(256)) * 40))
        self.register("VAL?", lambda a: "12.345")


@pytest.fixture(params=["tcp", "visa", "serial"])
def make(request: pytest.FixtureRequest) -> Callable[..., LineTransport]:
    """Build a transport of each kind to a port on 127.0.0.1."""

    def build(port: int, **kw: object) -> LineTransport:
        kw.setdefault("backoff", FAST)
        if request.param == "tcp":
            return TcpLineTransport("echo", "127.0.0.1", port, **kw)
        if request.param == "serial":
            return SerialLineTransport("echo", f"socket://127.0.0.1:{port}", **kw)  # type: ignore[arg-type]
        return VisaLineTransport("echo", f"TCPIP::127.0.0.1::{port}::SOCKET", **kw)  # type: ignore[arg-type]

    return build


@pytest.fixture
def server() -> Iterator[LineServer]:
    """An Echo server on its own loop and thread, as an instrument is another machine."""
    bg = BackgroundLoop()
    srv = LineServer(World(), Echo().handle)
    LOOPS[srv] = bg
    try:
        bg.run(srv.start())
        yield srv
        bg.run(srv.stop())
    finally:
        bg.stop()


async def test_query_and_compound_command(
    server: LineServer, make: Callable[..., LineTransport]
) -> None:
    t = make(server.port)
    try:
        assert await t.query("*IDN?") == "couponlab,ECHO,0,1"
        assert await t.query("NOPE;:SYST:ERR?") == '-113,"Undefined header; NOPE"'
        assert await t.query("VAL?;VAL?") == "12.345;12.345"
    finally:
        await t.close()


async def test_missing_reply_times_out_and_next_exchange_works(
    server: LineServer, make: Callable[..., LineTransport]
) -> None:
    t = make(server.port, timeout=0.2)
    try:
        with pytest.raises(InstrumentTimeoutError, match=r"echo: no reply to 'SILENT\?'"):
            await t.query("SILENT?")
        assert await t.query("VAL?") == "12.345"
    finally:
        await t.close()


async def test_garbled_reply_is_a_protocol_error(
    server: LineServer, make: Callable[..., LineTransport]
) -> None:
    t = make(server.port)
    try:
        with pytest.raises(ProtocolError, match="garbled"):
            await t.query("GARBLED?")
    finally:
        await t.close()


async def test_block_transfer(server: LineServer, make: Callable[..., LineTransport]) -> None:
    t = make(server.port)
    try:
        assert await t.query_block("BLOCK?") == bytes(range(256)) * 40
        assert await t.query("VAL?") == "12.345"
    finally:
        await t.close()


async def test_reconnects_after_server_drops_clients(
    server: LineServer, make: Callable[..., LineTransport]
) -> None:
    t = make(server.port, timeout=0.3)
    try:
        assert await t.query("VAL?") == "12.345"
        await LOOPS[server].arun(server.drop_clients())
        await asyncio.sleep(0.05)
        if isinstance(t, VisaLineTransport):
            # pyvisa-py does not notice a closed peer: the exchange times out, and the
            # transport drops the link so that the next one reconnects.
            with pytest.raises(InstrumentTimeoutError):
                await t.query("VAL?")
        assert await t.query("VAL?") == "12.345"  # TCP: the idempotent query is retried once
        assert t.reconnects == 1
    finally:
        await t.close()


async def test_gives_up_with_bounded_backoff(
    free_port: int, make: Callable[..., LineTransport]
) -> None:
    t = make(free_port, timeout=0.2)
    with pytest.raises(ConnectionLostError, match="echo"):
        await t.query("VAL?")  # VISA opens lazily: the first exchange finds the port closed


def test_backoff_is_bounded() -> None:
    assert Backoff(attempts=6, initial=0.1, factor=2, maximum=0.5).delays() == [
        0.1,
        0.2,
        0.4,
        0.5,
        0.5,
    ]


async def test_command_with_terminator_refused(
    server: LineServer, make: Callable[..., LineTransport]
) -> None:
    t = make(server.port)
    with pytest.raises(ProtocolError, match="terminator"):
        await t.query("VAL?\nVAL?")
    assert not t.connected  # refused before connecting, let alone sending
