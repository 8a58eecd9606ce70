"""The bundled lab arms the furnace's communication watchdog: a driver process killed while
the furnace is out of standby leaves it in standby (docs/decisions/0008, docs/security.md)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Iterator

import pytest

from couponlab.cli import sample_lab_path
from couponlab.labfile import load_lab
from couponlab.simulators.furnace import FurnaceModel
from couponlab.twins import BackgroundTwins

NAME = "furnace1"
MARGIN_S = 20.0
"""Generous wall-clock margin for a loaded machine (a deadline, never a measured time)."""

_KILLED_CLIENT = """
import asyncio, sys
import numpy as np
from couponlab.drivers.furnace import OpcUaGradientFurnace
from couponlab.labfile import DeviceEntry

async def main() -> None:
    dev = OpcUaGradientFurnace.from_lab_entry(DeviceEntry.model_validate_json(sys.argv[1]))
    await dev.connect(timeout=30.0)
    await dev.setpoint_profile.set(np.full(dev.num_zones, 300.0))
    print("heating", flush=True)
    await asyncio.sleep(3600)  # the keep-alive feeds the watchdog until the process dies

asyncio.run(main())
"""


@pytest.fixture(scope="module")
def twins() -> Iterator[BackgroundTwins]:
    lab = load_lab(sample_lab_path())
    only_furnace = lab.model_copy(update={"devices": [lab.device(NAME)]})
    with BackgroundTwins(only_furnace) as running:
        yield running


def _state(twins: BackgroundTwins) -> str:
    model = twins.world.instruments[NAME]
    assert isinstance(model, FurnaceModel)
    return model.state


async def test_bundled_lab_furnace_goes_to_standby_when_its_client_is_killed(
    twins: BackgroundTwins,
) -> None:
    entry = twins.lab.device(NAME)
    watchdog_s = float(entry.settings["watchdog_s"])
    assert watchdog_s > 0, "the bundled lab must arm the furnace's watchdog"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-W",
        "ignore",
        "-c",
        _KILLED_CLIENT,
        entry.model_dump_json(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert line.decode().strip() == "heating"
        assert await twins.acall(_state, twins) == "manual"
        os.kill(proc.pid, signal.SIGKILL)  # no Standby(), no disconnect: the process is gone
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
    end = time.monotonic() + watchdog_s + MARGIN_S
    state = ""
    while time.monotonic() < end:
        state = await twins.acall(_state, twins)
        if state == "standby":
            break
        await asyncio.sleep(0.1)
    assert state == "standby"
    model = twins.world.instruments[NAME]
    assert await twins.acall(lambda: model.watchdog_expired) is True  # type: ignore[attr-defined]
