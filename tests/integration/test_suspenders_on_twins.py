"""A Session's suspenders on a twin: a link that stays down suspends the run instead of
failing it, a probe re-opens the link once the twin accepts connections again, and the run
resumes from its last checkpoint and completes. The fault is injected and cleared by the
test through the twins' control channel when the run's documents say so (no wall time)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bluesky.plan_stubs as bps
import pytest
from bluesky.utils import MsgGenerator
from twin_entries import STAGE_TWIN, twin_lab

from couponlab.errors import ConditionPersistsError
from couponlab.failure import lab_state
from couponlab.labfile import LabFile
from couponlab.session import Session
from couponlab.suspenders import LinkSuspender, SuspenderSettings


def _lab() -> LabFile:
    return LabFile.model_validate(twin_lab("suspend", 3, STAGE_TWIN))


def _three_readings(stage: Any) -> MsgGenerator[None]:
    """One run of three readings of the stage's velocity, a checkpoint before each."""
    yield from bps.open_run()
    for _ in range(3):
        yield from bps.checkpoint()
        yield from bps.trigger_and_read([stage.velocity])
    yield from bps.close_run()


@pytest.mark.timeout(120)
def test_a_link_lost_then_back_suspends_and_resumes_the_run(tmp_path: Path) -> None:
    with Session(
        _lab(), out_dir=tmp_path, store=False, suspenders=SuspenderSettings(link_probe_s=0.1)
    ) as s:
        assert s.twins is not None and s.suspenders is not None
        control, stage = s.twins.control, s.devices["stage1"]
        (link,) = [x for x in s.suspenders.suspenders if isinstance(x, LinkSuspender)]
        seen: list[str] = []

        def operator(name: str, doc: dict[str, Any]) -> None:  # runs on the RunEngine's loop
            if name == "event" and doc["seq_num"] == 1 and "interruption" not in doc["data"]:
                if not seen:  # after the first reading: the cable is pulled
                    seen.append("dropped")
                    control.fault("stage1", "drop", for_s=1e9)
            elif name == "event" and "interruption" in doc["data"]:
                seen.append(doc["data"]["interruption"])
                control.clear_faults("stage1")  # the cable is back

        token = s.RE.subscribe(operator)

        result = s.run(_three_readings(stage))
        s.RE.unsubscribe(token)
        assert result.exit_status == "success"
        assert seen[0] == "dropped"
        assert seen[1].startswith("stage1: link lost (cannot connect to")
        assert link.link.link_state.up and link.link.link_state.downs >= 1
        assert not link.tripped
        assert control.faults()["active"] == []


@pytest.mark.timeout(120)
def test_a_link_that_never_comes_back_ends_the_run_after_the_bound(tmp_path: Path) -> None:
    settings = SuspenderSettings(link_probe_s=0.1, max_suspension_s=1.0)
    with Session(_lab(), out_dir=tmp_path, store=False, suspenders=settings) as s:
        assert s.twins is not None
        control, stage = s.twins.control, s.devices["stage1"]
        seen: list[str] = []

        def operator(name: str, doc: dict[str, Any]) -> None:  # pulls the cable for good
            if name == "event" and "interruption" in doc["data"]:
                seen.append(doc["data"]["interruption"])
            elif name == "event" and doc["seq_num"] == 1 and not seen:
                seen.append("dropped")
                control.fault("stage1", "drop", for_s=1e9)

        token = s.RE.subscribe(operator)

        with pytest.raises(ConditionPersistsError) as caught:
            s.run(_three_readings(stage))
        s.RE.unsubscribe(token)
        message = str(caught.value)
        assert message.startswith("stage1: link lost (cannot connect to")
        assert "did not clear within 1 s (wall time) of suspension" in message
        assert seen[:2] == ["dropped", seen[1]] and seen[1].startswith("stage1: link lost")
        assert "stage1" in (lab_state(caught.value) or "")  # the abort to the safe state ran
        assert s.RE.state == "idle"
        control.clear_faults("stage1")  # the cable is back before the session closes
