"""The furnace twin's OPC UA server against a raw asyncua client, per
docs/protocols/furnace-opcua.md: every node, units and ranges, reads and writes, methods,
refused writes that change nothing, a program run to its end, port resolution, clean stop."""

from __future__ import annotations

import asyncio
import math
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import numpy as np
import pytest
from asyncua import Client, ua
from asyncua.common.node import Node
from asyncua.ua.uaerrors import UaStatusCodeError

import couponlab.simulators.world as world_module
from couponlab.labfile import DeviceEntry
from couponlab.simulators.background import BackgroundLoop
from couponlab.simulators.furnace import NAMESPACE_URI, FurnaceModel, FurnaceTwin, start_twin
from couponlab.simulators.world import Coupon, World

N = 8

SCALARS: dict[str, tuple[ua.VariantType, str | None]] = {
    "Furnace.Identity.Manufacturer": (ua.VariantType.String, None),
    "Furnace.Identity.Model": (ua.VariantType.String, None),
    "Furnace.Identity.SerialNumber": (ua.VariantType.String, None),
    "Furnace.Identity.FirmwareVersion": (ua.VariantType.String, None),
    "Furnace.NumZones": (ua.VariantType.UInt32, None),
    "Furnace.TubeLength": (ua.VariantType.Double, "mm"),
    "Furnace.ZonePositions": (ua.VariantType.Double, "mm"),
    "Furnace.MaxTemperature": (ua.VariantType.Double, "°C"),
    "Furnace.StandbyTemperature": (ua.VariantType.Double, "°C"),
    "Furnace.State": (ua.VariantType.String, None),
    "Furnace.Profile": (ua.VariantType.Double, "°C"),
    "Furnace.SetpointProfile": (ua.VariantType.Double, "°C"),
    "Furnace.RampRate": (ua.VariantType.Double, "K/min"),
    "Furnace.Program.State": (ua.VariantType.String, None),
    "Furnace.Program.Segment": (ua.VariantType.Int32, None),
    "Furnace.Program.SegmentCount": (ua.VariantType.Int32, None),
    "Furnace.Program.Remaining": (ua.VariantType.Double, "s"),
    "Furnace.Interlock.Limit": (ua.VariantType.Double, "°C"),
    "Furnace.Interlock.Tripped": (ua.VariantType.Boolean, None),
    "Furnace.Interlock.Reason": (ua.VariantType.String, None),
    "Furnace.Carrier.CouponId": (ua.VariantType.String, None),
    "Furnace.Carrier.Offset": (ua.VariantType.Double, "mm"),
    "Furnace.Clock.SimTime": (ua.VariantType.Double, "s"),
    "Furnace.Clock.SpeedUp": (ua.VariantType.Double, "1"),
}
ZONE_VARS: dict[str, tuple[ua.VariantType, str | None]] = {
    "ProcessValue": (ua.VariantType.Double, "°C"),
    "Setpoint": (ua.VariantType.Double, "°C"),
    "WorkingSetpoint": (ua.VariantType.Double, "°C"),
    "Output": (ua.VariantType.Double, "%"),
    "ThermocoupleBroken": (ua.VariantType.Boolean, None),
}
METHODS = [
    "Furnace.Standby",
    "Furnace.Program.Load",
    "Furnace.Program.Start",
    "Furnace.Program.Hold",
    "Furnace.Program.Resume",
    "Furnace.Program.Abort",
    "Furnace.Interlock.Reset",
]
WRITABLE = {
    "Furnace.SetpointProfile",
    "Furnace.RampRate",
    "Furnace.Interlock.Limit",
    "Furnace.Carrier.CouponId",
    "Furnace.Carrier.Offset",
}


def all_variables() -> dict[str, tuple[ua.VariantType, str | None]]:
    out = dict(SCALARS)
    for i in range(1, N + 1):
        for name, spec in ZONE_VARS.items():
            out[f"Furnace.Zones.Zone{i}.{name}"] = spec
    return out


