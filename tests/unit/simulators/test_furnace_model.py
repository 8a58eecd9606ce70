"""Physics and control of the furnace twin, stepped deterministically with World.advance."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from couponlab.simulators.furnace import (
    CommandRefusedError,
    FurnaceConfig,
    FurnaceModel,
    ProgramState,
)
from couponlab.simulators.furnace.model import _ramp
from couponlab.simulators.world import Coupon, World, WorldConfig

GRADIENT = np.linspace(1000.0, 800.0, 8)


def furnace(**config: object) -> tuple[World, FurnaceModel]:
    world = World(WorldConfig(seed=1))
    model = FurnaceModel(world, FurnaceConfig.model_validate(config), "furnace1")
    model.start()
    return world, model


def settle(
    world: World, model: FurnaceModel, seconds: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Advance ``seconds`` one period at a time; return max |PV - SP|, mean PV - SP and
    max |T - SP| (T: the true zone temperature, without thermocouple noise)."""
    errors, true_errors = [], []
    for _ in range(int(seconds)):
        world.advance(1.0)
        errors.append(model.pv_c - model.working_c)
        true_errors.append(model.temperature_c - model.working_c)
    e = np.array(errors)
    return np.abs(e).max(axis=0), e.mean(axis=0), np.abs(np.array(true_errors)).max(axis=0)


def test_linear_gradient_is_reached_and_held_within_tolerance() -> None:
    world, model = furnace()
    model.set_setpoints(GRADIENT)
    world.advance(3 * 3600)
    worst, bias, true_worst = settle(world, model, 1800)
    assert np.all(worst < 1.0), worst  # every zone within 1 K for 30 min
    assert np.all(true_worst < 0.3), true_worst  # the +/-0.3 K of a good 1000 degC furnace
    assert np.all(np.abs(bias) < 0.05), bias  # no steady offset (integral action)
    assert np.allclose(model.temperature_c, GRADIENT, atol=0.5)
    # the gradient the coupon sees is the one that was asked for, 200 K over 262.5 mm
    slope = np.polyfit(model.positions_mm, model.temperature_c, 1)[0]
    assert slope == pytest.approx(-200.0 / 262.5, rel=0.01)
    # controller outputs sit inside their range, not saturated
    assert np.all((model.output > 5) & (model.output < 95)), model.output


@pytest.mark.parametrize(
    "setpoints",
    [
        np.linspace(1000.0, 947.5, 8),  # 0.2 K/mm
        np.array([1000.0, 831.25, 662.5, 493.75, 493.75, 493.75, 493.75, 493.75]),  # 4.5 K/mm
    ],
    ids=["0.2K/mm", "4.5K/mm"],
)
def test_gradients_of_the_domain_range_are_reachable(setpoints: np.ndarray) -> None:
    world, model = furnace()
    model.set_setpoints(setpoints)
    world.advance(4 * 3600)
    worst, _, _ = settle(world, model, 600)
    assert np.all(worst < 1.0), (worst, model.output)


def test_zones_interact_through_conduction() -> None:
    world, model = furnace()
    sp = np.full(8, 25.0)
    sp[3] = 700.0
    model.set_setpoints(sp)
    world.advance(2 * 3600)
    t = model.temperature_c
    assert t[3] == pytest.approx(700.0, abs=1.0)
    assert model.output[3] < 100.0
    # the neighbours have no heat of their own (outputs 0) but warm up through the tube
    assert model.output[2] == 0.0 and model.output[4] == 0.0
    assert t[2] > 150.0 and t[4] > 150.0
    assert t[2] > t[1] > t[0] > 25.0
    # without conduction the neighbours stay at ambient, so it is the coupling that heats them
    world2, isolated = furnace(conduction_w_per_k=0.0)
    isolated.set_setpoints(sp)
    world2.advance(2 * 3600)
    assert isolated.temperature_c[2] == pytest.approx(25.0, abs=0.5)
    # and the heated zone needs more power when its neighbours drain it
    assert model.output[3] > isolated.output[3]


