"""gradient_oxidation_hold at the message level (RunEngineSimulator and a hand-driven
generator): the order of the messages, waits on the instrument clock, metadata, input refused
before any message, and standby at the end of every path."""

from __future__ import annotations

import json
from collections.abc import Generator
from typing import Any

import pytest
from bluesky.simulators import RunEngineSimulator
from bluesky.utils import Msg, RequestAbort
from ophyd_async.core import soft_signal_rw

from couponlab.drivers.furnace import OpcUaGradientFurnace
from couponlab.errors import InputError, InterlockTrippedError, OutOfLimitsError, UnitError
from couponlab.interfaces.furnace import (
    CouponPlacement,
    FurnaceProgram,
    GradientSetpoint,
    LinearGradient,
)
from couponlab.plans.gradient_hold import (
    EXPOSURE_STREAM,
    HOLD_GROUP,
    TICK_GROUP,
    gradient_oxidation_hold,
)
from couponlab.units import Q_

T0 = 5000.0


@pytest.fixture
def furnace() -> OpcUaGradientFurnace:
    """A furnace object for messages only (never connected)."""
    return OpcUaGradientFurnace("opc.tcp://127.0.0.1:4840", name="furnace1")


def _sim() -> RunEngineSimulator:
    sim = RunEngineSimulator()
    sim.add_handler("locate", lambda msg: {"setpoint": T0, "readback": T0})
    return sim


def _commands(msgs: list[Msg]) -> list[str]:
    return [m.command for m in msgs]


def test_messages_ramp_hold_record_on_the_clock_and_standby(
    furnace: OpcUaGradientFurnace,
) -> None:
    msgs = _sim().simulate_plan(
        gradient_oxidation_hold(
            furnace, "1000 degC", "700 degC", "1 h", "20 min", ramp_rate="20 K/min"
        )
    )
    cmds = _commands(msgs)
    record = ["create", "read", "save"]
    tick = ["set", "checkpoint", *record]  # a done status (simulator): one checkpoint, no wait
    expected = [
        "open_run",
        "set",  # the gradient
        "checkpoint",  # watched in slices with a checkpoint before each (none: already done)
        "set",  # the hold program
        "checkpoint",  # a resume never starts the program again
        *record,
        "locate",  # bps.rd of the clock, after the first event
        *tick,
        *tick,
        *tick,
        "checkpoint",  # the program watched to its end
        "close_run",
        "stop",
    ]
    assert cmds == expected
    gradient = msgs[1]
    assert gradient.obj is furnace and isinstance(gradient.args[0], GradientSetpoint)
    assert gradient.args[0].ramp_rate == "20 K/min"
    hold = msgs[3]
    assert hold.kwargs["group"] == HOLD_GROUP
    program = hold.args[0]
    assert isinstance(program, FurnaceProgram) and len(program.segments) == 1
    (segment,) = program.segments
    assert segment.dwell == 3600.0 and segment.ramp_rate == "20 K/min"
    assert segment.targets == LinearGradient("1000 degC", "700 degC")
    clock_sets = [m for m in msgs if m.command == "set" and m.obj is furnace.clock]
    assert [m.args[0] for m in clock_sets] == [T0 + 1200.0, T0 + 2400.0, T0 + 3600.0]
    assert all(m.kwargs["group"] == TICK_GROUP for m in clock_sets)
    # no `clear_checkpoint` any more: a pause holds the program and the run resumes
    assert "clear_checkpoint" not in cmds and "wait" not in cmds
    reads = [m for m in msgs if m.command == "read"]
    assert all(m.obj is furnace for m in reads) and len(reads) == 4
    assert msgs[-1] == Msg("stop", furnace)


def test_coupon_goes_in_hot_and_comes_out_after_standby(furnace: OpcUaGradientFurnace) -> None:
    """The coupon's exposure is the hold: it goes onto the carrier once the gradient is
    reached, before the hold program starts, and comes off after the furnace is in standby."""
    msgs = _sim().simulate_plan(
        gradient_oxidation_hold(
            furnace, 900, 600, "2 h", "1 h", coupon_id="C-017", coupon_offset="20 mm"
        )
    )
    placements = [
        i
        for i, m in enumerate(msgs)
        if m.command == "set" and isinstance(m.args[0], CouponPlacement)
    ]
    assert [msgs[i].args[0] for i in placements] == [
        CouponPlacement("C-017", "20 mm"),
        CouponPlacement("", 0.0),
    ]
    gradient = next(
        i
        for i, m in enumerate(msgs)
        if m.command == "set" and isinstance(m.args[0], GradientSetpoint)
    )
    program = next(
        i
        for i, m in enumerate(msgs)
        if m.command == "set" and isinstance(m.args[0], FurnaceProgram)
    )
    stop = next(i for i, m in enumerate(msgs) if m.command == "stop")
    assert gradient < placements[0] < program
    assert placements[1] < stop  # out of the hot furnace at the end of the hold, then standby
    exposure = next(i for i, m in enumerate(msgs) if m.command == "create")
    assert msgs[exposure].kwargs.get("name") in (None, "primary")
    streams = [m.kwargs.get("name") for m in msgs if m.command == "create"]
    assert streams[-1] == EXPOSURE_STREAM  # the exposure record, after the coupon came out
    (record,) = [m.obj for m in msgs if m.command == "read" and m.obj is not furnace]
    values = {k: v["value"] for k, v in record.read().items()}
    assert values["coupon_in_s"] == values["coupon_out_s"] == T0  # (the simulator's clock)
    assert values["coupon_exposure_s"] == 0.0 and values["coupon_programmed_s"] == 7200.0