def entry(address: str = "opc.tcp://127.0.0.1:0", **twin_config: object) -> DeviceEntry:
    return DeviceEntry(
        name="furnace1",
        family="gradient_furnace",
        driver="couponlab.drivers.furnace:OpcUaGradientFurnace",
        address=address,
        twin=True,
        twin_config=dict(twin_config),
    )


@dataclass
class Rig:
    bg: BackgroundLoop
    world: World
    twin: FurnaceTwin

    @property
    def model(self) -> FurnaceModel:
        return self.twin.model

    def advance(self, seconds: float) -> None:
        """Step virtual time deterministically on the twins' thread."""
        self.bg.call(self.world.advance, seconds)


@pytest.fixture
def rig() -> Iterator[Rig]:
    """A furnace twin on its own loop and thread, with virtual time paused (tests step it)."""
    bg = BackgroundLoop("furnace-twin")
    try:
        world = bg.call(lambda: World(paused=True))
        bg.call(world.add_coupon, Coupon("C1"))
        bg.call(world.coupons["C1"].set_composition, {"Cr": 0.3, "Ni": 0.7})
        twin = bg.run(start_twin(world, entry()))
        try:
            yield Rig(bg, world, twin)
        finally:
            bg.run(twin.stop())
    finally:
        bg.stop()


class Ua:
    """A raw client with nodes addressed by browse path."""

    def __init__(self, client: Client, ns: int) -> None:
        self.client = client
        self.ns = ns

    def node(self, path: str) -> Node:
        return self.client.get_node(ua.NodeId(path, self.ns))

    async def read(self, path: str) -> object:
        return await self.node(path).read_value()

    async def write(self, path: str, value: object, vtype: ua.VariantType) -> None:
        await self.node(path).write_value(ua.DataValue(ua.Variant(value, vtype)))

    async def call(self, path: str, *args: object) -> object:
        parent = path.rsplit(".", 1)[0]
        return await self.node(parent).call_method(ua.NodeId(path, self.ns), *args)


@pytest.fixture
async def cl(rig: Rig) -> AsyncIterator[Ua]:
    client = Client(rig.twin.address, timeout=5)
    async with client:
        ns = await client.get_namespace_index(NAMESPACE_URI)
        yield Ua(client, ns)


def doubles(values: list[float]) -> ua.Variant:
    return ua.Variant(values, ua.VariantType.Double)


async def test_every_node_exists_with_type_units_and_range(rig: Rig, cl: Ua) -> None:
    for path, (vtype, unit) in all_variables().items():
        node = cl.node(path)
        dv = await node.read_data_value()
        assert dv.StatusCode is not None and dv.StatusCode.is_good(), path
        assert dv.Value is not None and dv.Value.VariantType == vtype, path
        bname = await node.read_browse_name()
        assert bname == ua.QualifiedName(path.rsplit(".", 1)[1], cl.ns)
        if unit is not None:
            eu = await cl.node(f"{path}.EngineeringUnits").read_value()
            assert eu.DisplayName.Text == unit, path
            assert eu.NamespaceUri == "http://www.opcfoundation.org/UA/units/un/cefact"
            rng = await cl.node(f"{path}.EURange").read_value()
            assert rng.Low < rng.High, path
            props = {
                p.Name for p in await node.get_properties() for p in [await p.read_browse_name()]
            }
            assert {"EngineeringUnits", "EURange"} <= props, path
        writable = path in WRITABLE or path.endswith(".Setpoint")
        access = await node.read_attribute(ua.AttributeIds.AccessLevel)
        assert bool(access.Value.Value & ua.AccessLevel.CurrentWrite.mask) == writable, path
    for path in METHODS:
        assert await cl.node(path).read_node_class() == ua.NodeClass.Method, path


async def _units_codes_and_ranges(cl: Ua) -> None:
    eu = await cl.node("Furnace.Zones.Zone1.Setpoint.EngineeringUnits").read_value()
    assert eu.UnitId == 4408652  # UNECE "CEL"
    eu = await cl.node("Furnace.RampRate.EngineeringUnits").read_value()
    assert eu.UnitId == 4600113  # UNECE "F11", kelvin per minute
    rng = await cl.node("Furnace.Zones.Zone3.Setpoint.EURange").read_value()
    assert (rng.Low, rng.High) == (0.0, 1200.0)
    rng = await cl.node("Furnace.Zones.Zone3.Output.EURange").read_value()
    assert (rng.Low, rng.High) == (0.0, 100.0)