def test_ramp_limit_is_honoured_and_zero_means_unlimited() -> None:
    world, model = furnace()
    model.set_ramp_rate(10.0)
    model.set_setpoints(np.full(8, 500.0))
    history = []
    for _ in range(30):
        world.advance(60.0)
        history.append(model.working_c.copy())
    steps = np.diff(np.array(history), axis=0)
    assert np.all(steps <= 10.0 + 1e-9)
    assert steps[0] == pytest.approx(np.full(8, 10.0))
    assert np.all(model.working_c < 500.0)
    world.advance(25 * 60.0)
    assert np.all(model.working_c == 500.0)
    # the process follows the ramp closely (no runaway lead, no big lag)
    assert np.all(np.abs(model.temperature_c - 500.0) < 2.0)
    model.set_ramp_rate(0.0)
    model.set_setpoints(np.full(8, 300.0))
    world.advance(1.0)
    assert np.all(model.working_c == 300.0)


def test_leaving_standby_ramps_from_the_process_value() -> None:
    world, model = furnace()
    model.set_setpoints(np.full(8, 600.0))
    world.advance(3600)
    model.standby()
    assert model.state == "standby"
    assert np.all(model.working_c == 25.0)
    world.advance(600)
    hot = model.temperature_c.copy()
    assert np.all(hot > 300.0)
    model.set_ramp_rate(5.0)
    model.set_setpoints(np.full(8, 700.0))
    world.advance(1)
    assert np.allclose(model.working_c, hot, atol=1.0)  # servo to PV, not from 25 degC


def test_program_runs_segments_in_order_and_ends() -> None:
    world, model = furnace()
    model.load_program([300.0] * 8 + [200.0] * 8, [30.0, 60.0], [120.0, 60.0])
    assert model.program_state == ProgramState.IDLE and model.segment == -1
    model.start_program()
    assert model.state == "program" and model.segment == 0
    # 275 K at 30 K/min = 550 s, + 120 s dwell; 100 K at 60 K/min = 100 s, + 60 s
    assert model.remaining_s() == pytest.approx(550 + 120 + 100 + 60, abs=2)
    world.advance(300)
    assert model.segment == 0
    assert model.remaining_s() == pytest.approx(830 - 300, abs=2)
    world.advance(360)  # t=660: in the dwell of segment 0
    assert model.segment == 0 and np.all(model.working_c == 300.0)
    world.advance(20)  # t=680: dwell over at 670
    assert model.segment == 1
    assert np.all(model.target_c == 200.0)
    world.advance(200)  # t=880: 100 s ramp ends at 770, 60 s dwell ends at 830
    assert model.program_state == ProgramState.COMPLETE
    assert model.segment == -1 and model.state == "manual"
    assert np.all(model.target_c == 200.0)
    assert model.remaining_s() == 0.0


def test_hold_freezes_setpoints_and_dwell_and_resume_continues() -> None:
    world, model = furnace()
    model.load_program([100.0] * 8, [60.0], [100.0])
    model.start_program()
    world.advance(30)
    model.hold()
    frozen = model.working_c.copy()
    remaining = model.remaining_s()
    world.advance(500)
    assert np.array_equal(model.working_c, frozen)
    assert model.remaining_s() == pytest.approx(remaining)
    model.resume()
    world.advance(100)  # the rest of the 75 s ramp, then part of the dwell
    assert model.program_state == ProgramState.RUNNING
    model.hold()
    left = model.remaining_s()
    world.advance(1000)
    assert model.remaining_s() == left  # dwell timer frozen too
    model.resume()
    world.advance(left + 2)
    assert model.program_state == ProgramState.COMPLETE


def test_program_commands_refused_in_the_wrong_state() -> None:
    world, model = furnace()
    with pytest.raises(CommandRefusedError, match="no program loaded") as info:
        model.start_program()
    assert info.value.status == "BadInvalidState"
    with pytest.raises(CommandRefusedError):
        model.hold()
    with pytest.raises(CommandRefusedError):
        model.resume()
    model.abort()  # nothing running: a no-op, never an error (safe state)
    model.load_program([100.0] * 8, [10.0], [0.0])
    model.start_program()
    for bad in (
        lambda: model.load_program([100.0] * 8, [10.0], [0.0]),
        lambda: model.start_program(),
        lambda: model.set_setpoints(np.full(8, 50.0)),
    ):
        with pytest.raises(CommandRefusedError) as info:
            bad()
        assert info.value.status == "BadInvalidState"
    world.advance(30)
    model.abort()
    assert model.program_state == ProgramState.ABORTED
    assert np.array_equal(model.target_c, model.working_c)  # setpoints stay where they are
    world.advance(60)
    assert np.array_equal(model.target_c, model.working_c)


