"""The camera driver byte for byte (couponlab.testing.exchanges): what it sends to connect,
to prepare a run's file and frames, to acquire and to reach its safe state. A wrong line, or
an exchange left unused, fails the test; a refused exposure sends nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from ophyd_async.core import StaticFilenameProvider, StaticPathProvider, TriggerInfo

from couponlab.drivers.detectors import ScpiCamera
from couponlab.errors import OutOfLimitsError, ProtocolError
from couponlab.testing.exchanges import expected_exchanges

OK = '0,"No error"'
ADDR = "TCPIP::127.0.0.1::1::SOCKET"
CONNECT = [
    ("SYST:CLOC:RATE?", "1"),
    ("*IDN?", "couponlab,CAMERA,1,1"),
    ("SENS:SIZE?", "48,64"),
    ("CONF:EXP:LIM?", "0.0001,10"),
    ("CONF:READ?", "0.002"),
    ("CONF:EXP?", "0.01"),
    ("CONF:PER?", "0.012"),
]


def _camera() -> ScpiCamera:
    paths = StaticPathProvider(StaticFilenameProvider("frames"), Path("/data/run1"))
    return ScpiCamera(ADDR, paths, name="cam")


async def test_connect_reads_shape_limits_and_timing() -> None:
    async with expected_exchanges(_camera(), CONNECT) as (cam, _):
        assert cam.frame_shape() == (48, 64)
        assert await cam.exposure.get_value() == pytest.approx(0.01)
        assert await cam.period.get_value() == pytest.approx(0.012)
        assert await cam.identify() == "couponlab,CAMERA,1,1"


async def test_prepare_sets_exposure_period_and_frames_then_opens_the_file() -> None:
    script = [
        *CONNECT,
        ("CONF:EXP 0.05;:SYST:ERR?", OK),
        ("CONF:EXP?", "0.05"),
        ("TRIG:SOUR INT;:CONF:PER 0.052;:CONF:FRAM 3;:SYST:ERR?", OK),
        ("FILE:CLOS;:SYST:ERR?", OK),
        ('FILE:PATH "/data/run1";:FILE:NAME "frames";:SYST:ERR?', OK),
        ("FILE:OPEN;:SYST:ERR?", OK),
        ("FILE:NUMC?", "0"),  # the frames already in the file: the stream starts there
    ]
    async with expected_exchanges(_camera(), script) as (cam, _):
        await cam.prepare(TriggerInfo(number_of_events=3, livetime=0.05, deadtime=0.0))
        assert await cam.period.get_value() == pytest.approx(0.052)


async def test_state_and_safe_state() -> None:
    script = [
        *CONNECT,
        ("ACQ:STAT?", "BUSY,2,1"),
        ("ACQ:STOP;:SYST:ERR?", OK),
        ("FILE:CLOS;:SYST:ERR?", OK),
    ]
    async with expected_exchanges(_camera(), script) as (cam, _):
        assert await cam.state() == "acquiring, 1 frames written"
        await cam.safe_state()


async def test_an_exposure_out_of_limits_sends_nothing() -> None:
    async with expected_exchanges(_camera(), CONNECT) as (cam, wire):
        before = wire.bytes_written
        with pytest.raises(OutOfLimitsError):
            cam.check_exposure("20 s")
        with pytest.raises(OutOfLimitsError):
            cam.check_exposure("5 ms", period=0.006)  # 5 ms + 2 ms readout > 6 ms
        assert wire.bytes_written == before


async def test_an_instrument_error_on_a_setting_is_a_protocol_error() -> None:
    script = [*CONNECT, ("ACQ:STOP;:SYST:ERR?", '-222,"Data out of range"')]
    async with expected_exchanges(_camera(), script) as (cam, _):
        with pytest.raises(ProtocolError, match="Data out of range"):
            await cam.safe_state()
