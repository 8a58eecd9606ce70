"""Each line driver byte for byte (couponlab.testing.exchanges): what it sends to connect, to
set and to read, and how it reads the replies. A wrong line, or an exchange left unused,
fails the test. (The frame's exchanges are in test_frame_offline.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from couponlab.drivers.deposition import AsciiDepositionCell, AsciiPowderFeeder
from couponlab.drivers.detectors import ScpiOxideProfiler, ScpiThermocoupleScanner
from couponlab.drivers.stage import ScpiXyStage
from couponlab.errors import InterlockTrippedError, ProtocolError
from couponlab.testing.conformance import ConformanceError
from couponlab.testing.exchanges import expected_exchanges
from couponlab.transports import SerialLineTransport
from couponlab.units import Q_

OK = '0,"No error"'
ADDR = "TCPIP::127.0.0.1::1::SOCKET"
STAGE_CONNECT = [
    ("SYST:CLOC:RATE?", "1"),
    ("*IDN?", "couponlab,STAGE,1,1"),
    ("LIM?", "-20,180,-5,30"),
    ("VEL:LIM?", "0.01,40"),
    ("VEL?", "20"),
    ("SAMP?", '"C1",60,10'),
    ("STAT?", "0,0,0,0,0,0"),
]
PROFILER_CONNECT = [
    ("SYST:CLOC:RATE?", "1"),
    ("*IDN?", "couponlab,PROF,1,1"),
    ("CONF:DWEL:LIM?", "0.001,60"),
    ("CONF:DWEL?", "0.1"),
    ("CONF:RANG?", "1e-9,2e-5"),
]
FEEDER_CONNECT = [
    ("*CLS;:SYST:ERR?", OK),
    ("*IDN?", "couponlab,FEEDER,1,1"),
    ("HOPP:COUN?;:SYST:ERR?", f"2;{OK}"),
    ("LIM?;:SYST:ERR?", f"30,10;{OK}"),
    ("HOPP:POWD? 1;:SYST:ERR?", f"Ni;{OK}"),
    ("HOPP:COMP? 1;:SYST:ERR?", f"Ni=1;{OK}"),
    ("HOPP:POWD? 2;:SYST:ERR?", f"Cr20;{OK}"),
    ("HOPP:COMP? 2;:SYST:ERR?", f"Ni=0.8 Cr=0.2;{OK}"),
]
CELL_CONNECT = [
    ("*CLS;:SYST:ERR?", OK),
    ("LIM?;:SYST:ERR?", f"2000,50,5,30,-300,400,5000;{OK}"),
    ("LIM:TRK?;:SYST:ERR?", '-113,"Undefined header; LIM:TRK?"'),
    ("PRNT:CHAN?;:SYST:ERR?", f"f1:1,f1:2;{OK}"),
]


async def test_stage_moves_and_reads_back_from_the_status_reply() -> None:
    script = [
        *STAGE_CONNECT,
        ("VEL 30;:SYST:ERR?", OK),
        ("MOV:X 30.000000;:SYST:ERR?;:STAT?", f"{OK};1,0,0,0,1,0"),
        ("STAT?", "0,0,30.0000,0,0,0"),
        ("PSO:DIST 0.5;:SYST:ERR?", OK),
    ]
    async with expected_exchanges(ScpiXyStage(ADDR, name="stage"), script) as (stage, wire):
        await stage.velocity.set("3 cm/s")
        await stage.x.set(Q_(3, "cm"))
        reading = await stage.read()  # the readbacks come from the last status: no exchange
        assert reading["stage-x"]["value"] == pytest.approx(30.0)
        assert (await stage.describe())["stage-x"]["units"] == "mm"
        assert stage.mounted() is not None and stage.mounted().coupon_id == "C1"  # type: ignore[union-attr]
        await stage.pulse_spacing.set(Q_(500, "um"))
        assert not wire.unused


async def test_profiler_dwell_accepts_quantities_and_a_trigger_is_one_exchange() -> None:
    script = [
        *PROFILER_CONNECT,
        ("CONF:DWEL 0.2;:SYST:ERR?", OK),
        ("CONF:DWEL 0.2;:SYST:ERR?", OK),
        ("INIT;:SYST:ERR?;:ACQ?", f"{OK};DONE,0,1.5e-07,0"),
    ]
    async with expected_exchanges(ScpiOxideProfiler(ADDR, name="prof"), script) as (prof, _):
        await prof.dwell.set("0.2 s")
        await prof.dwell.set(Q_(200, "ms"))
        await prof.trigger()
        reading = await prof.read()
        assert reading["prof-thickness"]["value"] == pytest.approx(150.0)
        assert reading["prof-range_flag"]["value"] == "ok"


async def test_scanner_reads_every_channel_and_an_open_thermocouple_is_nan() -> None:
    script = [
        ("SYST:CLOC:RATE?", "1"),
        ("*IDN?", "couponlab,TCS,1,1"),
        ("ROUT:COUN?", "3"),
        ("UNIT:TEMP C;:SYST:ERR?", OK),
        ("READ?", "800.1,9.9e37,750"),
    ]
    scanner = ScpiThermocoupleScanner(ADDR, positions_mm=[0, 30, 60], name="tcs")
    async with expected_exchanges(scanner, script) as (tcs, _):
        await tcs.trigger()
        temps = (await tcs.read())["tcs-temperatures"]["value"]
        assert temps[0] == pytest.approx(800.1) and np.isnan(temps[1]) and temps[2] == 750


async def test_feeder_sets_with_checks_and_reads_every_hopper_in_one_status() -> None:
    script = [
        *FEEDER_CONNECT,
        ("RATE 1,5.0000;:SYST:ERR?", OK),
        ("GAS 2,3.0000;:SYST:ERR?", OK),
        ("STAT?", "FEEDING,5,4.9,100,2,0,0,0,50,3,1"),
        ("FLOW? 1", "4.95"),
    ]
    feeder = AsciiPowderFeeder(
        SerialLineTransport("feeder", "socket://127.0.0.1:1"), hoppers=2, name="feeder"
    )
    async with expected_exchanges(feeder, script) as (f, wire):
        await f.set_rate(1, "5 g/min")
        await f.hoppers[2].gas_flow.set("3 L/min")
        before = wire.bytes_written
        reading = await f.read()
        assert wire.bytes_written - before == len(b"STAT?\n")
        assert reading["feeder-feeder_state"]["value"] == "feeding"
        assert reading["feeder-hoppers-1-measured_rate"]["value"] == pytest.approx(4.9)
        assert reading["feeder-hoppers-2-alarm"]["value"] == "empty"
        assert await f.hoppers[1].measured_rate.get_value() == pytest.approx(4.95)
        assert f.powder(2).composition == {"Ni": 0.8, "Cr": 0.2}


async def test_cell_reads_its_status_once_and_maps_an_interlock_refusal() -> None:
    script = [
        *CELL_CONNECT,
        ("SHLD:FLOW 10.000;:SYST:ERR?", OK),
        ("STAT?", "0,0.00,10.000,-5.0000,0,IDLE,0"),
        ("SHLD:FLOW?;:SYST:ERR?", f"10;{OK}"),
        ("LAS:POW 300.00;:SYST:ERR?", OK),
        ("LAS ON;:SYST:ERR?", '-221,"Settings conflict; interlock: door open"'),
    ]
    cell = AsciiDepositionCell(SerialLineTransport("cell", "socket://127.0.0.1:1"), name="cell")
    async with expected_exchanges(cell, script) as (c, _):
        await c.shield_flow.set("10 L/min")
        reading = await c.read()
        assert reading["cell-shield_flow"]["value"] == pytest.approx(10.0)
        assert reading["cell-position"]["value"] == pytest.approx(-5.0)
        assert (
            reading["cell-track"]["value"] == 0 and reading["cell-print_state"]["value"] == "idle"
        )
        with pytest.raises(InterlockTrippedError, match="door open"):
            await c.set_laser("on", "300 W")


async def test_a_malformed_status_is_a_protocol_error() -> None:
    script = [*CELL_CONNECT, ("STAT?", "0,0,10,-5,0,WEIRD,0")]
    cell = AsciiDepositionCell(SerialLineTransport("cell", "socket://127.0.0.1:1"), name="cell")
    async with expected_exchanges(cell, script) as (c, _):
        with pytest.raises(ProtocolError, match="malformed STAT"):
            await c.read()


async def test_the_kit_fails_on_a_wrong_line_and_on_an_unused_exchange() -> None:
    with pytest.raises(ConformanceError, match="sent b'VEL 30"):
        async with expected_exchanges(
            ScpiXyStage(ADDR, name="stage"), [*STAGE_CONNECT, ("VEL 31;:SYST:ERR?", OK)]
        ) as (stage, _):
            await stage.velocity.set(30)
    with pytest.raises(ConformanceError, match="left unused"):
        async with expected_exchanges(
            ScpiXyStage(ADDR, name="stage"), [*STAGE_CONNECT, ("VEL 31;:SYST:ERR?", OK)]
        ):
            pass
