"""Multi-track printing in the cell twin, stepped deterministically: the bead model of
decision 0013, feeders holding their rates between tracks, interlocks between tracks, and
the protocol's track commands (backward compatible with single-pass programs)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from couponlab.simulators.deposition.cell_model import CellConfig, CellModel, TrackProgram
from couponlab.simulators.deposition.cell_twin import CellProtocol
from couponlab.simulators.deposition.feeder_model import FeederConfig, FeederModel, HopperConfig
from couponlab.simulators.world import World, WorldConfig


def rig(fast: bool = True) -> tuple[World, FeederModel, CellModel]:
    """A paused world, one feeder (Ni, Ni-50Cr; instant delivery if ``fast``), one cell."""
    w = World(WorldConfig(seed=2))
    w.pause()
    dyn = {"delay_s": 0.0, "tau_s": 0.05, "knee_g_min": 0.0} if fast else {}
    hoppers = [
        HopperConfig(powder="Ni", composition={"Ni": 1.0}, **dyn),
        HopperConfig(powder="Ni-50Cr", composition={"Ni": 0.5, "Cr": 0.5}, **dyn),
    ]
    f = FeederModel(
        w, FeederConfig(hoppers=hoppers, noise_fraction=0.0, sensor_noise_fraction=0.0), "f1"
    )
    f.set_gas(1, 4.0)
    f.set_gas(2, 4.0)
    c = CellModel(w, CellConfig(feeders=["f1"]), "c1")
    c.set_shield(10.0)
    return w, f, c


def add_track(c: CellModel, y: float, rates: tuple[float, float], run_in: float = 10.0) -> None:
    c.program.tracks.append(
        TrackProgram(
            y=y, x_start=-run_in, x_end=22.0, speed=10.0, power=400.0, points=[(-run_in, rates)]
        )
    )


def run(w: World, c: CellModel, limit_s: float = 300.0) -> None:
    c.start_print()
    t = 0.0
    while c.print_state == "RUNNING" and t < limit_s:
        w.advance(1.0)
        t += 1.0


def test_tracks_blend_by_the_bead_model() -> None:
    w, _, c = rig()
    c.select_coupon("T1", 20.0, 10.0)
    ys = np.arange(0.0, 10.5, 1.0)
    for k, y in enumerate(ys):  # alternate pure Ni and Ni-50Cr tracks
        add_track(c, float(y), (10.0, 0.0) if k % 2 == 0 else (0.0, 10.0))
    run(w, c)
    assert c.print_state == "DONE", c.reason
    coupon = w.coupon("T1")
    # decision 0013: each track spreads its mass across y as a Gaussian, sigma = bead / 4;
    # the composition at a node is the mass-weighted mix of every track over it
    sigma = c.config.bead_width_mm / 4
    weights = np.exp(-0.5 * ((coupon.y_mm[:, None] - ys[None, :]) / sigma) ** 2)
    cr_tracks = np.where(np.arange(ys.size) % 2 == 1, 0.5, 0.0)
    expected = weights @ cr_tracks / weights.sum(axis=1)
    got = coupon.composition["Cr"][:, coupon.x_mm.searchsorted(10.0)]
    assert got == pytest.approx(expected, abs=0.005)
    # on a track: mostly its own powder; between two: half of each
    neighbour = math.exp(-0.5 * (1.0 / sigma) ** 2)  # a track 1 mm away: 4.4 %
    assert got[2] == pytest.approx(0.5 / (1 + 2 * neighbour), abs=0.01)  # y = 1: Ni-50Cr
    assert got[1] == pytest.approx(0.25, abs=0.01)  # y = 0.5, between Ni and Ni-50Cr
    # nearly uniform along x on the coupon
    assert np.ptp(coupon.composition["Cr"][2, 2:-2]) < 0.01
    assert coupon.metadata["print"]["tracks_y_mm"] == list(ys)


def test_a_program_without_tracks_is_one_full_width_pass() -> None:
    w, _, c = rig()
    c.select_coupon("T2", 20.0)
    p = c.program
    p.x_start, p.x_end, p.speed, p.power = -10.0, 22.0, 10.0, 400.0
    p.points = [(-10.0, (5.0, 5.0))]
    run(w, c)
    comp = w.coupon("T2").composition["Cr"]
    assert comp == pytest.approx(np.full(comp.shape, 0.25), abs=0.01)
    assert np.ptp(comp, axis=0).max() < 1e-12  # identical rows: uniform across y


def test_feeders_hold_their_rates_while_the_laser_is_off_between_tracks() -> None:
    w, f, c = rig(fast=False)
    c.select_coupon("T3", 20.0)
    add_track(c, 2.0, (6.0, 4.0))
    add_track(c, 4.0, (2.0, 8.0))
    c.start_print()
    seen_transition = False
    for _ in range(2000):
        w.advance(0.02)
        if c.track == 2 and not c.laser_on and c.moving:
            seen_transition = True
            assert (f.hopper(1).setpoint, f.hopper(2).setpoint) == (6.0, 4.0)
            assert f.hopper(1).nozzle > 0  # powder keeps coming (and is lost)
        if c.print_state != "RUNNING":
            break
    assert seen_transition
    assert c.print_state == "DONE"
    assert (c.x, c.y) == pytest.approx((22.0, 4.0))
    assert f.hopper(1).setpoint == 0.0 and not c.laser_on


def test_shielding_gas_lost_between_tracks_aborts_safely() -> None:
    w, f, c = rig()
    c.select_coupon("T4", 20.0)
    add_track(c, 2.0, (5.0, 5.0))
    add_track(c, 4.0, (5.0, 5.0))
    c.start_print()
    while not (c.track == 2 and not c.laser_on and c.moving):
        w.advance(0.02)
    c.inject_shield_loss()
    w.advance(0.1)
    assert c.print_state == "ABORTED" and "shielding gas lost" in c.reason
    assert all(h.setpoint == 0.0 for h in f.hoppers) and not c.laser_on
    meta = w.coupon("T4").metadata
    assert meta["aborted_in_track"] == 2
    assert np.shape(meta["deposited_g_per_mm2"]["Cr"]) == w.coupon("T4").shape


def test_protocol_track_commands() -> None:
    w, _, c = rig()
    p = CellProtocol(c)
    assert p.handle("LIM:TRK?") == "1.6000,1.0000,50.0000,-50.0000,150.0000,200"
    assert p.handle("COUP W-1,30,12;:SYST:ERR?") == '0,"No error"'
    assert w.coupon("W-1").width_mm == 12.0
    assert p.handle("PRNT:TRK 151;:SYST:ERR?").startswith("-222,")
    for y in (0.0, 6.0, 12.0):
        line = f"PRNT:TRK {y};PRNT:PATH -5,32,10,400;PRNT:PT -5,5,5;PRNT:PT 10,4,6;:SYST:ERR?"
        assert p.handle(line) == '0,"No error"'
    assert p.handle("PRNT:PT 9,4,6;:SYST:ERR?").startswith("-222,")  # back within a track
    assert p.handle("PRNT:TRK:COUN?;PRNT:COUN?") == "3;6"
    stat = p.handle("STAT:EXT?")
    assert isinstance(stat, str) and stat.split(",")[5:] == ["IDLE", "0.0000", "0.0000", "0", "3"]
    assert p.handle("PRNT:STRT;:SYST:ERR?") == '0,"No error"'
    assert p.handle("PRNT:TRK 1;:SYST:ERR?") == '-221,"Settings conflict; busy"'
    w.advance(60.0)
    assert p.handle("PRNT:STAT?") == "DONE"
    coupon = w.coupon("W-1")
    xy = p.handle("SIM:MAP:XY? Cr")
    assert isinstance(xy, str)
    values = np.array([float(v) for v in xy.split(",")]).reshape(coupon.shape)
    assert values == pytest.approx(coupon.composition["Cr"], abs=1e-6)
    along = p.handle("SIM:MAP? Cr")
    assert isinstance(along, str)
    assert [float(v) for v in along.split(",")] == pytest.approx(values.mean(axis=0), abs=1e-6)
    assert len(str(p.handle("SIM:MAP:Y?")).split(",")) == coupon.shape[0]


def test_a_track_off_the_coupon_is_refused_at_start() -> None:
    _, _, c = rig()
    p = CellProtocol(c)
    p.handle("COUP W-2,20")
    p.handle("PRNT:TRK 14;PRNT:PATH -5,22,10,400;PRNT:PT -5,5,5")
    reply = p.handle("PRNT:STRT;:SYST:ERR?")
    assert reply == '-221,"Settings conflict; track 1: y = 14 mm misses the coupon 0..10 mm"'
    assert math.isclose(c.progress, 0.0)
