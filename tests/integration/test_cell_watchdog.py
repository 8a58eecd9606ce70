"""The deposition cell's communication watchdog against the twins (twins on their own thread,
drivers on the test's loop): a client that disappears mid-print leaves the print aborted,
the laser and the feeders off, and the reason readable; a client that keeps polling, or a
watchdog that is off, changes nothing (docs/decisions/0008-communication-watchdogs.md)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from couponlab.drivers.deposition import AsciiDepositionCell, AsciiPowderFeeder
from couponlab.errors import InputError
from couponlab.interfaces.feeder import PrintJob
from couponlab.lab import make_device
from couponlab.testing.feeder import deposition_lab
from couponlab.twins import BackgroundTwins

TIMEOUT_S = 1.0
"""Armed watchdog of the trip tests, s of wall time. The keep-alive feeds it every quarter,
so a stall of this process (twins and client share it) over 0.75 s trips it: 0.3 s (0.23 s
of stall) was within reach of a loaded machine."""
MARGIN_S = 10.0
"""Generous wall-clock margin for a loaded machine (a deadline, never a measured time)."""


class Rig:
    def __init__(self, twins: BackgroundTwins, feeder: AsciiPowderFeeder) -> None:
        self.twins, self.feeder = twins, feeder
        self.cells: list[AsciiDepositionCell] = []

    def cell(self, watchdog_s: float | None) -> AsciiDepositionCell:
        entry = self.twins.lab.device("cell1")
        settings = dict(entry.settings)
        if watchdog_s is not None:
            settings["watchdog_s"] = watchdog_s
        cell = AsciiDepositionCell.from_lab_entry(entry.model_copy(update={"settings": settings}))
        self.cells.append(cell)
        return cell

    async def truth(self, fn: Callable[[Any], Any]) -> Any:
        """Run ``fn(cell model)`` on the twins' thread."""
        return await self.twins.acall(fn, self.twins.world.instruments["cell1"])

    async def wait_for(self, fn: Callable[[Any], Any], deadline_s: float) -> Any:
        """Poll ``fn(cell model)`` until it is truthy or the deadline passes; return it."""
        end = time.monotonic() + deadline_s
        value = await self.truth(fn)
        while not value and time.monotonic() < end:
            await asyncio.sleep(0.02)
            value = await self.truth(fn)
        return value


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    # real time: a 2 mm/s print of 100 mm lasts 50 s, far longer than any test here
    twins = BackgroundTwins(deposition_lab(1, speedup=1.0, seed=3))
    feeder: Any = make_device(twins.lab.device("feeder1"))
    rig = Rig(twins, feeder)
    try:
        await feeder.connect()
        yield rig
    finally:
        for cell in rig.cells:
            await cell.close()
        await feeder.close()
        twins.stop()


async def _start_print(rig: Rig, cell: AsciiDepositionCell, cid: str) -> None:
    await rig.feeder.set_gas(1, 4.0)
    await cell.set_shield_gas(15.0)
    await cell.load_print(PrintJob(cid, 40.0, -20.0, 80.0, 2.0, 400.0, [(-20.0, [5.0, 0, 0, 0])]))
    await cell.start_print()
    assert await rig.wait_for(lambda m: m.laser_on, MARGIN_S)  # after the rapid to x_start


async def test_client_gone_mid_print_aborts_it_safely(rig: Rig) -> None:
    cell = rig.cell(TIMEOUT_S)
    await cell.connect()
    assert (await cell.watchdog_status())[:2] == (pytest.approx(TIMEOUT_S), False)
    await _start_print(rig, cell, "WDOG-1")
    await cell.close()  # the client disappears without STOP
    assert await rig.wait_for(lambda m: m.print_state == "ABORTED", TIMEOUT_S + MARGIN_S)
    assert await rig.truth(lambda m: m.laser_on) is False
    assert await rig.truth(lambda m: m.moving) is False
    setpoints = await rig.twins.acall(
        lambda: [h.setpoint for h in rig.twins.world.instruments["feeder1"].hoppers]
    )
    assert setpoints == [0.0, 0.0, 0.0, 0.0]
    meta = await rig.twins.acall(lambda: rig.twins.world.coupon("WDOG-1").metadata)
    assert meta["print_status"].startswith("aborted: watchdog: no request from the client")
    # the next client (which does not arm it) reads why
    reader = rig.cell(None)
    await reader.connect()
    _, expired, reason = await reader.watchdog_status()
    assert expired is True and reason.startswith("watchdog:")
    state, print_reason = await reader.print_status()
    assert (state, print_reason) == ("aborted", reason)
    await reader.reset_watchdog()
    assert (await reader.watchdog_status())[1:] == (False, "")


async def test_silent_client_with_laser_on_turns_it_off(rig: Rig) -> None:
    cell = rig.cell(TIMEOUT_S)
    await cell.connect()
    await cell.set_shield_gas(15.0)
    await cell.set_laser(True, 300.0)
    assert await rig.truth(lambda m: m.laser_on) is True
    await cell.keepalive.stop()  # still connected, but silent (a hung client)
    assert await rig.wait_for(lambda m: not m.laser_on, TIMEOUT_S + MARGIN_S)
    assert (await cell.watchdog_status())[1] is True


async def test_a_polling_client_keeps_printing(rig: Rig) -> None:
    armed = 1.0  # keep-alive every 0.25 s: a loaded machine stays far inside the timeout
    cell = rig.cell(armed)
    await cell.connect()
    await _start_print(rig, cell, "WDOG-2")
    await asyncio.sleep(3 * armed)  # the driver does nothing itself; its keep-alive feeds
    assert cell.keepalive.feeds >= 2
    assert await rig.truth(lambda m: (m.print_state, m.laser_on)) == ("RUNNING", True)
    assert (await cell.watchdog_status())[1:] == (False, "")
    await cell.stop()


async def test_watchdog_off_changes_nothing(rig: Rig) -> None:
    cell = rig.cell(None)
    assert cell.watchdog_s == 0.0
    await cell.connect()
    assert (await cell.watchdog_status())[0] == 0.0
    await cell.set_shield_gas(15.0)
    await cell.set_laser(True, 300.0)
    await cell.close()
    assert not cell.keepalive.running
    await asyncio.sleep(2 * TIMEOUT_S)  # twice what an armed watchdog would allow
    assert await rig.truth(lambda m: m.laser_on) is True


async def test_bad_timeouts_are_refused(rig: Rig) -> None:
    with pytest.raises(InputError, match="watchdog"):
        rig.cell(-1.0)
    with pytest.raises(InputError, match="watchdog"):
        rig.cell(7200.0)
    cell = rig.cell(None)
    await cell.connect()
    reply = await cell.transport.query("SYST:WDOG 7200;:SYST:ERR?")
    assert reply.startswith("-222,")
    assert (await cell.watchdog_status())[0] == 0.0


async def test_keepalive_rearms_a_cell_that_lost_the_timeout(rig: Rig) -> None:
    cell = rig.cell(1.0)
    other = rig.cell(None)
    await cell.connect()
    await other.connect()
    await other.transport.query("SYST:WDOG 0;:SYST:ERR?")  # as after a power cycle
    end = time.monotonic() + MARGIN_S
    timeout = 0.0
    while timeout != 1.0 and time.monotonic() < end:
        await asyncio.sleep(0.05)
        timeout = (await other.watchdog_status())[0]
    assert timeout == 1.0
