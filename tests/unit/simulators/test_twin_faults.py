"""Fault injection on the wire: every twin of the bundled lab takes every kind it should, and
each kind does to the bytes (or OPC UA requests) what it says, for as long as it says. The
world is paused: a fault with ``for_s`` ends when the test steps the world, never by waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import numpy as np
import pytest
from asyncua import ua

from couponlab.cli import sample_lab_path
from couponlab.errors import (
    ConnectionLostError,
    InstrumentError,
    InstrumentRestartedError,
    InstrumentTimeoutError,
)
from couponlab.labfile import load_lab
from couponlab.simulators.background import BackgroundLoop
from couponlab.simulators.detectors._scpi_twin import parse_socket_address
from couponlab.simulators.faults import FaultKind, FaultRefusedError
from couponlab.simulators.furnace.model import FurnaceModel
from couponlab.simulators.furnace.server import NAMESPACE_URI
from couponlab.simulators.lab_twins import TwinLab, start_lab_twins
from couponlab.simulators.world import World, WorldConfig
from couponlab.transports import Backoff, ClientSecurity, OpcUaConnection, OpcUaSecuritySettings

LAB = load_lab(sample_lab_path())
LINE_TWINS = [d.name for d in LAB.devices if not d.address.startswith("opc.tcp")]
"""Every line (SCPI/ASCII) twin of the bundled lab."""
OWN_KINDS = {
    "furnace1": {FaultKind.SENSOR_LOSS, FaultKind.JAM},
    "tcs1": {FaultKind.SENSOR_LOSS},
    "feeder1": {FaultKind.JAM, FaultKind.GAS_LOSS},
    "stage1": {FaultKind.JAM},
    "frame1": {FaultKind.JAM},
}
"""The sensor and actuator faults each twin has (the others have no such part to fail)."""
COMMON = {
    FaultKind.DROP,
    FaultKind.STALL,
    FaultKind.GARBLE,
    FaultKind.TRUNCATE,
    FaultKind.ERROR,
    FaultKind.POWER_LOSS,
}
REPLY_DEADLINE_S = 10.0
"""A deadline for a reply that must come, on a loaded machine (never a measured time)."""
SILENCE_S = 0.2
"""How long a reply that must NOT come is waited for (a longer wait only makes the check
stricter; it cannot make it pass wrongly)."""
FAST = Backoff(attempts=2, initial=0.01, maximum=0.02)


Start = Callable[..., Awaitable[TwinLab]]


@pytest.fixture
async def twins() -> AsyncIterator[Start]:
    """Start the named twins of the bundled lab (all when none are named) in a paused world:
    a fault with a duration ends only when the test steps the world."""
    started: list[TwinLab] = []

    async def start(*names: str) -> TwinLab:
        wanted = set(names)
        for name in names:  # and the twins it works with (a cell's feeders, a head's stage)
            wanted |= {d.name for d in LAB.devices if d.name in str(LAB.device(name).twin_config)}
        devices = [d for d in LAB.devices if d.name in wanted] if names else LAB.devices
        declared = LAB.model_copy(update={"devices": devices})
        world = World(WorldConfig.model_validate(LAB.world), paused=True)
        running = await start_lab_twins(declared, world=world, run_clock=False)
        started.append(running)
        return running

    try:
        yield start
    finally:
        for running in started:
            await running.stop()
        await asyncio.get_running_loop().shutdown_default_executor()


@pytest.fixture(scope="module")
def whole_lab() -> Iterator[tuple[BackgroundLoop, TwinLab]]:
    """Every twin of the bundled lab in a paused world, started once for the module on a loop
    and thread of their own, for the tests that only read the fault registry or whose fault
    is refused (a refusal changes nothing: each such test checks that no fault is active).
    Touch the world only through the loop's ``call``."""
    bg = BackgroundLoop("fault-twins")
    try:
        world = bg.call(lambda: World(WorldConfig.model_validate(LAB.world), paused=True))
        running = bg.run(start_lab_twins(LAB, world=world, run_clock=False))
        try:
            yield bg, running
        finally:
            bg.run(running.stop())
            bg.run(bg.loop.shutdown_default_executor())
    finally:
        bg.stop()


