"""The OPC UA furnace driver against the furnace twin on 127.0.0.1 (twin on its own thread,
driver on the test's loop or the RunEngine's): the conformance suite, the gradient hold plan
under a real RunEngine, an abort mid-hold and a tripped interlock that both end in standby,
and bad input that never reaches the server."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import Any, TypeVar

import numpy as np
import pytest
from bluesky import RunEngine
from bluesky.utils import FailedStatus, RunEngineInterrupted
from furnace_twin import furnace_model, restore

from couponlab.drivers.furnace import OpcUaGradientFurnace
from couponlab.errors import InputError, InterlockTrippedError
from couponlab.interfaces.furnace import FurnaceProgram, ProgramAbortedError, ProgramSegment
from couponlab.plans.gradient_hold import gradient_oxidation_hold
from couponlab.run_engine import LabRunEngine
from couponlab.simulators.furnace import FurnaceModel
from couponlab.simulators.world import Coupon
from couponlab.testing.furnace import (
    FURNACE_CHECKS,
    FurnaceConformance,
    WireSpy,
    bad_requests,
    furnace_lab,
)
from couponlab.twins import BackgroundTwins

T = TypeVar("T")
SPEEDUP = 5000.0
NAME = "furnace1"


@pytest.fixture(scope="module")
def twins() -> Iterator[BackgroundTwins]:
    """One furnace twin for the module, on its own loop and thread."""
    with BackgroundTwins(furnace_lab(speedup=SPEEDUP, name=NAME)) as running:
        yield running


@pytest.fixture(autouse=True)
def clean_twin(twins: BackgroundTwins) -> Iterator[None]:
    yield
    twins.call(restore, furnace_model(twins))


@pytest.fixture
async def furnace(twins: BackgroundTwins) -> AsyncIterator[OpcUaGradientFurnace]:
    device = OpcUaGradientFurnace.from_lab_entry(twins.lab.device(NAME))
    await device.connect(timeout=10.0)
    try:
        yield device
    finally:
        await device.disconnect()


# -- the conformance suite ----------------------------------------------------------------


@pytest.mark.parametrize("check", list(FURNACE_CHECKS))
async def test_conformance(
    check: str, furnace: OpcUaGradientFurnace, twins: BackgroundTwins
) -> None:
    spy = WireSpy().attach(furnace)
    default_limit = await furnace.interlock.limit.get_value()

    async def trip() -> None:
        await furnace.interlock.limit.set(100.0)  # below every zone: trips at the next tick

    async def recover() -> None:
        # the instrument's default (1225 degC) is above the lab limit (1150 degC), so the
        # driver refuses to write it back: restore it on the twin's side
        await twins.acall(furnace_model(twins).set_interlock_limit, default_limit)

    ctx = FurnaceConformance(
        furnace, timeout=30.0, write_count=spy.count, trip=trip, recover=recover
    )
    await FURNACE_CHECKS[check](ctx)
    if check == "bad_input":
        assert spy.count() == 0  # nothing at all was written during the whole check


async def test_bad_input_leaves_the_instrument_unchanged(
    furnace: OpcUaGradientFurnace, twins: BackgroundTwins
) -> None:
    """Server-side truth: the twin's setpoints, ramp rate and program are what they were."""
    model = furnace_model(twins)

    def snapshot(m: FurnaceModel) -> tuple[list[float], float, int, str]:
        return (list(m.target_c), m.ramp_rate_k_per_min, len(m.segments), m.mode)

    spy = WireSpy().attach(furnace)
    before = await twins.acall(snapshot, model)
    for what, request in bad_requests(furnace.num_zones):
        with pytest.raises(InputError):
            await furnace.set(request)  # type: ignore[arg-type]
        assert spy.count() == 0, what
    with pytest.raises(InputError):
        await furnace.run_program([ProgramSegment([2000.0] * 8, "10 K/min", "1 h")])
    with pytest.raises(InputError):
        await furnace.load_coupon("C-1", "301 mm")
    assert spy.count() == 0
    assert await twins.acall(snapshot, model) == before


async def test_hold_runs_in_instrument_time(
    furnace: OpcUaGradientFurnace, twins: BackgroundTwins
) -> None:
    """A 2 h hold is a furnace program: it ends after at least 2 h of instrument time, in
    much less than 2 h of wall time (the status is awaited for 30 s at most)."""
    await asyncio.wait_for(furnace.set_gradient(700, 500, ramp_rate="50 K/min"), 30)
    t0 = await furnace.clock.now()
    hold = FurnaceProgram((ProgramSegment([600.0] * 8, "100 K/min", "2 h"),))
    await asyncio.wait_for(furnace.set(hold), 30)
    elapsed = await furnace.clock.now() - t0
    assert elapsed >= 7200.0