def test_coupon_can_stay_in_the_cooling_furnace(furnace: OpcUaGradientFurnace) -> None:
    msgs = _sim().simulate_plan(
        gradient_oxidation_hold(
            furnace, 900, 600, "2 h", "1 h", coupon_id="C-1", remove_coupon=False
        )
    )
    placements = [
        m.args[0] for m in msgs if m.command == "set" and isinstance(m.args[0], CouponPlacement)
    ]
    assert placements == [CouponPlacement("C-1", 0.0)]


def test_metadata_records_plan_and_merges_md(furnace: OpcUaGradientFurnace) -> None:
    msgs = _sim().simulate_plan(
        gradient_oxidation_hold(
            furnace,
            Q_(1273.15, "K"),
            "700 degC",
            Q_(100, "h"),
            "10 h",
            coupon_id="C-1",
            md={"operator": "ada", "num_points": 999},
        )
    )
    (open_run,) = [m for m in msgs if m.command == "open_run"]
    md = open_run.kwargs
    assert md["plan_name"] == "gradient_oxidation_hold"
    assert md["plan_args"]["furnace"] == "furnace1"
    assert md["plan_args"]["hot"] == str(Q_(1273.15, "K"))
    assert md["plan_args"]["duration"] == str(Q_(100, "h"))
    assert md["coupon_id"] == "C-1" and md["operator"] == "ada"
    assert md["hot_end_c"] == pytest.approx(1000.0) and md["cold_end_c"] == 700.0
    assert md["hold_duration_s"] == 360000.0 and md["record_interval_s"] == 36000.0
    assert md["num_points"] == 999  # the caller's md wins
    assert md["detectors"] == ["furnace1"]
    json.dumps(md)  # the start document must serialise


@pytest.mark.parametrize(
    ("kw", "error", "match"),
    [
        ({"duration": 0}, OutOfLimitsError, "hold duration"),
        ({"duration": "1 mm"}, UnitError, "wrong unit"),
        ({"interval": "2 h", "duration": "1 h"}, OutOfLimitsError, "recording interval"),
        ({"interval": -5}, OutOfLimitsError, "recording interval"),
        ({"interval": "1 s", "duration": "1000 h"}, InputError, "record less often"),
        ({"hot": Q_(900, "delta_degC")}, UnitError, "temperature difference"),
        ({"cold": "600 mm"}, UnitError, "wrong unit"),
        ({"coupon_id": 17}, InputError, "not a string"),
    ],
)
def test_bad_arguments_refused_before_any_message(
    furnace: OpcUaGradientFurnace, kw: dict[str, Any], error: type[Exception], match: str
) -> None:
    args: dict[str, Any] = {
        "hot": 900,
        "cold": 600,
        "duration": "1 h",
        "interval": "10 min",
    } | kw
    plan = gradient_oxidation_hold(furnace, **args)
    with pytest.raises(error, match=match):
        next(plan)


def _run_until(
    plan: Generator[Msg, Any, Any], stop_at: Any
) -> tuple[list[Msg], Generator[Msg, Any, Any]]:
    """Drive a plan (answering locate) until ``stop_at(msg)``; return the messages so far."""
    msgs: list[Msg] = []
    reply: Any = None
    while True:
        msg = plan.send(reply)
        msgs.append(msg)
        reply = {"setpoint": T0, "readback": T0} if msg.command == "locate" else None
        if stop_at(msg):
            return msgs, plan


@pytest.mark.parametrize(
    "failure", [InterlockTrippedError("furnace1", "interlock tripped"), RequestAbort()]
)
def test_failure_mid_hold_still_ends_in_standby(
    furnace: OpcUaGradientFurnace, failure: BaseException
) -> None:
    """An error thrown into the plan mid-hold (a tripped interlock failing the program
    status, or the RunEngine aborting) runs the standby step, then re-raises."""
    msgs, plan = _run_until(
        gradient_oxidation_hold(furnace, 900, 600, "10 h", "1 h"),
        lambda m: m.command == "set" and m.obj is furnace.clock,
    )
    assert "close_run" not in _commands(msgs)
    cleanup = plan.throw(failure)
    assert cleanup == Msg("stop", furnace)
    with pytest.raises(type(failure)):
        plan.send(None)


def test_extra_detectors_are_read_in_every_event(furnace: OpcUaGradientFurnace) -> None:
    tcs = soft_signal_rw(float, 0.0, name="tcs")
    msgs = _sim().simulate_plan(
        gradient_oxidation_hold(furnace, 900, 600, "2 h", "1 h", detectors=[tcs])
    )
    reads = [m.obj for m in msgs if m.command == "read"]
    assert reads.count(furnace) == 3
    assert reads.count(tcs) == 3
    start = next(m for m in msgs if m.command == "open_run")
    assert start.kwargs["detectors"] == ["furnace1", "tcs"]
