"""CommWatchdog's rules on a hand-driven clock (no wall time, no timing assertions)."""

from __future__ import annotations

import pytest

from couponlab.simulators.watchdog import MAX_TIMEOUT_S, CommWatchdog


class Rig:
    def __init__(self, timeout_s: float = 0.0) -> None:
        self.now = 100.0
        self.active = True
        self.trips: list[str] = []
        self.dog = CommWatchdog(
            lambda: self.active, self._trip, timeout_s=timeout_s, clock=lambda: self.now
        )

    async def _trip(self, reason: str) -> None:
        self.trips.append(reason)


async def test_trips_once_when_silent_for_the_timeout_while_active() -> None:
    rig = Rig(2.0)
    rig.now += 1.99
    assert not await rig.dog.check()
    rig.now += 0.02
    assert await rig.dog.check()
    assert rig.trips == ["watchdog: no request from the client for 2.01 s (timeout 2 s)"]
    assert not await rig.dog.check()  # the count restarted: one trip per expiry
    assert len(rig.trips) == 1


async def test_feeding_keeps_it_quiet() -> None:
    rig = Rig(2.0)
    for _ in range(10):
        rig.now += 1.5
        rig.dog.feed()
        assert not await rig.dog.check()
    assert rig.trips == []


async def test_off_or_idle_never_trips() -> None:
    off = Rig(0.0)
    off.now += 1e6
    assert not off.dog.expired()
    assert not await off.dog.check()
    idle = Rig(1.0)
    idle.active = False
    idle.now += 5.0
    assert idle.dog.expired()
    assert not await idle.dog.check()
    assert off.trips == idle.trips == []


async def test_arming_feeds_and_bad_timeouts_are_refused() -> None:
    rig = Rig(0.0)
    rig.now += 50.0
    rig.dog.set_timeout(1.0)  # armed now: the 50 silent seconds before do not count
    assert not await rig.dog.check()
    for bad in (-0.1, float("nan"), float("inf"), MAX_TIMEOUT_S + 1):
        with pytest.raises(ValueError, match="watchdog timeout"):
            rig.dog.set_timeout(bad)
    assert rig.dog.timeout_s == 1.0
    assert rig.dog.poll_period_s() == pytest.approx(0.1)
    rig.dog.set_timeout(0.05)
    assert rig.dog.poll_period_s() == pytest.approx(0.01)