async def test_static_values_units_and_ranges(cl: Ua) -> None:
    assert await cl.read("Furnace.NumZones") == N
    assert await cl.read("Furnace.TubeLength") == 300.0
    positions = await cl.read("Furnace.ZonePositions")
    assert positions == pytest.approx([18.75 + 37.5 * i for i in range(N)])
    assert await cl.read("Furnace.MaxTemperature") == 1200.0
    assert await cl.read("Furnace.StandbyTemperature") == 25.0
    assert await cl.read("Furnace.Interlock.Limit") == 1225.0
    assert await cl.read("Furnace.State") == "standby"
    assert await cl.read("Furnace.Program.State") == "idle"
    assert await cl.read("Furnace.Program.Segment") == -1
    await _units_codes_and_ranges(cl)


async def test_setpoint_writes_act_at_once_and_heat_the_zone(rig: Rig, cl: Ua) -> None:
    await cl.write("Furnace.Zones.Zone2.Setpoint", 400.0, ua.VariantType.Double)
    assert await cl.read("Furnace.State") == "manual"
    assert rig.bg.call(lambda: float(rig.model.target_c[1])) == 400.0
    sp = await cl.read("Furnace.SetpointProfile")
    assert sp == [25.0, 400.0] + [25.0] * (N - 2)
    rig.advance(1800)
    pv = await cl.read("Furnace.Zones.Zone2.ProcessValue")
    assert isinstance(pv, float) and abs(pv - 400.0) < 2.0
    profile = await cl.read("Furnace.Profile")
    assert isinstance(profile, list) and profile[1] == pv
    dv = await cl.node("Furnace.Zones.Zone2.ProcessValue").read_data_value()
    assert dv.SourceTimestamp is not None  # wall-clock UTC of the value's last change
    age = datetime.now(UTC) - dv.SourceTimestamp.replace(tzinfo=UTC)
    assert timedelta(0) <= age < timedelta(seconds=60)
    assert await cl.read("Furnace.Clock.SimTime") == pytest.approx(1800.0)


async def test_setpoint_profile_and_ramp_rate(rig: Rig, cl: Ua) -> None:
    await cl.write("Furnace.RampRate", 10.0, ua.VariantType.Double)
    target = [float(x) for x in np.linspace(600, 500, N)]
    await cl.write("Furnace.SetpointProfile", target, ua.VariantType.Double)
    assert await cl.read("Furnace.SetpointProfile") == target
    rig.advance(60)
    wsp = await cl.read("Furnace.Zones.Zone1.WorkingSetpoint")
    assert isinstance(wsp, float) and wsp <= 25.0 + 10.0 + 1.0  # ramped, not jumped


BAD_WRITES: list[tuple[str, object, ua.VariantType, str]] = [
    ("Furnace.Zones.Zone1.Setpoint", 1500.0, ua.VariantType.Double, "BadOutOfRange"),
    ("Furnace.Zones.Zone1.Setpoint", -1.0, ua.VariantType.Double, "BadOutOfRange"),
    ("Furnace.Zones.Zone1.Setpoint", math.nan, ua.VariantType.Double, "BadOutOfRange"),
    ("Furnace.Zones.Zone1.Setpoint", "hot", ua.VariantType.String, "BadTypeMismatch"),
    ("Furnace.Zones.Zone1.Setpoint", 100, ua.VariantType.Int32, "BadTypeMismatch"),
    ("Furnace.SetpointProfile", [100.0] * (N - 1), ua.VariantType.Double, "BadOutOfRange"),
    ("Furnace.SetpointProfile", [100.0] * 7 + [math.nan], ua.VariantType.Double, "BadOutOfRange"),
    ("Furnace.SetpointProfile", 100.0, ua.VariantType.Double, "BadTypeMismatch"),
    ("Furnace.RampRate", -1.0, ua.VariantType.Double, "BadOutOfRange"),
    ("Furnace.RampRate", math.inf, ua.VariantType.Double, "BadOutOfRange"),
    ("Furnace.Interlock.Limit", math.nan, ua.VariantType.Double, "BadOutOfRange"),
    ("Furnace.Carrier.CouponId", "NOPE", ua.VariantType.String, "BadNotFound"),
    ("Furnace.Carrier.Offset", 301.0, ua.VariantType.Double, "BadOutOfRange"),
    ("Furnace.Zones.Zone1.ProcessValue", 5.0, ua.VariantType.Double, "BadNotWritable"),
    ("Furnace.State", "program", ua.VariantType.String, "BadNotWritable"),
]


