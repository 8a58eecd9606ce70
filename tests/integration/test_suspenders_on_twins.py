"""A Session's suspenders on a twin: a link that stays down suspends the run instead of
failing it, a probe re-opens the link once the twin accepts connections again, and the run
resumes from its last checkpoint and completes; a furnace relay that sticks for a while
raises the over-temperature alarm (suspended, the program held) and, freed, lets it clear
(resumed, completed). Faults are injected and cleared by the test through the twins'
control channel when the run's documents say so; how long a fault lasts is virtual time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bluesky.plan_stubs as bps
import pytest
from bluesky.utils import MsgGenerator
from twin_entries import FURNACE_TWIN, STAGE_TWIN, twin_lab

from couponlab.errors import ConditionPersistsError
from couponlab.failure import lab_state
from couponlab.labfile import LabFile
from couponlab.plans.gradient_hold import gradient_oxidation_hold
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


@pytest.mark.timeout(120)
def test_a_furnace_relay_stuck_for_a_while_suspends_the_hold_which_resumes_and_completes(
    tmp_path: Path,
) -> None:
    """Held at 380 degC under an interlock at 425 degC (alarm at 400, clears below 390),
    zone 1's relay sticks for 50 virtual s: the zone overshoots to about 412 degC, the
    alarm suspends the hold (the program is held, not stopped), the relay frees itself,
    the zone cools, and the hold resumes and completes with the interlock never tripped."""
    entries = twin_lab("overtemp", 5, FURNACE_TWIN)
    entries["world"]["speedup"] = 300  # the heat-up is 10 min of furnace time
    lab = LabFile.model_validate(entries)
    with Session(lab, out_dir=tmp_path, store=False) as s:
        assert s.twins is not None
        control, furnace = s.twins.control, s.devices["furnace1"]
        seen: list[str] = []
        primary: list[str] = []
        events: list[int] = []

        def operator(name: str, doc: dict[str, Any]) -> None:  # runs on the RunEngine's loop
            if name == "descriptor" and doc["name"] == "primary":
                primary.append(doc["uid"])
            elif name == "event" and "interruption" in doc["data"]:
                seen.append(doc["data"]["interruption"])
            elif name == "event" and doc["descriptor"] in primary:
                events.append(doc["seq_num"])
                if not seen:  # the hold has started: the relay sticks
                    seen.append("stuck")
                    control.fault("furnace1", "jam", for_s=50, zone=1)

        token = s.RE.subscribe(operator)
        plan = gradient_oxidation_hold(
            furnace, 380, 300, duration=600, interval=200, ramp_rate="100 K/min"
        )
        result = s.run(plan)
        s.RE.unsubscribe(token)
        assert result.exit_status == "success"
        assert seen[0] == "stuck"
        assert len(seen) == 2 and seen[1].startswith(
            "furnace1: over-temperature alarm: hottest zone at or above 400 degC "
            "(interlock 425 degC); resumes below 390 degC"
        )
        assert events == [1, 2, 3, 4]  # every reading of the hold, none replayed twice
        assert control.faults()["active"] == []  # the relay freed itself (virtual time)
        assert s.call(furnace.interlock.tripped.get_value) is False
