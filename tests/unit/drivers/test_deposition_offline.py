"""Deposition drivers refuse bad input before opening a link, let alone sending a byte."""

from __future__ import annotations

import pytest

from couponlab.drivers.deposition import AsciiDepositionCell, AsciiPowderFeeder
from couponlab.errors import InputError, InterlockTrippedError, ProtocolError, UnitError
from couponlab.interfaces.feeder import PrintJob, Track, TrackGeometry
from couponlab.testing.exchanges import FakeLineTransport
from couponlab.transports import ScpiClient, SerialLineTransport, raise_for_status, split_status


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
    with pytest.raises(InputError, match="laser_power = 600 W"):
        await cell.load_print(PrintJob("C-1", 20, -10, 21, 10, 600, ok))
    with pytest.raises(InputError, match="point 1"):
        await cell.load_print(PrintJob("C-1", 20, -10, 21, 10, 400, [ok[0], (1.0, [1.0, 99.0])]))
    assert t.bytes_written == 0 and not t.connected


def test_error_replies_become_typed_errors() -> None:
    assert split_status("dut", "RATE 1,5", '0,"No error"') == ""
    raise_for_status("dut", "RATE 1,5", 0, "No error")
    with pytest.raises(InterlockTrippedError, match="interlock"):
        split_status("dut", "LAS ON", '-221,"Settings conflict; interlock: no gas"')
    with pytest.raises(ProtocolError, match=r"refused by the instrument: .* \(-222\)"):
        split_status("dut", "RATE 1,45", '-222,"Data out of range; RATE 1,45"')
    with pytest.raises(ProtocolError, match="unexpected"):
        split_status("dut", "RATE 1,5", "garbage")


def _cell(port: int) -> tuple[SerialLineTransport, AsciiDepositionCell]:
    t = transport(port)
    cell = AsciiDepositionCell(t, name="dut")
    cell._channels = [("f1", 1), ("f1", 2)]
    return t, cell


async def test_tracks_are_refused_by_a_cell_without_tracks(free_port: int) -> None:
    t, cell = _cell(free_port)  # before connect: no LIM:TRK? answer, so no tracks
    job = PrintJob.from_tracks("C-2", 20, 10, 10, 400, [Track(2.0, -5, 21, [(-5.0, [1.0, 0.0])])])
    with pytest.raises(InputError, match="does not print tracks"):
        await cell.load_print(job)
    assert t.bytes_written == 0 and not t.connected


def test_a_multi_track_job_becomes_track_path_and_points(free_port: int) -> None:
    _, cell = _cell(free_port)
    cell.limits.tracks = TrackGeometry(1.6, 1.0, 50.0, -50.0, 150.0, 3)
    tracks = [
        Track(0.0, -5, 21, [(-5.0, [1.0, 0.0]), (3.0, [0.5, 0.5])]),
        Track(10.0, -2.0, 21, [(-2.0, [0.0, 1.0])]),
    ]
    lines = cell.validate_job(PrintJob.from_tracks("C-3", 20, 10, 10, 400, tracks))
    assert lines == [
        "PRNT:CLR",
        "COUP C-3,20.000,10.000",
        "PRNT:TRK 0.0000",
        "PRNT:PATH -5.0000,21.0000,10.0000,400.00",
        "PRNT:PT -5.0000,1.0000,0.0000",
        "PRNT:PT 3.0000,0.5000,0.5000",
        "PRNT:TRK 10.0000",
        "PRNT:PATH -2.0000,21.0000,10.0000,400.00",
        "PRNT:PT -2.0000,0.0000,1.0000",
    ]
    with pytest.raises(InputError, match=r"track 2: y = 12 mm misses the coupon 0\.\.10 mm"):
        cell.validate_job(
            PrintJob.from_tracks("C-4", 20, 10, 10, 400, [tracks[0], Track(12.0, -2, 21, [])])
        )
    with pytest.raises(InputError, match="4 tracks, at most 3"):
        cell.validate_job(PrintJob.from_tracks("C-5", 20, 10, 10, 400, [tracks[0]] * 4))
    with pytest.raises(InputError, match="carries its points in its tracks"):
        cell.validate_job(PrintJob("C-6", 20, -5, 21, 10, 400, [(-5.0, [1.0, 0.0])], tracks))


async def test_checked_query_finds_the_status_whatever_the_message_holds() -> None:
    client = ScpiClient(
        FakeLineTransport(
            "dut",
            [
                ("LIM:TRK?;:SYST:ERR?", '-113,"Undefined header; LIM:TRK?"'),
                ("PRNT:REAS?;:SYST:ERR?", ';0,"No error"'),
                ("X?;:SYST:ERR?", 'a;b;0,"No error"'),
            ],
        )
    )
    with pytest.raises(ProtocolError, match=r"Undefined header; LIM:TRK\? \(-113\)"):
        await client.checked_query("LIM:TRK?")
    assert await client.checked_query("PRNT:REAS?") == ""  # an empty reply is a reply
    assert await client.checked_query("X?") == "a;b"
