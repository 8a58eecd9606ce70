"""Twin time that never starves a reply: a sync works for a bounded time; when the simulation
cannot keep up, virtual time slows down (the backlog is dropped) and the achieved speed-up
says so. Each instrument draws noise from its own stream of the world seed.

The wall clock is a fake one that only moves when the test (or a simulated event's "work")
moves it, so these tests do not depend on the machine's speed or load.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from types import SimpleNamespace

import numpy as np
import pytest
import simpy

import couponlab.simulators.world as world_module
from couponlab.simulators.detectors.thermocouple_scanner import ScannerConfig, ScannerModel
from couponlab.simulators.world import World, WorldConfig


class FakeClock:
    """Stands in for ``time`` in the world module: wall time moves only when told."""

    def __init__(self) -> None:
        self.t = 100.0

    def monotonic(self) -> float:
        return self.t

    def perf_counter(self) -> float:
        return self.t


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(
        world_module,
        "time",
        SimpleNamespace(monotonic=fake.monotonic, perf_counter=fake.perf_counter),
    )
    return fake


def _busy_world(clock: FakeClock, speedup: float, cost_s: float) -> World:
    """A world with one event per virtual second, each costing ``cost_s`` of wall time."""
    w = World(WorldConfig(speedup=speedup))

    def busy() -> Generator[simpy.Event, None, None]:
        while True:
            yield w.env.timeout(1.0)
            clock.t += cost_s

    w.env.process(busy())
    return w


def _run_for(w: World, clock: FakeClock, wall_s: float, idle_s: float = 1e-3) -> None:
    """Call sync repeatedly (as the clock task and replies do) for ``wall_s`` of fake time."""
    end = clock.t + wall_s
    while clock.t < end:
        w.sync()
        clock.t += idle_s


def test_a_world_that_keeps_up_runs_at_the_requested_speedup(clock: FakeClock) -> None:
    w = _busy_world(clock, speedup=1000.0, cost_s=1e-6)  # 1 ms of work per wall s
    _run_for(w, clock, 3.0)
    assert w.slowed_s == 0.0
    assert w.achieved_speedup() == pytest.approx(1000.0, rel=0.02)
    assert w.now == pytest.approx(3000.0, abs=2.0)


def test_a_world_that_cannot_keep_up_slows_down_instead_of_piling_up(clock: FakeClock) -> None:
    # 0.5 ms of work per virtual s: at most 2000 virtual s per wall s, 10000 requested
    w = _busy_world(clock, speedup=10_000.0, cost_s=5e-4)
    _run_for(w, clock, 3.0, idle_s=1e-4)
    stats = w.work_stats()
    # no sync worked for longer than its budget plus the one event in flight
    assert stats["max_ms"] <= (w.work_budget_s + 5e-4) * 1e3 + 1e-9
    assert w.slowed_s > 3.0 * 5000
    assert 1500 < w.achieved_speedup() < 2500
    # the backlog did not accumulate: it stays within max_lag_s of wall time
    assert w.target_time() - w.now <= 10_000.0 * (w.max_lag_s + w.work_budget_s + 5e-4)


def test_a_slow_first_sync_does_not_carry_its_backlog(clock: FakeClock) -> None:
    w = _busy_world(clock, speedup=10_000.0, cost_s=5e-4)
    clock.t += 10.0  # ten wall seconds pass with nobody asking: 100000 virtual s due
    reached = w.sync()
    assert not reached
    assert w.now < 10  # it did about 2 ms of work, not 50 s
    # what is carried is at most max_lag_s of wall time; the rest was dropped and counted
    assert w.target_time() - w.now == pytest.approx(10_000.0 * w.max_lag_s)
    assert w.now == 4.0  # four events of 0.5 ms fill the 2 ms budget
    due = 10_000.0 * (10.0 + 4 * 5e-4)  # what was due when the work ended
    assert w.slowed_s == pytest.approx(due - w.now - 10_000.0 * w.max_lag_s)


def test_a_short_stall_is_caught_up_not_dropped(clock: FakeClock) -> None:
    # cheap events (10 us per virtual s): 1000x needs 1 % of the time, but the process
    # was not scheduled for 0.2 wall s, so 200 virtual s came due at once
    w = _busy_world(clock, speedup=1000.0, cost_s=1e-5)
    clock.t += 0.2
    assert not w.sync()  # 2 ms of work is not enough for 200 events of 10 us
    _run_for(w, clock, 0.05)
    assert w.slowed_s == 0.0
    assert w.now == pytest.approx(250.0, abs=2.0)  # all of it, on the wall-clock map


def test_pause_reports_zero_achieved_speedup_and_advance_steps(clock: FakeClock) -> None:
    w = World(WorldConfig(speedup=100.0), paused=True)
    assert w.paused and w.achieved_speedup() == 0.0
    clock.t += 5.0
    w.sync()
    assert w.now == 0.0
    w.advance(12.5)
    assert w.now == 12.5


async def test_advance_async_reaches_its_target_in_slices(clock: FakeClock) -> None:
    w = _busy_world(clock, speedup=1.0, cost_s=5e-4)
    w.pause()
    slices = 0

    async def count_slices() -> None:
        nonlocal slices
        while True:
            await asyncio.sleep(0)
            slices += 1

    counter = asyncio.create_task(count_slices())
    await w.advance_async(100.0)  # 100 events of 0.5 ms: more than one 2 ms slice
    counter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await counter
    assert w.now == 100.0
    assert slices >= 10  # the loop ran other tasks between slices


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
async def test_advance_async_refuses_bad_spans(bad: float) -> None:
    w = World(paused=True)
    with pytest.raises(ValueError, match="cannot advance"):
        await w.advance_async(bad)


def test_each_instrument_has_its_own_stream_of_the_seed() -> None:
    a, b = World(WorldConfig(seed=7)), World(WorldConfig(seed=7))
    b.rng_for("feeder1").normal(size=1000)  # another instrument draws first, in b only
    b.rng.normal(size=10)
    assert np.array_equal(a.rng_for("tcs1").normal(size=5), b.rng_for("tcs1").normal(size=5))
    assert a.rng_for("tcs1") is a.rng_for("tcs1")
    c = World(WorldConfig(seed=7))
    assert not np.array_equal(c.rng_for("tcs1").normal(size=5), c.rng_for("tcs2").normal(size=5))
    d = World(WorldConfig(seed=8))
    assert not np.array_equal(
        World(WorldConfig(seed=7)).rng_for("tcs1").normal(size=5), d.rng_for("tcs1").normal(size=5)
    )


def test_thermocouple_offsets_depend_on_the_seed_only() -> None:
    cfg = ScannerConfig(positions_mm=[0.0, 10.0, 20.0])
    first = World(WorldConfig(seed=7))
    one = ScannerModel(first, cfg, "tcs1").offset_error_k
    second = World(WorldConfig(seed=7))
    second.rng_for("frame1").normal(size=123)  # other twins made and drawing first
    ScannerModel(second, cfg, "tcs0")
    two = ScannerModel(second, cfg, "tcs1").offset_error_k
    assert np.array_equal(one, two)


def test_catching_up_a_stall_is_not_reported_as_extra_speed(clock: FakeClock) -> None:
    # the first sync comes after a 0.2 s stall and cannot finish the 200 virtual s due; the
    # next 0.3 wall s catch them up: 500 virtual s in 0.3 wall s since that first sample,
    # but the clock ran at the requested 1000x all along (nothing was shed)
    w = _busy_world(clock, speedup=1000.0, cost_s=1e-5)
    clock.t += 0.2
    assert not w.sync()
    _run_for(w, clock, 0.3)
    assert w.slowed_s == 0.0 and w.now == pytest.approx(500.0, abs=2.0)
    assert w.achieved_speedup() == pytest.approx(1000.0, rel=1e-6)
