"""The transfer robot driver byte for byte (couponlab.testing.exchanges): what it sends to
connect and to move a sample, what it refuses before a byte is sent, what it refuses after
reading the stations (no XFER sent), idempotent transfers, and its lab-entry models."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from couponlab.drivers.robot import RobotLimits, RobotSettings, ScpiTransferRobot
from couponlab.errors import InputError, InterlockTrippedError, OutOfLimitsError
from couponlab.interfaces.furnace import FurnaceProfile
from couponlab.interfaces.transfer import SampleTransfer, Transfer
from couponlab.labfile import DeviceEntry
from couponlab.testing.exchanges import expected_exchanges
from couponlab.units import Q_

OK = '0,"No error"'
ADDR = "TCPIP::127.0.0.1::1::SOCKET"
STATIONS = ["build_plate", "furnace1.slot1", "stage1", "rack.1", "rack.2"]
CAT = '"build_plate","furnace1.slot1","stage1","rack.1","rack.2","rack.3"'
CONNECT = [
    ("SYST:CLOC:RATE?", "1000"),
    ("*IDN?", "couponlab,CR-6,1,1"),
    ("STN:CAT?;:SYST:ERR?", f"{CAT};{OK}"),
    ("LIM:FURN:MAX?;:SYST:ERR?", f"100;{OK}"),
    ("LIM:FURN 80;:SYST:ERR?", OK),
    ("LIM:FURN?", "80"),
    ("STAT?", 'IDLE,0.000,"","home"'),
]


def _robot(**kwargs: Any) -> ScpiTransferRobot:
    return ScpiTransferRobot(
        ADDR, stations=STATIONS, max_furnace_entry="80 degC", name="robot1", **kwargs
    )


def _state(occupants: Sequence[str]) -> list[tuple[str, str]]:
    """The exchange of one stations() call (the order of the stations is read at connect)."""
    occ = ",".join(f'"{o}"' for o in occupants)
    return [("STN:OCC?;:SYST:ERR?", f"{occ};{OK}")]


async def test_a_transfer_is_one_job_polled_until_the_robot_has_placed_it() -> None:
    script = [
        *CONNECT,
        *_state(["", "", "", "C1", "", ""]),
        ("STAT?", 'IDLE,0.000,"","home"'),
        (
            'LIM:FURN 80;:XFER "C1","rack.1","stage1";:SYST:ERR?;:STAT?',
            f'{OK};BUSY,14.000,"","transit"',
        ),
        ("STAT?", 'BUSY,2.500,"C1","transit"'),
        ("STAT?", 'IDLE,0.000,"","home"'),
        *_state(["", "", "C1", "", "", ""]),
    ]
    async with expected_exchanges(_robot(), script) as (robot, _wire):
        assert isinstance(robot, SampleTransfer)
        assert robot.furnace_limit_c == 80.0
        await robot.set(Transfer("C1", "rack.1", "stage1"))


async def test_bad_transfers_are_refused_before_a_byte_is_sent() -> None:
    async with expected_exchanges(_robot(), CONNECT) as (robot, wire):
        sent = wire.bytes_written
        bad: list[Any] = [
            Transfer("C1", "rack.1", "rack.3"),  # rack.3 is taught, not in the lab file
            Transfer("C1", "rack.1", "rack.1"),
            Transfer("C 1", "rack.1", "stage1"),
            Transfer('C1",x', "rack.1", "stage1"),
            Transfer("", "rack.1", "stage1"),
            ("C1", "rack.1", "stage1"),
            None,
        ]
        for value in bad:
            with pytest.raises(InputError):
                robot.set(value)
        with pytest.raises(InputError, match="unknown station"):
            await robot.record("rack.9", "C1")
        with pytest.raises(InputError, match="sample id"):
            await robot.record("rack.1", "C1;*RST")
        assert wire.bytes_written == sent


@pytest.mark.parametrize(
    ("occupants", "held", "match"),
    [
        (["", "", "C2", "C1", "", ""], "", "destination stage1 is occupied by C2"),
        (["", "", "", "C9", "", ""], "", "source rack.1 holds C9, not C1"),
        (["", "", "", "", "", ""], "", "source rack.1 holds nothing, not C1"),
        (["", "", "", "C1", "", ""], "C7", "the gripper holds C7"),
    ],
)
async def test_what_the_stations_forbid_is_refused_without_a_command(
    occupants: list[str], held: str, match: str
) -> None:
    script = [*CONNECT, *_state(occupants), ("STAT?", f'IDLE,0.000,"{held}","home"')]
    async with expected_exchanges(_robot(), script) as (robot, _wire):
        with pytest.raises(InputError, match=match):
            await robot.set(Transfer("C1", "rack.1", "stage1"))


async def test_transfers_are_idempotent_for_resume() -> None:
    script = [
        *CONNECT,
        # already at its destination: done at once, nothing sent but the two reads
        *_state(["", "", "C1", "", "", ""]),
        ("STAT?", 'IDLE,0.000,"","home"'),
        # in the gripper (a job halted before): the robot is told to place it
        *_state(["", "", "", "", "", ""]),
        ("STAT?", 'IDLE,0.000,"C1","transit"'),
        (
            'LIM:FURN 80;:XFER "C1","rack.1","stage1";:SYST:ERR?;:STAT?',
            f'{OK};BUSY,9.000,"C1","transit"',
        ),
        ("STAT?", 'IDLE,0.000,"","home"'),
        *_state(["", "", "C1", "", "", ""]),
    ]
    async with expected_exchanges(_robot(), script) as (robot, _wire):
        await robot.set(Transfer("C1", "rack.1", "stage1"))
        await robot.set(Transfer("C1", "rack.1", "stage1"))


async def test_a_latched_robot_or_a_halted_job_raises_a_typed_error() -> None:
    script = [
        *CONNECT,
        *_state(["", "", "", "C1", "", ""]),
        ("STAT?", 'ESTOP,0.000,"","home"'),
        ("STAT:REAS?;:SYST:ERR?", f'"E-stop (ESTOP command)";{OK}'),
        *_state(["", "", "", "C1", "", ""]),
        ("STAT?", 'IDLE,0.000,"","home"'),
        (
            'LIM:FURN 80;:XFER "C1","rack.1","stage1";:SYST:ERR?;:STAT?',
            f'{OK};BUSY,14.000,"","rack.1"',
        ),
        ("STAT?", 'FAULT,0.000,"C1","transit"'),
        ("STAT:REAS?;:SYST:ERR?", f'"watchdog: no request from the client";{OK}'),
    ]
    async with expected_exchanges(_robot(), script) as (robot, _wire):
        with pytest.raises(InterlockTrippedError, match="ESTOP"):
            await robot.set(Transfer("C1", "rack.1", "stage1"))
        with pytest.raises(InterlockTrippedError, match=r"FAULT \(watchdog"):
            await robot.set(Transfer("C1", "rack.1", "stage1"))


class HotFurnace:
    """A watched furnace stand-in: its profile's zone temperatures, degC."""

    name = "furnace1"

    def __init__(self, temps: list[float]) -> None:
        self.temps = np.asarray(temps, float)

    async def read_profile(self) -> FurnaceProfile:
        n = len(self.temps)
        return FurnaceProfile(np.arange(n) * 10.0, self.temps, self.temps, 0.0)


