"""The transfer robot twin: jobs in virtual time, the interlocks (hot furnace, gripper only
at a destination, a stop keeps the grip) and the command set, on a world the test steps."""

from __future__ import annotations

import numpy as np
import pytest

from couponlab.simulators.robot.model import HOME, TRANSIT, RobotConfig, RobotModel
from couponlab.simulators.robot.twin import RobotDispatcher
from couponlab.simulators.world import World

STATIONS = ["build_plate", "furnace1.slot1", "furnace1.slot2", "stage1", "rack.1", "rack.2"]
OK = '0,"No error"'


class Furnace:
    """A furnace stand-in: the zone temperatures the robot's interlock reads, degC."""

    def __init__(self, t_c: float = 25.0) -> None:
        self.temperature_c = np.full(8, t_c)


def _robot(
    furnace: Furnace | None = None, **config: object
) -> tuple[World, RobotModel, RobotDispatcher]:
    world = World(paused=True)
    if furnace is not None:
        world.register_instrument("furnace1", furnace)
    cfg = RobotConfig.model_validate(
        {"stations": STATIONS, "furnace": "furnace1", "samples": {"rack.1": "C1"}, **config}
    )
    model = RobotModel(world, cfg, "robot1")
    return world, model, RobotDispatcher(model)


def _job_s(model: RobotModel) -> float:
    """Virtual seconds of a pick-and-place, and a little more (a step that ends exactly at
    the end of an advance is done on the next one)."""
    return 3 * model.config.move_s + 2 * model.config.grip_s + 0.01


def test_a_transfer_takes_virtual_time_and_places_the_sample() -> None:
    world, m, d = _robot(Furnace())
    assert d.handle('XFER "C1","rack.1","furnace1.slot1";:SYST:ERR?') == OK
    assert m.state == "BUSY"
    assert m.remaining_s() == pytest.approx(_job_s(m) - 0.01)
    world.advance(m.config.move_s + m.config.grip_s + 0.1)  # picked, on the way
    assert (m.held, m.stations["rack.1"], m.position) == ("C1", "", TRANSIT)
    assert d.handle("STAT?").startswith("BUSY,")  # type: ignore[union-attr]
    world.advance(_job_s(m))
    assert m.state == "IDLE" and m.remaining_s() == 0.0
    assert m.stations["furnace1.slot1"] == "C1" and m.held == "" and m.position == HOME
    assert d.handle("STAT?") == 'IDLE,0.000,"","home"'
    assert d.handle("STN:OCC?") == '"","C1","","","",""'
    assert [e for _, e in m.history] == [
        "move rack.1", "close rack.1", "move furnace1.slot1", "open furnace1.slot1", "move home",
    ]  # fmt: skip


def test_opc_waits_for_the_job() -> None:
    world, m, d = _robot(Furnace())
    reply = d.handle('XFER "C1","rack.1","rack.2";:SYST:ERR?;:*OPC?')
    assert not isinstance(reply, str | bytes | None)  # a deferred reply: the job takes time
    reply.close()  # type: ignore[union-attr]
    world.advance(_job_s(m))
    assert d.handle("*OPC?;:STAT?") == '1;IDLE,0.000,"","home"'


@pytest.mark.parametrize(("source", "destination"), [("rack.1", "furnace1.slot1")])
def test_a_hot_furnace_refuses_entry_and_nothing_moves(source: str, destination: str) -> None:
    furnace = Furnace(450.0)
    _world, m, d = _robot(furnace)
    reply = d.handle(f'XFER "C1","{source}","{destination}";:SYST:ERR?')
    assert reply == (
        '-200,"Execution error; interlock: no entry of furnace1.slot1: furnace1 at 450.0 degC '
        '> 100 degC"'
    )
    assert m.state == "IDLE" and m.stations["rack.1"] == "C1" and m.jobs == 0
    furnace.temperature_c[:] = 99.0
    assert d.handle(f'XFER "C1","{source}","{destination}";:SYST:ERR?') == OK


def test_a_hot_furnace_refuses_exit_and_unknown_temperature_refuses_both() -> None:
    furnace = Furnace(25.0)
    world, m, d = _robot(furnace, samples={"furnace1.slot2": "C2"})
    furnace.temperature_c[3] = 101.0
    reply = d.handle('XFER "C2","furnace1.slot2","rack.2";:SYST:ERR?')
    assert "interlock: no entry of furnace1.slot2: furnace1 at 101.0 degC" in str(reply)
    furnace.temperature_c[3] = 25.0
    for line in ('MOVE:STN "furnace1.slot2"', "GRIP:CLOS"):
        assert d.handle(f"{line};:SYST:ERR?") == OK
        world.advance(m.config.move_s + 0.01)
    assert (m.held, m.position) == ("C2", "furnace1.slot2")
    furnace.temperature_c[3] = 101.0
    reply = d.handle("MOVE:HOME;:SYST:ERR?")
    assert "interlock: no exit of furnace1.slot2: furnace1 at 101.0 degC" in str(reply)
    furnace.temperature_c[3] = np.nan  # a broken reading is not "cold"
    assert "temperature unknown" in str(d.handle('XFER "C2","furnace1.slot2","rack.2";:SYST:ERR?'))
    world.unregister_instrument("furnace1")
    assert "temperature unknown" in str(d.handle('MOVE:STN "furnace1.slot1";:SYST:ERR?'))
    assert m.jobs == 2 and m.held == "C2" and m.position == "furnace1.slot2"


