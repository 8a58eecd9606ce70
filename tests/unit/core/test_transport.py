"""The TCP line transport against a real LineServer on 127.0.0.1: timeouts, reconnection,
garbled replies, block transfers."""

from __future__ import annotations

import asyncio
import time
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
    ScpiClient,
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
    t = make(server.port)  # the default 2 s for the exchange that must work: a VISA or
    try:  # serial link's native timeout also counts this process's stalls
        with pytest.raises(InstrumentTimeoutError, match=r"echo: no reply to 'SILENT\?'"):
            await t.query("SILENT?", timeout=0.2)
        assert await t.query("VAL?") == "12.345"
    finally:
        await t.close()


async def test_a_reply_that_came_while_this_process_stood_still_is_no_timeout(
    server: LineServer, make: Callable[..., LineTransport]
) -> None:
    """The deadline is the instrument's: while this process's loop cannot run (a document
    callback drawing a figure, a collection, a busy machine), a reply waits unread and the
    stall is not counted; a silent instrument still times out, and says the stall was not
    counted. (VISA and serial links time out natively in one blocking call: no stall.)"""
    t = make(server.port, timeout=0.2)
    loop = asyncio.get_running_loop()
    try:
        assert await t.query("VAL?") == "12.345"  # connected
        for _ in range(3):
            loop.call_soon(time.sleep, 1.0)  # stands still 5x the timeout
            assert await t.query("VAL?") == "12.345"
        if not t.native_timeout:
            loop.call_later(0.05, time.sleep, 0.6)
            with pytest.raises(InstrumentTimeoutError, match=r"stood still 0\.[5-9] s, not"):
                await t.query("SILENT?")
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
    t = make(server.port)
    try:
        assert await t.query("VAL?") == "12.345"
        await LOOPS[server].arun(server.drop_clients())
        await asyncio.sleep(0.05)
        # every link type sees the closed peer (VISA: the transport looks before sending, as
        # pyvisa-py would read the close as silence until its timeout) and the idempotent
        # query is retried once on a fresh connection
        assert await t.query("VAL?") == "12.345"
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


async def test_one_visa_link_closed_or_dropped_leaves_the_others_working(
    server: LineServer,
) -> None:
    """pyvisa shares one ResourceManager per library: a link closes only its own session."""
    a = VisaLineTransport("a", f"TCPIP::127.0.0.1::{server.port}::SOCKET", backoff=FAST)
    b = VisaLineTransport("b", f"TCPIP::127.0.0.1::{server.port}::SOCKET", backoff=FAST)
    c = VisaLineTransport("c", f"TCPIP::127.0.0.1::{server.port}::SOCKET", backoff=FAST)
    try:
        for t in (a, b, c):
            assert await t.query("VAL?") == "12.345"
        await a.close()  # closed on purpose
        with pytest.raises(InstrumentTimeoutError):  # dropped: the link is let go
            await b.query("SILENT?", timeout=0.1)
        assert not b.connected
        assert await c.query("VAL?") == "12.345"
        assert await b.query("VAL?") == "12.345"  # and b comes back by itself
        assert c.reconnects == 0
    finally:
        for t in (a, b, c):
            await t.close()


async def test_a_visa_manager_closed_by_someone_else_is_a_lost_link_not_an_untyped_error(
    server: LineServer,
) -> None:
    import pyvisa

    t = VisaLineTransport("a", f"TCPIP::127.0.0.1::{server.port}::SOCKET", backoff=FAST)
    try:
        assert await t.query("VAL?") == "12.345"
        pyvisa.ResourceManager("@py").close()  # e.g. a script in the same session
        assert await t.query("VAL?") == "12.345"  # idempotent: retried on a new session
        assert t.reconnects == 1
    finally:
        await t.close()


async def test_client_parses_numbers_and_blocks_with_pyvisa(server: LineServer) -> None:
    t = TcpLineTransport("echo", "127.0.0.1", server.port, backoff=FAST)
    client = ScpiClient(t)
    try:
        assert await client.query_floats("VAL?", 1) == [12.345]
        with pytest.raises(ProtocolError, match="expected 2"):
            await client.query_floats("VAL?", 2)
        with pytest.raises(ProtocolError, match="not numeric"):
            await client.query_floats("*IDN?")
        rows = await client.query_binary_values("BLOCK?", datatype="B", columns=256)
        assert rows.shape == (40, 256) and rows[3, 255] == 255
        with pytest.raises(ProtocolError, match="not rows of 3"):
            await client.query_binary_values("BLOCK?", columns=3)
    finally:
        await t.close()
