"""Progress of long actions: a ProgressStatus passes what its action reports to watchers
(as ophyd-async's WatchableAsyncStatus), fails with the action's error and cancels it;
ProgressBars keeps one bar across the slices of a watched wait; the lab's RunEngine shows
a watched status to its waiting hook. Steps are driven by events, never by wall time."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import bluesky.plan_stubs as bps
import pytest
from bluesky.utils import MsgGenerator

from couponlab.errors import InstrumentError
from couponlab.plans.watch import watch
from couponlab.progress import (
    Countdown,
    ProgressBars,
    ProgressStatus,
    WatchedWait,
    progress_watched,
    report_progress,
    watched_statuses,
)
from couponlab.run_engine import LabRunEngine


async def test_a_watcher_gets_each_report_in_the_instruments_units() -> None:
    step = asyncio.Event()

    async def hold() -> None:
        assert progress_watched()
        report_progress(100.0, 100.0, 400.0, unit="s", elapsed_s=0.0, precision=0)
        await step.wait()
        report_progress(400.0, 100.0, 400.0, unit="s", elapsed_s=300.0, remaining_s=0.0)

    status = ProgressStatus(hold(), name="furnace1")
    seen: list[dict[str, Any]] = []
    await asyncio.sleep(0)  # the action runs up to its first wait
    status.watch(lambda **kw: seen.append(kw))  # told the newest update at once
    step.set()
    await status
    assert status.success
    assert seen[0] == {
        "current": 100.0,
        "initial": 100.0,
        "target": 400.0,
        "name": "furnace1",
        "unit": "s",
        "precision": 0,
        "fraction": 0.0,
        "time_elapsed": 0.0,
    }
    assert seen[-1]["fraction"] == 1.0
    assert seen[-1]["time_elapsed"] == 300.0  # instrument time, as reported
    assert seen[-1]["time_remaining"] == 0.0
    assert len(seen) == 2


async def test_the_status_fails_with_the_actions_own_error() -> None:
    async def refused() -> None:
        report_progress(0.0, 0.0, 1.0, unit="%")
        raise InstrumentError("cell1", "print aborted: interlock")

    status = ProgressStatus(refused(), name="cell1")
    with pytest.raises(InstrumentError, match="print aborted"):
        await status
    assert not status.success
    assert isinstance(status.exception(), InstrumentError)


async def test_cancelling_the_status_cancels_the_action() -> None:
    started, ended = asyncio.Event(), asyncio.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            ended.set()

    status = ProgressStatus(forever())
    await started.wait()
    status.task.cancel()
    await ended.wait()
    assert status.done and not status.success


async def test_a_broken_watcher_does_not_fail_the_action(
    caplog: pytest.LogCaptureFixture,
) -> None:
    step = asyncio.Event()

    async def action() -> None:
        await step.wait()
        report_progress(1.0, 0.0, 2.0, unit="mm")

    status = ProgressStatus(action())

    def broken(**_: Any) -> None:
        raise RuntimeError("bar broke")

    status.watch(broken)
    step.set()
    await status
    assert status.success
    assert "progress watcher" in caplog.text


async def test_reports_outside_a_progress_status_go_nowhere() -> None:
    assert not progress_watched()
    report_progress(1.0, 0.0, 2.0, unit="mm")  # no error, nothing to tell


async def test_countdown_reports_the_elapsed_part_of_the_longest_remaining_time() -> None:
    async def move() -> None:
        countdown = Countdown()
        for remaining in (float("inf"), 8.0, 6.0, 2.0, 0.0):
            countdown(remaining)
            await asyncio.sleep(0)

    status = ProgressStatus(move(), name="stage")
    seen: list[dict[str, Any]] = []
    status.watch(lambda **kw: seen.append(kw))
    await status
    assert [(u["current"], u["target"]) for u in seen] == [
        (0.0, 8.0),
        (2.0, 8.0),
        (6.0, 8.0),
        (8.0, 8.0),
    ]
    assert [u["time_remaining"] for u in seen] == [8.0, 6.0, 2.0, 0.0]


class FakeBar:
    """A progress bar that records what it is told (no terminal)."""

    def __init__(self, statuses: list[Any], on_create: Any = None) -> None:
        self.statuses = statuses
        self.updates: list[dict[str, Any]] = []
        self.cleared = False
        for st in statuses:
            if hasattr(st, "watch"):
                st.watch(lambda **kw: self.updates.append(kw))
        if on_create is not None:
            on_create()

    def update(self, *args: Any, **kwargs: Any) -> None:
        """Unused: updates come through the watcher."""

    def clear(self) -> None:
        self.cleared = True


class DoneStatus:
    def __init__(self, done: bool) -> None:
        self.done = done

    def add_callback(self, callback: Any) -> None:
        if self.done:
            callback(self)


def test_progress_bars_keep_one_bar_across_the_slices_of_one_wait() -> None:
    bars: list[FakeBar] = []

    def factory(statuses: list[Any]) -> FakeBar:
        bars.append(FakeBar(statuses))
        return bars[-1]

    hook = ProgressBars(factory)  # type: ignore[arg-type]
    hold = DoneStatus(False)
    for _ in range(3):  # three slices of one watched wait
        hook({hold})
        hook(None)
    assert len(bars) == 1 and not bars[0].cleared
    move = DoneStatus(False)
    hook({move})  # something else is waited for: the old bar goes
    assert bars[0].cleared and len(bars) == 2
    move.done = True
    hook(None)
    assert bars[1].cleared and hook.bar is None


def test_watched_statuses_are_those_of_watched_waits() -> None:
    a = DoneStatus(False)
    assert watched_statuses([WatchedWait(a, 0.5), lambda: None]) == {a}  # type: ignore[arg-type]


class Heater:
    """A movable whose set() is a ProgressStatus that ends once a bar watches it."""

    name = "heater"
    parent = None

    def __init__(self) -> None:
        self.release: asyncio.Event | None = None

    def set(self, value: float) -> ProgressStatus[None]:
        self.release = asyncio.Event()
        release = self.release

        async def heat() -> None:
            report_progress(20.0, 20.0, value, unit="degC")
            await release.wait()
            report_progress(value, 20.0, value, unit="degC")

        return ProgressStatus(heat(), name=self.name)


@pytest.fixture
def engine() -> Iterator[LabRunEngine]:
    re_ = LabRunEngine({}, call_returns_result=True)
    yield re_
    if not re_.state.is_idle:
        re_.abort()


def test_the_lab_run_engine_shows_a_watched_status_to_its_progress_bars(
    engine: LabRunEngine,
) -> None:
    heater = Heater()
    bars: list[FakeBar] = []

    def factory(statuses: list[Any]) -> FakeBar:
        def release() -> None:  # the bar is up: let the heating end
            assert heater.release is not None
            heater.release.set()

        bars.append(FakeBar(statuses, on_create=release))
        return bars[-1]

    engine.waiting_hook = ProgressBars(factory)  # type: ignore[arg-type]

    def plan() -> MsgGenerator[None]:
        status = yield from bps.abs_set(heater, 900.0)
        yield from watch(status, slice_s=60.0)

    engine(plan())
    (bar,) = bars
    assert bar.cleared
    assert [u["current"] for u in bar.updates] == [20.0, 900.0]
    assert bar.updates[-1]["unit"] == "degC" and bar.updates[-1]["fraction"] == 1.0
