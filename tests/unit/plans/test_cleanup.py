"""finalize_keeping_cause: the plan's own error stays the error raised when the clean-up
fails too; the clean-up's failure is attached (and reported as a clean-up line)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest
from bluesky.utils import Msg

from couponlab.errors import InstrumentTimeoutError, InterlockTrippedError
from couponlab.failure import cleanup_failures, one_line
from couponlab.plans.cleanup import finalize_keeping_cause


def _plan() -> Generator[Msg, Any, None]:
    yield Msg("null")
    yield Msg("null")


def _cleanup() -> Generator[Msg, Any, None]:
    yield Msg("stop", "furnace1")


def test_a_failing_clean_up_does_not_replace_the_plans_error() -> None:
    fault = InterlockTrippedError("furnace1", "interlock tripped: Zone3 PV 1230 degC > limit")
    plan = finalize_keeping_cause(_plan(), _cleanup())
    assert next(plan) == Msg("null")
    assert plan.throw(fault) == Msg("stop", "furnace1")  # the clean-up runs
    with pytest.raises(InterlockTrippedError) as info:
        plan.throw(InstrumentTimeoutError("furnace1", "no reply to call Furnace.Standby()"))
    assert info.value is fault
    assert one_line(info.value).startswith("furnace1: interlock tripped")
    assert cleanup_failures(info.value) == [
        "furnace1: no reply to call Furnace.Standby() (InstrumentTimeoutError)"
    ]


def test_a_clean_up_that_fails_after_success_is_the_error() -> None:
    plan = finalize_keeping_cause(_plan(), _cleanup())
    assert [next(plan), next(plan), next(plan)] == [
        Msg("null"),
        Msg("null"),
        Msg("stop", "furnace1"),
    ]
    with pytest.raises(InstrumentTimeoutError):
        plan.throw(InstrumentTimeoutError("furnace1", "no reply"))


def test_a_closed_plan_is_not_cleaned_up() -> None:
    plan = finalize_keeping_cause(_plan(), _cleanup())
    next(plan)
    plan.close()  # no clean-up message: GeneratorExit passes through