class Line:
    """A raw client connection to a line twin."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, lab: TwinLab, name: str) -> Line:
        host, port = parse_socket_address(lab.lab.device(name).address)
        return cls(*await asyncio.open_connection(host, port))

    async def send(self, line: str) -> None:
        self.writer.write(line.encode() + b"\n")
        await self.writer.drain()

    async def reply(self, timeout: float = REPLY_DEADLINE_S) -> bytes:
        return await asyncio.wait_for(self.reader.readline(), timeout)

    async def ask(self, line: str) -> bytes:
        await self.send(line)
        return await self.reply()

    async def closed_by_peer(self) -> bool:
        """Return whether the twin closed this connection (EOF or reset)."""
        try:
            data = await asyncio.wait_for(self.reader.read(), REPLY_DEADLINE_S)
        except ConnectionError:
            return True
        return data == b""

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


@contextlib.asynccontextmanager
async def line(lab: TwinLab, name: str) -> AsyncIterator[Line]:
    conn = await Line.open(lab, name)
    try:
        yield conn
    finally:
        await conn.close()


async def refused(lab: TwinLab, name: str) -> bool:
    """Return whether a new connection is closed by the twin before it answers ``*IDN?``."""
    async with line(lab, name) as conn:
        with contextlib.suppress(ConnectionError):
            await conn.send("*IDN?")
        return await conn.closed_by_peer()


def test_every_twin_takes_the_kinds_it_has(whole_lab: tuple[BackgroundLoop, TwinLab]) -> None:
    bg, lab = whole_lab
    devices = bg.call(lab.world.faults.devices)
    assert set(devices) == {d.name for d in LAB.devices}
    for name, kinds in devices.items():
        assert set(kinds) == {str(k) for k in COMMON | OWN_KINDS.get(name, set())}, name


@pytest.mark.parametrize(
    ("device", "kind", "params", "match"),
    [
        ("nobody", "drop", {}, "no twin takes faults"),
        ("stage1", "melt", {}, "unknown fault kind 'melt'"),
        ("xrf1", "jam", {}, "cannot do 'jam'"),
        (
            "tcs1",
            "sensor_loss",
            {"channel": 13},
            "channel = 13 is outside the allowed range 1..12",
        ),
        ("furnace1", "sensor_loss", {"zone": 0}, "zone = 0 is outside the allowed range 1..8"),
        ("stage1", "jam", {"axis": "Z"}, "axis must be one of"),
        ("feeder1", "jam", {"passing": 2}, "passing = 2 is outside"),
        ("stage1", "error", {"code": 5}, "code = 5 is outside the allowed range -999..-100"),
        ("stage1", "stall", {"for_s": -1}, r"for_s = -1 s is outside the allowed range"),
        ("stage1", "stall", {"for_s": 1, "wall_s": 1}, "not both"),
    ],
)
def test_a_bad_fault_is_refused_naming_device_and_range(
    whole_lab: tuple[BackgroundLoop, TwinLab],
    device: str,
    kind: str,
    params: dict[str, object],
    match: str,
) -> None:
    bg, lab = whole_lab
    with pytest.raises(FaultRefusedError, match=match) as info:
        bg.call(lambda: lab.world.faults.inject(device, kind, **params))  # type: ignore[arg-type]
    assert info.value.device == device
    assert bg.call(lab.world.faults.active) == []


# -- line twins: the link, the error queue, the power -------------------------------------------
@pytest.mark.parametrize("name", LINE_TWINS)
async def test_drop_closes_every_link_and_refuses_for_its_virtual_time(
    twins: Start, name: str
) -> None:
    lab = await twins(name)
    async with line(lab, name) as conn:
        idn = await conn.ask("*IDN?")
        lab.world.faults.inject(name, "drop", for_s=5)
        assert await conn.closed_by_peer()
    assert await refused(lab, name)
    lab.world.advance(4.9)
    assert await refused(lab, name)
    lab.world.advance(0.2)
    assert lab.world.faults.active() == []
    async with line(lab, name) as conn:
        assert await conn.ask("*IDN?") == idn


@pytest.mark.parametrize("name", LINE_TWINS)
async def test_stall_holds_every_reply_until_it_ends(twins: Start, name: str) -> None:
    lab = await twins(name)
    async with line(lab, name) as conn:
        idn = await conn.ask("*IDN?")
        lab.world.faults.inject(name, "stall", for_s=2)
        await conn.send("*IDN?")
        with pytest.raises(TimeoutError):
            await conn.reply(SILENCE_S)
        lab.world.advance(2.5)
        assert await conn.reply() == idn  # answered late, on the same link


@pytest.mark.parametrize("name", LINE_TWINS)
async def test_garble_and_truncate_corrupt_replies_while_active(twins: Start, name: str) -> None:
    lab = await twins(name)
    async with line(lab, name) as conn:
        idn = await conn.ask("*IDN?")
        garble = lab.world.faults.inject(name, "garble")
        garbled = await conn.ask("*IDN?")
        assert garbled.endswith(b"\n") and len(garbled) == len(idn)
        assert any(b > 0x7F for b in garbled), garbled  # not ASCII: no parser takes it
        lab.world.faults.clear(name, "garble")
        assert not garble.active
        lab.world.faults.inject(name, "truncate", for_s=1)
        assert await conn.ask("*IDN?") == idn[: (len(idn) - 1) // 2] + b"\n"
        lab.world.advance(1.5)
        assert await conn.ask("*IDN?") == idn


@pytest.mark.parametrize("name", LINE_TWINS)
async def test_an_instrument_error_goes_on_the_error_queue(twins: Start, name: str) -> None:
    lab = await twins(name)
    async with line(lab, name) as conn:
        await conn.ask("*CLS;*IDN?")
        lab.world.faults.inject(name, "error", code=-241, message="Hardware missing")
        assert await conn.ask("SYST:ERR?") == b'-241,"Hardware missing"\n'
        assert await conn.ask("SYST:ERR?") == b'0,"No error"\n'  # once, without a duration
        lab.world.faults.inject(name, "error", for_s=10)
        assert await conn.ask("*IDN?;SYST:ERR?") != b""
        assert await conn.ask("SYST:ERR?") == b'-240,"Hardware error"\n'  # after every line
        lab.world.advance(11)
        await conn.ask("*CLS;*IDN?")
        assert await conn.ask("SYST:ERR?") == b'0,"No error"\n'


@pytest.mark.parametrize("name", LINE_TWINS)
async def test_power_loss_drops_refuses_then_boots_with_the_power_on_bit(
    twins: Start, name: str
) -> None:
    lab = await twins(name)
    dispatcher = lab.world.faults._targets[name].dispatcher  # type: ignore[attr-defined]
    async with line(lab, name) as conn:
        idn = await conn.ask("*IDN?")
        assert await conn.ask("*ESR?") == b"0\n"
        lab.world.faults.inject(name, "error")  # on the queue before the power goes
        lab.world.faults.inject(name, "power_loss", for_s=30)
        assert await conn.closed_by_peer()
    assert await refused(lab, name)  # off: no one answers
    lab.world.advance(31)
    async with line(lab, name) as conn:
        assert await conn.ask("*IDN?") == idn  # the identity answers again
        assert await conn.ask("*ESR?") == b"128\n"  # PON: it was powered on
        assert await conn.ask("*ESR?") == b"0\n"  # reading cleared it
        assert await conn.ask("SYST:ERR?") == b'0,"No error"\n'  # the queue was lost
    assert dispatcher.boot_count == 2


# -- what a power loss forgets, family by family -------------------------------------------
async def test_power_loss_stops_the_feeder_and_its_gas(twins: Start) -> None:
    lab = await twins("feeder1")
    async with line(lab, "feeder1") as conn:
        await conn.ask("GAS 1,4;RATE 1,5;:SYST:ERR?")
        lab.world.advance(5)
        assert (await conn.ask("STAT?")).startswith(b"FEEDING")
        lab.world.faults.inject("feeder1", "power_loss")
    async with line(lab, "feeder1") as conn:
        assert (await conn.ask("STAT?")).startswith(b"IDLE")
        assert float(await conn.ask("RATE? 1")) == 0.0
        assert float(await conn.ask("GAS? 1")) == 0.0


async def test_power_loss_forgets_the_stage_velocity(twins: Start) -> None:
    lab = await twins("stage1")
    async with line(lab, "stage1") as conn:
        default = await conn.ask("VEL?")
        await conn.ask("VEL 5;:SYST:ERR?")
        assert await conn.ask("VEL?") == b"5\n"
        lab.world.faults.inject("stage1", "power_loss")
    async with line(lab, "stage1") as conn:
        assert await conn.ask("VEL?") == default


# -- sensors and actuators ---------------------------------------------------------------------
async def test_an_open_thermocouple_reads_overflow_on_its_channel_only(twins: Start) -> None:
    lab = await twins("tcs1")
    async with line(lab, "tcs1") as conn:
        fault = lab.world.faults.inject("tcs1", "sensor_loss", channel=3)
        values = [float(v) for v in (await conn.ask("READ?")).decode().split(",")]
        assert values[2] >= 9.9e37
        assert all(v < 100 for i, v in enumerate(values) if i != 2)
        lab.world.faults.clear("tcs1")
        assert not fault.active
        values = [float(v) for v in (await conn.ask("READ?")).decode().split(",")]
        assert all(v < 100 for v in values)


async def test_a_clogged_feeder_delivers_nothing_and_raises_its_clog_alarm(twins: Start) -> None:
    lab = await twins("feeder1")
    async with line(lab, "feeder1") as conn:
        await conn.ask("GAS 2,4;RATE 2,5;:SYST:ERR?")
        lab.world.advance(30)
        assert float(await conn.ask("FLOW? 2")) > 1.0
        lab.world.faults.inject("feeder1", "jam", hopper=2, for_s=60)
        lab.world.advance(30)
        assert float(await conn.ask("FLOW? 2")) == pytest.approx(0.0, abs=1e-9)
        assert int(await conn.ask("ALRM? 2")) & 2  # CLOG
        lab.world.advance(31)  # the jam cleared itself
        assert lab.world.faults.active() == []
        assert float(await conn.ask("FLOW? 2")) > 1.0


async def test_a_following_error_stops_the_stage_and_refuses_moves(twins: Start) -> None:
    lab = await twins("stage1")
    async with line(lab, "stage1") as conn:
        await conn.ask("*CLS;MOV:X 100;:SYST:ERR?")
        lab.world.advance(0.5)
        lab.world.faults.inject("stage1", "jam", axis="X")
        stopped_at = await conn.ask("POS?")
        lab.world.advance(10)
        assert await conn.ask("POS?") == stopped_at  # it stopped where the jam caught it
        assert await conn.ask("SYST:ERR?") == b'-240,"Hardware error; following error on axis X"\n'
        refused_move = await conn.ask("MOV:Y 5;:SYST:ERR?")
        assert refused_move.startswith(b"-240")
        lab.world.faults.clear("stage1", "jam")
        assert await conn.ask("MOV:Y 5;:SYST:ERR?") == b'0,"No error"\n'


async def test_a_stuck_crosshead_latches_a_fault_that_no_reset_clears_while_stuck(
    twins: Start,
) -> None:
    lab = await twins("frame1")
    async with line(lab, "frame1") as conn:
        lab.world.faults.inject("frame1", "jam")
        assert await conn.ask("STAT:FAUL?") == b"STUCK\n"
        assert (await conn.ask("CTRL:RET;:SYST:ERR?")).startswith(b"-240")
        assert (await conn.ask("STAT:RES;:SYST:ERR?")).startswith(b"-200")
        lab.world.faults.clear("frame1")
        assert await conn.ask("STAT:FAUL?") == b"STUCK\n"  # latched, as after any fault
        assert await conn.ask("STAT:RES;:SYST:ERR?") == b'0,"No error"\n'
        assert await conn.ask("STAT:FAUL?") == b"NONE\n"


# -- the furnace (OPC UA) ------------------------------------------------------------------
def _security(settings: dict[str, object]) -> ClientSecurity | None:
    """The client side of the lab entry's OPC UA security (None: NoSecurity)."""
    raw = settings.get("security")
    if raw is None:
        return None
    security = OpcUaSecuritySettings.model_validate(raw).client_security()
    if security is not None:
        security.prepare()
    return security


