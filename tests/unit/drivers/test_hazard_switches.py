"""Hazard switches take only an explicit on/off: "off" never switches anything on, and an
ambiguous value is refused before a byte is sent (couponlab.units.to_switch)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from couponlab.drivers.deposition import AsciiDepositionCell
from couponlab.drivers.detectors import ScpiXrfProbe
from couponlab.errors import InputError
from couponlab.testing.exchanges import expected_exchanges
from couponlab.transports import SerialLineTransport
from couponlab.units import to_switch

OK = '0,"No error"'
AMBIGUOUS: list[Any] = [
    1, 0, "1", "0", "yes", "no", "true", "", "onn", None, 1.0, [True], np.array([True]),
    "off; LAS ON",
]  # fmt: skip
XRF_CONNECT = [
    ("SYST:CLOC:RATE?", "1"),
    ("*IDN?", "couponlab,XRF,1,1"),
    ("CONF:DWEL:LIM?", "0.001,60"),
    ("CONF:DWEL?", "0.1"),
    ("CONF:ELEM?", "Cr,Ni,Fe,Al"),
]
CELL_CONNECT = [
    ("*CLS;:SYST:ERR?", OK),
    ("LIM?;:SYST:ERR?", f"2000,50,5,30,-300,400,5000;{OK}"),
    ("LIM:TRK?;:SYST:ERR?", '-113,"Undefined header; LIM:TRK?"'),
    ("PRNT:CHAN?;:SYST:ERR?", f"f1:1,f1:2;{OK}"),
]


@pytest.mark.parametrize(
    ("value", "state"),
    [(True, True), (False, False), ("on", True), ("OFF", False), (" Off ", False),
     (np.bool_(True), True)],
)  # fmt: skip
def test_explicit_forms_map_as_written(value: Any, state: bool) -> None:
    assert to_switch(value) is state


@pytest.mark.parametrize("value", AMBIGUOUS)
def test_anything_else_is_refused(value: Any) -> None:
    with pytest.raises(InputError, match="ambiguous"):
        to_switch(value, device="dev", what="laser")


async def test_xrf_source_off_sends_off() -> None:
    probe = ScpiXrfProbe("TCPIP::127.0.0.1::1::SOCKET", name="xrf")
    script = [*XRF_CONNECT, ("SOUR:STAT OFF;:SYST:ERR?", OK), ("SOUR:STAT ON;:SYST:ERR?", OK)]
    async with expected_exchanges(probe, script) as (xrf, wire):
        await xrf.source("off")
        await xrf.source("on")
        sent = wire.bytes_written
        for bad in AMBIGUOUS:
            with pytest.raises(InputError):
                await xrf.source(bad)
        assert wire.bytes_written == sent


async def test_cell_laser_off_sends_las_off_and_ambiguous_values_send_nothing() -> None:
    cell = AsciiDepositionCell(SerialLineTransport("cell", "socket://127.0.0.1:1"), name="cell")
    script = [*CELL_CONNECT, ("LAS OFF;:SYST:ERR?", OK)]
    async with expected_exchanges(cell, script) as (c, wire):
        await c.set_laser("off")
        sent = wire.bytes_written
        for bad in AMBIGUOUS:
            with pytest.raises(InputError):
                await c.set_laser(bad)
        with pytest.raises(InputError):
            await c.set_laser("off", power="1 GW")
        assert wire.bytes_written == sent
