"""The furnace's communication watchdog against the twin (twin on its own thread, driver on
the test's loop): a client that goes silent while the furnace holds a setpoint leaves it in
standby with the reason latched; a client that keeps polling, or a watchdog that is off,
changes nothing (docs/decisions/0008-communication-watchdogs.md)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator

import numpy as np
import pytest
from asyncua import ua

from couponlab.drivers.furnace import OpcUaGradientFurnace
from couponlab.errors import InputError
from couponlab.simulators.furnace import FurnaceModel
from couponlab.testing.furnace import furnace_lab
from couponlab.twins import BackgroundTwins

NAME = "furnace1"
TIMEOUT_S = 1.0
"""Armed watchdog of the trip tests, s of wall time. The keep-alive feeds it every quarter,
so a stall of this process (twins and client share it) over 0.75 s trips it: 0.3 s (0.23 s
of stall) was within reach of a loaded machine."""
MARGIN_S = 10.0
"""Generous wall-clock margin for a loaded machine (a deadline, never a measured time)."""


@pytest.fixture(scope="module")
def twins() -> Iterator[BackgroundTwins]:
    with BackgroundTwins(furnace_lab(speedup=2000.0, name=NAME)) as running:
        yield running


def _model(twins: BackgroundTwins) -> FurnaceModel:
    model = twins.world.instruments[NAME]
    assert isinstance(model, FurnaceModel)
    return model


def _device(twins: BackgroundTwins, watchdog_s: float | None) -> OpcUaGradientFurnace:
    entry = twins.lab.device(NAME)
    settings = dict(entry.settings)
    if watchdog_s is not None:
        settings["watchdog_s"] = watchdog_s
    return OpcUaGradientFurnace.from_lab_entry(entry.model_copy(update={"settings": settings}))


@pytest.fixture(autouse=True)
async def disarmed(twins: BackgroundTwins) -> AsyncIterator[None]:
    """Every test starts and ends with the twin's watchdog off, unlatched, in standby."""

    async def clean() -> None:
        device = _device(twins, None)
        await device.connect(timeout=10.0)
        try:
            await device.connection.write(
                "Furnace.Watchdog.Timeout", ua.Variant(0.0, ua.VariantType.Double)
            )
            await device.reset_watchdog()
            await device.stop()
        finally:
            await device.disconnect()

    await clean()
    yield
    await clean()


async def _heat(device: OpcUaGradientFurnace, twins: BackgroundTwins) -> None:
    """Leave standby: every zone to 300 degC (manual mode)."""
    await device.setpoint_profile.set(np.full(device.num_zones, 300.0))
    assert await twins.acall(lambda: _model(twins).state) == "manual"


async def _state_after(twins: BackgroundTwins, wanted: str, deadline_s: float) -> str:
    """Poll the twin's ground truth until its state is ``wanted`` or the deadline passes."""
    end = time.monotonic() + deadline_s
    state = ""
    while time.monotonic() < end:
        state = await twins.acall(lambda: _model(twins).state)
        if state == wanted:
            break
        await asyncio.sleep(0.02)
    return state


async def test_closed_client_leaves_the_furnace_in_standby(twins: BackgroundTwins) -> None:
    device = _device(twins, TIMEOUT_S)
    await device.connect(timeout=10.0)
    try:
        assert (await device.watchdog_status())[:2] == (pytest.approx(TIMEOUT_S), False)
        await _heat(device, twins)
    finally:
        await device.disconnect()  # the client goes away without Standby()
    assert await _state_after(twins, "standby", TIMEOUT_S + MARGIN_S) == "standby"
    model = _model(twins)
    assert await twins.acall(lambda: float(np.max(model.target_c))) == pytest.approx(
        model.config.standby_temperature_c
    )
    # the indication is latched and readable by the next client (which does not arm it)
    reader = _device(twins, None)
    await reader.connect(timeout=10.0)
    try:
        timeout, expired, reason = await reader.watchdog_status()
        assert expired is True
        assert reason.startswith("watchdog: no request from the client")
        assert timeout == pytest.approx(TIMEOUT_S)
        await reader.reset_watchdog()
        assert (await reader.watchdog_status())[1:] == (False, "")
    finally:
        await reader.disconnect()


_KILLED_CLIENT = """
import asyncio, sys
import numpy as np
from couponlab.drivers.furnace import OpcUaGradientFurnace

async def main() -> None:
    dev = OpcUaGradientFurnace(sys.argv[1], "furnace1", zones=8, watchdog=float(sys.argv[2]))
    await dev.connect(timeout=10.0)
    await dev.setpoint_profile.set(np.full(8, 300.0))
    print("heating", flush=True)
    await asyncio.sleep(3600)  # the keep-alive feeds the watchdog until the process dies

asyncio.run(main())
"""


