"""The lab's RunEngine: a pause pauses devices that can pause (instead of stopping them);
stop, abort and an unresumable pause end with every device the run used in its safe state;
interruptions are in the run's documents. Pauses come from the plan (no wall time)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
import pytest
from bluesky.utils import Msg, MsgGenerator, RunEngineInterrupted
from ophyd_async.core import AsyncStatus

from couponlab.run_engine import LabRunEngine, RunAborted
from couponlab.testing.fake_device import FakeLabDevice


class Motor:
    """A movable that can stop but not pause (as a stage axis)."""

    name = "motor"
    parent = None

    def __init__(self) -> None:
        self.calls: list[str] = []

    def set(self, value: float) -> AsyncStatus[None]:
        self.calls.append("set")

        async def done() -> None:
            return None

        return AsyncStatus(done())

    def stop(self, success: bool = True) -> None:
        self.calls.append("stop")


@pytest.fixture
def engine() -> Iterator[tuple[LabRunEngine, list[tuple[str, dict[str, Any]]]]]:
    re_ = LabRunEngine({}, call_returns_result=True)
    docs: list[tuple[str, dict[str, Any]]] = []
    re_.subscribe(lambda name, doc: docs.append((name, doc)))
    yield re_, docs
    if not re_.state.is_idle:
        re_.abort()


def _plan(furnace: FakeLabDevice, motor: Motor, *, resumable: bool = True) -> MsgGenerator[str]:
    uid: str = yield from bps.open_run()
    yield from bps.mv(furnace, 1.0, motor, 2.0)
    if resumable:
        yield from bps.checkpoint()
    else:
        yield from bps.clear_checkpoint()
    yield Msg("pause", None, defer=False)  # as a Ctrl-C would, at this point of the plan
    yield from bps.mv(motor, 3.0)
    yield from bps.close_run()
    return uid


def _interruptions(docs: list[tuple[str, dict[str, Any]]]) -> list[str]:
    (desc,) = [d["uid"] for n, d in docs if n == "descriptor" and d["name"] == "interruptions"]
    return [d["data"]["interruption"] for n, d in docs if n == "event" and d["descriptor"] == desc]


def _exit_status(docs: list[tuple[str, dict[str, Any]]]) -> str:
    (stop,) = [d for n, d in docs if n == "stop"]
    return str(stop["exit_status"])


def test_pause_pauses_a_pausable_device_stops_the_others_and_resume_continues(
    engine: tuple[LabRunEngine, list[tuple[str, dict[str, Any]]]],
) -> None:
    re_, docs = engine
    furnace, motor = FakeLabDevice("furnace"), Motor()
    with pytest.raises(RunEngineInterrupted):
        re_(_plan(furnace, motor))
    assert re_.state == "paused"
    assert furnace.calls == ["set", "pause"]  # held, not stopped (standby)
    assert motor.calls == ["set", "stop"]
    re_.resume()
    assert re_.state == "idle"
    assert furnace.calls[2] == "resume"
    assert "safe_state" not in furnace.calls  # a run that ends normally is not forced safe
    assert _interruptions(docs) == ["pause", "resume"]
    assert _exit_status(docs) == "success"


@pytest.mark.parametrize(("end", "status"), [("abort", "abort"), ("stop", "success")])
def test_stop_and_abort_from_a_pause_make_every_device_safe(
    engine: tuple[LabRunEngine, list[tuple[str, dict[str, Any]]]], end: str, status: str
) -> None:
    re_, docs = engine
    furnace, motor = FakeLabDevice("furnace"), Motor()
    with pytest.raises(RunEngineInterrupted):
        re_(_plan(furnace, motor))
    getattr(re_, end)()
    assert re_.state == "idle"
    assert furnace.calls[-2:] == ["stop", "safe_state"] and furnace.safe
    assert _exit_status(docs) == status


def test_a_pause_without_checkpoint_aborts_says_so_and_leaves_devices_safe(
    engine: tuple[LabRunEngine, list[tuple[str, dict[str, Any]]]],
) -> None:
    re_, docs = engine
    furnace, motor = FakeLabDevice("furnace"), Motor()
    with pytest.raises(RunAborted, match=r"aborted .* not paused"):
        re_(_plan(furnace, motor, resumable=False))
    assert re_.state == "idle"  # and it says so: not "entering a paused state"
    assert furnace.safe and "pause" not in furnace.calls
    assert _exit_status(docs) == "abort"


def test_a_checkpoint_after_a_clear_checkpoint_is_one_again(
    engine: tuple[LabRunEngine, list[tuple[str, dict[str, Any]]]],
) -> None:
    """bluesky 1.15.1 alone keeps a plan unresumable for good after a clear_checkpoint: a
    campaign's first print would leave no later pause or suspension anywhere to land."""
    re_, docs = engine
    furnace, motor = FakeLabDevice("furnace"), Motor()
    resumable: list[bool] = []

    def plan() -> MsgGenerator[None]:
        yield from bps.clear_checkpoint()  # an earlier step's set-up (a print's)
        resumable.append(re_.resumable)
        yield from _plan(furnace, motor)  # later: a step with a checkpoint, then a pause

    with pytest.raises(RunEngineInterrupted):
        re_(plan())
    assert re_.state == "paused"  # paused, not aborted
    re_.resume()
    assert resumable == [False]
    assert _interruptions(docs) == ["pause", "resume"]
    assert _exit_status(docs) == "success"


