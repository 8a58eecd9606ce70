"""The shared world: virtual time, coupons, and the mixing law of parabolic oxide growth
(the regime law has its own tests: test_oxidation_regimes.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from couponlab.simulators.world import (
    R_GAS,
    Coupon,
    FloatArray,
    OxidationModel,
    World,
    WorldConfig,
)

MIXING = WorldConfig(oxidation=OxidationModel(law="mixing"))


class Uniform:
    def __init__(self, kelvin: float) -> None:
        self.kelvin = kelvin

    def temperature_along(self, x_mm: FloatArray) -> FloatArray:
        return np.full_like(x_mm, self.kelvin)


class Linear:
    def temperature_along(self, x_mm: FloatArray) -> FloatArray:
        return 1373.15 - 2.0 * x_mm  # 1100 degC falling 2 K/mm


def test_chromia_grows_about_3_6_um_in_100_h_at_900_c() -> None:
    w = World(MIXING)
    w.pause()
    c = w.add_coupon(Coupon("c1"))
    c.set_composition({"Cr": 1.0})
    w.place("c1", Uniform(1173.15))
    w.advance(100 * 3600)
    assert c.oxide_thickness_at(10.0)[0] == pytest.approx(3.6e-6, rel=0.01)


def test_gradient_recovers_activation_energy() -> None:
    w = World(MIXING)
    c = w.add_coupon(Coupon("c2", length_mm=100))
    c.set_composition({"Cr": 0.3, "Ni": 0.7})
    w.place("c2", Linear())
    w.advance(10 * 3600)
    t = c.temperature_k()
    assert t is not None
    for row in c.oxide_x2_m2:  # uniform across y: every row gives the same answer
        slope = np.polyfit(1 / t, np.log(row / c.exposure_s), 1)[0]
        expected = 0.3 * 250e3 + 0.7 * 112e3
        assert -slope * R_GAS == pytest.approx(expected, rel=1e-6)


def test_composition_graded_across_y_gives_q_per_row() -> None:
    """Graded across the width, heated along the length: one Q per composition row."""
    w = World(MIXING)
    c = w.add_coupon(Coupon("c4", length_mm=100, width_mm=10, resolution_mm=1.0))
    cr = np.linspace(0.0, 1.0, c.y_mm.size)[:, None] * np.ones(c.x_mm.size)
    c.set_composition({"Cr": cr, "Ni": 1 - cr})
    w.place("c4", Linear())
    w.advance(3600)
    t = c.temperature_k()
    assert t is not None
    q_true = w.config.oxidation.activation_energy(c.composition)[:, 0]
    for row, q in zip(c.oxide_x2_m2, q_true, strict=True):
        slope = np.polyfit(1 / t, np.log(row / c.exposure_s), 1)[0]
        assert -slope * R_GAS == pytest.approx(q, rel=1e-6)
    assert q_true[0] == pytest.approx(112e3)
    assert q_true[-1] == pytest.approx(250e3)


def test_bilinear_lookup() -> None:
    c = Coupon("c5", length_mm=10, width_mm=4, resolution_mm=1.0)
    x = np.broadcast_to(c.x_mm, c.shape)
    y = np.broadcast_to(c.y_mm[:, None], c.shape)
    frac = (x / 10 + y / 4) / 2
    c.set_composition({"Cr": frac, "Ni": 1 - frac})
    got = c.composition_at([2.5, 7.25], [1.5, 3.0])["Cr"]
    np.testing.assert_allclose(got, [(0.25 + 1.5 / 4) / 2, (0.725 + 0.75) / 2])
    np.testing.assert_allclose(c.composition_at(5.0)["Cr"], [(0.5 + 0.5) / 2])


def test_virtual_time_follows_speedup() -> None:
    w = World(WorldConfig(speedup=1e4))
    w.sync()
    t0 = w.now
    import time

    time.sleep(0.02)
    w.sync()
    assert w.now - t0 >= 150.0


def test_composition_must_sum_to_one() -> None:
    c = Coupon("c3")
    with pytest.raises(ValueError, match="sum to 1"):
        c.set_composition({"Cr": 0.5})


def test_unknown_coupon_lookup() -> None:
    with pytest.raises(KeyError, match="nope"):
        World().coupon("nope")


def test_k0_matches_reference() -> None:
    e = WorldConfig().oxidation.elements["Cr"]
    assert e.k0() * math.exp(-250e3 / (R_GAS * 1173.15)) == pytest.approx(3.6e-17)


def test_a_world_made_paused_stays_at_zero_until_advanced() -> None:
    import time

    w = World(WorldConfig(speedup=1e6), paused=True)
    time.sleep(0.01)
    w.sync()
    assert w.now == 0.0
    w.advance(1800)
    w.sync()
    assert w.now == 1800.0


def next_event(w: World) -> float:
    """Return the time of the next scheduled event after the ones due now (SimPy leaves the
    end marker of ``run(until=...)`` in its queue)."""
    while w.env.peek() == w.env.now:
        w.env.step()
    return float(w.env.peek())


@pytest.mark.parametrize("law", ["mixing", "regimes"])
def test_idle_oxidation_rests_and_resumes_on_its_step_grid(law: str) -> None:
    """With no coupon in a holder the oxidation steps schedule no event (a twin's sync then
    has no simulation work); a coupon placed off the grid grows from the next grid step, as
    if the steps had never rested: 10 steps of 60 s between 1013 s and 1613 s."""
    w = World(WorldConfig(oxidation=OxidationModel(law=law)), paused=True)
    c = w.add_coupon(Coupon("c1"))
    c.set_composition({"Cr": 1.0})
    w.advance(1013.0)
    assert next_event(w) == math.inf  # nothing scheduled while the world is idle
    w.place("c1", Uniform(1173.15))
    w.advance(600.0)
    assert c.exposure_s == 600.0  # steps at 1020, 1080, ..., 1560 s
    assert c.oxide_x2_m2.max() > 0
    assert next_event(w) == 1620.0  # the next step, still on the grid
    w.place("c1", None)
    w.advance(120.0)  # out of the holder: one step checks the coupon, then the steps rest
    assert next_event(w) == math.inf
    assert c.exposure_s == 600.0