async def _first_progress(status: Any) -> None:
    """Return once ``status`` (a furnace action) has reported progress: it has read the
    furnace once and is waiting for its next poll."""
    seen = asyncio.Event()
    status.watch(lambda **_: seen.set())
    await asyncio.wait_for(seen.wait(), 30)


async def test_the_same_gradient_requested_again_takes_over_and_the_first_ends_with_it(
    furnace: OpcUaGradientFurnace,
) -> None:
    """A RunEngine resuming from a suspension replays a gradient request from its checkpoint
    while the first request still waits. The first must end as the replayed one does: here
    the replayed one reaches the gradient and the plan then sends the furnace to standby,
    which before failed the first request ("sent to standby before reaching the gradient")
    and with it the resumed run. The first request polls only every 5 s (its longest poll
    period), so it sleeps through the ramp and wakes on the standby."""
    furnace.poll_period = 5.0
    first = furnace.set_gradient(700, 500, ramp_rate="50 K/min")
    await _first_progress(first)
    furnace.poll_period = 0.05
    replayed = furnace.set_gradient(700, 500, ramp_rate="50 K/min")
    await asyncio.wait_for(replayed, 30)
    await furnace.stop()
    await asyncio.wait_for(first, 30)
    assert first.success and replayed.success


async def test_a_different_gradient_requested_meanwhile_ends_the_first(
    furnace: OpcUaGradientFurnace,
) -> None:
    """A second request for another gradient replaces the first, which then fails (it is
    not reported done at a gradient it never reached); the second completes."""
    first = furnace.set_gradient(700, 500, ramp_rate="50 K/min")
    await _first_progress(first)
    second = furnace.set_gradient(650, 500, ramp_rate="50 K/min")
    with pytest.raises(ProgramAbortedError, match="different gradient was requested"):
        await asyncio.wait_for(first, 30)
    await asyncio.wait_for(second, 30)


async def test_connect_again_after_disconnect(
    furnace: OpcUaGradientFurnace, twins: BackgroundTwins
) -> None:
    first = await furnace.identify()
    await furnace.disconnect()
    await furnace.connect()
    assert await furnace.identify() == first
    assert furnace.connection.generation == 2


# -- the plan under a real RunEngine ---------------------------------------------------------