def test_a_device_that_does_not_reach_its_safe_state_does_not_stop_the_others(
    engine: tuple[LabRunEngine, list[tuple[str, dict[str, Any]]]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    re_, _ = engine
    bad, good = FakeLabDevice("bad", "error"), FakeLabDevice("good")

    def plan() -> MsgGenerator[None]:
        yield from bps.open_run()
        yield from bps.mv(bad, 1.0, good, 1.0)
        yield from bps.checkpoint()
        yield Msg("pause", None, defer=False)
        yield from bps.close_run()

    with pytest.raises(RunEngineInterrupted):
        re_(plan())
    re_.abort()
    assert good.safe and not bad.safe
    assert "bad did not reach its safe state after the run ended: bad: no reply to STOP" in (
        caplog.text
    )


class Program:
    """A pausable movable whose action fails when it is stopped (a furnace program that a
    standby aborts)."""

    name = "program"
    parent = None

    def __init__(self) -> None:
        self.stopped = asyncio.Event()

    def set(self, value: float) -> AsyncStatus[None]:
        async def run() -> None:
            await self.stopped.wait()
            raise RuntimeError("program aborted: the furnace was sent to standby")

        self.status = AsyncStatus(run())
        return self.status

    def stop(self, success: bool = True) -> None:
        self.stopped.set()

    def pause(self) -> None:  # it holds (so a pause does not stop it)
        pass

    def resume(self) -> None:
        pass

    async def ended(self) -> None:
        await asyncio.wait([self.status.task])  # the status has failed ...
        for _ in range(10):  # ... and its done-callbacks (the RunEngine's) have run
            await asyncio.sleep(0)


def test_an_abort_runs_the_whole_clean_up_although_it_fails_the_actions_it_ends(
    engine: tuple[LabRunEngine, list[tuple[str, dict[str, Any]]]],
) -> None:
    re_, docs = engine
    program, after = Program(), FakeLabDevice("carrier")

    def body() -> MsgGenerator[None]:
        yield from bps.open_run()
        yield from bps.abs_set(program, 1.0, group="hold")
        yield from bps.checkpoint()
        yield Msg("pause", None, defer=False)
        yield from bps.wait(group="hold")
        yield from bps.close_run()

    def cleanup() -> MsgGenerator[None]:
        yield from bps.stop(program)  # fails the program's status
        yield from bps.wait_for([program.ended])  # its status has failed by now
        yield from bps.mv(after, 0.0)  # e.g. the coupon out of the furnace

    with pytest.raises(RunEngineInterrupted):
        re_(bpp.finalize_wrapper(body(), cleanup()))
    re_.abort()
    assert after.calls[:1] == ["set"]
    assert _exit_status(docs) == "abort"
