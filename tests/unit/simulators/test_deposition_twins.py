"""Physics and interlocks of the feeder and cell twins, stepped deterministically."""

from __future__ import annotations

import numpy as np
import pytest

from couponlab.simulators.deposition.cell_model import CellConfig, CellModel
from couponlab.simulators.deposition.feeder_model import (
    ALARM_CLOG,
    ALARM_EMPTY,
    ALARM_GAS,
    FeederConfig,
    FeederModel,
)
from couponlab.simulators.deposition.feeder_twin import FeederProtocol
from couponlab.simulators.world import World, WorldConfig


def quiet_world() -> World:
    w = World(WorldConfig(seed=1))
    w.pause()
    return w


def feeder(w: World, **cfg: float) -> FeederModel:
    return FeederModel(w, FeederConfig(noise_fraction=0.0, sensor_noise_fraction=0.0, **cfg), "f1")


def test_flow_arrives_after_the_delay_through_the_lag() -> None:
    w = quiet_world()
    f = feeder(w)
    f.set_gas(1, 4.0)
    f.set_rate(1, 10.0)  # hopper 1: delay 2.0 s, tau 0.6 s
    w.advance(1.9)
    assert f.hopper(1).nozzle == 0.0
    w.advance(0.7)  # 0.6 s after the delay: one time constant
    assert f.hopper(1).nozzle == pytest.approx(10.0 * (1 - np.exp(-1)), rel=0.08)
    w.advance(5.0)
    assert f.hopper(1).nozzle == pytest.approx(10.0, rel=0.01)


def test_low_flow_is_nonlinear() -> None:
    w = quiet_world()
    f = feeder(w)
    f.set_gas(1, 4.0)
    f.set_rate(1, 0.4)
    w.advance(10.0)
    assert f.hopper(1).nozzle == pytest.approx(0.4 * (1 - np.exp(-1)), rel=0.02)


def test_empty_hopper_stops_and_alarms() -> None:
    w = quiet_world()
    f = feeder(w)
    f.set_gas(1, 4.0)
    f.set_fill(1, 1.0)
    f.set_rate(1, 10.0)
    w.advance(12.0)
    h = f.hopper(1)
    assert h.alarms & ALARM_EMPTY and h.fill_g == 0.0 and h.nozzle == 0.0
    with pytest.raises(RuntimeError, match="empty"):
        f.set_rate(1, 5.0)


def test_clog_is_detected_while_the_command_stays() -> None:
    w = quiet_world()
    f = feeder(w)
    f.set_gas(2, 4.0)
    f.set_rate(2, 10.0)
    w.advance(8.0)
    f.inject_clog(2, 0.2)
    w.advance(1.0)
    assert f.hopper(2).setpoint == 10.0 and not f.hopper(2).alarms
    w.advance(1.0)
    assert f.hopper(2).alarms & ALARM_CLOG


def test_gas_loss_stops_the_powder() -> None:
    w = quiet_world()
    f = feeder(w)
    f.set_gas(1, 4.0)
    f.set_rate(1, 10.0)
    w.advance(6.0)
    f.inject_gas_loss(1)
    w.advance(0.1)
    assert f.hopper(1).alarms & ALARM_GAS and f.hopper(1).nozzle == 0.0


def test_gas_lost_while_purging_latches_the_alarm_before_anything_feeds() -> None:
    """Between prints the carrier gas purges the line with no powder: a failed supply latches
    GAS at once (what a session's suspender waits on), a reset with the gas still lost does
    not clear it, and a reset once the gas is back does."""
    w = quiet_world()
    f = feeder(w)
    f.set_gas(1, 4.0)
    f.set_gas(2, 0.0)
    w.advance(1.0)
    f.inject_gas_loss(1)
    f.inject_gas_loss(2)  # hopper 2's gas is off: nothing asked for, nothing missing
    w.advance(0.1)
    assert f.hopper(1).alarms & ALARM_GAS and f.hopper(1).setpoint == 0.0
    assert not f.hopper(2).alarms
    f.clear_alarms()
    w.advance(0.1)
    assert f.hopper(1).alarms & ALARM_GAS  # still no gas: latched again
    f.inject_gas_loss(1, False)
    f.clear_alarms()
    w.advance(1.0)
    assert not f.hopper(1).alarms and f.hopper(1).gas_flow == 4.0


def test_protocol_reports_range_errors() -> None:
    w = quiet_world()
    p = FeederProtocol(feeder(w))
    assert (
        p.handle("RATE 1,45;:SYST:ERR?")
        == '-222,"Data out of range; RATE 1,45 (allowed 0..30 g/min)"'
    )
    assert p.handle("FLOW? 9;:SYST:ERR?") == '-222,"Data out of range; hopper 9 (allowed 1..4)"'
    assert p.handle("HOPP:COMP? 2") == "Cr=0.500000 Ni=0.500000"
    assert p.handle("STAT?").split(",")[0] == "IDLE"


def cell_rig() -> tuple[World, FeederModel, CellModel]:
    w = quiet_world()
    f = feeder(w)
    c = CellModel(w, CellConfig(feeders=["f1"]), "c1")
    return w, f, c


def test_no_laser_without_shielding_gas() -> None:
    _, _, c = cell_rig()
    with pytest.raises(RuntimeError, match="interlock"):
        c.set_laser(True)
    c.set_shield(10.0)
    c.set_laser(True)
    c.inject_shield_loss()
    assert not c.laser_on


def test_a_print_writes_the_as_built_map() -> None:
    w, f, c = cell_rig()
    f.set_gas(1, 4.0)
    f.set_gas(2, 4.0)
    c.set_shield(10.0)
    c.select_coupon("K1", 20.0)
    p = c.program
    p.x_start, p.x_end, p.speed, p.power = -60.0, 22.0, 10.0, 400.0
    p.points = [(-60.0, (5.0, 5.0, 0.0, 0.0))]
    c.start_print()
    w.advance(20.0)
    assert c.print_state == "DONE"
    coupon = w.coupon("K1")
    # half Ni, half Ni-50Cr, settled long before x = 0: Cr = 0.25 everywhere
    assert np.allclose(coupon.composition_at(coupon.x_mm)["Cr"], 0.25, atol=0.02)
    assert all(h.setpoint == 0.0 for h in f.hoppers) and not c.laser_on


def test_laser_off_during_a_print_aborts_and_stops_the_powder() -> None:
    w, f, c = cell_rig()
    f.set_gas(1, 4.0)
    c.set_shield(10.0)
    c.select_coupon("K2", 20.0)
    p = c.program
    p.x_start, p.x_end, p.speed, p.power = -20.0, 22.0, 10.0, 400.0
    p.points = [(-20.0, (5.0, 0.0, 0.0, 0.0))]
    c.start_print()
    w.advance(2.0)
    c.set_laser(False)
    w.advance(0.1)
    assert c.print_state == "ABORTED" and "laser switched off" in c.reason
    assert f.hopper(1).setpoint == 0.0
