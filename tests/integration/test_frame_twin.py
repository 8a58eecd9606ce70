"""The frame twin's SCPI protocol over pyvisa (pyvisa-py, TCPIP SOCKET) on 127.0.0.1, as
docs/protocols/frame-scpi.md describes it; twin on its own thread, client on the test's."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import numpy as np
import pytest

from couponlab.errors import InstrumentTimeoutError
from couponlab.simulators.world import Coupon
from couponlab.testing.frame import frame_lab
from couponlab.transports import VisaLineTransport
from couponlab.twins import BackgroundTwins

OK = '0,"No error"'


@pytest.fixture(scope="module")
def twins() -> Iterator[BackgroundTwins]:
    with BackgroundTwins(frame_lab(speedup=200.0)) as running:
        yield running


@pytest.fixture
async def link(twins: BackgroundTwins) -> Iterator[VisaLineTransport]:  # type: ignore[misc]
    t = VisaLineTransport("frame1", twins.lab.device("frame1").address, timeout=1.0)
    await t.write("*RST")
    await t.write("*CLS")
    try:
        yield t
    finally:
        await t.write("*RST")
        await t.write("SPEC:REM")
        await t.write("*CLS")
        await t.close()


async def test_identity_reset_and_error_queue(link: VisaLineTransport) -> None:
    assert (await link.query("*IDN?")).startswith("couponlab,TF-50KN,")
    assert await link.query("CONF:SAMP 5000;:SYST:ERR?") == OK
    assert await link.query("CONF:SAMP?") == "5000"
    await link.write("*RST")
    assert await link.query("CONF:SAMP?") == "100"
    assert await link.query("CONF:SAMP 20000;:SYST:ERR?") == (
        '-222,"Data out of range; sample rate=20000 not in 1..10000"'
    )
    assert await link.query("BOGUS;:SYST:ERR?") == '-113,"Undefined header; BOGUS"'
    assert await link.query("SYST:ERR?") == OK
    assert await link.query("CONF:MODE STR;CONF:MODE?;:SYST:ERR?") == f"STR;{OK}"


async def test_limits_and_clock(link: VisaLineTransport) -> None:
    values = [float(v) for v in (await link.query("SYST:LIM?")).split(",")]
    assert values[:7] == [50000, 0.001, 500, 1e-4, 5, 1, 10000]
    assert float(await link.query("SYST:CLOC:RATE?")) == 200.0
    t1 = float(await link.query("SYST:TIME?"))
    t2 = float(await link.query("SYST:TIME?"))
    assert t2 > t1


async def test_specimen_mount_and_refusals(link: VisaLineTransport) -> None:
    load = 'SPEC:DIM 25,6,2.5,32;SPEC:LOAD "generic:k9",10;:SYST:ERR?'
    assert await link.query(load) == OK
    assert await link.query("SPEC?") == '"generic:k9",10,INTACT'
    assert (await link.query("SPEC:COMP?")).startswith('"Cr=0.18')
    assert (await link.query('SPEC:LOAD "generic:k9",10;:SYST:ERR?')).startswith("-221,")
    assert (await link.query("SPEC:DIM 25,6,2,32;:SYST:ERR?")).startswith("-221,")
    assert await link.query("SPEC:REM;SPEC:LOAD generic:k9,10;:SYST:ERR?") == (
        '-224,"Illegal parameter value; expected a quoted string"'
    )


async def test_a_coupon_the_world_does_not_know_is_refused_not_made_up(
    link: VisaLineTransport,
) -> None:
    assert await link.query('SPEC:LOAD "k9",10;:SYST:ERR?') == (
        "-224,\"Illegal parameter value; coupon 'k9' is unknown to the world "
        "(a generic specimen is asked for as 'generic:<name>')\""
    )
    assert await link.query("SPEC?") == '"",0,NONE'


def _add_across_graded(twins: BackgroundTwins) -> None:
    """A 60 x 10 mm coupon "yg" graded across y: Ni 0.12 at y=0 to 0.68 at y=10."""
    coupon = twins.world.add_coupon(Coupon("yg", length_mm=60.0, width_mm=10.0))
    t = np.broadcast_to((coupon.y_mm / 10.0)[:, None], coupon.shape)
    coupon.set_composition(
        {"Fe": 0.70 - 0.65 * t, "Cr": 0.18 + 0.04 * t, "Ni": 0.12 + 0.56 * t, "Al": 0.05 * t}
    )


def _ni(comp: str) -> float:
    fractions = dict(item.split("=") for item in comp.strip('"').split(","))
    return float(fractions["Ni"])


async def test_specimen_cut_across_the_width_old_and_new_load_forms(
    link: VisaLineTransport, twins: BackgroundTwins
) -> None:
    await twins.acall(_add_across_graded, twins)
    # the old two-argument form: the centre line (y = 5 on a 10 mm wide coupon)
    assert await link.query('SPEC:DIM 25,6,2,32;SPEC:LOAD "yg",30;:SYST:ERR?') == OK
    assert await link.query("SPEC?") == '"yg",30,INTACT'
    assert await link.query("SPEC:POS?") == "30,5"
    centre = _ni(await link.query("SPEC:COMP?"))
    assert centre == pytest.approx(0.12 + 0.56 * 0.5, abs=1e-3)
    # y = 7: the 6 mm wide specimen spans y 4..10, Ni-richer
    assert await link.query('SPEC:REM;SPEC:LOAD "yg",30,7;:SYST:ERR?') == OK
    assert await link.query("SPEC:POS?") == "30,7"
    assert _ni(await link.query("SPEC:COMP?")) == pytest.approx(0.12 + 0.56 * 0.7, abs=1e-3)
    # y = 3 (y 0..6), Fe-richer
    assert await link.query('SPEC:REM;SPEC:LOAD "yg",30,3;:SYST:ERR?') == OK
    assert _ni(await link.query("SPEC:COMP?")) == pytest.approx(0.12 + 0.56 * 0.3, abs=1e-3)
    # y = 8 would put the 6 mm section over the edge (y 5..11): no such specimen, refused
    reply = await link.query('SPEC:REM;SPEC:LOAD "yg",30,8;:SYST:ERR?')
    assert reply.startswith("-222,") and "partly off coupon" in reply, reply
    # off the coupon, or not a number: refused, nothing mounted
    for bad in ("10.5", "-1", "NAN"):
        reply = await link.query(f'SPEC:REM;SPEC:LOAD "yg",30,{bad};:SYST:ERR?')
        assert reply.startswith("-222,") and "y=" in reply, reply
        assert await link.query("SPEC?") == '"",0,NONE'
        assert await link.query("SPEC:POS?") == "NAN,NAN"
    reply = await link.query('SPEC:LOAD "yg",30,wide;:SYST:ERR?')
    assert reply.startswith("-224,")
    # a generic specimen takes y as given (the default material)
    reply = await link.query('SPEC:LOAD "generic:k9",10,3.5;SPEC:POS?;:SYST:ERR?')
    assert reply == f"10,3.5;{OK}"


async def test_block_transfer_of_a_running_test(link: VisaLineTransport) -> None:
    assert (
        await link.query('CONF:SAMP 1000;CONF:XRAT 5;SPEC:LOAD "generic:b1",10;:SYST:ERR?') == OK
    )
    assert await link.query("CTRL:STAR;:SYST:ERR?") == OK
    assert await link.query("STAT?") == "TEST"
    rows: list[np.ndarray] = []
    written = 0
    for _ in range(2000):
        acq, total, oldest, rate = (float(v) for v in (await link.query("DATA:STAT?")).split(","))
        assert oldest == 0 and rate == 1000
        block = await link.query_block(f"DATA:FETC? {written},100000")
        data = np.frombuffer(block, "<f8").reshape(-1, 4)
        rows.append(data)
        written += len(data)
        if not acq and written >= total:
            break
        await asyncio.sleep(0.005)
    curve = np.concatenate(rows)
    assert await link.query("STAT:END?") == "BREAK"
    assert len(curve) == written == int(total)
    assert np.allclose(curve[:, 0], np.arange(len(curve)) / 1000.0)
    assert curve[:, 1].max() > 5000.0 and curve[-1, 1] < 1000.0
    assert await link.query_block(f"DATA:FETC? {written},10") == b""


async def test_a_failed_query_gives_no_reply(link: VisaLineTransport) -> None:
    with pytest.raises(InstrumentTimeoutError):
        await link.query("DATA:FETC? -1,10", timeout=0.3)
    assert (await link.query("SYST:ERR?")).startswith("-222,")


async def test_motion_refused_while_a_fault_is_latched(
    link: VisaLineTransport, twins: BackgroundTwins
) -> None:
    assert (
        await link.query('CONF:FLIM 500;SPEC:LOAD "generic:f1",10;CONF:XRAT 20;:SYST:ERR?') == OK
    )
    assert await link.query("CTRL:STAR;:SYST:ERR?") == OK
    for _ in range(1000):
        if await link.query("STAT?") == "FAULT":
            break
        await asyncio.sleep(0.005)
    assert await link.query("STAT:FAUL?") == "OVERFORCE"
    assert (await link.query("CTRL:PREL 10;:SYST:ERR?")).startswith("-200,")
    assert (await link.query("CTRL:STAR;:SYST:ERR?")).startswith("-200,")
    assert await link.query("CTRL:UNL;:SYST:ERR?") == OK
    for _ in range(1000):
        if await link.query("STAT?") == "FAULT" and float(await link.query("MEAS:FORC?")) < 25:
            break
        await asyncio.sleep(0.005)
    assert await link.query("STAT:RES;STAT?;:SYST:ERR?") == f"IDLE;{OK}"