async def test_bad_writes_are_refused_and_change_nothing(rig: Rig, cl: Ua) -> None:
    await cl.write("Furnace.SetpointProfile", [300.0] * N, ua.VariantType.Double)
    rig.advance(120)
    paths = list(all_variables())
    nodes = [cl.node(p) for p in paths]
    before = await cl.client.read_values(nodes)
    for path, value, vtype, code in BAD_WRITES:
        with pytest.raises(UaStatusCodeError) as info:
            await cl.write(path, value, vtype)
        assert type(info.value).__name__ == code, (path, value)
    after = await cl.client.read_values(nodes)
    changed = [p for p, a, b in zip(paths, before, after, strict=True) if not _same(a, b)]
    assert changed == []


async def test_one_request_writes_several_nodes_with_per_node_status(rig: Rig, cl: Ua) -> None:
    nodes = [cl.node("Furnace.RampRate"), cl.node("Furnace.Zones.Zone2.Setpoint")]
    values = [
        ua.DataValue(ua.Variant(5.0, ua.VariantType.Double)),
        ua.DataValue(ua.Variant(5000.0, ua.VariantType.Double)),
    ]
    codes = await cl.client.write_values(nodes, values, raise_on_partial_error=False)
    assert [c.is_good() for c in codes] == [True, False]
    assert codes[1].value == ua.StatusCodes.BadOutOfRange
    assert await cl.read("Furnace.RampRate") == 5.0
    assert await cl.read("Furnace.Zones.Zone2.Setpoint") == 25.0
    await _partial_array_writes_are_refused(cl)