def test_a_furnace_that_heats_during_the_job_halts_it_with_the_sample_gripped() -> None:
    furnace = Furnace(25.0)
    world, m, d = _robot(furnace)
    d.handle('XFER "C1","rack.1","furnace1.slot1"')
    world.advance(m.config.move_s + m.config.grip_s / 2)  # closing on the sample
    furnace.temperature_c[:] = 300.0
    world.advance(_job_s(m))
    assert m.state == "FAULT" and "interlock: no entry of furnace1.slot1" in m.reason
    assert m.held == "C1" and m.stations["furnace1.slot1"] == "" and m.gripper_closed
    assert d.handle('XFER "C1","rack.1","rack.2";:SYST:ERR?').startswith("-221,")  # type: ignore[union-attr]
    furnace.temperature_c[:] = 25.0
    assert d.handle("RES;:SYST:ERR?;:STAT?") == f'{OK};IDLE,0.000,"C1","rack.1"'
    # resume: the sample in the gripper is placed (the pick is skipped)
    assert d.handle('XFER "C1","rack.1","furnace1.slot1";:SYST:ERR?') == OK
    assert m.remaining_s() == pytest.approx(2 * m.config.move_s + m.config.grip_s)
    world.advance(_job_s(m))
    assert m.stations["furnace1.slot1"] == "C1" and m.held == ""


def test_the_gripper_opens_only_at_a_destination() -> None:
    world, m, d = _robot(Furnace(), samples={"rack.1": "C1", "rack.2": "C2"})
    for line in ('MOVE:STN "rack.1"', "GRIP:CLOS", 'MOVE:STN "rack.2"'):
        assert d.handle(f"{line};:SYST:ERR?") == OK
        world.advance(m.config.move_s + 0.01)
    assert (m.held, m.position) == ("C1", "rack.2")
    reply = d.handle("GRIP:OPEN;:SYST:ERR?")
    assert (
        reply
        == '-200,"Execution error; gripper: opens with C1 only at a destination; rack.2 holds C2"'
    )
    assert m.held == "C1" and m.stations["rack.2"] == "C2"
    d.handle('MOVE:STN "stage1"')
    world.advance(m.config.move_s / 2)  # half way
    assert "busy" in str(d.handle("GRIP:OPEN;:SYST:ERR?"))
    d.handle("STOP")
    assert "not at a station (transit)" in str(d.handle("GRIP:OPEN;:SYST:ERR?"))
    assert d.handle('MOVE:STN "stage1";:SYST:ERR?') == OK
    world.advance(m.config.move_s + 0.01)
    assert d.handle("GRIP:OPEN;:SYST:ERR?") == OK
    world.advance(m.config.grip_s + 0.01)
    assert m.stations["stage1"] == "C1" and m.held == ""


@pytest.mark.parametrize("how", ["ESTOP", "STOP", "watchdog"])
async def test_a_stop_halts_the_arm_and_keeps_the_sample_gripped(how: str) -> None:
    world, m, d = _robot(Furnace())
    now = [0.0]
    d.watchdog.timer._clock = lambda: now[0]
    assert d.handle("SYST:WDOG 2;:SYST:ERR?") == OK
    d.handle('XFER "C1","rack.1","stage1"')
    world.advance(m.config.move_s + m.config.grip_s + 1.0)  # gripped, moving to stage1
    if how == "watchdog":
        now[0] += 2.5  # the client is silent for longer than the timeout
        assert await d.watchdog.timer.check()
    else:
        d.handle(how)
    state = {"ESTOP": "ESTOP", "STOP": "IDLE", "watchdog": "FAULT"}[how]
    world.advance(_job_s(m))
    assert m.state == state and m.held == "C1" and m.gripper_closed
    assert m.position == TRANSIT and m.near == ("rack.1", "stage1")
    assert all(v != "C1" for v in m.stations.values())
    assert d.handle("GRIP?") == '"C1"'
    d.handle("RES")
    assert d.handle('XFER "C1","rack.1","stage1";:SYST:ERR?') == OK  # placed on resume
    world.advance(_job_s(m))
    assert m.stations["stage1"] == "C1"


def test_refusals_name_the_problem() -> None:
    _world, m, d = _robot(Furnace(), samples={"rack.1": "C1", "rack.2": "C2"})

    def err(line: str) -> str:
        return str(d.handle(f"{line};:SYST:ERR?"))

    assert "unknown station rack.9" in err('XFER "C1","rack.9","rack.2"')
    assert "source and destination are both rack.1" in err('XFER "C1","rack.1","rack.1"')
    assert "destination rack.2 holds C2" in err('XFER "C1","rack.1","rack.2"')
    assert "no C9 at rack.1 (holds C1)" in err('XFER "C9","rack.1","stage1"')
    assert err('XFER "C1","rack.1"').startswith("-109,")
    assert err('XFER "C 1","rack.1","stage1"').startswith("-224,")
    assert "C2 is already at another place" in err('STN:SET "stage1","C2"')
    assert err('STN:SET "stage1","C3"') == OK and m.stations["stage1"] == "C3"
    assert err("LIM:FURN 150").startswith("-222,")
    assert err("LIM:FURN 80") == OK and d.handle("LIM:FURN?") == "80"
    assert err("*RST") == OK and d.handle("LIM:FURN?") == "80"  # a reset keeps safety settings
    assert d.handle("LIM:FURN:MAX?") == "100"
    assert m.jobs == 0


def test_the_config_refuses_slots_of_another_furnace() -> None:
    world = World(paused=True)
    cfg = RobotConfig(stations=["furnace2.slot1", "rack.1"], furnace="furnace1")
    with pytest.raises(ValueError, match="slot of furnace2"):
        RobotModel(world, cfg)
    with pytest.raises(ValueError, match="one station only"):
        RobotConfig(stations=["rack.1", "rack.2"], samples={"rack.1": "C1", "rack.2": "C1"})
