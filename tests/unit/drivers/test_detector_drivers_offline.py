"""Detector and stage drivers without an instrument: input refused before any exchange,
error replies mapped to typed errors, transports chosen by address."""

from __future__ import annotations

from typing import Any

import pytest

from couponlab.drivers.detectors import (
    ScpiCamera,
    ScpiOxideProfiler,
    ScpiThermocoupleScanner,
    ScpiXrfProbe,
)
from couponlab.drivers.stage import ScpiXyStage
from couponlab.errors import InputError, OutOfLimitsError, ProtocolError, UnitError
from couponlab.interfaces.detectors import (
    Camera,
    CompositionProbe,
    LineSpec,
    OxideProfiler,
    Stage,
    ThermocoupleScanner,
)
from couponlab.labfile import DeviceEntry
from couponlab.testing.exchanges import FakeLineTransport
from couponlab.transports import (
    ScpiClient,
    SerialLineTransport,
    TcpLineTransport,
    VisaLineTransport,
    make_transport,
)

ADDR = "TCPIP::127.0.0.1::1::SOCKET"


def test_transport_follows_the_address() -> None:
    assert isinstance(make_transport("d", ADDR), VisaLineTransport)
    tcp = make_transport("d", "socket://127.0.0.1:5025")
    assert isinstance(tcp, TcpLineTransport)
    assert tcp.port == 5025
    serial = make_transport("d", "socket://127.0.0.1:5025", serial={"baudrate": 9600})
    assert isinstance(serial, SerialLineTransport)
    assert isinstance(make_transport("d", "/dev/ttyUSB0"), SerialLineTransport)
    with pytest.raises(InputError, match="bad address"):
        make_transport("d", "socket://127.0.0.1:notaport")


async def test_error_reply_keeps_semicolons_inside_the_message() -> None:
    client = ScpiClient(
        FakeLineTransport(
            "dev",
            [("MOV:X 500;:SYST:ERR?;:STAT?", '-222,"Data out of range; X 500 not in [-20,180]"')],
        )
    )
    with pytest.raises(ProtocolError, match=r"X 500 not in \[-20,180\] \(-222\)"):
        await client.command("MOV:X 500", "STAT?")


async def test_command_raises_the_instruments_refusal() -> None:
    client = ScpiClient(
        FakeLineTransport(
            "dev",
            [
                ("MOV:X 5;:SYST:ERR?", '-222,"Data out of range; X 5"'),
                ("VEL 1;:SYST:ERR?;:VEL?", '0,"No error";1'),
                ("BAD;:SYST:ERR?", "garbage"),
            ],
        )
    )
    with pytest.raises(ProtocolError, match=r"dev: 'MOV:X 5' refused by the instrument: .*-222"):
        await client.command("MOV:X 5")
    assert await client.command("VEL 1", "VEL?") == "1"
    with pytest.raises(ProtocolError, match="malformed"):
        await client.command("BAD")


async def test_stage_refuses_before_any_exchange() -> None:
    st = ScpiXyStage(ADDR, name="st")
    st.x._limits = (0.0, 100.0)
    with pytest.raises(OutOfLimitsError, match=r"st: x position = 120 mm"):
        await st.x.set(120.0)
    with pytest.raises(UnitError):
        st.check_position("3 kg", 1.0)
    with pytest.raises(InputError, match="coupon id"):
        await st.load_coupon('a"b', 10, 10)
    with pytest.raises(OutOfLimitsError, match="coupon length"):
        await st.load_coupon("ok", -1, 10)
    assert st.client.bytes_written == 0 and not st.client.transport.connected


def test_spot_heads_refuse_bad_dwell_and_lines() -> None:
    prof = ScpiOxideProfiler(ADDR, name="prof")
    prof._binding.limits["dwell"] = (0.01, 60.0)
    with pytest.raises(OutOfLimitsError, match=r"prof: dwell = 61 s"):
        prof.check_dwell(61)
    assert prof.check_dwell("500 ms") == pytest.approx(0.5)
    with pytest.raises(OutOfLimitsError, match="line period"):
        prof.check_line(LineSpec(10, 0.001))
    with pytest.raises(OutOfLimitsError, match="line points"):
        prof.check_line(LineSpec(0, 0.1))
    with pytest.raises(InputError, match="LineSpec"):
        prof.check_line((10, 0.1))  # type: ignore[arg-type]


def test_constructors_refuse_bad_configuration() -> None:
    with pytest.raises(InputError, match="chemical symbols"):
        ScpiXrfProbe(ADDR, elements=["Cr", "cr"])
    with pytest.raises(InputError, match="chemical symbols"):
        ScpiXrfProbe(ADDR, elements=["Cr", "Cr"])
    with pytest.raises(InputError, match="positions_mm"):
        ScpiThermocoupleScanner(ADDR, positions_mm=[])
    entry = DeviceEntry(
        name="cam", family="camera", driver="couponlab.drivers.detectors:ScpiCamera", address=ADDR
    )
    with pytest.raises(InputError, match="data_dir"):
        ScpiCamera.from_lab_entry(entry)
    scanner = DeviceEntry(
        name="tcs",
        family="thermocouple_scanner",
        driver="couponlab.drivers.detectors:ScpiThermocoupleScanner",
        address=ADDR,
    )
    with pytest.raises(InputError, match="positions_mm"):
        ScpiThermocoupleScanner.from_lab_entry(scanner)


def test_drivers_implement_their_interfaces(tmp_path: Any) -> None:
    entry = DeviceEntry(
        name="cam",
        family="camera",
        driver="couponlab.drivers.detectors:ScpiCamera",
        address=ADDR,
        settings={"data_dir": str(tmp_path)},
    )
    assert isinstance(ScpiXyStage(ADDR, name="s"), Stage)
    assert isinstance(ScpiOxideProfiler(ADDR, name="p"), OxideProfiler)
    assert isinstance(ScpiXrfProbe(ADDR, name="x"), CompositionProbe)
    assert isinstance(
        ScpiThermocoupleScanner(ADDR, positions_mm=[0.0], name="t"), ThermocoupleScanner
    )
    assert isinstance(ScpiCamera.from_lab_entry(entry), Camera)
