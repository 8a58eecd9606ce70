"""Property test: every public setter, signal and method argument of the line drivers
(stage, profiler, XRF probe, frame, feeder, cell, transfer robot) refuses bad input with a
typed error, before a byte is sent, without hanging.

Each driver is connected over a :class:`~couponlab.testing.exchanges.FakeLineTransport`
(its connect exchanges scripted, anything after that unanswered and recorded). Hypothesis
draws a target and a bad value (NaN, inf, wrong dimension, arrays, strings, None, huge
numbers, values just outside the limits, ambiguous on/off) and the test counts:

- untyped: an exception that is not a ``CouponlabError``;
- accepted: the call sent bytes (a bad value reached the wire) or returned normally;
- hangs: no answer within 2 s.

All three must stay 0; the number of cases tried is printed.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from couponlab.drivers.deposition import AsciiDepositionCell, AsciiPowderFeeder
from couponlab.drivers.detectors import ScpiOxideProfiler, ScpiXrfProbe
from couponlab.drivers.frame import ScpiTestFrame
from couponlab.drivers.robot import ScpiTransferRobot
from couponlab.drivers.stage import ScpiXyStage
from couponlab.errors import CouponlabError
from couponlab.interfaces.detectors import LineSpec
from couponlab.interfaces.feeder import PrintJob
from couponlab.interfaces.frame import SpecimenGeometry, TestSettings
from couponlab.interfaces.transfer import Transfer
from couponlab.testing.exchanges import FakeLineTransport, fake_client
from couponlab.testing.thoroughness import examples
from couponlab.transports import SerialLineTransport
from couponlab.units import Q_

OK = '0,"No error"'
ADDR = "TCPIP::127.0.0.1::1::SOCKET"
SCRIPTS: dict[str, list[tuple[str, str | None]]] = {
    "stage": [
        ("SYST:CLOC:RATE?", "1"),
        ("*IDN?", "couponlab,STAGE,1,1"),
        ("LIM?", "-20,180,-5,30"),
        ("VEL:LIM?", "0.01,40"),
        ("VEL?", "20"),
        ("SAMP?", '"C1",60,10'),
        ("STAT?", "0,0,0,0,0,0"),
    ],
    "profiler": [
        ("SYST:CLOC:RATE?", "1"),
        ("*IDN?", "couponlab,PROF,1,1"),
        ("CONF:DWEL:LIM?", "0.001,60"),
        ("CONF:DWEL?", "0.1"),
        ("CONF:RANG?", "1e-9,2e-5"),
    ],
    "xrf": [
        ("SYST:CLOC:RATE?", "1"),
        ("*IDN?", "couponlab,XRF,1,1"),
        ("CONF:DWEL:LIM?", "0.001,60"),
        ("CONF:DWEL?", "0.1"),
        ("CONF:ELEM?", "Cr,Ni,Fe,Al"),
    ],
    "frame": [
        ("*CLS", None),
        ("SYST:CLOC:RATE?", "1"),
        ("SYST:LIM?", "50000,0.001,500,0.0001,5,1,10000,-100,500,1048576,100000"),
        ("CONF:FLIM 20000;:SYST:ERR?", OK),
    ],
    "feeder": [
        ("*CLS;:SYST:ERR?", OK),
        ("*IDN?", "couponlab,FEEDER,1,1"),
        ("HOPP:COUN?;:SYST:ERR?", f"2;{OK}"),
        ("LIM?;:SYST:ERR?", f"30,10;{OK}"),
        ("HOPP:POWD? 1;:SYST:ERR?", f"Ni;{OK}"),
        ("HOPP:COMP? 1;:SYST:ERR?", f"Ni=1;{OK}"),
        ("HOPP:POWD? 2;:SYST:ERR?", f"Cr;{OK}"),
        ("HOPP:COMP? 2;:SYST:ERR?", f"Cr=1;{OK}"),
    ],
    "cell": [
        ("*CLS;:SYST:ERR?", OK),
        ("LIM?;:SYST:ERR?", f"2000,50,5,30,-300,400,5000;{OK}"),
        ("LIM:TRK?;:SYST:ERR?", '-113,"Undefined header; LIM:TRK?"'),
        ("PRNT:CHAN?;:SYST:ERR?", f"f1:1,f1:2;{OK}"),
    ],
    "robot": [
        ("SYST:CLOC:RATE?", "1"),
        ("*IDN?", "couponlab,ROBOT,1,1"),
        ("STN:CAT?;:SYST:ERR?", f'"rack.1","stage1";{OK}'),
        ("LIM:FURN:MAX?;:SYST:ERR?", f"100;{OK}"),
        ("LIM:FURN 80;:SYST:ERR?", OK),
        ("LIM:FURN?", "80"),
        ("STAT?", 'IDLE,0.000,"","home"'),
    ],
}


def _devices() -> dict[str, Any]:
    serial = {"socket": "socket://127.0.0.1:1"}
    return {
        "stage": ScpiXyStage(ADDR, limits={"x": ["-10 mm", "150 mm"]}, name="stage"),
        "profiler": ScpiOxideProfiler(ADDR, name="profiler"),
        "xrf": ScpiXrfProbe(ADDR, name="xrf"),
        "frame": ScpiTestFrame(ADDR, name="frame", limits={"max_force": "20 kN"}),
        "feeder": AsciiPowderFeeder(
            SerialLineTransport("feeder", serial["socket"]), hoppers=2, max_rate=20.0,
            name="feeder",
        ),
        "cell": AsciiDepositionCell(
            SerialLineTransport("cell", serial["socket"]), max_power=500.0, name="cell"
        ),
        "robot": ScpiTransferRobot(
            ADDR, stations=["rack.1", "stage1"], max_furnace_entry="80 degC", name="robot"
        ),
    }  # fmt: skip


@dataclass(frozen=True)
class Target:
    """One public entry point and the kind of value it takes."""

    device: str
    name: str
    kind: str  # "number", "switch", "text", "index", "object"
    call: Callable[[Any, Any], Awaitable[Any]]
    unit: str = ""
    low: float = -math.inf
    high: float = math.inf
    none_ok: bool = False
    """None is a valid value here (an optional argument left out)."""


async def _status(st_: Any) -> Any:
    return await st_


def _n(device: str, name: str, unit: str, low: float, high: float, call: Any) -> Target:
    return Target(device, name, "number", call, unit, low, high)


TARGETS = [
    _n("stage", "x.set", "mm", -10, 150, lambda d, v: _status(d.x.set(v))),
    _n("stage", "y.set", "mm", -5, 30, lambda d, v: _status(d.y.set(v))),
    _n("stage", "velocity.set", "mm/s", 0.01, 40, lambda d, v: _status(d.velocity.set(v))),
    _n("stage", "pulse_spacing.set", "mm", 0, 1000, lambda d, v: _status(d.pulse_spacing.set(v))),
    _n("stage", "load_coupon(length)", "mm", 1e-3, 1000, lambda d, v: d.load_coupon("C2", v, 10)),
    _n("stage", "load_coupon(width)", "mm", 1e-3, 1000, lambda d, v: d.load_coupon("C2", 10, v)),
    Target("stage", "load_coupon(id)", "text", lambda d, v: d.load_coupon(v, 10, 10)),
    _n("profiler", "dwell.set", "s", 0.001, 60, lambda d, v: _status(d.dwell.set(v))),
    _n("profiler", "prepare(period)", "s", 0.001, 60,
       lambda d, v: _status(d.prepare(LineSpec(10, v)))),
    Target("profiler", "prepare(points)", "index",
           lambda d, v: _status(d.prepare(LineSpec(v, 0.1)))),
    _n("xrf", "dwell.set", "s", 0.001, 60, lambda d, v: _status(d.dwell.set(v))),
    Target("xrf", "source", "switch", lambda d, v: d.source(v)),
    _n("frame", "sample_rate.set", "Hz", 1, 10000, lambda d, v: _status(d.sample_rate.set(v))),
    _n("frame", "crosshead_rate.set", "mm/min", 0.001, 500,
       lambda d, v: _status(d.crosshead_rate.set(v))),
    _n("frame", "strain_rate.set", "1/min", 0.0001, 5, lambda d, v: _status(d.strain_rate.set(v))),
    _n("frame", "force_limit.set", "N", 1, 20000, lambda d, v: _status(d.force_limit.set(v))),
    Target("frame", "control_mode.set", "text", lambda d, v: _status(d.control_mode.set(v))),
    _n("frame", "preload", "N", 1, 20000, lambda d, v: _status(d.preload(v))),
    _n("frame", "mount(position)", "mm", 0, 1000, lambda d, v: _status(d.mount("C1", v))),
    replace(_n("frame", "mount(across)", "mm", 0, 1000,
               lambda d, v: _status(d.mount("C1", 5, across=v))), none_ok=True),
    replace(_n("frame", "mount(thickness)", "mm", 0.1, 20,
       lambda d, v: _status(d.mount("C1", 5, SpecimenGeometry(thickness=v)))), none_ok=True),
    Target("frame", "mount(id)", "text", lambda d, v: _status(d.mount(v, 5))),
    _n("frame", "configure_test(sample_rate)", "Hz", 1, 10000,
       lambda d, v: _status(d.configure_test(TestSettings(sample_rate=v)))),
    replace(_n("frame", "configure_test(force_limit)", "N", 1, 20000,
       lambda d, v: _status(d.configure_test(TestSettings(force_limit=v)))), none_ok=True),
    _n("feeder", "set_rate", "g/min", 0, 20, lambda d, v: d.set_rate(1, v)),
    _n("feeder", "set_gas", "L/min", 0, 10, lambda d, v: d.set_gas(2, v)),
    _n("feeder", "hoppers[1].set", "g/min", 0, 20, lambda d, v: _status(d.hoppers[1].set(v))),
    _n("feeder", "setpoint.set", "g/min", 0, 20,
       lambda d, v: _status(d.hoppers[1].setpoint.set(v))),
    _n("feeder", "gas_flow.set", "L/min", 0, 10,
       lambda d, v: _status(d.hoppers[2].gas_flow.set(v))),
    _n("feeder", "start_log(period)", "s", 0.02, 10, lambda d, v: d.start_log(1, v)),
    Target("feeder", "set_rate(hopper)", "index", lambda d, v: d.set_rate(v, 1.0)),
    Target("cell", "set_laser", "switch", lambda d, v: d.set_laser(v)),
    replace(_n("cell", "set_laser(power)", "W", 0, 500, lambda d, v: d.set_laser(False, v)),
            none_ok=True),
    _n("cell", "set_shield_gas", "L/min", 0, 30, lambda d, v: d.set_shield_gas(v)),
    _n("cell", "laser_power.set", "W", 0, 500, lambda d, v: _status(d.laser_power.set(v))),
    _n("cell", "shield_flow.set", "L/min", 0, 30, lambda d, v: _status(d.shield_flow.set(v))),
    _n("cell", "set_speed", "mm/s", 0, 50, lambda d, v: d.set_speed(v)),
    _n("cell", "move_to", "mm", -300, 400, lambda d, v: d.move_to(v)),
    _n("cell", "load_print(power)", "W", 0, 500,
       lambda d, v: d.load_print(replace(JOB, power_w=v))),
    _n("cell", "load_print(length)", "mm", 1, 300,
       lambda d, v: d.load_print(replace(JOB, length_mm=v))),
    Target("robot", "set(sample_id)", "text",
           lambda d, v: _status(d.set(Transfer(v, "rack.1", "stage1")))),
    Target("robot", "set(source)", "text",
           lambda d, v: _status(d.set(Transfer("C1", v, "stage1")))),
    Target("robot", "set(destination)", "text",
           lambda d, v: _status(d.set(Transfer("C1", "rack.1", v)))),
    Target("robot", "set(transfer)", "text", lambda d, v: _status(d.set(v))),
    Target("robot", "record(station)", "text", lambda d, v: d.record(v, "C1")),
]  # fmt: skip
JOB = PrintJob("C-1", 20, -10, 21, 10, 400, [(-10.0, [1.0, 0.0])])

COMMON_BAD: list[Any] = [
    None, math.nan, math.inf, -math.inf, "nan", "inf s", "", "abc", "1e999",
    np.array([1.0, 2.0]), [1.0], (1.0,), {"v": 1}, object(), complex(1, 1), 10**400,
    Q_(np.array([1.0, 2.0]), "mm"), Q_(math.nan, "mm"), "5;*RST", "1\nLAS ON",
]  # fmt: skip
WRONG_UNIT = ["3 kg", Q_(1.0, "kg"), "2 degC/min", Q_(1.0, "V")]


def _number_bad(t: Target) -> st.SearchStrategy[Any]:
    outside = []
    if math.isfinite(t.low):
        outside.append(st.floats(1e-6, 1e12).map(lambda d: t.low - max(d, abs(t.low) * 1e-6)))
    if math.isfinite(t.high):
        outside.append(st.floats(1e-6, 1e12).map(lambda d: t.high + max(d, abs(t.high) * 1e-6)))
    out = st.one_of(*outside)
    pool = [v for v in [*COMMON_BAD, *WRONG_UNIT, True, False] if not (t.none_ok and v is None)]
    return st.one_of(
        st.sampled_from(pool),
        out,
        out.map(lambda v: f"{v!r} {t.unit}"),
        out.map(lambda v: Q_(v, t.unit)),
    )


SWITCH_BAD = st.one_of(
    st.sampled_from([*COMMON_BAD, 1, 0, 1.0, "1", "0", "yes", "no", "true", "ON!", "of"]),
    st.text(max_size=6).filter(lambda s: s.strip().lower() not in ("on", "off")),
    st.integers(),
)
TEXT_BAD = st.sampled_from(
    [None, "", 'a"b', "a;b", "a\nb", "x" * 300, 5, 1.5, np.array(["a"]), ["C1"], "POS;*RST"]
)
INDEX_BAD = st.one_of(
    st.sampled_from([None, 0, -1, 1.5, "1", True, np.array([1]), 10**400, math.nan]),
    st.integers(max_value=0),
    st.integers(min_value=100_001),
)


def _bad(t: Target) -> st.SearchStrategy[Any]:
    if t.kind == "number":
        return _number_bad(t)
    if t.kind == "switch":
        return SWITCH_BAD
    if t.kind == "index":
        return INDEX_BAD
    return TEXT_BAD


@st.composite
def cases(draw: st.DrawFn) -> tuple[Target, Any]:
    t = draw(st.sampled_from(TARGETS))
    return t, draw(_bad(t))


class Lab:
    """The connected drivers on one loop, and what the property found."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.devices = _devices()
        self.wires: dict[str, FakeLineTransport] = {}
        self.counts: Counter[str] = Counter()
        self.findings: list[str] = []
        for name, dev in self.devices.items():
            self.wires[name] = fake_client(dev, SCRIPTS[name], strict=False)
            self.loop.run_until_complete(dev.connect())
            assert not self.wires[name].unused, f"{name}: connect script left over"
            assert not self.wires[name].unexpected, f"{name}: {self.wires[name].unexpected}"

    def run(self, target: Target, value: Any) -> list[str]:
        """Call ``target`` with ``value``; return what went wrong (nothing when refused)."""
        dev, wire = self.devices[target.device], self.wires[target.device]
        found = len(self.findings)
        before = wire.bytes_written
        label = f"{target.device}.{target.name}({value!r:.60})"
        self.counts["cases"] += 1

        async def call() -> None:
            async with asyncio.timeout(2.0):
                await target.call(dev, value)

        try:
            self.loop.run_until_complete(call())
        except TimeoutError as exc:
            if not isinstance(exc, CouponlabError):
                self.counts["hangs"] += 1
                self.findings.append(f"hang: {label}")
        except CouponlabError:
            self.counts["refused"] += 1
        except Exception as exc:
            self.counts["untyped"] += 1
            self.findings.append(f"untyped {type(exc).__name__}: {label}: {exc}")
        else:
            self.counts["accepted"] += 1
            self.findings.append(f"accepted: {label}")
        if wire.bytes_written != before:
            self.counts["bytes_on_wire"] += 1
            self.findings.append(f"bytes on the wire: {label}: {wire.unexpected[-1:]}")
            wire.unexpected.clear()
        return self.findings[found:]

    def close(self) -> None:
        for dev in self.devices.values():
            self.loop.run_until_complete(dev.disconnect())
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()


CASES = examples(300, 1000)
"""Hypothesis examples over all entry points (``--thorough``: 1000)."""


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    lab = Lab()
    yield lab
    lab.close()
    c = lab.counts
    print(
        f"\nbad-input property: {c['cases']} cases over {len(TARGETS)} entry points: "
        f"{c['refused']} refused with a typed error, {c['untyped']} untyped, "
        f"{c['accepted']} accepted, {c['hangs']} hangs, {c['bytes_on_wire']} with bytes sent"
    )


@pytest.mark.timeout(600)
@settings(
    max_examples=CASES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=cases())
def test_bad_input_is_refused_typed_before_a_byte(lab: Lab, case: tuple[Target, Any]) -> None:
    target, value = case
    found = lab.run(target, value)
    assert not found, "\n".join(found)


def test_every_entry_point_was_tried(lab: Lab) -> None:
    """Runs after the property (same module): the counts are the property's."""
    assert lab.counts["cases"] >= CASES
    assert lab.counts["untyped"] == lab.counts["accepted"] == lab.counts["hangs"] == 0
    assert lab.counts["bytes_on_wire"] == 0
