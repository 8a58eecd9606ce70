"""Deposition drivers refuse bad input before opening a link, let alone sending a byte."""

from __future__ import annotations

import pytest

from couponlab.drivers.deposition import AsciiDepositionCell, AsciiPowderFeeder
from couponlab.drivers.deposition._link import parse_error
from couponlab.errors import InputError, InterlockTrippedError, ProtocolError, UnitError
from couponlab.interfaces.feeder import PrintJob
from couponlab.transports import SerialLineTransport


def transport(port: int) -> SerialLineTransport:
    return SerialLineTransport("dut", f"socket://127.0.0.1:{port}")


async def test_feeder_refuses_before_connecting(free_port: int) -> None:
    t = transport(free_port)
    feeder = AsciiPowderFeeder(t, hoppers=4, max_rate=20.0, name="dut")
    for bad in (-1, 20.5, "3 L/min", float("inf"), True):
        with pytest.raises(InputError):
            await feeder.set_rate(1, bad)
    with pytest.raises(InputError, match=r"hopper 5 is outside 1\.\.4"):
        await feeder.set_rate(5, 1.0)
    with pytest.raises(UnitError):
        await feeder.start_log(1, "1 g")
    assert t.bytes_written == 0 and not t.connected


async def test_cell_refuses_a_bad_job_whole(free_port: int) -> None:
    t = transport(free_port)
    cell = AsciiDepositionCell(t, max_power=500.0, name="dut")
    cell._channels = [("f1", 1), ("f1", 2)]
    ok = [(-10.0, [1.0, 0.0]), (0.0, [0.0, 1.0])]
    assert cell.validate_job(PrintJob("C-1", 20, -10, 21, 10, 400, ok))[1] == "COUP C-1,20.000"
    with pytest.raises(InputError, match="laser power = 600 W"):
        await cell.load_print(PrintJob("C-1", 20, -10, 21, 10, 600, ok))
    with pytest.raises(InputError, match="point 1"):
        await cell.load_print(PrintJob("C-1", 20, -10, 21, 10, 400, [ok[0], (1.0, [1.0, 99.0])]))
    assert t.bytes_written == 0 and not t.connected


def test_error_replies_become_typed_errors() -> None:
    parse_error("dut", "RATE 1,5", '0,"No error"')
    with pytest.raises(InterlockTrippedError, match="interlock"):
        parse_error("dut", "LAS ON", '-221,"Settings conflict; interlock: no gas"')
    with pytest.raises(ProtocolError, match=r"refused by the instrument: .* \(-222\)"):
        parse_error("dut", "RATE 1,45", '-222,"Data out of range; RATE 1,45"')
    with pytest.raises(ProtocolError, match="unexpected"):
        parse_error("dut", "RATE 1,5", "garbage")
