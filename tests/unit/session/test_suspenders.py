"""Suspenders: a recoverable condition suspends the run (pausable devices paused, not
stopped), and the run resumes from its last checkpoint and completes once it clears; a lost
link is probed until it is back. Conditions are raised and cleared by the devices
themselves, in the plan's course (no wall-clock timing in any assertion)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import bluesky.plan_stubs as bps
import numpy as np
import pytest
from bluesky.utils import MsgGenerator
from ophyd_async.core import Array1D, AsyncStatus, soft_signal_r_and_setter, soft_signal_rw

from couponlab.errors import ConnectionLostError, InputError
from couponlab.run_engine import LabRunEngine
from couponlab.suspenders import (
    LinkSuspender,
    SuspenderSettings,
    feeder_gas_low,
    furnace_over_temperature,
    links_of,
)
from couponlab.testing.fake_device import FakeLabDevice
from couponlab.transports import LinkState

Docs = list[tuple[str, dict[str, Any]]]


@pytest.fixture
def engine() -> Iterator[tuple[LabRunEngine, Docs]]:
    re_ = LabRunEngine({}, call_returns_result=True)
    docs: Docs = []
    re_.subscribe(lambda name, doc: docs.append((name, doc)))
    yield re_, docs
    if not re_.state.is_idle:
        re_.abort()
    for suspender in re_.suspenders:  # unsubscribed on the loop, as installed
        re_(bps.remove_suspender(suspender))


def _interruptions(docs: Docs) -> list[str]:
    (desc,) = [d["uid"] for n, d in docs if n == "descriptor" and d["name"] == "interruptions"]
    return [d["data"]["interruption"] for n, d in docs if n == "event" and d["descriptor"] == desc]


def _exit_status(docs: Docs) -> str:
    (stop,) = [d for n, d in docs if n == "stop"]
    return str(stop["exit_status"])


class HotFurnace(FakeLabDevice):
    """A furnace whose zones overshoot the first time it is set to 1; holding its program
    (``pause``) lets them cool below the alarm again."""

    def __init__(self) -> None:
        super().__init__("furnace1")
        self.profile, self._set_profile = soft_signal_r_and_setter(
            Array1D[np.float64], np.array([900.0, 950.0]), name="furnace1-profile"
        )

    def set(self, value: float) -> AsyncStatus[None]:
        if value == 1 and "pause" not in self.calls:
            self._set_profile(np.array([900.0, 1210.0]))  # over the alarm (1225 - 25)
        return super().set(value)

    def pause(self) -> None:
        super().pause()
        self._set_profile(np.array([900.0, np.nan]))  # cooled (a broken TC ignored)


def test_an_over_temperature_alarm_suspends_the_run_which_resumes_when_it_clears(
    engine: tuple[LabRunEngine, Docs],
) -> None:
    re_, docs = engine
    furnace = HotFurnace()
    suspender = furnace_over_temperature(furnace, "furnace1", 1225.0, SuspenderSettings())
    re_(bps.install_suspender(suspender))  # on the loop: signals subscribe there

    def plan() -> MsgGenerator[None]:
        yield from bps.open_run()
        yield from bps.checkpoint()
        yield from bps.mv(furnace, 1)  # overshoots: suspended here, rewound, replayed
        yield from bps.trigger_and_read([furnace.profile])
        yield from bps.close_run()

    re_(plan())
    assert _exit_status(docs) == "success"
    (why,) = _interruptions(docs)  # the run's record says why it was suspended
    assert why.startswith("furnace1: over-temperature alarm: hottest zone at or above 1200 degC")
    assert furnace.calls[:4] == ["set", "pause", "resume", "set"]  # held, not stopped
    assert "safe_state" not in furnace.calls
    assert not suspender.tripped and suspender.justification == ""
    assert "over-temperature alarm: hottest zone at or above 1200 degC" in suspender.condition


def test_the_alarm_trips_at_its_level_and_clears_below_its_hysteresis() -> None:
    furnace = HotFurnace()
    s = furnace_over_temperature(furnace, "furnace1", 1225.0, SuspenderSettings(hysteresis_c=10))
    assert s._should_suspend(np.array([1199.9, np.nan])) is False
    assert s._should_suspend(np.array([20.0, 1200.0])) is True
    assert s._should_resume(np.array([1195.0])) is False  # inside the hysteresis band
    assert s._should_resume(np.array([1189.9])) is True
    assert s._should_suspend(np.array([np.nan, np.nan])) is False  # no reading: no alarm


def test_shielding_gas_low_is_the_hoppers_own_alarm() -> None:
    hopper = FakeLabDevice("hopper")
    hopper.alarm = soft_signal_rw(str, "none")  # type: ignore[attr-defined]
    s = feeder_gas_low(hopper, "feeder1", 2, SuspenderSettings())
    assert s._should_suspend("gas_loss") and s._should_suspend("clog gas_loss")
    assert not s._should_suspend("none") and not s._should_suspend("clog")
    assert s._should_resume("none") and not s._should_resume("gas_loss")


class Link:
    """A transport whose link comes back at the ``answers``-th attempt to re-open it."""

    def __init__(self, answers: int) -> None:
        self.link_state = LinkState("stage1")
        self.attempts = 0
        self.answers = answers

    async def reconnect(self) -> None:
        self.attempts += 1
        if self.attempts < self.answers:
            raise ConnectionLostError("stage1", "cannot connect")
        self.link_state.set(True)


class Cable(FakeLabDevice):
    """A device whose cable is pulled when it is first set to 1."""

    def __init__(self, link: Link) -> None:
        super().__init__("stage1")
        self.link = link

    def set(self, value: float) -> AsyncStatus[None]:
        if value == 1 and self.link.attempts == 0:
            self.link.link_state.set(False, "cannot connect to 127.0.0.1:1: refused")
        return super().set(value)


def test_a_lost_link_suspends_the_run_is_probed_until_back_and_the_run_completes(
    engine: tuple[LabRunEngine, Docs],
) -> None:
    re_, docs = engine
    link = Link(answers=3)
    device = Cable(link)
    suspender = LinkSuspender("stage1", link, probe_s=0.05)
    re_(bps.install_suspender(suspender))  # on the loop: signals subscribe there
    reasons: list[str] = []
    link.link_state.subscribe(lambda value, **_: reasons.append(suspender.justification))

    def plan() -> MsgGenerator[None]:
        yield from bps.open_run()
        yield from bps.checkpoint()
        yield from bps.mv(device, 1)
        yield from bps.close_run()

    re_(plan())
    assert link.attempts == 3 and link.link_state.up and link.link_state.downs == 1
    assert _interruptions(docs) == ["stage1: link lost (cannot connect to 127.0.0.1:1: refused)"]
    assert _exit_status(docs) == "success"
    assert "stage1: link lost (cannot connect to 127.0.0.1:1: refused)" in reasons


def test_links_of_finds_line_and_opcua_transports() -> None:
    class Client:
        transport = Link(1)

    class LineDevice:
        client = Client()

    class OpcUaDevice:
        connection = Link(1)

    assert links_of(LineDevice()) == [Client.transport]
    assert links_of(OpcUaDevice()) == [OpcUaDevice.connection]
    assert links_of(FakeLabDevice("x")) == []


@pytest.mark.parametrize(
    "bad", [{"furnace_alarm_margin_c": -1}, {"link_probe_s": 0}, {"hysteresis_c": "5"}]
)
def test_settings_out_of_range_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(InputError, match=rf"suspenders: {next(iter(bad))} = .* is outside"):
        SuspenderSettings(**bad)