@pytest.fixture
def run_engine() -> Iterator[RunEngine]:
    loop = asyncio.new_event_loop()
    engine = LabRunEngine({}, call_returns_result=True, loop=loop)
    yield engine
    if engine.state not in ("idle", "panicked"):
        engine.halt()
    pending = asyncio.run_coroutine_threadsafe(_pending_tasks(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    engine._th.join(10)
    loop.close()
    assert not pending, f"tasks left on the RunEngine's loop: {pending}"


async def _pending_tasks() -> list[str]:
    await asyncio.sleep(0.05)
    me = asyncio.current_task()
    return [t.get_name() for t in asyncio.all_tasks() if t is not me and not t.done()]


def _in_loop(engine: RunEngine, coro: Awaitable[T], timeout: float = 30.0) -> T:
    async def run() -> T:
        return await coro

    return asyncio.run_coroutine_threadsafe(run(), engine.loop).result(timeout)


@pytest.fixture
def re_furnace(run_engine: RunEngine, twins: BackgroundTwins) -> Iterator[OpcUaGradientFurnace]:
    """The furnace connected on the RunEngine's loop."""
    device = OpcUaGradientFurnace.from_lab_entry(twins.lab.device(NAME))
    _in_loop(run_engine, device.connect(timeout=10.0))
    try:
        yield device
    finally:
        _in_loop(run_engine, device.disconnect())


def _collect(engine: RunEngine) -> list[tuple[str, dict[str, Any]]]:
    docs: list[tuple[str, dict[str, Any]]] = []
    engine.subscribe(lambda name, doc: docs.append((name, doc)))
    return docs


def _events(docs: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    return [d for n, d in docs if n == "event"]


def _record_placements(
    twins: BackgroundTwins, monkeypatch: pytest.MonkeyPatch
) -> list[tuple[str, str, float, float]]:
    """Record every ``World.place`` (on the twins' thread): coupon, holder, virtual time and
    the furnace's hottest zone then (degC)."""
    world, placed = twins.world, []
    place, model = world.place, furnace_model(twins)

    def recording(coupon_id: str, holder: Any, holder_name: str = "", offset: float = 0.0) -> None:
        placed.append((coupon_id, holder_name, world.now, float(np.max(model.pv_c))))
        place(coupon_id, holder, holder_name, offset)

    monkeypatch.setattr(world, "place", recording)
    return placed


def _check_exposure(
    twins: BackgroundTwins,
    placed: list[tuple[str, str, float, float]],
    coupon: Coupon,
    record: dict[str, Any],
) -> tuple[float, float, float]:
    """Check a coupon's exposure against the true times it went into this furnace and out
    (``placed``): the world counts whole oxidation steps, and the plan (``record``, its
    exposure event's data) reads the clock just after each placement, one exchange later,
    which at this speed-up is seconds to minutes of instrument time depending on the load:
    measured here, not assumed. Return the true times in and out (s) and the furnace's
    hottest zone when the coupon went in (degC)."""
    ((_, into, t_in, hot), (_, out_of, t_out, _)) = [p for p in placed if p[0] == coupon.coupon_id]
    assert (into, out_of) == (NAME, "")
    read_in, read_out = record["coupon_in_s"] - t_in, record["coupon_out_s"] - t_out
    assert read_in >= 0.0 and read_out >= 0.0  # read after the fact, on the same clock
    step = twins.world.config.oxidation.step_s
    truth = twins.call(lambda c: c.exposure_s, coupon)
    assert truth == pytest.approx(t_out - t_in, abs=step)
    assert truth == pytest.approx(record["coupon_exposure_s"], abs=step + max(read_in, read_out))
    return t_in, t_out, hot


def test_plan_records_the_profile_on_the_instrument_clock(
    run_engine: RunEngine,
    re_furnace: OpcUaGradientFurnace,
    twins: BackgroundTwins,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    coupon = Coupon("CPN-7")
    coupon.set_composition({"Cr": 1.0})
    twins.call(twins.world.add_coupon, coupon)
    placed = _record_placements(twins, monkeypatch)
    docs = _collect(run_engine)
    result = run_engine(
        gradient_oxidation_hold(
            re_furnace,
            "800 degC",
            "600 degC",
            "4 h",
            "1 h",
            ramp_rate="50 K/min",
            coupon_id="CPN-7",
            coupon_offset="120 mm",
            md={"campaign": "integration"},
        )
    )
    assert result.exit_status == "success"  # type: ignore[union-attr]
    names = [n for n, _ in docs]
    assert names[0] == "start" and names[-1] == "stop"
    start = docs[0][1]
    assert start["plan_name"] == "gradient_oxidation_hold"
    assert start["coupon_id"] == "CPN-7" and start["campaign"] == "integration"
    (descriptor,) = [d for n, d in docs if n == "descriptor" and d["name"] == "primary"]
    keys = descriptor["data_keys"]
    assert keys[f"{NAME}-profile"]["units"] == "degC"
    assert keys[f"{NAME}-profile"]["shape"] == [8]
    assert keys[f"{NAME}-clock-sim_time"]["units"] == "s"
    assert descriptor["configuration"][NAME]["data"][f"{NAME}-carrier-coupon_id"] == "CPN-7"
    events = _stream_events(docs, "primary")
    assert len(events) == 5  # at the start of the hold, then every hour for 4 h
    times = np.array([e["data"][f"{NAME}-clock-sim_time"] for e in events])
    # event k is taken once the instrument clock is k hours past the first event, never
    # before (how much later depends on wall-clock jitter times the speed-up: not asserted)
    since_first = times[1:] - times[0]
    assert np.all(since_first >= 3600.0 * np.arange(1, 5)), since_first
    for e in events:  # the hold holds: every zone within the gradient's tolerance
        pv = np.asarray(e["data"][f"{NAME}-profile"])
        sp = np.asarray(e["data"][f"{NAME}-setpoint_profile"])
        assert np.max(np.abs(pv - sp)) <= 2.0
        assert sp[0] == pytest.approx(800.0) and sp[-1] == pytest.approx(600.0)
    assert docs[-1][1]["exit_status"] == "success"
    assert _in_loop(run_engine, re_furnace.state()) == "standby"
    assert twins.call(lambda m: m.mode, furnace_model(twins)) == "standby"
    # The coupon went in hot, before the hold's first event, and came out after its last:
    # its exposure is the 4 h hold plus the plan's steps around it (how long those take in
    # instrument time is wall time times the speed-up: 1440 s once on a loaded machine, so
    # it is not bounded here).
    assert twins.call(lambda c: c.holder, coupon) is None
    (record,) = [e["data"] for e in _stream_events(docs, "exposure")]
    t_in, t_out, hot = _check_exposure(twins, placed, coupon, record)
    assert hot > 750.0
    assert record["coupon_in_s"] <= times[0] and times[-1] <= t_out
    assert t_out - t_in >= 4 * 3600.0


def _pause_once_after_event(
    engine: RunEngine, seq_num: int, threads: list[threading.Thread]
) -> Any:
    """A subscriber that requests one deferred pause (one Ctrl-C) after primary event
    ``seq_num`` (request_pause blocks on the RunEngine's loop: it runs on another thread)."""
    primary: set[str] = set()

    def callback(name: str, doc: dict[str, Any]) -> None:
        if name == "descriptor" and doc["name"] == "primary":
            primary.add(doc["uid"])
        if name == "event" and doc["descriptor"] in primary and doc["seq_num"] == seq_num:
            threads.append(threading.Thread(target=engine.request_pause, args=(True,)))
            threads[-1].start()

    return callback


def _stream_events(docs: list[tuple[str, dict[str, Any]]], stream: str) -> list[dict[str, Any]]:
    uids = {d["uid"] for n, d in docs if n == "descriptor" and d["name"] == stream}
    return [d for n, d in docs if n == "event" and d["descriptor"] in uids]


def test_ctrl_c_mid_hold_holds_the_program_and_resume_finishes_it(
    run_engine: RunEngine,
    re_furnace: OpcUaGradientFurnace,
    twins: BackgroundTwins,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One Ctrl-C (a deferred pause) pauses within a watch slice; the furnace's program is
    held (dwell timer frozen, coupon still in, hot) instead of being sent to standby; resume
    continues it, and the exposure record includes the time held."""
    coupon = Coupon("CPN-P")
    coupon.set_composition({"Cr": 1.0})
    twins.call(twins.world.add_coupon, coupon)
    placed = _record_placements(twins, monkeypatch)
    docs = _collect(run_engine)
    pausers: list[threading.Thread] = []
    run_engine.subscribe(_pause_once_after_event(run_engine, 2, pausers))
    model, world = furnace_model(twins), twins.world
    try:
        with pytest.raises(RunEngineInterrupted):
            run_engine(
                gradient_oxidation_hold(
                    re_furnace, 800, 600, "4 h", "1 h", ramp_rate="50 K/min", coupon_id="CPN-P"
                )
            )
        assert run_engine.state == "paused"
        twins.call(world.pause)  # step the world by hand while the run is paused
        state, left = twins.call(lambda m: (m.program_state.value, m.remaining_s()), model)
        assert (state, model.mode) == ("held", "program")
        twins.call(world.advance, 3600.0)
        assert twins.call(lambda m: m.remaining_s(), model) == pytest.approx(left)  # frozen
        holder, hot = twins.call(lambda c: (c.holder_name, float(np.max(model.pv_c))), coupon)
        assert holder == NAME and hot > 750.0  # the coupon is still in, and hot
        twins.call(world.resume)
        result = run_engine.resume()
    finally:
        for t in pausers:
            t.join(10)
    assert result.exit_status == "success"
    assert [e["data"]["interruption"] for e in _stream_events(docs, "interruptions")] == [
        "pause",
        "resume",
    ]
    assert len(_stream_events(docs, "primary")) == 5
    (exposure,) = _stream_events(docs, "exposure")
    data = exposure["data"]
    assert data["coupon_programmed_s"] == 4 * 3600.0
    assert data["coupon_exposure_s"] >= 5 * 3600.0  # the hold and the hour it was held
    assert data["coupon_exposure_s"] == pytest.approx(data["coupon_out_s"] - data["coupon_in_s"])
    _check_exposure(twins, placed, coupon, data)  # the world's own account against both
    assert _in_loop(run_engine, re_furnace.state()) == "standby"


def test_abort_while_paused_ends_in_standby_with_the_coupon_out(
    run_engine: RunEngine, re_furnace: OpcUaGradientFurnace, twins: BackgroundTwins
) -> None:
    coupon = Coupon("CPN-A")
    coupon.set_composition({"Cr": 1.0})
    twins.call(twins.world.add_coupon, coupon)
    docs = _collect(run_engine)
    pausers: list[threading.Thread] = []
    run_engine.subscribe(_pause_once_after_event(run_engine, 2, pausers))
    try:
        with pytest.raises(RunEngineInterrupted):
            run_engine(
                gradient_oxidation_hold(
                    re_furnace, 800, 600, "100 h", "1 h", ramp_rate="50 K/min", coupon_id="CPN-A"
                )
            )
        assert run_engine.state == "paused"
        run_engine.abort()
    finally:
        for t in pausers:
            t.join(10)
    assert run_engine.state == "idle"
    assert docs[-1][0] == "stop" and docs[-1][1]["exit_status"] == "abort"
    assert 2 <= len(_stream_events(docs, "primary")) < 100
    assert _in_loop(run_engine, re_furnace.state()) == "standby"
    model = furnace_model(twins)
    assert twins.call(lambda m: (m.mode, m.program_state.value), model) == (
        "standby",
        "aborted",
    )
    assert twins.call(lambda c: c.holder, coupon) is None


def test_interlock_trip_fails_the_plan_and_ends_in_standby(
    run_engine: RunEngine, re_furnace: OpcUaGradientFurnace, twins: BackgroundTwins
) -> None:
    model = furnace_model(twins)
    docs = _collect(run_engine)

    def trip_on_second_event(name: str, doc: dict[str, Any]) -> None:
        if name == "event" and doc["seq_num"] == 2:
            twins.call(model.set_interlock_limit, 100.0)  # fault: limit below every zone

    run_engine.subscribe(trip_on_second_event)
    with pytest.raises(FailedStatus) as info:
        run_engine(gradient_oxidation_hold(re_furnace, 800, 600, "100 h", "1 h"))
    chain: list[BaseException] = []
    exc: BaseException | None = info.value
    while exc is not None:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    assert any(isinstance(e, InterlockTrippedError) for e in chain), chain
    assert docs[-1][0] == "stop" and docs[-1][1]["exit_status"] == "fail"
    assert "interlock" in docs[-1][1]["reason"].lower()
    assert 2 <= len(_events(docs)) < 100
    mode, tripped, state = twins.call(lambda m: (m.mode, m.tripped, m.state), model)
    assert (mode, tripped, state) == ("standby", True, "interlock")  # latched until reset
    assert _in_loop(run_engine, re_furnace.state()) == "interlock"


async def test_ramp_hold_and_clock_wait_report_progress_in_instrument_terms(
    furnace: OpcUaGradientFurnace,
) -> None:
    """Progress bars can watch every long furnace action: a ramp in degC of the zone with the
    farthest to go, a program and a clock wait in instrument seconds (virtual on the twin)."""
    seen: dict[str, list[dict[str, Any]]] = {"ramp": [], "hold": [], "clock": []}
    ramp = furnace.set_gradient(700, 500, ramp_rate="50 K/min")
    ramp.watch(lambda **kw: seen["ramp"].append(kw))  # type: ignore[attr-defined]
    await asyncio.wait_for(ramp, 30)
    first, last = seen["ramp"][0], seen["ramp"][-1]
    assert first["unit"] == last["unit"] == "degC" and first["name"] == NAME
    assert last["target"] == pytest.approx(700.0)  # the hot end had the farthest to go
    assert abs(last["current"] - last["target"]) <= 2.0  # within tolerance when done
    assert last["time_elapsed"] > 60.0  # instrument s: a 475 K ramp at 50 K/min is ~10 min

    hold = furnace.set(FurnaceProgram((ProgramSegment([600.0] * 8, "100 K/min", "2 h"),)))
    hold.watch(lambda **kw: seen["hold"].append(kw))  # type: ignore[attr-defined]
    await asyncio.wait_for(hold, 30)
    planned = seen["hold"][0]["target"]
    # the 2 h dwell, and the ramp of the zone farthest from 600 degC (less than 100 K away,
    # zones sit between the 700 and 500 degC ends) at 100 K/min
    assert 7200.0 + 30.0 < planned < 7200.0 + 60.0
    assert all(u["unit"] == "s" for u in seen["hold"])
    currents = [u["current"] for u in seen["hold"]]
    assert currents == sorted(currents) and len(currents) > 2

    t0 = await furnace.clock.now()
    wait = furnace.wait_until(t0 + 1800.0)
    wait.watch(lambda **kw: seen["clock"].append(kw))  # type: ignore[attr-defined]
    await asyncio.wait_for(wait, 30)
    assert seen["clock"][-1]["current"] == pytest.approx(t0 + 1800.0)
    assert seen["clock"][-1]["fraction"] == 1.0
    assert seen["clock"][-1]["time_remaining"] == 0.0
