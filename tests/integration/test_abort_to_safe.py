"""A fault the suspenders do not pause for ends the run, and the Session puts EVERY device
of the lab in its safe state (not only those the run used), reads each one's state back and
says so with the cause: the error raised is the device's own, its first line (the
``couponlab`` command's) names the device, what happened and where each device was left.
A device that does not reach its safe state is named with why (a SafeStateError)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import bluesky.plan_stubs as bps
import pytest
from bluesky.run_engine import RunEngineResult
from bluesky.utils import MsgGenerator
from twin_entries import FEEDER_TWIN, STAGE_TWIN, twin_lab

from couponlab.errors import InstrumentRestartedError, SafeStateError
from couponlab.failure import cleanup_failures, lab_state, one_line
from couponlab.labfile import LabFile
from couponlab.session import Session


def _lab() -> LabFile:
    return LabFile.model_validate(twin_lab("abort", 5, STAGE_TWIN, FEEDER_TWIN))


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    with Session(_lab(), out_dir=tmp_path_factory.mktemp("abort"), store=False) as s:
        yield s


@pytest.fixture(autouse=True)
def _no_faults_left(session: Session) -> Iterator[None]:
    yield
    assert session.twins is not None
    session.twins.control.clear_faults()


def _feeding_then_stage(session: Session, fault: tuple[str, str]) -> RunEngineResult:
    """Feed from hopper 1 (the run does not touch the feeder again), then read the stage;
    ``fault`` is injected (by the test, over the control channel) after the first reading."""
    feeder, stage = session.devices["feeder1"], session.devices["stage1"]
    assert session.twins is not None
    control = session.twins.control

    def inject(name: str, doc: dict[str, Any]) -> None:
        if name == "event" and doc["seq_num"] == 1:
            control.fault(*fault)

    def plan() -> MsgGenerator[None]:
        yield from bps.open_run()
        yield from bps.mv(feeder.hoppers[1].gas_flow, 2.0)
        yield from bps.mv(feeder.hoppers[1], 5.0)
        for _ in range(3):
            yield from bps.checkpoint()
            yield from bps.trigger_and_read([stage.velocity])
        yield from bps.close_run()

    token = session.RE.subscribe(inject)
    try:
        return session.run(plan())
    finally:
        session.RE.unsubscribe(token)


def test_a_restarted_instrument_aborts_the_run_with_every_device_safe(session: Session) -> None:
    feeder = session.devices["feeder1"]
    with pytest.raises(InstrumentRestartedError, match="stage1: the instrument restarted") as e:
        _feeding_then_stage(session, ("stage1", "power_loss"))
    state = lab_state(e.value)
    assert state is not None and state.startswith("safe: ")
    assert "feeder1 idle" in state and "stage1 idle" in state  # read back from each
    line = one_line(e.value)
    assert line.startswith("stage1: the instrument restarted") and "; lab: safe: " in line
    assert session.call(feeder.hoppers[1].setpoint.get_value) == 0.0  # not assumed: asked
    assert cleanup_failures(e.value) == []


def test_a_device_that_cannot_reach_its_safe_state_is_named_with_why(session: Session) -> None:
    assert session.twins is not None
    with pytest.raises(InstrumentRestartedError) as e:
        _feeding_then_stage(session, ("stage1", "power_loss"))
    # the fault came with a stalled feeder: it did not answer its safe-state command
    session.twins.control.fault("feeder1", "stall")
    summary = session.abort_to_safe(e.value, timeout=3.0)
    assert summary.startswith("NOT SAFE (feeder1: ")
    assert "read back: stage1 idle, feeder1 unknown (feeder1: " in summary
    failures = cleanup_failures(e.value)
    assert failures and failures[0].startswith("feeder1: ")
    state = lab_state(e.value)
    assert state == summary
    session.twins.control.clear_faults()
    session.abort_to_safe()  # the feeder answers again: safe
    assert session.lab_state.startswith("safe: ")


def test_safe_state_error_lists_the_devices_with_why() -> None:
    error = SafeStateError({"feeder1": TimeoutError("no reply")}, ["stage1"])
    assert error.lines() == ["feeder1: no reply (TimeoutError)"]
