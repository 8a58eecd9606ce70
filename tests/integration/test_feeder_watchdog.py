"""The powder feeder's communication watchdog against its twin (twin on its own thread,
driver on the test's loop): a client that goes away while a hopper feeds leaves every hopper
at 0 g/min with the reason readable; a polling client, or a watchdog that is off, changes
nothing (docs/decisions/0008-communication-watchdogs.md)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from couponlab.drivers.deposition import AsciiPowderFeeder
from couponlab.errors import InputError
from couponlab.testing.feeder import deposition_lab
from couponlab.twins import BackgroundTwins

TIMEOUT_S = 1.0
"""Armed watchdog of the trip tests, s of wall time. The keep-alive feeds it every quarter,
so a stall of this process (twins and client share it) over 0.75 s trips it: 0.3 s (0.23 s
of stall) was within reach of a loaded machine."""
MARGIN_S = 10.0
"""Generous wall-clock margin for a loaded machine (a deadline, never a measured time)."""


class Rig:
    def __init__(self, twins: BackgroundTwins) -> None:
        self.twins = twins
        self.feeders: list[AsciiPowderFeeder] = []

    def feeder(self, watchdog_s: float | None) -> AsciiPowderFeeder:
        entry = self.twins.lab.device("feeder1")
        settings = dict(entry.settings)
        if watchdog_s is not None:
            settings["watchdog_s"] = watchdog_s
        dev = AsciiPowderFeeder.from_lab_entry(entry.model_copy(update={"settings": settings}))
        self.feeders.append(dev)
        return dev

    async def setpoints(self) -> list[float]:
        model: Any = self.twins.world.instruments["feeder1"]
        return await self.twins.acall(lambda: [h.setpoint for h in model.hoppers])

    async def wait_idle(self, deadline_s: float) -> list[float]:
        end = time.monotonic() + deadline_s
        sp = await self.setpoints()
        while any(sp) and time.monotonic() < end:
            await asyncio.sleep(0.02)
            sp = await self.setpoints()
        return sp


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    twins = BackgroundTwins(deposition_lab(1, speedup=1.0, seed=4))
    rig = Rig(twins)
    try:
        yield rig
    finally:
        for dev in rig.feeders:
            await dev.close()
        twins.stop()


async def test_client_gone_while_feeding_stops_every_hopper(rig: Rig) -> None:
    feeder = rig.feeder(TIMEOUT_S)
    await feeder.connect()
    await feeder.set_gas(1, 4.0)
    await feeder.set_rate(1, 10.0)
    await feeder.set_rate(2, 5.0)
    assert await rig.setpoints() == [10.0, 5.0, 0.0, 0.0]
    await feeder.close()  # gone without STOP
    assert await rig.wait_idle(TIMEOUT_S + MARGIN_S) == [0.0, 0.0, 0.0, 0.0]
    reader = rig.feeder(None)
    await reader.connect()
    timeout, expired, reason = await reader.watchdog_status()
    assert (timeout, expired) == (pytest.approx(TIMEOUT_S), True)
    assert reason.startswith("watchdog: no request from the client")
    await reader.reset_watchdog()
    assert (await reader.watchdog_status())[1:] == (False, "")


async def test_a_polling_client_keeps_feeding(rig: Rig) -> None:
    armed = 1.0  # keep-alive every 0.25 s: a loaded machine stays far inside the timeout
    feeder = rig.feeder(armed)
    await feeder.connect()
    await feeder.set_gas(1, 4.0)
    await feeder.set_rate(1, 10.0)
    await asyncio.sleep(3 * armed)
    assert feeder.keepalive.feeds >= 2
    assert await rig.setpoints() == [10.0, 0.0, 0.0, 0.0]
    assert (await feeder.watchdog_status())[1] is False
    await feeder.stop()


async def test_watchdog_off_changes_nothing(rig: Rig) -> None:
    feeder = rig.feeder(None)
    await feeder.connect()
    await feeder.set_gas(1, 4.0)
    await feeder.set_rate(1, 10.0)
    await feeder.close()
    await asyncio.sleep(2 * TIMEOUT_S)  # twice what an armed watchdog would allow
    assert await rig.setpoints() == [10.0, 0.0, 0.0, 0.0]


async def test_bad_timeouts_are_refused(rig: Rig) -> None:
    with pytest.raises(InputError, match="watchdog"):
        rig.feeder(-1.0)
    with pytest.raises(InputError, match="watchdog"):
        rig.feeder(7200.0)
