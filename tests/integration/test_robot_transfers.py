"""The transfer robot driver against its twin over the wire, with the furnace twin in the same
world: the conformance suite, the interlock held by the twin against a raw client, the
driver's own furnace check, E-stop and resume. The world is stepped by the test (a task
advances it a virtual second per loop turn), never timed against the wall clock."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import bluesky.plan_stubs as bps
import numpy as np
import pytest
from bluesky import RunEngine
from bluesky.utils import MsgGenerator

from couponlab.drivers.robot import ScpiTransferRobot
from couponlab.errors import InterlockTrippedError, OutOfLimitsError
from couponlab.interfaces.transfer import Transfer
from couponlab.lab import make_device
from couponlab.labfile import parse_lab
from couponlab.simulators.detectors._scpi_twin import parse_socket_address
from couponlab.simulators.lab_twins import TwinLab, start_lab_twins
from couponlab.simulators.world import World
from couponlab.testing.robot import TRANSFER_CHECKS, TransferConformance
from couponlab.twins import BackgroundTwins

LAB = """
name: robot-lab
devices:
  - name: furnace1
    family: gradient_furnace
    driver: opcua_gradient_furnace
    address: opc.tcp://127.0.0.1:0
    twin: true
  - name: robot1
    family: transfer_robot
    driver: scpi_transfer_robot
    address: socket://127.0.0.1:0          # asyncio TCP: driver and twin share the loop
    twin: true
    limits: {max_furnace_entry: 90 degC}
    settings:
      stations: [build_plate, furnace1.slot1, furnace1.slot2, stage1, rack.1, rack.2, rack.3]
    twin_config: {furnace: furnace1, samples: {rack.1: C1}}
"""
ROBOT_ONLY = """
name: robot-only
devices:
  - name: robot1
    family: transfer_robot
    driver: scpi_transfer_robot
    address: socket://127.0.0.1:0
    twin: true
    settings:
      stations: [build_plate, stage1, frame1, rack.1, rack.2, rack.3]
    twin_config: {samples: {rack.1: C1}}
