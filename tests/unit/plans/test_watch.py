"""plans.watch: a long action is watched with checkpoints, its result returned and its own
error raised; a pause lands at a watch checkpoint while the action goes on."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from bluesky import RunEngine
from bluesky.utils import Msg, MsgGenerator, RunEngineInterrupted

from couponlab.errors import InterlockTrippedError
from couponlab.plans.watch import watch, watch_call


@pytest.fixture
def re_() -> Iterator[RunEngine]:
    engine = RunEngine({}, call_returns_result=True)
    yield engine
    if not engine.state.is_idle:
        engine.abort()


def test_watch_call_returns_the_result_and_raises_the_devices_own_error(re_: RunEngine) -> None:
    async def job() -> int:
        await asyncio.sleep(0)
        return 7

    async def failing() -> None:
        raise InterlockTrippedError("cell1", "print aborted: feeder1 hopper 2: empty")

    assert re_(watch_call(job)).plan_result == 7
    with pytest.raises(InterlockTrippedError, match="hopper 2: empty"):
        re_(watch_call(failing))


def test_a_pause_lands_at_a_watch_checkpoint_and_resume_watches_the_same_action(
    re_: RunEngine,
) -> None:
    release = asyncio.Event()
    started: list[int] = []

    async def job() -> str:
        started.append(1)
        await release.wait()
        return "done"

    def plan() -> MsgGenerator[object]:
        result = yield from watch_call(job, slice_s=0.01)
        return result

    def pause_then(plan_: MsgGenerator[object]) -> MsgGenerator[object]:
        # ask for a deferred pause (one Ctrl-C) before the job's first watch checkpoint
        yield Msg("pause", None, defer=True)
        return (yield from plan_)

    with pytest.raises(RunEngineInterrupted):
        re_(pause_then(plan()))
    assert re_.state == "paused" and started == [1]  # paused while the job runs on
    re_.loop.call_soon_threadsafe(release.set)
    assert re_.resume().plan_result == "done"
    assert started == [1]  # the job was not started again


def test_watch_of_a_done_or_missing_status_yields_one_checkpoint() -> None:
    msgs = list(watch(None))
    assert [m.command for m in msgs] == ["checkpoint"]
    with pytest.raises(ValueError, match="slice_s"):
        list(watch(None, slice_s=0))
