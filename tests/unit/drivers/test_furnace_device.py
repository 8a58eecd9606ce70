"""OpcUaGradientFurnace in ophyd-async mock mode: readings, units, the gradient/program/clock
logic, and bad input that never reaches a put or a method call."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import numpy as np
import pytest
from ophyd_async.core import (
    callback_on_mock_execute,
    callback_on_mock_put,
    get_mock_execute,
    get_mock_put,
    init_devices,
    set_mock_value,
)

from couponlab.drivers.furnace import (
    FurnaceState,
    OpcUaGradientFurnace,
    OpcUaStatusError,
    ProgramState,
)
from couponlab.drivers.furnace._validation import FurnaceLimits, gradient_plan
from couponlab.errors import (
    InputError,
    InstrumentError,
    InstrumentTimeoutError,
    InterlockTrippedError,
    OutOfLimitsError,
    UnitError,
)
from couponlab.interfaces import GradientFurnace
from couponlab.interfaces.furnace import (
    CouponPlacement,
    FurnaceProgram,
    GradientSetpoint,
    LinearGradient,
    ProgramAbortedError,
    ProgramSegment,
)
from couponlab.labfile import DeviceEntry
from couponlab.units import Q_

N = 8
POSITIONS = (np.arange(N) + 0.5) * 300.0 / N  # the mock's (and the contract's) default


@pytest.fixture
async def furnace() -> OpcUaGradientFurnace:
    async with init_devices(mock=True):
        furnace = OpcUaGradientFurnace(
            "opc.tcp://127.0.0.1:4840", max_temperature="1150 degC", poll_period=0.005
        )
    return furnace


def _no_writes(f: OpcUaGradientFurnace) -> None:
    """Assert nothing was written to the furnace and no method was called."""
    slots = [slot.coupon_id for slot in f.slots.values()]
    for sig in (f.setpoint_profile, f.ramp_rate, f.carrier.offset, f.carrier.coupon_id, *slots):
        get_mock_put(sig).assert_not_called()
    for zone in f.zones.values():
        get_mock_put(zone.setpoint).assert_not_called()
    for cmd in (f.program.load_cmd, f.program.start_cmd, f.standby_cmd):
        get_mock_execute(cmd).assert_not_called()


async def _after_first_poll(f: OpcUaGradientFurnace) -> None:
    """Wait, in event-loop iterations rather than wall time, until the gradient has written
    its setpoints and read the furnace once (its deadline is set by that first poll)."""
    for _ in range(10_000):
        if get_mock_put(f.setpoint_profile).called:
            break
        await asyncio.sleep(0)
    for _ in range(200):  # the first poll's reads are a handful of loop iterations
        await asyncio.sleep(0)


def _manual_on_write(f: OpcUaGradientFurnace) -> None:
    """Make the mock furnace leave standby when setpoints are written (as the contract says)."""
    callback_on_mock_put(
        f.setpoint_profile, lambda v: set_mock_value(f.operating_state, FurnaceState.MANUAL)
    )


def _mirror_setpoints(f: OpcUaGradientFurnace) -> None:
    """Make the mock furnace reach whatever setpoint profile is written."""

    def reach(v: Any) -> None:
        set_mock_value(f.operating_state, FurnaceState.MANUAL)
        set_mock_value(f.profile, np.asarray(v))

    callback_on_mock_put(f.setpoint_profile, reach)


# -- construction -------------------------------------------------------------------------


def _entry(**kw: Any) -> DeviceEntry:
    base: dict[str, Any] = {
        "name": "furnace1",
        "family": "gradient_furnace",
        "driver": "couponlab.drivers.furnace:OpcUaGradientFurnace",
        "address": "opc.tcp://127.0.0.1:4840",
    }
    return DeviceEntry(**(base | kw))


def test_from_lab_entry_reads_limits_and_settings() -> None:
    f = OpcUaGradientFurnace.from_lab_entry(
        _entry(
            limits={"max_temperature": "1100 degC"},
            settings={"zones": 6, "timeout_s": 1.5, "poll_period_s": 0.1},
        )
    )
    assert f.name == "furnace1" and f.num_zones == 6 and len(f.zones) == 6
    assert f.lab_max_temperature_c == 1100.0
    assert f.connection.timeout == 1.5 and f.poll_period == 0.1
    assert math.isinf(OpcUaGradientFurnace.from_lab_entry(_entry()).lab_max_temperature_c)
    kelvin = OpcUaGradientFurnace.from_lab_entry(_entry(limits={"max_temperature": "1373.15 K"}))
    assert kelvin.lab_max_temperature_c == pytest.approx(1100.0)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"settings": {"zone": 8}}, "settings.zone: unknown key; did you mean 'zones'"),
        ({"limits": {"max_temp": "900 degC"}}, "limits.max_temp: unknown key"),
        ({"limits": {"max_temperature": "100 delta_degC"}}, "temperature difference"),
        ({"limits": {"max_temperature": "5 mm"}}, "wrong unit"),
        ({"settings": {"zones": 0}}, "settings.zones: 0: .*greater than or equal to 1"),
        ({"settings": {"timeout": 2}}, "settings.timeout: unknown key; did you mean 'timeout_s'"),
        ({"settings": {"timeout_s": "soon"}}, "timeout_s"),
        ({"settings": {"timeout_s": 0}}, "timeout_s"),
        ({"settings": {"poll_period_s": "10 s"}}, r"settings.poll_period_s: '10 s' must be"),
        ({"address": "tcp://127.0.0.1:4840"}, "not an opc.tcp://host:port URL"),
        ({"address": "opc.tcp://127.0.0.1"}, "needs a host and a port"),
    ],
)
def test_bad_lab_entries_are_refused(kw: dict[str, Any], match: str) -> None:
    with pytest.raises(InputError, match=match):
        OpcUaGradientFurnace.from_lab_entry(_entry(**kw))


async def test_implements_the_interface(furnace: OpcUaGradientFurnace) -> None:
    assert isinstance(furnace, GradientFurnace)
    device: GradientFurnace = furnace  # checked by mypy too
    assert device.num_zones == N


# -- readings -----------------------------------------------------------------------------


async def test_read_is_profile_setpoints_state_interlock_and_clock(
    furnace: OpcUaGradientFurnace,
) -> None:
    set_mock_value(furnace.profile, np.linspace(900, 600, N))
    set_mock_value(furnace.clock.sim_time, 3600.0)
    reading = await furnace.read()
    assert set(reading) == {
        "furnace-profile",
        "furnace-setpoint_profile",
        "furnace-operating_state",
        "furnace-interlock-tripped",
        "furnace-interlock-reason",
        "furnace-clock-sim_time",
    }
    np.testing.assert_array_equal(reading["furnace-profile"]["value"], np.linspace(900, 600, N))
    assert reading["furnace-clock-sim_time"]["value"] == 3600.0
    assert furnace.hints == {"fields": ["furnace-profile", "furnace-clock-sim_time"]}


async def test_descriptors_carry_units(furnace: OpcUaGradientFurnace) -> None:
    desc = await furnace.describe()
    assert desc["furnace-profile"]["units"] == "degC"
    assert desc["furnace-profile"]["shape"] == [N]
    assert desc["furnace-setpoint_profile"]["units"] == "degC"
    assert desc["furnace-clock-sim_time"]["units"] == "s"
    conf = await furnace.describe_configuration()
    assert conf["furnace-ramp_rate"]["units"] == "K/min"
    assert conf["furnace-zone_positions"]["units"] == "mm"
    assert conf["furnace-max_temperature"]["units"] == "degC"
    assert conf["furnace-interlock-limit"]["units"] == "degC"
    assert conf["furnace-carrier-offset"]["units"] == "mm"
    zone = await furnace.zones[3].describe()
    assert zone["furnace-zones-3-process_value"]["units"] == "degC"
    assert zone["furnace-zones-3-working_setpoint"]["units"] == "degC"
    assert zone["furnace-zones-3-output"]["units"] == "%"


async def test_identify_state_and_profile(furnace: OpcUaGradientFurnace) -> None:
    assert await furnace.identify() == "couponlab, mock gradient furnace, MOCK-0, 0"
    assert await furnace.state() == "standby"
    set_mock_value(furnace.operating_state, FurnaceState.INTERLOCK)
    assert await furnace.state() == "interlock"
    set_mock_value(furnace.profile, np.full(N, 30.0))
    set_mock_value(furnace.clock.sim_time, 12.5)
    profile = await furnace.read_profile()
    np.testing.assert_array_equal(profile.positions_mm, POSITIONS)
    np.testing.assert_array_equal(profile.temperatures_c, np.full(N, 30.0))
    assert profile.sim_time_s == 12.5


# -- gradient -----------------------------------------------------------------------------


async def test_gradient_writes_linear_setpoints_and_waits(furnace: OpcUaGradientFurnace) -> None:
    _manual_on_write(furnace)
    status = furnace.set_gradient("1000 degC", "700 degC", ramp_rate="25 K/min")
    await _after_first_poll(furnace)
    assert not status.done  # the zones are still at 25 degC
    expected = 1000.0 + (700.0 - 1000.0) * (POSITIONS - POSITIONS[0]) / (
        POSITIONS[-1] - POSITIONS[0]
    )
    written = get_mock_put(furnace.setpoint_profile).call_args.args[0]
    np.testing.assert_allclose(written, expected)
    get_mock_put(furnace.ramp_rate).assert_called_once_with(25.0)
    set_mock_value(furnace.profile, expected + 1.5)  # within the default 2 K
    await asyncio.wait_for(status, 2.0)
    assert status.success


async def test_gradient_positions_clamp_and_either_direction(
    furnace: OpcUaGradientFurnace,
) -> None:
    _mirror_setpoints(furnace)
    await furnace.set_gradient(
        Q_(1273.15, "K"), "700 degC", hot_position="262.5 mm", cold_position=Q_(3.75, "cm")
    )
    written = get_mock_put(furnace.setpoint_profile).call_args.args[0]
    frac = np.clip((POSITIONS - 262.5) / (37.5 - 262.5), 0, 1)
    np.testing.assert_allclose(written, 1000.0 - 300.0 * frac)
    # ends hold their temperature, never extrapolated
    assert written[0] == pytest.approx(700.0) and written[-1] == pytest.approx(1000.0)
    assert np.all(written <= 1000.0 + 1e-9) and np.all(written >= 700.0 - 1e-9)


BAD_GRADIENTS: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"hot": "1250 degC"}, OutOfLimitsError, r"hot-end temperature = 1250 .*\[0, 1150\] degC"),
    ({"hot": 1160}, OutOfLimitsError, "1150"),  # lab limit below the instrument's 1200
    ({"hot": "1500 K"}, OutOfLimitsError, "1226.85"),
    ({"cold": "-10 degC"}, OutOfLimitsError, "cold-end temperature"),
    ({"hot": Q_(900, "delta_degC")}, UnitError, "temperature difference"),
    ({"hot": "900 delta_degC"}, UnitError, "temperature difference"),
    ({"hot": math.nan}, UnitError, "not a finite number"),
    ({"hot": "900 mm"}, UnitError, "wrong unit"),
    ({"hot": "hot"}, UnitError, "cannot be parsed"),
    ({"hot": True}, UnitError, "boolean"),
    ({"ramp_rate": "10 degC/min"}, UnitError, "offset temperature unit"),
    ({"ramp_rate": "10 mm/min"}, UnitError, "wrong unit"),
    ({"ramp_rate": -5}, OutOfLimitsError, "ramp rate"),
    ({"ramp_rate": math.inf}, UnitError, "not a finite number"),
    ({"tolerance": "2 mm"}, UnitError, "wrong unit"),
    ({"ramp_rate": 0}, OutOfLimitsError, "ramp rate"),
    ({"tolerance": 0}, OutOfLimitsError, "tolerance"),
    ({"hot_position": "400 mm"}, OutOfLimitsError, r"hot-end position = 400 .*\[0, 300\] mm"),
    ({"hot_position": "5 s"}, UnitError, "wrong unit"),
    ({"hot_position": "150 mm", "cold_position": "15 cm"}, InputError, "must differ"),
]


@pytest.mark.parametrize(("kw", "error", "match"), BAD_GRADIENTS)
async def test_bad_gradient_is_refused_before_any_write(
    furnace: OpcUaGradientFurnace, kw: dict[str, Any], error: type[Exception], match: str
) -> None:
    args: dict[str, Any] = {"hot": "1000 degC", "cold": "700 degC"} | kw
    with pytest.raises(error, match=match) as info:
        await furnace.set(GradientSetpoint(**args))
    assert "furnace" in str(info.value)
    _no_writes(furnace)


async def test_tripped_interlock_refuses_before_any_write(
    furnace: OpcUaGradientFurnace,
) -> None:
    set_mock_value(furnace.interlock.tripped, True)
    set_mock_value(furnace.interlock.reason, "zone 3 at 1260 degC >= limit 1225 degC")
    with pytest.raises(InterlockTrippedError, match="zone 3 at 1260"):
        await furnace.set_gradient("900 degC", "600 degC")
    with pytest.raises(InterlockTrippedError):
        await furnace.run_program([ProgramSegment([500.0] * N, "10 K/min", "1 min")])
    _no_writes(furnace)


async def test_running_program_refuses_a_gradient(furnace: OpcUaGradientFurnace) -> None:
    set_mock_value(furnace.program.state, ProgramState.RUNNING)
    with pytest.raises(InstrumentError, match="a program is running"):
        await furnace.set_gradient("900 degC", "600 degC")
    _no_writes(furnace)


async def test_interlock_trip_while_ramping_fails_the_status(
    furnace: OpcUaGradientFurnace,
) -> None:
    status = furnace.set_gradient("900 degC", "600 degC")
    await asyncio.sleep(0.03)
    set_mock_value(furnace.interlock.reason, "zone 2 over temperature")
    set_mock_value(furnace.interlock.tripped, True)
    with pytest.raises(InterlockTrippedError, match="zone 2 over temperature"):
        await asyncio.wait_for(status, 2.0)


async def test_standby_while_ramping_fails_the_status(furnace: OpcUaGradientFurnace) -> None:
    _manual_on_write(furnace)
    status = furnace.set_gradient("900 degC", "600 degC")
    await _after_first_poll(furnace)
    assert not status.done  # still standby just after the write is not an abort
    set_mock_value(furnace.operating_state, FurnaceState.STANDBY)
    with pytest.raises(ProgramAbortedError, match="standby"):
        await asyncio.wait_for(status, 2.0)


async def test_broken_thermocouple_fails_the_gradient(furnace: OpcUaGradientFurnace) -> None:
    set_mock_value(furnace.operating_state, FurnaceState.MANUAL)
    pv = np.full(N, 25.0)
    pv[4] = np.nan
    set_mock_value(furnace.profile, pv)
    with pytest.raises(InstrumentError, match=r"thermocouple of zone\(s\) 5 broken"):
        await furnace.set_gradient("900 degC", "600 degC")


async def test_zones_that_never_settle_time_out_in_instrument_time(
    furnace: OpcUaGradientFurnace,
) -> None:
    set_mock_value(furnace.operating_state, FurnaceState.MANUAL)
    status = furnace.set(
        GradientSetpoint("900 degC", "600 degC", ramp_rate="60 K/min", settle_time="10 min")
    )
    await _after_first_poll(furnace)
    assert not status.done
    # ramp 875 K at 60 K/min = 875 s, plus 600 s settling: give up after 1475 s
    set_mock_value(furnace.clock.sim_time, 1400.0)
    await asyncio.sleep(0.03)
    assert not status.done
    set_mock_value(furnace.clock.sim_time, 1500.0)
    with pytest.raises(InstrumentTimeoutError, match="instrument time"):
        await asyncio.wait_for(status, 2.0)


async def test_link_timeout_surfaces_as_typed_error(furnace: OpcUaGradientFurnace) -> None:
    def late(value: Any) -> None:
        raise InstrumentTimeoutError("furnace", "no reply to write Furnace.RampRate")

    callback_on_mock_put(furnace.ramp_rate, late)
    with pytest.raises(InstrumentTimeoutError, match=r"no reply to write Furnace\.RampRate"):
        await furnace.set_gradient("900 degC", "600 degC")


# -- program ------------------------------------------------------------------------------


async def test_program_loads_flat_arrays_starts_and_completes(
    furnace: OpcUaGradientFurnace,
) -> None:
    callback_on_mock_execute(
        furnace.program.start_cmd,
        lambda: set_mock_value(furnace.program.state, ProgramState.RUNNING),
    )
    program = FurnaceProgram(
        (
            ProgramSegment(LinearGradient("1000 degC", "700 degC"), "20 K/min", "2 h"),
            ProgramSegment([Q_(400, "degC")] * N, Q_(0.5, "K/s"), 0),
        )
    )
    status = furnace.set(program)
    for _ in range(10_000):  # loop iterations, not wall time: until the program is started
        if get_mock_execute(furnace.program.start_cmd).called:
            break
        await asyncio.sleep(0)
    assert not status.done
    targets, rates, dwells = get_mock_execute(furnace.program.load_cmd).call_args.args
    assert targets.shape == (2 * N,)
    assert targets[0] == pytest.approx(1000.0) and targets[N - 1] == pytest.approx(700.0)
    np.testing.assert_allclose(targets[N:], 400.0)
    np.testing.assert_allclose(rates, [20.0, 30.0])
    np.testing.assert_allclose(dwells, [7200.0, 0.0])
    get_mock_execute(furnace.program.start_cmd).assert_called_once()
    set_mock_value(furnace.program.state, ProgramState.COMPLETE)
    await asyncio.wait_for(status, 2.0)


@pytest.mark.parametrize("end", ["aborted", "standby", "interlock"])
async def test_program_that_does_not_complete_fails(
    furnace: OpcUaGradientFurnace, end: str
) -> None:
    status = furnace.run_program([ProgramSegment([500.0] * N, "10 K/min", "1 h")])
    await asyncio.sleep(0.03)
    if end == "aborted":
        set_mock_value(furnace.program.state, ProgramState.ABORTED)
        error: type[Exception] = ProgramAbortedError
    elif end == "standby":
        set_mock_value(furnace.operating_state, FurnaceState.PROGRAM)
        await asyncio.sleep(0.03)
        set_mock_value(furnace.operating_state, FurnaceState.STANDBY)
        error = ProgramAbortedError
    else:
        set_mock_value(furnace.interlock.tripped, True)
        error = InterlockTrippedError
    with pytest.raises(error):
        await asyncio.wait_for(status, 2.0)


BAD_PROGRAMS: list[tuple[Any, type[Exception], str]] = [
    ([], InputError, "at least one segment"),
    ("ramp to 900", InputError, "sequence of ProgramSegment"),
    ([("900 degC", "10 K/min", "1 h")], InputError, "not a ProgramSegment"),
    ([ProgramSegment([500.0] * 5, "10 K/min", "1 h")], InputError, "needs 8 values, got 5"),
    ([ProgramSegment("900 degC", "10 K/min", "1 h")], InputError, "is not 8 values"),
    ([ProgramSegment([1300.0] * N, "10 K/min", "1 h")], OutOfLimitsError, r"targets\[0\] = 1300"),
    ([ProgramSegment([500.0] * N, 0, "1 h")], OutOfLimitsError, "ramp rate = 0"),
    ([ProgramSegment([500.0] * N, "10 degC/min", "1 h")], UnitError, "offset"),
    ([ProgramSegment([500.0] * N, "10 K/min", "-1 h")], OutOfLimitsError, "dwell"),
    ([ProgramSegment([500.0] * N, "10 K/min", "1 mm")], UnitError, "wrong unit"),
    (
        [
            ProgramSegment([500.0] * N, "10 K/min", "1 h"),
            ProgramSegment([500.0] * (N - 1) + ["500 delta_degC"], "10 K/min", "1 h"),
        ],
        UnitError,
        r"segment 1 targets\[7\]",
    ),
    ([ProgramSegment([500.0] * N, "10 K/min", "1 h")] * 65, InputError, "at most 64"),
    ([ProgramSegment([500.0] * N, "10 K/min", "1000 d")], OutOfLimitsError, "dwell"),
]


@pytest.mark.parametrize(("segments", "error", "match"), BAD_PROGRAMS)
async def test_malformed_program_is_refused_before_loading(
    furnace: OpcUaGradientFurnace, segments: Any, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        await furnace.run_program(segments)
    _no_writes(furnace)


async def test_unknown_request_is_refused(furnace: OpcUaGradientFurnace) -> None:
    with pytest.raises(InputError, match="GradientSetpoint, FurnaceProgram or CouponPlacement"):
        await furnace.set(900.0)
    _no_writes(furnace)


# -- carrier, clock, standby, interlock ----------------------------------------------------


async def test_load_coupon_writes_offset_then_id(furnace: OpcUaGradientFurnace) -> None:
    order: list[str] = []
    callback_on_mock_put(furnace.carrier.offset, lambda v: order.append(f"offset={v}"))
    callback_on_mock_put(furnace.slots[1].coupon_id, lambda v: order.append(f"id={v}"))
    await furnace.load_coupon("C-017", "2 cm")
    assert order == ["offset=20.0", "id=C-017"]
    await furnace.set(CouponPlacement("", 0.0))  # emptying a slot leaves the carrier where it is
    assert order == ["offset=20.0", "id=C-017", "id="]


@pytest.fixture
async def carrier4() -> OpcUaGradientFurnace:
    async with init_devices(mock=True):
        furnace = OpcUaGradientFurnace("opc.tcp://127.0.0.1:4840", carrier_slots=4)
    return furnace


async def test_coupons_go_side_by_side_at_one_offset(carrier4: OpcUaGradientFurnace) -> None:
    f = carrier4
    assert await f.carrier.num_slots.get_value() == 4
    await f.set(CouponPlacement("C-1", 40.0, slot=1))
    await f.set(CouponPlacement("C-3", 40.0, slot=3))
    assert [await s.coupon_id.get_value() for s in f.slots.values()] == ["C-1", "", "C-3", ""]
    config = await f.read_configuration()
    assert config["furnace-slots-3-coupon_id"]["value"] == "C-3"
    # another offset would move C-1 and C-3 along the gradient: refused, nothing written
    get_mock_put(f.carrier.offset).reset_mock()
    with pytest.raises(InputError, match=r"slot\(s\) \[1, 3\].*one offset"):
        await f.set(CouponPlacement("C-2", 50.0, slot=2))
    get_mock_put(f.carrier.offset).assert_not_called()
    get_mock_put(f.slots[2].coupon_id).assert_not_called()


@pytest.mark.parametrize("slot", [0, 5, -1, True, 1.0, "2"])
async def test_a_slot_the_carrier_lacks_is_refused(
    carrier4: OpcUaGradientFurnace, slot: Any
) -> None:
    with pytest.raises(InputError, match="carrier slot"):
        await carrier4.set(CouponPlacement("C-1", 40.0, slot=slot))
    _no_writes(carrier4)


def test_carrier_slots_come_from_the_lab_entry() -> None:
    entry = _entry(settings={"carrier_slots": 3})
    assert OpcUaGradientFurnace.from_lab_entry(entry).num_slots == 3
    with pytest.raises(InputError, match="carrier_slots"):
        OpcUaGradientFurnace("opc.tcp://127.0.0.1:4840", carrier_slots=17)


@pytest.mark.parametrize(
    ("placement", "error"),
    [
        (CouponPlacement("C-1", "400 mm"), OutOfLimitsError),
        (CouponPlacement("C-1", -1.0), OutOfLimitsError),
        (CouponPlacement("C-1", "5 s"), UnitError),
        (CouponPlacement(17, 0.0), InputError),  # type: ignore[arg-type]
    ],
)
async def test_bad_placement_is_refused(
    furnace: OpcUaGradientFurnace, placement: CouponPlacement, error: type[Exception]
) -> None:
    with pytest.raises(error):
        await furnace.set(placement)
    _no_writes(furnace)


async def test_wait_until_follows_the_instrument_clock(furnace: OpcUaGradientFurnace) -> None:
    set_mock_value(furnace.clock.speed_up, 1000.0)
    set_mock_value(furnace.clock.sim_time, 100.0)
    status = furnace.clock.set(160.0)
    await asyncio.sleep(0.05)
    assert not status.done
    set_mock_value(furnace.clock.sim_time, 160.0)
    await asyncio.wait_for(status, 2.0)
    assert await furnace.clock.now() == 160.0
    await asyncio.wait_for(furnace.wait_until("1 min"), 2.0)  # already past: done at once
    with pytest.raises(UnitError):
        await furnace.wait_until("1 mm")


async def test_wait_until_fails_when_the_interlock_trips(furnace: OpcUaGradientFurnace) -> None:
    status = furnace.wait_until(1e6)
    await asyncio.sleep(0.03)
    set_mock_value(furnace.interlock.tripped, True)
    with pytest.raises(InterlockTrippedError):
        await asyncio.wait_for(status, 2.0)


async def test_stop_and_safe_state_call_standby(furnace: OpcUaGradientFurnace) -> None:
    await furnace.stop()
    await furnace.safe_state()
    assert get_mock_execute(furnace.standby_cmd).call_count == 2


async def test_interlock_reset_refusal_is_typed(furnace: OpcUaGradientFurnace) -> None:
    await furnace.reset_interlock()
    get_mock_execute(furnace.interlock.reset_cmd).assert_called_once()

    def refuse() -> None:
        raise OpcUaStatusError("furnace", "call Furnace.Interlock.Reset()", "BadInvalidState")

    callback_on_mock_execute(furnace.interlock.reset_cmd, refuse)
    with pytest.raises(InterlockTrippedError, match="reset refused"):
        await furnace.reset_interlock()


@pytest.mark.parametrize("tolerance", ["2 degC", Q_(2, "degC"), "2 delta_degC", "2 K", 2.0])
def test_a_tolerance_is_a_temperature_difference(tolerance: Any) -> None:
    """``tolerance="2 degC"`` is 2 K, never 275.15 K (which would accept any profile)."""
    limits = FurnaceLimits(
        device="furnace", zone_positions_mm=POSITIONS, tube_length_mm=300.0, max_temperature_c=1150
    )
    plan = gradient_plan(GradientSetpoint(900, 600, tolerance=tolerance), limits)
    assert plan.tolerance_k == pytest.approx(2.0)


async def test_mock_signals_refuse_what_the_instrument_would(
    furnace: OpcUaGradientFurnace,
) -> None:
    """The value spec runs in ``set`` itself, so a mock signal keeps the lab limit too."""
    with pytest.raises(OutOfLimitsError, match="1150"):
        await furnace.setpoint_profile.set([1180.0] * N)
    with pytest.raises(OutOfLimitsError, match="1150"):
        await furnace.zones[1].setpoint.set(1180)
    with pytest.raises(OutOfLimitsError, match="1150"):
        await furnace.interlock.limit.set(1240)
    with pytest.raises(OutOfLimitsError):
        await furnace.ramp_rate.set(0)
    _no_writes(furnace)
    await furnace.zones[2].setpoint.set("900 K")
    get_mock_put(furnace.zones[2].setpoint).assert_called_once_with(pytest.approx(626.85))