"""


@pytest.fixture(params=["furnace"])
async def lab(request: pytest.FixtureRequest) -> AsyncIterator[TwinLab]:
    """The robot twin (with the furnace twin, or alone) in a paused world."""
    text = LAB if request.param == "furnace" else ROBOT_ONLY
    running = await start_lab_twins(parse_lab(text), world=World(paused=True), run_clock=False)
    try:
        yield running
    finally:
        await running.stop()
        await asyncio.get_running_loop().shutdown_default_executor()  # pyvisa's / asyncua's


@contextlib.asynccontextmanager
async def stepping(world: World, step_s: float = 1.0) -> AsyncIterator[None]:
    """Advance the world ``step_s`` virtual seconds per loop turn while the block runs."""

    async def step() -> None:
        while True:
            world.advance(step_s)
            await asyncio.sleep(0.001)

    task = asyncio.create_task(step(), name="world-stepper")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
async def robot(lab: TwinLab) -> AsyncIterator[ScpiTransferRobot]:
    device = make_device(lab.lab.device("robot1"))
    assert isinstance(device, ScpiTransferRobot)
    await device.connect(timeout=10.0)
    try:
        yield device
    finally:
        await device.disconnect()


def _hot(lab: TwinLab, t_c: float) -> None:
    furnace = lab.world.instruments["furnace1"]
    furnace.temperature_c[:] = t_c  # type: ignore[attr-defined]


@pytest.mark.parametrize("lab", ["alone"], indirect=True)
@pytest.mark.parametrize("check", sorted(TRANSFER_CHECKS))
async def test_robot_conforms(lab: TwinLab, robot: ScpiTransferRobot, check: str) -> None:
    async with stepping(lab.world):
        await TRANSFER_CHECKS[check](TransferConformance(robot, timeout=30.0))


@pytest.mark.parametrize("lab", ["alone"], indirect=True)
async def test_a_transfer_takes_the_robots_time(lab: TwinLab, robot: ScpiTransferRobot) -> None:
    model = lab.world.instruments["robot1"]
    assert robot.furnace_limit_c == 100.0  # the default lab limit, the robot's ceiling
    assert await robot.furnace_entry_limit.get_value() == 100.0
    t0 = lab.world.now
    seen: list[dict[str, Any]] = []
    async with stepping(lab.world, 0.5):
        transfer = robot.set(Transfer("C1", "rack.1", "stage1"))
        transfer.watch(lambda **kw: seen.append(kw))  # type: ignore[attr-defined]
        await transfer
    cfg = model.config  # type: ignore[attr-defined]
    assert lab.world.now - t0 >= 3 * cfg.move_s + 2 * cfg.grip_s
    # progress in the robot's (instrument) time: the whole job's remaining time counted down
    assert seen[-1]["unit"] == "s" and seen[-1]["time_remaining"] == 0.0
    assert seen[-1]["current"] == seen[-1]["target"] >= 3 * cfg.move_s + 2 * cfg.grip_s - 0.5
    assert (await robot.stations())["stage1"] == "C1"
    reading = await robot.read()
    assert reading["robot1-held_sample"]["value"] == ""
    assert reading["robot1-position"]["value"] == "home"


async def test_the_twin_refuses_a_hot_furnace_whatever_the_client_sends(
    lab: TwinLab, robot: ScpiTransferRobot
) -> None:
    _hot(lab, 450.0)
    host, port = parse_socket_address(lab.lab.device("robot1").address)
    reader, writer = await asyncio.open_connection(host, port)
    replies = []
    try:
        for line in (
            "LIM:FURN 1000;:SYST:ERR?",  # raising the limit over the ceiling is refused
            'XFER "C1","rack.1","furnace1.slot1";:SYST:ERR?',
            'MOVE:STN "furnace1.slot2";:SYST:ERR?',
            "LIM:FURN 100;:SYST:ERR?",  # up to the ceiling is allowed, above the lab's 90
        ):
            writer.write(f"{line}\n".encode())
            await writer.drain()
            replies.append((await asyncio.wait_for(reader.readline(), 10.0)).decode().strip())
    finally:
        writer.close()
        await writer.wait_closed()
    assert replies[0].startswith("-222,") and replies[3] == '0,"No error"'
    for reply, slot in zip(replies[1:3], ("slot1", "slot2"), strict=True):
        assert reply == (
            f'-200,"Execution error; interlock: no entry of furnace1.{slot}: '
            'furnace1 at 450.0 degC > 90 degC"'
        )
    assert robot.furnace_limit_c == 90.0  # the lab's, below the robot's 100 degC ceiling
    _hot(lab, 95.0)  # under what the raw client set, over the lab's limit
    with pytest.raises(InterlockTrippedError, match=r"95\.0 degC > 90 degC"):
        await robot.set(Transfer("C1", "rack.1", "furnace1.slot1"))  # the job line rewrites 90
    assert (await robot.stations())["rack.1"] == "C1"
    assert await robot.holding() is None


async def test_the_driver_checks_a_watched_furnace_before_sending(lab: TwinLab) -> None:
    furnace = make_device(lab.lab.device("furnace1"))
    robot = make_device(lab.lab.device("robot1"))
    assert isinstance(robot, ScpiTransferRobot)
    await furnace.connect(timeout=10.0)
    await robot.connect(timeout=10.0)
    try:
        robot.watch_furnace(furnace)
        _hot(lab, 120.0)
        lab.world.advance(2.0)  # the furnace's next controller period reports it
        sent = robot.client.bytes_written
        with pytest.raises(OutOfLimitsError, match="furnace1 temperature"):
            await robot.set(Transfer("C1", "rack.1", "furnace1.slot2"))
        assert (await robot.stations())["rack.1"] == "C1"
        assert robot.client.bytes_written - sent < 200  # queries only: no XFER went out
    finally:
        await robot.disconnect()
        await furnace.disconnect()


@pytest.mark.parametrize("lab", ["alone"], indirect=True)
async def test_an_estop_keeps_the_sample_gripped_and_a_resume_places_it(
    lab: TwinLab, robot: ScpiTransferRobot
) -> None:
    model = lab.world.instruments["robot1"]
    status = robot.set(Transfer("C1", "rack.1", "stage1"))
    for _ in range(1000):  # until the pick is done (loop turns, not wall time)
        lab.world.advance(0.5)
        await asyncio.sleep(0.001)
        if model.held == "C1":  # type: ignore[attr-defined]
            break
    await robot.emergency_stop()
    with pytest.raises(InterlockTrippedError, match="ESTOP"):
        await status
    assert await robot.holding() == "C1"
    assert (await robot.state()).startswith("estop at transit holding C1")
    assert all(v != "C1" for v in (await robot.stations()).values())
    await robot.reset()
    async with stepping(lab.world):
        await robot.set(Transfer("C1", "rack.1", "stage1"))  # the gripped sample is placed
    assert (await robot.stations())["stage1"] == "C1"
    assert np.isclose(model.remaining_s(), 0.0)  # type: ignore[attr-defined]


def test_a_plan_moves_samples_with_mv_under_a_run_engine() -> None:
    """The driver on the RunEngine's loop, the twin on its own thread and clock (speed-up
    1000): ``bps.mv`` of a Transfer, a transfer waited for as a status group, a repeated one,
    and the stations the robot reports after them."""
    lab = parse_lab(
        ROBOT_ONLY.replace("name: robot-only", "name: robot-only\nworld: {speedup: 1000}")
    )
    with BackgroundTwins(lab) as twins:
        robot = ScpiTransferRobot.from_lab_entry(twins.lab.device("robot1"))
        loop = asyncio.new_event_loop()
        engine = RunEngine({}, call_returns_result=True, loop=loop)
        engine(bps.wait_for([lambda: robot.connect()]))
        try:

            def plan() -> MsgGenerator[Any]:
                yield from bps.mv(robot, Transfer("C1", "rack.1", "stage1"))
                yield from bps.abs_set(robot, Transfer("C1", "stage1", "frame1"), group="move")
                yield from bps.wait(group="move")
                yield from bps.mv(robot, Transfer("C1", "stage1", "frame1"))  # already there
                (asked,) = yield from bps.wait_for([robot.stations])
                return asked.result()

            stations = engine(plan()).plan_result
        finally:
            engine(bps.wait_for([lambda: robot.disconnect()]))
            loop.call_soon_threadsafe(loop.stop)
            engine._th.join(10)
            loop.close()
    assert stations["frame1"] == "C1"
    assert stations["rack.1"] is None and stations["stage1"] is None