@contextlib.asynccontextmanager
async def furnace(lab: TwinLab, timeout: float = 2.0) -> AsyncIterator[OpcUaConnection]:
    entry = lab.lab.device("furnace1")
    conn = OpcUaConnection(
        "furnace1",
        entry.address,
        NAMESPACE_URI,
        timeout=timeout,
        backoff=FAST,
        security=_security(entry.settings),
    )
    try:
        await conn.connect()
        yield conn
    finally:
        await conn.disconnect()


async def _read(conn: OpcUaConnection, *ids: str) -> list[object]:
    return [dv.Value.Value for dv in await conn.read(list(ids))]


async def test_furnace_drop_and_power_loss(twins: Start) -> None:
    lab = await twins("furnace1")
    async with furnace(lab) as conn:
        await conn.write("Furnace.RampRate", ua.Variant(5.0, ua.VariantType.Double))
        lab.world.faults.inject("furnace1", "drop")
        assert await _read(conn, "Furnace.RampRate") == [5.0]  # a read reconnects
        assert conn.reconnects >= 1 and conn.restarts == 0  # the same server: no restart
        lab.world.faults.inject("furnace1", "power_loss", for_s=10)
        with pytest.raises(ConnectionLostError):
            await _read(conn, "Furnace.RampRate")  # off: refused
        lab.world.advance(11)
        await asyncio.sleep(0)  # the boot writes the start time on the twins' loop
        with pytest.raises(InstrumentRestartedError, match="furnace1: the instrument restarted"):
            await _read(conn, "Furnace.RampRate")
        assert await _read(conn, "Furnace.RampRate", "Furnace.State") == [0.0, "standby"]