def _same(a: object, b: object) -> bool:
    """Equal values, NaN equal to NaN (element-wise for lists)."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b


async def test_program_runs_to_completion(rig: Rig, cl: Ua) -> None:
    targets = [200.0] * N + [150.0] * N
    await cl.call(
        "Furnace.Program.Load", doubles(targets), doubles([20.0, 20.0]), doubles([60.0, 30.0])
    )
    assert await cl.read("Furnace.Program.SegmentCount") == 2
    assert await cl.read("Furnace.Program.State") == "idle"
    await cl.call("Furnace.Program.Start")
    assert await cl.read("Furnace.State") == "program"
    assert await cl.read("Furnace.Program.State") == "running"
    assert await cl.read("Furnace.Program.Segment") == 0
    remaining = await cl.read("Furnace.Program.Remaining")
    # 175 K at 20 K/min + 60 s, then 50 K at 20 K/min + 30 s
    assert remaining == pytest.approx(175 * 3 + 60 + 50 * 3 + 30, abs=5)
    # setpoint writes are refused while a program runs
    with pytest.raises(UaStatusCodeError, match="BadInvalidState"):
        await cl.write("Furnace.Zones.Zone1.Setpoint", 100.0, ua.VariantType.Double)
    rig.advance(600)
    assert await cl.read("Furnace.Program.Segment") == 1
    rig.advance(400)
    assert await cl.read("Furnace.Program.State") == "complete"
    assert await cl.read("Furnace.Program.Segment") == -1
    assert await cl.read("Furnace.State") == "manual"
    assert await cl.read("Furnace.SetpointProfile") == [150.0] * N


async def test_hold_resume_abort_and_bad_calls(rig: Rig, cl: Ua) -> None:
    with pytest.raises(UaStatusCodeError, match="BadInvalidState"):
        await cl.call("Furnace.Program.Start")  # nothing loaded
    with pytest.raises(UaStatusCodeError, match="BadInvalidArgument"):
        await cl.call(
            "Furnace.Program.Load", doubles([100.0] * 3), doubles([10.0]), doubles([0.0])
        )
    with pytest.raises(UaStatusCodeError, match="BadOutOfRange"):
        await cl.call("Furnace.Program.Load", doubles([100.0] * N), doubles([0.0]), doubles([0.0]))
    with pytest.raises(UaStatusCodeError, match="BadOutOfRange"):
        await cl.call(
            "Furnace.Program.Load", doubles([1300.0] * N), doubles([10.0]), doubles([0.0])
        )
    with pytest.raises(UaStatusCodeError, match="BadArgumentsMissing"):
        await cl.call("Furnace.Program.Load", doubles([100.0] * N))
    assert await cl.read("Furnace.Program.SegmentCount") == 0
    await cl.call("Furnace.Program.Load", doubles([300.0] * N), doubles([10.0]), doubles([0.0]))
    await cl.call("Furnace.Program.Start")
    rig.advance(60)
    await cl.call("Furnace.Program.Hold")
    assert await cl.read("Furnace.Program.State") == "held"
    wsp = await cl.read("Furnace.Zones.Zone1.WorkingSetpoint")
    rig.advance(120)
    assert await cl.read("Furnace.Zones.Zone1.WorkingSetpoint") == wsp
    with pytest.raises(UaStatusCodeError, match="BadInvalidState"):
        await cl.call("Furnace.Program.Hold")
    await cl.call("Furnace.Program.Resume")
    rig.advance(60)
    later = await cl.read("Furnace.Zones.Zone1.WorkingSetpoint")
    assert isinstance(later, float) and isinstance(wsp, float) and later > wsp
    await cl.call("Furnace.Program.Abort")
    assert await cl.read("Furnace.Program.State") == "aborted"
    assert await cl.read("Furnace.Zones.Zone1.Setpoint") == later
    await cl.call("Furnace.Standby")
    assert await cl.read("Furnace.State") == "standby"
    assert await cl.read("Furnace.SetpointProfile") == [25.0] * N


async def test_interlock_trips_latches_and_resets(rig: Rig, cl: Ua) -> None:
    await cl.write("Furnace.SetpointProfile", [400.0] * N, ua.VariantType.Double)
    rig.advance(1800)
    # lowering the limit under the hot zones trips it at the next controller period
    await cl.write("Furnace.Interlock.Limit", 300.0, ua.VariantType.Double)
    rig.advance(2)
    assert await cl.read("Furnace.Interlock.Tripped") is True
    reason = await cl.read("Furnace.Interlock.Reason")
    assert isinstance(reason, str) and reason.startswith("Zone") and "> limit 300.0" in reason
    assert await cl.read("Furnace.State") == "interlock"
    assert await cl.read("Furnace.SetpointProfile") == [25.0] * N
    outputs = [await cl.read(f"Furnace.Zones.Zone{i}.Output") for i in range(1, N + 1)]
    assert outputs == [0.0] * N
    with pytest.raises(UaStatusCodeError, match="BadInvalidState"):
        await cl.write("Furnace.Zones.Zone1.Setpoint", 100.0, ua.VariantType.Double)
    with pytest.raises(UaStatusCodeError, match="BadInvalidState"):
        await cl.call("Furnace.Interlock.Reset")  # still hot: stays latched
    assert await cl.read("Furnace.Interlock.Tripped") is True
    rig.advance(4 * 3600)
    profile = await cl.read("Furnace.Profile")
    assert isinstance(profile, list) and max(profile) < 300.0
    assert await cl.read("Furnace.Interlock.Tripped") is True  # latched though cool
    await cl.call("Furnace.Interlock.Reset")
    assert await cl.read("Furnace.Interlock.Tripped") is False
    assert await cl.read("Furnace.Interlock.Reason") == ""
    assert await cl.read("Furnace.State") == "standby"


async def test_stuck_heater_trips_the_interlock(rig: Rig, cl: Ua) -> None:
    await cl.write("Furnace.Interlock.Limit", 300.0, ua.VariantType.Double)
    rig.bg.call(rig.model.set_heater_stuck, 4)
    rig.advance(120)
    assert await cl.read("Furnace.Zones.Zone5.Output") == 100.0
    rig.advance(1200)
    assert await cl.read("Furnace.Interlock.Tripped") is True
    reason = await cl.read("Furnace.Interlock.Reason")
    assert isinstance(reason, str) and reason.startswith("Zone5 PV")
    assert await cl.read("Furnace.Zones.Zone5.Output") == 0.0  # the contactor cuts it


async def test_thermocouple_break_reads_nan(rig: Rig, cl: Ua) -> None:
    await _fault_injection_is_visible_at_the_next_read(rig, cl)
    await cl.write("Furnace.SetpointProfile", [300.0] * N, ua.VariantType.Double)
    rig.advance(300)
    rig.bg.call(rig.model.break_thermocouple, 2)
    rig.advance(5)
    pv = await cl.read("Furnace.Zones.Zone3.ProcessValue")
    assert isinstance(pv, float) and math.isnan(pv)
    assert await cl.read("Furnace.Zones.Zone3.ThermocoupleBroken") is True
    assert await cl.read("Furnace.Zones.Zone3.Output") == 0.0
    profile = await cl.read("Furnace.Profile")
    assert isinstance(profile, list) and math.isnan(profile[2]) and not math.isnan(profile[1])


async def test_carrier_places_coupon_in_world(rig: Rig, cl: Ua) -> None:
    await cl.write("Furnace.Carrier.Offset", 120.0, ua.VariantType.Double)
    await cl.write("Furnace.Carrier.CouponId", "C1", ua.VariantType.String)
    holder = rig.bg.call(
        lambda: (rig.world.coupons["C1"].holder, rig.world.coupons["C1"].offset_mm)
    )
    assert holder == (rig.model, 120.0)
    assert await cl.read("Furnace.Carrier.CouponId") == "C1"
    await cl.write("Furnace.Carrier.CouponId", "", ua.VariantType.String)
    assert rig.bg.call(lambda: rig.world.coupons["C1"].holder) is None


async def test_reads_follow_the_wall_clock(
    rig: Rig, cl: Ua, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the world's wall clock is a fake one that moves only when the test moves it
    wall = [1000.0]
    fake = SimpleNamespace(monotonic=lambda: wall[0], perf_counter=lambda: wall[0])
    monkeypatch.setattr(world_module, "time", fake)
    rig.bg.call(rig.world.set_speedup, 1000.0)
    rig.bg.call(rig.world.resume)
    t0 = await cl.read("Furnace.Clock.SimTime")
    assert await cl.read("Furnace.Clock.SpeedUp") == 1000.0
    ticks0 = rig.bg.call(lambda: rig.model.ticks)
    wall[0] += 0.2  # 0.2 s of wall time pass
    t1 = await cl.read("Furnace.Clock.SimTime")
    assert isinstance(t0, float) and isinstance(t1, float)
    assert t1 - t0 == pytest.approx(200.0)  # the read brought the model to "now"
    assert rig.bg.call(lambda: rig.model.ticks) >= ticks0 + 199  # one controller period a s


async def _partial_array_writes_are_refused(cl: Ua) -> None:
    wv = ua.WriteValue(
        NodeId=cl.node("Furnace.SetpointProfile").nodeid,
        AttributeId=ua.AttributeIds.Value,
        IndexRange="2",
        Value=ua.DataValue(ua.Variant([300.0], ua.VariantType.Double)),
    )
    params = ua.WriteParameters(NodesToWrite=[wv])
    codes = await cl.client.uaclient.write(params)
    assert codes[0].value == ua.StatusCodes.BadWriteNotSupported
    assert await cl.read("Furnace.SetpointProfile") == [25.0] * N


def test_port_zero_resolves_and_fixed_port_is_used(free_port: int) -> None:
    bg = BackgroundLoop("furnace-ports")
    try:
        world = bg.call(World)
        twin = bg.run(start_twin(world, entry()))
        try:
            assert twin.address.startswith("opc.tcp://127.0.0.1:")
            assert int(twin.address.rsplit(":", 1)[1]) > 0
            assert bg.call(lambda: world.instruments["furnace1"]) is twin.model
        finally:
            bg.run(twin.stop())
        assert "furnace1" not in world.instruments
        assert bg.run(_other_tasks()) == []  # the server left nothing running on its loop
        fixed = bg.run(start_twin(world, entry(f"opc.tcp://127.0.0.1:{free_port}", zones=3)))
        try:
            assert fixed.address == f"opc.tcp://127.0.0.1:{free_port}"
            assert asyncio.run(_zone_layout(fixed.address)) == (3, [True, True, True, False])
        finally:
            bg.run(fixed.stop())
    finally:
        bg.stop()
    assert not [t for t in threading.enumerate() if t.name == "furnace-ports"]


def test_non_loopback_address_is_refused() -> None:
    bg = BackgroundLoop("furnace-bad")
    try:
        world = bg.call(World)
        with pytest.raises(ValueError, match=r"127\.0\.0\.1"):
            bg.run(start_twin(world, entry("opc.tcp://0.0.0.0:4840")))
        assert "furnace1" not in world.instruments
    finally:
        bg.stop()


async def _fault_injection_is_visible_at_the_next_read(rig: Rig, cl: Ua) -> None:
    assert await cl.read("Furnace.Zones.Zone6.ThermocoupleBroken") is False
    rig.bg.call(rig.model.break_thermocouple, 5)  # no time passes
    assert await cl.read("Furnace.Zones.Zone6.ThermocoupleBroken") is True
    pv = await cl.read("Furnace.Zones.Zone6.ProcessValue")
    assert isinstance(pv, float) and math.isnan(pv)
    rig.bg.call(rig.model.repair_thermocouple, 5)
    assert await cl.read("Furnace.Zones.Zone6.ThermocoupleBroken") is False


class Changes:
    """Collects data-change notifications of a subscription."""

    def __init__(self) -> None:
        self.values: list[object] = []
        self.event = asyncio.Event()

    def datachange_notification(self, node: Node, val: object, data: object) -> None:
        self.values.append(val)
        if len(self.values) >= 3:
            self.event.set()


async def test_subscriptions_see_changes_without_reads(rig: Rig, cl: Ua) -> None:
    await cl.write("Furnace.SetpointProfile", [500.0] * N, ua.VariantType.Double)
    changes = Changes()
    sub = await cl.client.create_subscription(20, changes)
    try:
        await sub.subscribe_data_change(cl.node("Furnace.Zones.Zone1.ProcessValue"))
        rig.bg.call(rig.world.set_speedup, 1000.0)
        rig.bg.call(rig.world.resume)  # virtual time now follows the wall clock
        await asyncio.wait_for(changes.event.wait(), timeout=10)
    finally:
        await sub.delete()
    values = [v for v in changes.values if isinstance(v, float)]
    assert len(values) >= 3 and values[-1] > values[0] > 24.0  # heating, seen as it happens


async def _zone_layout(address: str) -> tuple[object, list[bool]]:
    """Return NumZones and which of Zone1..Zone4 exist, read by a fresh client."""
    async with Client(address, timeout=5) as client:
        ns = await client.get_namespace_index(NAMESPACE_URI)
        zones = await client.get_node(ua.NodeId("Furnace.NumZones", ns)).read_value()
        exists = []
        for i in range(1, 5):
            dv = await client.read_attributes(
                [client.get_node(ua.NodeId(f"Furnace.Zones.Zone{i}.Setpoint", ns))]
            )
            status = dv[0].StatusCode
            exists.append(status is not None and status.is_good())
        return zones, exists


async def _other_tasks() -> list[str]:
    me = asyncio.current_task()
    return [t.get_name() for t in asyncio.all_tasks() if t is not me and not t.done()]


def test_busy_fixed_port_fails_cleanly() -> None:
    bg = BackgroundLoop("furnace-busy")
    try:
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            world = bg.call(World)
            with pytest.raises(OSError, match="address already in use"):
                bg.run(start_twin(world, entry(f"opc.tcp://127.0.0.1:{port}")))
        assert "furnace1" not in world.instruments
        assert bg.run(_other_tasks()) == []
    finally:
        bg.stop()
