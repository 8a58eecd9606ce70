"""No command drops a twin's link: ``inf``, ``nan`` and huge numbers in every command of every
line twin of the bundled lab are answered (an error on the queue at worst), and the same
connection answers ``*IDN?`` afterwards. A handler that raises anything is answered by the
dispatcher's error queue, and a line server keeps the connection when its handler raises.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from couponlab.cli import sample_lab_path
from couponlab.labfile import load_lab
from couponlab.simulators.detectors._scpi_twin import parse_socket_address
from couponlab.simulators.lab_twins import TwinLab, start_lab_twins
from couponlab.simulators.line_server import LineServer
from couponlab.simulators.scpi import (
    DATA_OUT_OF_RANGE,
    EXECUTION_ERROR,
    ScpiDispatcher,
    parse_float,
)
from couponlab.simulators.world import World, WorldConfig

VALUES = ["inf", "-inf", "nan", "INF", "1e400", "1e308", "-1e308", "9" * 5000]
"""Numbers that overflow, are not finite, or are absurdly large."""
REPLY_DEADLINE_S = 10.0
"""A deadline for a reply on a loaded machine (never a measured time)."""


@pytest.fixture
async def lab() -> AsyncIterator[TwinLab]:
    """Every twin of the bundled lab, in a paused world (nothing moves on its own)."""
    declared = load_lab(sample_lab_path())
    world = World(WorldConfig.model_validate(declared.world), paused=True)
    running = await start_lab_twins(declared, world=world, run_clock=False)
    try:
        yield running
    finally:
        await running.stop()
        await asyncio.get_running_loop().shutdown_default_executor()  # file writers' thread


def _dispatcher(twin: object) -> ScpiDispatcher | None:
    found = [v for v in vars(twin).values() if isinstance(v, ScpiDispatcher)]
    return found[0] if found else None


async def _until(reader: asyncio.StreamReader, wanted: str) -> None:
    """Read lines until ``wanted`` arrives; fail if the link closes or stays silent."""
    while True:
        raw = await asyncio.wait_for(reader.readline(), REPLY_DEADLINE_S)
        assert raw, "the twin closed the connection"
        if raw.decode("ascii", errors="replace").strip() == wanted:
            return


async def test_every_command_of_every_line_twin_survives_bad_numbers(
    lab: TwinLab, caplog: pytest.LogCaptureFixture
) -> None:
    tried = 0
    twins = 0
    for name, twin in lab.twins.items():
        dispatcher = _dispatcher(twin)
        if dispatcher is None:
            continue  # the furnace speaks OPC UA
        twins += 1
        host, port = parse_socket_address(lab.lab.device(name).address)
        reader, writer = await asyncio.open_connection(host, port, limit=2**26)
        try:
            for header in dispatcher.headers():
                if header in ("*OPC?", "*RST"):
                    continue  # *OPC? waits for motion in a paused world; *RST takes no number
                for value in VALUES:
                    for args in (value, f"1,{value}", f"1,1,{value}"):
                        writer.write(f"{header} {args}\n*IDN?\n".encode())
                        await writer.drain()
                        await _until(reader, dispatcher.idn)
                        tried += 1
            writer.write(b"*CLS\n*IDN?\n")
            await _until(reader, dispatcher.idn)
        finally:
            writer.close()
            await writer.wait_closed()
    assert twins >= 8, f"only {twins} line twins found"
    failed = {r.getMessage() for r in caplog.records if r.name.endswith("scpi")}
    print(f"{tried} commands with inf/nan/huge numbers sent to {twins} line twins; link kept")
    print(f"{len(failed)} handler(s) raised (answered -200 on the queue): {sorted(failed)}")


def test_a_handler_that_overflows_is_an_error_on_the_queue() -> None:
    d = ScpiDispatcher("maker,model,0,1")

    def overflow(args: list[str]) -> None:
        int(float(args[0]))  # OverflowError for inf

    def bug(args: list[str]) -> None:
        raise RuntimeError('a "bug"')

    d.register("RATE", overflow)
    d.register("BUG", bug)
    assert d.handle("RATE inf;*IDN?") == "maker,model,0,1"
    code, _, message = d.pop_error().partition(",")
    assert int(code) == DATA_OUT_OF_RANGE and "RATE inf" in message
    assert d.handle("BUG;SYST:ERR?") == "-200,\"Execution error; RuntimeError: a 'bug'\""
    assert int(EXECUTION_ERROR) == -200


@pytest.mark.parametrize("text", ["inf", "-inf", "nan", "1e400"])
def test_parse_float_refuses_what_is_not_finite(text: str) -> None:
    d = ScpiDispatcher("x,y,0,1")
    d.register("SET", lambda a: parse_float(a, name="value") and None)
    assert d.handle(f"SET {text};SYST:ERR?") == f'-222,"Data out of range; value={text}"'


async def test_a_line_server_keeps_the_link_when_its_handler_raises(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def handler(line: str) -> str:
        if line == "boom":
            raise OverflowError("cannot convert float infinity to integer")
        return f"echo {line}"

    server = LineServer(World(paused=True), handler, on_error=lambda line, exc: f"ERR {exc}")
    await server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        with caplog.at_level(logging.ERROR, logger="couponlab.simulators.line_server"):
            writer.write(b"boom\nping\n")
            await writer.drain()
            first = await asyncio.wait_for(reader.readline(), REPLY_DEADLINE_S)
            second = await asyncio.wait_for(reader.readline(), REPLY_DEADLINE_S)
        writer.close()
        await writer.wait_closed()
    finally:
        await server.stop()
    assert first == b"ERR cannot convert float infinity to integer\n"
    assert second == b"echo ping\n"
    assert "twin handler failed on 'boom'" in caplog.text