@pytest.mark.parametrize(
    ("targets", "rates", "dwells", "status"),
    [
        ([100.0] * 7, [10.0], [0.0], "BadInvalidArgument"),
        ([100.0] * 8, [10.0, 10.0], [0.0, 0.0], "BadInvalidArgument"),
        ([100.0] * 8, [10.0], [], "BadInvalidArgument"),
        ([], [], [], "BadInvalidArgument"),
        ([100.0] * 8, [0.0], [0.0], "BadOutOfRange"),
        ([100.0] * 8, [101.0], [0.0], "BadOutOfRange"),
        ([100.0] * 8, [10.0], [-1.0], "BadOutOfRange"),
        ([100.0] * 7 + [math.nan], [10.0], [0.0], "BadOutOfRange"),
        ([1201.0] * 8, [10.0], [0.0], "BadOutOfRange"),
    ],
)
def test_malformed_programs_are_refused_and_change_nothing(
    targets: list[float], rates: list[float], dwells: list[float], status: str
) -> None:
    _, model = furnace()
    model.load_program([50.0] * 8, [5.0], [1.0])
    with pytest.raises(CommandRefusedError) as info:
        model.load_program(targets, rates, dwells)
    assert info.value.status == status
    assert len(model.segments) == 1 and model.segments[0].rate_k_per_min == 5.0


def test_interlock_latches_and_resets_only_when_cool() -> None:
    world, model = furnace()
    model.load_program([500.0] * 8, [50.0], [3600.0])
    model.start_program()
    world.advance(1800)
    model.set_interlock_limit(450.0)
    world.advance(1)
    assert model.tripped and model.state == "interlock"
    assert model.trip_reason.startswith("Zone") and "> limit 450.0 degC" in model.trip_reason
    assert model.program_state == ProgramState.ABORTED
    assert np.all(model.output == 0.0)
    with pytest.raises(CommandRefusedError) as info:
        model.reset_interlock()
    assert info.value.status == "BadInvalidState"
    with pytest.raises(CommandRefusedError):
        model.set_setpoints(np.full(8, 100.0))
    with pytest.raises(CommandRefusedError):
        model.start_program()
    world.advance(1800)
    assert np.all(model.pv_c < 450.0)  # cooled below the limit ...
    assert model.tripped  # ... but still latched
    assert np.all(model.output == 0.0)
    model.reset_interlock()
    assert not model.tripped and model.trip_reason == "" and model.state == "standby"
    model.set_setpoints(np.full(8, 100.0))  # usable again
    model.reset_interlock()  # resetting an untripped interlock is harmless


def test_stuck_heater_trips_the_interlock_and_the_contactor_cuts_it() -> None:
    world, model = furnace()
    model.set_setpoints(np.full(8, 1150.0))
    world.advance(4 * 3600)
    assert not model.tripped
    model.set_heater_stuck(2)
    world.advance(60)
    assert model.output[2] == 100.0
    for _ in range(4 * 60):
        world.advance(60)
        if model.tripped:
            break
    assert model.tripped and model.trip_reason.startswith("Zone3 PV")
    assert np.all(model.output == 0.0)
    peak = model.temperature_c[2]
    world.advance(600)
    assert model.temperature_c[2] < peak  # cooling although the relay is still welded
    assert np.all(model.output == 0.0)


def test_full_temperature_is_reachable_in_every_zone() -> None:
    world, model = furnace()
    model.set_setpoints(np.full(8, 1200.0))
    world.advance(5 * 3600)
    assert model.temperature_c == pytest.approx(np.full(8, 1200.0), abs=1.0)
    assert not model.tripped