async def test_furnace_stall_times_out_then_answers(twins: Start) -> None:
    lab = await twins("furnace1")
    async with furnace(lab, timeout=0.3) as conn:
        lab.world.faults.inject("furnace1", "stall")
        with pytest.raises(InstrumentTimeoutError, match="furnace1: no reply"):
            await _read(conn, "Furnace.State")
        lab.world.faults.clear("furnace1")
        assert await _read(conn, "Furnace.State") == ["standby"]


@pytest.mark.parametrize("kind", ["garble", "truncate"])
async def test_furnace_corrupted_responses_raise_a_typed_error(twins: Start, kind: str) -> None:
    lab = await twins("furnace1")
    async with furnace(lab, timeout=0.5) as conn:
        lab.world.faults.inject("furnace1", kind)
        with pytest.raises(InstrumentError):
            await _read(conn, "Furnace.State")
        lab.world.faults.clear("furnace1")
        assert await _read(conn, "Furnace.State") == ["standby"]  # a fresh link is clean


async def test_furnace_error_latches_a_controller_fault(twins: Start) -> None:
    lab = await twins("furnace1")
    async with furnace(lab) as conn:
        lab.world.faults.inject("furnace1", "error", message="heater supply fault")
        state = await _read(conn, "Furnace.State", "Furnace.Interlock.Reason")
        assert state == ["interlock", "heater supply fault"]


