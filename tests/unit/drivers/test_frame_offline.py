"""The frame driver byte for byte against scripted exchanges (couponlab.testing.exchanges):
what it sends for each action, and that bad input is refused before anything is sent."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from couponlab.drivers.frame import ScpiTestFrame
from couponlab.errors import InputError, OutOfLimitsError, ProtocolError, UnitError
from couponlab.interfaces import frame as iframe
from couponlab.labfile import DeviceEntry
from couponlab.specimens import SS_J3, CutPlanError
from couponlab.testing.exchanges import FakeLineTransport, fake_client
from couponlab.testing.frame import bad_requests

OK = '0,"No error"'
LIMITS = "50000,0.001,500,0.0001,5,1,10000,-100,500,1048576,100000"


CONNECT: list[tuple[str, str | None]] = [
    ("*CLS", None),
    ("SYST:CLOC:RATE?", "1"),
    ("SYST:LIM?", LIMITS),
]


def _frame(
    exchanges: list[tuple[str, str]], **limits: Any
) -> tuple[ScpiTestFrame, FakeLineTransport]:
    frame = ScpiTestFrame("TCPIP::127.0.0.1::5025::SOCKET", name="frame1", limits=limits)
    return frame, fake_client(frame, [*CONNECT, *exchanges])


async def _connected(
    exchanges: list[tuple[str, str]], **limits: Any
) -> tuple[ScpiTestFrame, FakeLineTransport]:
    frame, link = _frame(exchanges, **limits)
    await frame.connect()
    return frame, link


async def test_connect_reads_limits_and_applies_the_lab_force_limit() -> None:
    frame, link = await _connected([("CONF:FLIM 20000;:SYST:ERR?", OK)], max_force="20 kN")
    lim = await frame.limits()
    assert lim.capacity_n == 50000 and lim.force_limit_max_n == 20000
    assert lim.sample_rate_hz == (1.0, 10000.0)
    assert not link.exchanges


async def test_configure_and_mount_send_exactly_these_bytes() -> None:
    frame, link = await _connected(
        [
            ("CONF:MODE POS;CONF:XRAT 0.48;CONF:SRAT 0.015;CONF:SAMP 5000;CONF:FLIM 50000"
             ";:SYST:ERR?", OK),
            ("SPEC:DIM 25,6,1.5,32;:SYST:ERR?", OK),
            ('SPEC:LOAD "C-7",12.5;:SYST:ERR?', OK),
            ("CTRL:PREL 50;:SYST:ERR?", OK),
            ("STAT:MOT?", "PRELOAD"),
            ("STAT:MOT?", "IDLE"),
            ("STAT:FAUL?", "NONE"),
        ]
    )  # fmt: skip
    await frame.configure_test(iframe.TestSettings(sample_rate="5 kHz"))
    await frame.mount("C-7", "1.25 cm", iframe.SpecimenGeometry(thickness="1500 um"))
    await frame.preload("0.05 kN")
    assert not link.exchanges


async def test_mount_across_sends_the_three_argument_form_in_mm() -> None:
    frame, link = await _connected(
        [
            ("SPEC:DIM 25,6,2,32;:SYST:ERR?", OK),
            ('SPEC:LOAD "C-7",12.5,2.5;:SYST:ERR?', OK),
            ("SPEC:DIM 25,6,2,32;:SYST:ERR?", OK),
            ('SPEC:LOAD "C-7",30,0;:SYST:ERR?', OK),
        ]
    )
    await frame.mount("C-7", "12.5 mm", across="0.25 cm")
    await frame.mount("C-7", 30, across=0)
    assert not link.exchanges


async def test_across_is_bounded_by_the_coupon_width_before_a_byte_is_sent() -> None:
    frame = ScpiTestFrame("TCPIP::127.0.0.1::5025::SOCKET", name="frame1", coupon_width="10 mm")
    link = fake_client(
        frame,
        [
            *CONNECT,
            ("SPEC:DIM 5,1.2,0.5,5;:SYST:ERR?", OK),
            ('SPEC:LOAD "C-7",30,8;:SYST:ERR?', OK),
            ("SPEC:DIM 25,6,2,32;:SYST:ERR?", OK),
            ('SPEC:LOAD "C-7",30,15;:SYST:ERR?', OK),
        ],
    )
    await frame.connect()
    sent = len(link.sent)
    with pytest.raises(OutOfLimitsError, match=r"across = 10\.5 .*\[0, 10\] mm"):
        await frame.mount("C-7", 30.0, across="10.5 mm")
    with pytest.raises(OutOfLimitsError, match=r"across = 12 .*\[0, 11\] mm"):
        await frame.mount("C-7", 30.0, across=12.0, coupon_width="11 mm")
    with pytest.raises(OutOfLimitsError, match="coupon_width"):
        await frame.mount("C-7", 30.0, across=1.0, coupon_width="0 mm")
    with pytest.raises(UnitError):
        await frame.mount("C-7", 30.0, across="nan mm")
    # the across position is on the coupon, but the specimen's 10 mm wide grips are not
    with pytest.raises(CutPlanError, match=r"E8M sub-size.* y = 10 mm sticks out .*y 15 > 10"):
        await frame.mount("C-7", 30.0, across="10 mm")
    assert len(link.sent) == sent
    await frame.mount("C-7", 30.0, SS_J3, across="8 mm")  # grips y 6..10: on the edge
    await frame.mount("C-7", 30.0, across=15.0, coupon_width="2 cm")  # this call's coupon
    assert not link.exchanges


async def test_a_specimen_longer_than_the_coupon_is_refused_before_a_byte_is_sent() -> None:
    entry = DeviceEntry(
        name="frame1",
        family="test_frame",
        driver="couponlab.drivers.frame:ScpiTestFrame",
        address="TCPIP::127.0.0.1::5025::SOCKET",
        settings={"coupon_length": "60 mm", "coupon_width": "10 mm"},
    )
    frame = ScpiTestFrame.from_lab_entry(entry)
    link = fake_client(
        frame,
        [
            *CONNECT,
            ("SPEC:DIM 5,1.2,0.5,5;:SYST:ERR?", OK),
            ('SPEC:LOAD "C-7",8,2;:SYST:ERR?', OK),
        ],
    )
    await frame.connect()
    sent = len(link.sent)
    with pytest.raises(CutPlanError, match=r"100 x 10 mm .* 'C-7' \(60 x 10 mm\): x -20 < 0"):
        await frame.mount("C-7", 30.0)  # E8M sub-size: 100 mm overall
    with pytest.raises(CutPlanError, match=r"x 65 > 60"):
        await frame.mount("C-7", 57.0, SS_J3, across=5.0)
    with pytest.raises(CutPlanError, match=r"y -0.5 < 0"):
        await frame.mount("C-7", 30.0, SS_J3, across=1.5)
    with pytest.raises(CutPlanError, match=r"x -2 < 0"):  # this call's shorter coupon
        await frame.mount("C-7", 6.0, SS_J3, across=5.0, coupon_length="12 mm")
    with pytest.raises(OutOfLimitsError, match="overall_length"):  # shorter than reduced
        await frame.mount("C-7", 30.0, replace(SS_J3, overall_length="4 mm"), across=5.0)
    assert len(link.sent) == sent
    await frame.mount("C-7", "8 mm", SS_J3, across="2 mm")  # the corner: x 0..16, y 0..4
    assert not link.exchanges


async def test_instrument_error_is_a_protocol_error_naming_the_command() -> None:
    frame, _ = await _connected([("CTRL:STAR;:SYST:ERR?", '-200,"Execution error; fault"')])
    with pytest.raises(ProtocolError, match=r"frame1: 'CTRL:STAR' refused.*-200"):
        await frame.client.command("CTRL:STAR")


async def test_every_bad_request_is_refused_before_a_byte_is_sent() -> None:
    frame, link = await _connected([])
    sent = len(link.sent)
    for label, call in bad_requests(await frame.limits()):
        with pytest.raises(InputError):
            await call(frame)
        assert len(link.sent) == sent, f"{label}: something was sent"


async def test_signal_writes_are_validated_too() -> None:
    frame, link = await _connected([("CONF:SAMP 5000;:SYST:ERR?", OK)])
    await frame.sample_rate.set(5000.0)
    with pytest.raises(OutOfLimitsError, match=r"sample_rate = 20000 .*\[1, 10000\] Hz"):
        await frame.sample_rate.set(20000.0)
    with pytest.raises(OutOfLimitsError, match="force_limit"):
        await frame.force_limit.set(60000.0)
    assert not link.exchanges


async def test_lab_limits_tighten_the_frame_range() -> None:
    frame, link = await _connected(
        [("CONF:FLIM 10000;:SYST:ERR?", OK)], max_force="10 kN", max_crosshead_rate="20 mm/min"
    )
    with pytest.raises(OutOfLimitsError, match="crosshead_rate"):
        await frame.configure_test(iframe.TestSettings(crosshead_rate="25 mm/min"))
    with pytest.raises(OutOfLimitsError, match="force_limit"):
        await frame.configure_test(iframe.TestSettings(force_limit="12 kN"))
    with pytest.raises(UnitError):
        await frame.configure_test(iframe.TestSettings(force_limit="12 mm"))
    assert not link.exchanges


async def test_not_connected_refuses_instead_of_guessing_limits() -> None:
    frame, link = _frame([])
    with pytest.raises(InputError, match="not connected"):
        await frame.configure_test(iframe.TestSettings())
    assert link.sent == []


def test_builds_from_a_lab_entry_without_the_network() -> None:
    entry = DeviceEntry(
        name="frame1",
        family="test_frame",
        driver="couponlab.drivers.frame:ScpiTestFrame",
        address="TCPIP::10.0.0.9::5025::SOCKET",
        limits={"max_force": "20 kN"},
        settings={"specimen_thickness": "3 mm", "poll_period_s": 0.1},
    )
    frame = ScpiTestFrame.from_lab_entry(entry)
    assert frame.name == "frame1" and frame.address.endswith("::5025::SOCKET")
    assert isinstance(frame, iframe.TestFrame)
    assert frame._coupon_width is None
    wide = ScpiTestFrame.from_lab_entry(
        entry.model_copy(update={"settings": {"coupon_width": "1.2 cm"}})
    )
    assert wide._coupon_width == pytest.approx(12.0)
    with pytest.raises(UnitError):
        ScpiTestFrame("TCPIP::h::1::SOCKET", name="f", specimen_thickness="3 N")