def test_thermocouple_break_reads_nan_and_cuts_the_zone() -> None:
    world, model = furnace()
    model.set_setpoints(GRADIENT)
    world.advance(3 * 3600)
    model.break_thermocouple(4)
    world.advance(1)
    assert math.isnan(model.pv_c[4]) and model.tc_broken[4]
    assert model.output[4] == 0.0
    world.advance(1800)
    assert model.output[4] == 0.0
    assert model.temperature_c[4] < GRADIENT[4] - 20  # the zone cools without its heater
    # the neighbours compensate the missing heat and stay on setpoint
    assert abs(model.pv_c[3] - GRADIENT[3]) < 1.0 and abs(model.pv_c[5] - GRADIENT[5]) < 1.0
    assert not model.tripped  # a NaN never trips the interlock
    model.repair_thermocouple(4)
    world.advance(1800)
    assert not math.isnan(model.pv_c[4])
    assert model.temperature_c[4] == pytest.approx(GRADIENT[4], abs=1.0)


def test_temperature_field_interpolates_zones_in_kelvin() -> None:
    world, model = furnace()
    model.set_setpoints(GRADIENT)
    world.advance(3 * 3600)
    t = model.temperature_along(model.positions_mm)
    assert t == pytest.approx(model.temperature_c + 273.15)
    mid = (model.positions_mm[0] + model.positions_mm[1]) / 2
    expect = (model.temperature_c[0] + model.temperature_c[1]) / 2 + 273.15
    assert model.temperature_along(np.array([mid]))[0] == pytest.approx(expect)
    ends = model.temperature_along(np.array([0.0, 300.0, -200.0, 600.0]))
    assert ends[0] == pytest.approx(model.temperature_c[0] + 273.15)
    assert ends[1] == pytest.approx(model.temperature_c[-1] + 273.15)
    assert ends[2] == pytest.approx(298.15, abs=1.0) and ends[3] == pytest.approx(298.15, abs=1)


