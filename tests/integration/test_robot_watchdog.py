"""The bundled lab arms the transfer robot's communication watchdog: a driver process killed
while the robot carries a sample halts the arm with the sample still gripped (a protective
stop, latched until reset), never dropped (docs/protocols/transfer-robot.md)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from couponlab.cli import sample_lab_path
from couponlab.labfile import load_lab
from couponlab.simulators.robot.model import TRANSIT, RobotModel
from couponlab.twins import BackgroundTwins

NAME = "robot1"
MARGIN_S = 20.0
"""Generous wall-clock margin for a loaded machine (a deadline, never a measured time)."""

_KILLED_CLIENT = """
import asyncio, sys
from couponlab.drivers.robot import ScpiTransferRobot
from couponlab.interfaces.transfer import Transfer
from couponlab.labfile import DeviceEntry

async def main() -> None:
    dev = ScpiTransferRobot.from_lab_entry(DeviceEntry.model_validate_json(sys.argv[1]))
    await dev.connect(timeout=30.0)
    await dev.record("rack.1", "C1")
    status = dev.set(Transfer("C1", "rack.1", "frame1"))
    print("moving", flush=True)
    await status  # the keep-alive and the polls feed the watchdog until the process dies

asyncio.run(main())
"""


@pytest.fixture(scope="module")
def twins() -> Iterator[BackgroundTwins]:
    lab = load_lab(sample_lab_path())
    only_robot = lab.model_copy(update={"devices": [lab.device(NAME)]})
    with BackgroundTwins(only_robot) as running:
        running.call(running.world.set_speedup, 1.0)  # a move takes 4 s of wall time
        yield running


def _model(twins: BackgroundTwins) -> RobotModel:
    model = twins.world.instruments[NAME]
    assert isinstance(model, RobotModel)
    return model


def _snapshot(twins: BackgroundTwins) -> dict[str, Any]:
    m = _model(twins)
    return {"state": m.state, "held": m.held, "position": m.position, "reason": m.reason}


async def _until(
    twins: BackgroundTwins, key: str, value: str, deadline_s: float
) -> dict[str, Any]:
    end = time.monotonic() + deadline_s
    snap: dict[str, Any] = {}
    while time.monotonic() < end:
        snap = await twins.acall(_snapshot, twins)
        if snap[key] == value:
            break
        await asyncio.sleep(0.05)
    return snap


async def test_bundled_lab_robot_halts_gripping_when_its_client_is_killed(
    twins: BackgroundTwins,
) -> None:
    entry = twins.lab.device(NAME)
    watchdog_s = float(entry.settings["watchdog_s"])
    assert watchdog_s > 0, "the bundled lab must arm the robot's watchdog"
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
        assert line.decode().strip() == "moving"
        snap = await _until(twins, "held", "C1", 60.0)  # picked: on its way to frame1
        assert snap["held"] == "C1" and snap["state"] == "BUSY"
        # slow the robot's clock so the move cannot end before the watchdog acts
        await twins.acall(twins.world.set_speedup, 1e-3)
        os.kill(proc.pid, signal.SIGKILL)  # no STOP, no disconnect: the process is gone
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
    snap = await _until(twins, "state", "FAULT", watchdog_s + MARGIN_S)
    assert snap["state"] == "FAULT" and snap["reason"].startswith("watchdog:")
    assert snap["held"] == "C1" and snap["position"] == TRANSIT  # gripped, not dropped
    model = _model(twins)
    assert await twins.acall(lambda: "C1" not in model.stations.values())
