"""OperatorTransfer: the person at the prompt moves the sample; the same interface, refusals
and idempotence as the robot, with a scripted ``ask``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from bluesky import RunEngine
from bluesky import plan_stubs as bps

from couponlab.errors import InputError
from couponlab.interfaces.transfer import (
    OperatorTransfer,
    SampleTransfer,
    Transfer,
    TransferAbortedError,
)
from couponlab.testing.robot import run_conformance

STATIONS = ["build_plate", "furnace1.slot1", "stage1", "rack.1", "rack.2"]


class Script:
    """Answers the prompts in order; records what was asked."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.asked: list[str] = []

    async def __call__(self, prompt: str) -> str:
        self.asked.append(prompt)
        return self.answers.pop(0)


async def test_done_confirms_and_anything_else_asks_again() -> None:
    ask = Script("", "Done", "ok", "  done  ")
    op = OperatorTransfer({**dict.fromkeys(STATIONS), "rack.1": "C1"}, ask=ask)
    assert isinstance(op, SampleTransfer)
    await op.set(Transfer("C1", "rack.1", "furnace1.slot1"))
    assert (
        ask.asked
        == ["move coupon C1 from rack.1 to furnace1.slot1, then type 'done' (or 'abort'): "] * 4
    )
    assert (await op.stations())["furnace1.slot1"] == "C1"
    assert (await op.stations())["rack.1"] is None
    assert await op.holding() is None


async def test_abort_raises_and_the_record_stays() -> None:
    op = OperatorTransfer(STATIONS, ask=Script("later", "abort"))
    await op.record("rack.2", "C2")
    with pytest.raises(TransferAbortedError, match="aborted by the operator"):
        await op.set(Transfer("C2", "rack.2", "stage1"))
    assert (await op.stations())["rack.2"] == "C2"


async def test_bad_transfers_are_refused_before_asking() -> None:
    ask = Script()
    op = OperatorTransfer({**dict.fromkeys(STATIONS), "rack.1": "C1", "stage1": "C2"}, ask=ask)
    for bad, match in [
        (Transfer("C1", "rack.1", "rack.9"), "unknown station 'rack.9'"),
        (Transfer("C1", "rack.1", "rack.1"), "source and destination are both"),
        (Transfer("C1", "rack.1", "stage1"), "destination stage1 is occupied by C2"),
        (Transfer("C1", "rack.2", "build_plate"), "source rack.2 holds nothing, not C1"),
        (Transfer("C 1", "rack.1", "build_plate"), "sample id"),
    ]:
        with pytest.raises(InputError, match=match):
            op.set(bad)
    with pytest.raises(InputError, match="unknown station"):
        await op.record("rack.9", "C3")
    with pytest.raises(InputError, match="station names"):
        OperatorTransfer(["rack 1"])
    assert ask.asked == []


async def test_a_sample_already_at_its_destination_is_not_asked_for() -> None:
    ask = Script()
    op = OperatorTransfer({**dict.fromkeys(STATIONS), "stage1": "C1"}, ask=ask)
    await op.set(Transfer("C1", "rack.1", "stage1"))
    assert ask.asked == []


async def test_a_blocking_ask_runs_beside_the_loop() -> None:
    asked: list[str] = []

    def blocking(prompt: str) -> str:  # like input(): it blocks its thread, not the loop
        asked.append(prompt)
        return "done"

    op = OperatorTransfer({**dict.fromkeys(STATIONS), "rack.1": "C1"}, ask=blocking)
    await op.set(Transfer("C1", "rack.1", "stage1"))
    assert len(asked) == 1 and (await op.stations())["stage1"] == "C1"


async def test_the_operator_passes_the_transfer_conformance_suite() -> None:
    op = OperatorTransfer(STATIONS, ask=Script(*["done"] * 10), name="op")
    assert await run_conformance(op)


@pytest.fixture
def re_() -> Iterator[RunEngine]:
    engine = RunEngine({})
    yield engine
    if not engine.state.is_idle:
        engine.abort()


def test_a_plan_moves_a_sample_with_mv(re_: RunEngine) -> None:
    op = OperatorTransfer({**dict.fromkeys(STATIONS), "rack.1": "C1"}, ask=Script("done"))
    re_(bps.mv(op, Transfer("C1", "rack.1", "build_plate")))
    assert op._stations["build_plate"] == "C1"