@pytest.mark.parametrize(
    ("temps", "error"),
    [([60.0, 95.0, 70.0], OutOfLimitsError), ([60.0, np.nan, 20.0], InputError)],
)
async def test_a_watched_hot_furnace_is_refused_before_the_job(
    temps: list[float], error: type[Exception]
) -> None:
    script = [*CONNECT, *_state(["", "", "", "C1", "", ""]), ("STAT?", 'IDLE,0.000,"","home"')]
    robot = _robot(furnaces=[HotFurnace(temps)])  # type: ignore[list-item]
    async with expected_exchanges(robot, script) as (robot, _wire):
        with pytest.raises(error, match="furnace1 temperature"):
            await robot.set(Transfer("C1", "rack.1", "furnace1.slot1"))


def _entry(**fields: Any) -> DeviceEntry:
    base: dict[str, Any] = {
        "name": "robot1",
        "family": "transfer_robot",
        "driver": "scpi_transfer_robot",
        "address": ADDR,
        "settings": {"stations": STATIONS},
    }
    return DeviceEntry(**{**base, **fields})


def test_the_lab_entry_is_checked() -> None:
    assert RobotLimits.of(_entry()).max_furnace_entry == 100.0
    assert RobotLimits.of(_entry(limits={"max_furnace_entry": "350 K"})).max_furnace_entry == (
        pytest.approx(76.85)
    )
    for bad in ("5 mm", "50 delta_degC", "hot", -300):
        with pytest.raises(InputError, match="max_furnace_entry"):
            RobotLimits.of(_entry(limits={"max_furnace_entry": bad}))
    for stations in ([], ["rack.1", "rack.1"], ["rack 1"], "rack.1"):
        with pytest.raises(InputError, match="stations"):
            RobotSettings.of(_entry(settings={"stations": stations}))
    with pytest.raises(InputError, match=r"settings\.stations: missing"):
        RobotSettings.of(_entry(settings={}))
    robot = ScpiTransferRobot.from_lab_entry(_entry(limits={"max_furnace_entry": Q_(90, "degC")}))
    assert robot.station_names == STATIONS and robot.furnace_limit_c == 90.0


async def test_stations_unknown_to_the_robot_fail_the_connection() -> None:
    robot = ScpiTransferRobot(ADDR, stations=["rack.1", "rack.7"], name="robot1")
    script = [
        ("SYST:CLOC:RATE?", "1000"),
        ("*IDN?", "couponlab,CR-6,1,1"),
        ("STN:CAT?;:SYST:ERR?", f"{CAT};{OK}"),
    ]
    with pytest.raises(InputError, match=r"\['rack.7'\] of the lab file are not taught"):
        async with expected_exchanges(robot, script):
            pass