def test_carrier_places_the_coupon_and_oxide_grows_where_hot() -> None:
    world, model = furnace()
    assert world.instrument("furnace1") is model
    coupon = world.add_coupon(Coupon("C7", length_mm=100.0))
    coupon.set_composition({"Cr": 0.25, "Ni": 0.75})
    with pytest.raises(CommandRefusedError) as info:
        model.set_coupon("NOPE")
    assert info.value.status == "BadNotFound" and model.coupon_id == ""
    with pytest.raises(CommandRefusedError):
        model.set_offset(-1.0)
    model.set_offset(100.0)
    model.set_coupon("C7")
    assert coupon.holder is model and coupon.offset_mm == 100.0
    model.set_setpoints(GRADIENT)
    world.advance(10 * 3600)
    assert coupon.exposure_s > 0
    centre = coupon.oxide_x2_m2[coupon.shape[0] // 2]
    assert np.all(centre > 0)
    assert centre[0] > 2 * centre[-1]  # the hot end (lower x along the tube) grew more
    model.set_offset(50.0)
    assert coupon.offset_mm == 50.0
    model.set_coupon("")
    assert coupon.holder is None and model.coupon_id == ""
    grown = coupon.oxide_x2_m2.copy()
    world.advance(3600)
    assert np.array_equal(coupon.oxide_x2_m2, grown)  # out of the furnace: no growth


def test_stop_unregisters_and_releases_the_coupon() -> None:
    world, model = furnace()
    world.add_coupon(Coupon("C1"))
    model.set_coupon("C1")
    model.stop()
    assert "furnace1" not in world.instruments
    assert world.coupons["C1"].holder is None
    ticks = model.ticks
    world.advance(10)
    assert model.ticks == ticks


def test_setpoint_validation() -> None:
    _, model = furnace()
    for bad in ([1201.0] * 8, [-0.1] * 8, [math.nan] * 8, [math.inf] * 8, [100.0] * 7):
        with pytest.raises(CommandRefusedError) as info:
            model.set_setpoints(bad)
        assert info.value.status == "BadOutOfRange"
    assert np.all(model.target_c == 25.0) and model.state == "standby"
    for rate in (-1.0, 100.5, math.nan):
        with pytest.raises(CommandRefusedError):
            model.set_ramp_rate(rate)
    for limit in (-1.0, 1300.0, math.nan):
        with pytest.raises(CommandRefusedError):
            model.set_interlock_limit(limit)
    assert model.interlock_limit_c == 1225.0


def test_config_validation_and_defaults() -> None:
    cfg = FurnaceConfig.from_twin_config({"length_mm": 200, "zones": 4})
    assert cfg.zones == 4 and cfg.length_mm == 200.0
    assert cfg.interlock_default_c == 1225.0 and cfg.interlock_limit_max_c == 1250.0
    for bad in (
        {"zones": 0},
        {"length_mm": -1},
        {"heater_power_w": 0},
        {"standby_temperature_c": 1300},
        {"interlock_max_c": 1000},
        {"no_such_parameter": 1},
    ):
        with pytest.raises(ValidationError):
            FurnaceConfig.from_twin_config(bad)
    world = World()
    model = FurnaceModel(world, cfg)
    assert model.positions_mm == pytest.approx([25.0, 75.0, 125.0, 175.0])


def test_noise_is_seeded_by_the_world() -> None:
    runs = []
    for _ in range(2):
        world, model = furnace()
        model.set_setpoints(GRADIENT)
        world.advance(600)
        runs.append(model.pv_c.copy())
    assert np.array_equal(runs[0], runs[1])


def test_ramp_lands_exactly_on_the_target_so_dwells_start() -> None:
    rng = np.random.default_rng(5)
    for _ in range(40):
        current = rng.uniform(0, 1200, 8)
        target = rng.uniform(0, 1200, 8)
        rate = float(rng.uniform(30.0, 100.0))
        for _ in range(3000):
            if np.array_equal(current, target):
                break
            nxt = _ramp(current, target, rate, 1.0)
            assert np.all(np.abs(nxt - current) <= rate / 60.0 + 1e-9)
            current = nxt
        assert np.array_equal(current, target)


@pytest.mark.parametrize(("feedforward", "bound"), [(2.0, 1.0), (0.0, 5.0)])
def test_ramp_feedforward_keeps_the_zones_on_a_feasible_ramp(
    feedforward: float, bound: float
) -> None:
    world, model = furnace(ramp_feedforward_percent_per_k_per_min=feedforward)
    model.load_program(list(GRADIENT), [10.0], [1800.0])
    model.start_program()
    worst = 0.0
    while model.program_state == ProgramState.RUNNING:
        world.advance(1.0)
        worst = max(worst, float(np.abs(model.temperature_c - model.working_c).max()))
    assert model.program_state == ProgramState.COMPLETE
    assert worst < bound, worst  # with feed-forward within 1 K all along a 10 K/min ramp
    if feedforward == 0.0:
        assert worst > 2.0  # a PI loop alone lags a ramp: the feed-forward is what helps


def test_carrier_slots_hold_coupons_side_by_side_at_one_offset() -> None:
    world, model = furnace(carrier_slots=3)
    coupons = [world.add_coupon(Coupon(f"C{k}")) for k in (1, 2, 3)]
    for c in coupons:
        c.set_composition({"Cr": 0.25, "Ni": 0.75})
    model.set_offset(120.0)
    model.set_coupon("C1", 1)
    model.set_coupon("C3", 3)
    assert model.slots == ["C1", "", "C3"] and model.coupon_id == "C1"
    with pytest.raises(CommandRefusedError) as info:
        model.set_coupon("C1", 2)  # one coupon, one place
    assert info.value.status == "BadInvalidState" and model.slots == ["C1", "", "C3"]
    with pytest.raises(CommandRefusedError) as info:
        model.set_coupon("C2", 4)
    assert info.value.status == "BadOutOfRange"
    model.set_coupon("C3", 3)  # again: nothing changes
    model.set_setpoints(GRADIENT)
    world.advance(5 * 3600)
    a, _, c = coupons
    assert np.array_equal(a.temperature_k(), c.temperature_k())  # the same gradient
    assert a.exposure_s == c.exposure_s > 0 and coupons[1].exposure_s == 0
    model.set_offset(100.0)  # the carrier moves every coupon on it
    assert a.offset_mm == c.offset_mm == 100.0
    model.set_coupon("", 1)
    assert a.holder is None and c.holder is model and model.slots == ["", "", "C3"]
    model.stop()
    assert c.holder is None and model.slots == ["", "", ""]