async def test_killed_client_process_leaves_the_furnace_in_standby(
    twins: BackgroundTwins,
) -> None:
    address = twins.lab.device(NAME).address
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-W",
        "ignore",
        "-c",
        _KILLED_CLIENT,
        address,
        str(TIMEOUT_S),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert line.decode().strip() == "heating"
        assert await twins.acall(lambda: _model(twins).state) == "manual"
        os.kill(proc.pid, signal.SIGKILL)  # no Standby(), no disconnect: the process is gone
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
    assert await _state_after(twins, "standby", TIMEOUT_S + MARGIN_S) == "standby"
    assert await twins.acall(lambda: _model(twins).watchdog_expired) is True


async def test_client_that_stops_feeding_leaves_the_furnace_in_standby(
    twins: BackgroundTwins,
) -> None:
    device = _device(twins, TIMEOUT_S)
    await device.connect(timeout=10.0)
    try:
        await _heat(device, twins)
        await device.keepalive.stop()  # connected, but silent (a hung client)
        assert await _state_after(twins, "standby", TIMEOUT_S + MARGIN_S) == "standby"
        assert (await device.watchdog_status())[1] is True
    finally:
        await device.disconnect()


async def test_a_program_is_aborted_too(twins: BackgroundTwins) -> None:
    device = _device(twins, TIMEOUT_S)
    await device.connect(timeout=10.0)
    try:
        n = device.num_zones
        await device.program.load_cmd.execute(np.full(n, 400.0), np.array([10.0]), np.array([1e6]))
        await device.program.start_cmd.trigger()
        assert await twins.acall(lambda: _model(twins).state) == "program"
    finally:
        await device.disconnect()
    assert await _state_after(twins, "standby", TIMEOUT_S + MARGIN_S) == "standby"
    assert await twins.acall(lambda: _model(twins).program_state.value) == "aborted"


async def test_a_polling_client_keeps_the_furnace_running(twins: BackgroundTwins) -> None:
    armed = 1.0  # keep-alive every 0.25 s: a loaded machine stays far inside the timeout
    device = _device(twins, armed)
    await device.connect(timeout=10.0)
    try:
        await _heat(device, twins)
        await asyncio.sleep(3 * armed)  # the driver does nothing itself; its keep-alive feeds
        assert device.keepalive.feeds >= 2
        assert await twins.acall(lambda: _model(twins).state) == "manual"
        assert (await device.watchdog_status())[1:] == (False, "")
    finally:
        await device.disconnect()


async def test_watchdog_off_changes_nothing(twins: BackgroundTwins) -> None:
    device = _device(twins, None)
    assert device.watchdog_s == 0.0
    await device.connect(timeout=10.0)
    try:
        assert (await device.watchdog_status())[0] == 0.0
        await _heat(device, twins)
    finally:
        await device.disconnect()
    assert not device.keepalive.running
    await asyncio.sleep(2 * TIMEOUT_S)  # twice what an armed watchdog would allow
    assert await twins.acall(lambda: _model(twins).state) == "manual"


async def test_bad_timeouts_are_refused(twins: BackgroundTwins) -> None:
    with pytest.raises(InputError, match="watchdog"):
        _device(twins, -1.0)
    with pytest.raises(InputError, match="watchdog"):
        _device(twins, 7200.0)
    device = _device(twins, None)
    await device.connect(timeout=10.0)
    try:
        with pytest.raises(Exception, match="BadOutOfRange"):
            await device.connection.write(
                "Furnace.Watchdog.Timeout", ua.Variant(-1.0, ua.VariantType.Double)
            )
        assert (await device.watchdog_status())[0] == 0.0
    finally:
        await device.disconnect()


async def test_keepalive_rearms_a_furnace_that_lost_the_timeout(twins: BackgroundTwins) -> None:
    device = _device(twins, 1.0)
    other = _device(twins, None)
    await device.connect(timeout=10.0)
    await other.connect(timeout=10.0)
    try:
        # as after a restart of the instrument: its watchdog is off again
        await other.connection.write(
            "Furnace.Watchdog.Timeout", ua.Variant(0.0, ua.VariantType.Double)
        )
        end = time.monotonic() + MARGIN_S
        timeout = 0.0
        while timeout != 1.0 and time.monotonic() < end:
            await asyncio.sleep(0.05)
            timeout = (await other.watchdog_status())[0]
        assert timeout == 1.0
    finally:
        await other.disconnect()
        await device.disconnect()