async def test_furnace_thermocouple_break_and_stuck_heater(twins: Start) -> None:
    lab = await twins("furnace1")
    async with furnace(lab) as conn:
        lab.world.faults.inject("furnace1", "sensor_loss", zone=3)
        pv = "Furnace.Zones.Zone3.ProcessValue"
        broken = "Furnace.Zones.Zone3.ThermocoupleBroken"
        value, flag = await _read(conn, pv, broken)
        assert isinstance(value, float) and math.isnan(value) and flag is True
        lab.world.faults.clear("furnace1")
        value, flag = await _read(conn, pv, broken)
        assert isinstance(value, float) and math.isfinite(value) and flag is False
        lab.world.faults.inject("furnace1", "jam", zone=2)
        lab.world.advance(60)
        (out,) = await _read(conn, "Furnace.Zones.Zone2.Output")
        assert out == 100.0  # a welded relay heats at full power, asked or not


async def test_a_furnace_heater_stuck_below_full_power_holds_the_zone_in_the_alarm_band(
    twins: Start,
) -> None:
    """``jam`` with ``output``: the heater sticks at that level, asked or not. At the bundled
    campaign's gradient (1100 degC over the first three zones, a 60 mm coupon in the middle
    of the tube, 800 degC at its cold end), zone 2 stuck at 65 % (as in the default fault
    schedule) settles inside the alarm band (interlock limit - 25 K) and stays below the
    interlock; with a duration it frees by itself, and the zone cools below the alarm's
    clearing level (limit - 35 K) with nothing latched."""
    lab = await twins("furnace1")
    model = lab.world.instruments["furnace1"]
    assert isinstance(model, FurnaceModel)
    hot_mm = model.config.length_mm / 2 - 30.0  # the campaign's 60 mm coupon, centred
    along = np.clip((model.positions_mm - hot_mm) / 60.0, 0.0, 1.0)
    model.set_ramp_rate(100.0)
    model.set_setpoints(1100.0 - 300.0 * along)
    lab.world.advance(7200)  # settled at the gradient
    limit, period = model.interlock_limit_c, model.config.sample_period_s
    assert abs(model.pv_c[1] - 1100.0) < 1.0 and limit - 25.0 > 1110.0
    stuck_s = 4 * 3600.0
    fault = lab.world.faults.inject("furnace1", "jam", zone=2, output=65, for_s=stuck_s)
    assert fault.params == {"zone": 2, "output": 65.0}
    zone2 = []
    for _ in range(int(stuck_s / period) + 1):  # and the period in which it frees
        lab.world.advance(period)
        zone2.append(float(model.pv_c[1]))
    assert lab.world.faults.active() == []  # the heater freed itself
    assert max(zone2) < limit  # never at the interlock
    assert all(limit - 25.0 <= t < limit for t in zone2[-int(2 * 3600 / period) :])  # held
    assert not model.tripped and model.state == "manual"
    lab.world.advance(300)
    assert model.pv_c[1] < limit - 35.0  # the alarm clears
    assert not model.tripped and not model.heater_stuck.any()
    with pytest.raises(FaultRefusedError, match="output = 0 is outside the allowed range"):
        lab.world.faults.inject("furnace1", "jam", zone=2, output=0)
