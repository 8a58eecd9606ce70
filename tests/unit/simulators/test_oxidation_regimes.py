"""The world's oxidation regimes: critical Cr content, transient, volatilisation, spallation,
and the ground truth served as plain functions of the world's configuration."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from couponlab.simulators.oxidation_regimes import RegimeParameters, ScaleState, grow, spall
from couponlab.simulators.oxidation_truth import (
    coupon_rows_truth,
    critical_cr_fraction,
    critical_fraction,
    oxidation_truth,
    row_truth,
)
from couponlab.simulators.world import Coupon, FloatArray, OxidationModel, World, WorldConfig


class Uniform:
    def __init__(self, kelvin: float) -> None:
        self.kelvin = kelvin

    def temperature_along(self, x_mm: FloatArray) -> FloatArray:
        return np.full_like(x_mm, self.kelvin)


def params(**sections: object) -> RegimeParameters:
    return RegimeParameters.model_validate(sections)


def grown(cr: float, kelvin: float, hours: float, p: RegimeParameters, dt: float = 60.0) -> float:
    state = ScaleState.new((1,), p, np.random.default_rng(0))
    for _ in range(round(hours * 3600 / dt)):
        grow(state, np.array([cr]), np.array([kelvin]), dt, p)
    return float(state.thickness_m(np.array([cr]), p)[0])


def test_below_the_critical_cr_content_nio_grows_fast_above_it_chromia_slowly() -> None:
    p = params()
    c_crit = p.critical_cr.fraction
    low, high = grown(c_crit - 0.1, 1173.15, 20, p), grown(c_crit + 0.1, 1173.15, 20, p)
    kp_nio = p.nio.kp(c_crit - 0.1, np.array(1173.15))
    assert low == pytest.approx(math.sqrt(kp_nio * 20 * 3600), rel=1e-3)  # parabolic NiO
    assert (low / high) ** 2 > 10  # kp one to two orders of magnitude apart
    # in the band the spot averages the two scales by the protective fraction
    mid = grown(c_crit, 1173.15, 20, p)
    assert mid == pytest.approx(
        (low + grown(c_crit, 1173.15, 20, params(nio=p.chromia))) / 2, rel=0.2
    )
    assert high < mid < low


def test_the_transient_offsets_thickness_squared_by_the_fast_growth_it_allows() -> None:
    p = params(volatilisation={"enabled": False})
    no_tr = params(volatilisation={"enabled": False}, transient={"enabled": False})
    t_k, hours, cr = 1123.15, 10.0, 0.4
    x2, x2_plain = grown(cr, t_k, hours, p) ** 2, grown(cr, t_k, hours, no_tr) ** 2
    t_tr = float(p.transient.duration_s(np.array(t_k)))
    k_fast, k_slow = p.nio.kp(cr, np.array(t_k)), p.chromia.kp(cr, np.array(t_k))
    assert x2 - x2_plain == pytest.approx((k_fast - k_slow) * t_tr, rel=0.05)
    assert t_tr > float(p.transient.duration_s(np.array(t_k + 100)))  # shorter when hot


def test_volatilisation_gives_tedmons_paralinear_thickness() -> None:
    """The world's explicit steps against an independent ODE solve of dx/dt = kp/2x - kv."""
    p = params(transient={"enabled": False})
    t_k, hours, cr = 1333.15, 50.0, 0.4
    kp, kv = float(p.chromia.kp(cr, np.array(t_k))), float(p.volatilisation.kv(np.array(t_k)))
    x0 = math.sqrt(kp * 600.0)
    ode = solve_ivp(
        lambda t, x: kp / (2 * x) - kv, (600.0, hours * 3600), [x0], rtol=1e-9, atol=1e-15
    )
    x = grown(cr, t_k, hours, p)
    assert x == pytest.approx(ode.y[0, -1], rel=5e-3)
    assert x < 0.9 * math.sqrt(kp * hours * 3600)  # clearly below parabolic when hot
    cool = params(transient={"enabled": False})
    x_cool = grown(cr, 1123.15, hours, cool)
    kp_cool = float(cool.chromia.kp(cr, np.array(1123.15)))
    assert x_cool == pytest.approx(math.sqrt(kp_cool * hours * 3600), rel=0.01)  # negligible


def test_thick_scales_spall_on_cooling_thin_ones_do_not() -> None:
    p = params(spallation={"scatter": 0.0})
    state = ScaleState.new((2,), p, np.random.default_rng(0))
    state.chromia_m = np.array([1e-6, 20e-6])
    state.hottest_k = np.full(2, 1323.15)
    spall(state, np.full(2, 1313.15), p)  # 10 K of cooling: nothing breaks
    assert not state.spalled.any()
    spall(state, np.full(2, 298.15), p)
    assert list(state.spalled) == [False, True]
    assert state.chromia_m[1] == pytest.approx(20e-6 * p.spallation.residual_fraction)
    critical = p.spallation.chromia.critical_thickness_m(np.array(1000.0))
    assert 2e-6 < critical < 20e-6  # several um of chromia for about 1000 K of cooling


def test_world_grows_regimes_across_a_graded_coupon_and_spalls_when_taken_out() -> None:
    w = World(WorldConfig(seed=4), paused=True)
    c = w.add_coupon(Coupon("g", length_mm=10, width_mm=10, resolution_mm=1.0))
    cr = np.broadcast_to(np.linspace(0.0, 0.5, c.y_mm.size)[:, None], c.shape)
    c.set_composition({"Cr": cr, "Ni": 1 - cr})
    w.place("g", Uniform(1333.15))
    w.advance(50 * 3600)
    assert c.exposure_s == pytest.approx(50 * 3600, abs=60)
    x = np.sqrt(c.oxide_x2_m2)
    assert x[0].mean() > 3 * x[-1].mean()  # NiO at 0 % Cr, chromia at 50 %
    assert c.scales is not None and not c.scales.spalled.any()
    before = x.copy()
    w.place("g", None)
    w.advance(120)
    after = np.sqrt(c.oxide_x2_m2)
    assert c.scales.spalled.any() and np.all(after <= before + 1e-15)
    w.advance(3600)  # out of the furnace nothing changes any more
    np.testing.assert_array_equal(np.sqrt(c.oxide_x2_m2), after)


def test_truth_is_a_plain_function_of_the_world_config() -> None:
    config = WorldConfig()
    c_crit = critical_cr_fraction(config)
    assert c_crit == config.oxidation.regimes.critical_cr.fraction
    nio = oxidation_truth(config, {"Cr": 0.05, "Ni": 0.95})
    chromia = oxidation_truth(config, {"Cr": 0.45, "Ni": 0.55})
    band = oxidation_truth(config, {"Cr": c_crit, "Ni": 1 - c_crit})
    assert (nio["regime"], chromia["regime"], band["regime"]) == ("NiO", "chromia", "transition")
    assert nio["activation_energy_kj_per_mol"] == pytest.approx(112.0)
    assert chromia["activation_energy_kj_per_mol"] == pytest.approx(250.0 + 100.0 * 0.15)
    assert band["protective_fraction"] == pytest.approx(0.5)
    row = row_truth(config, {"Cr": [0.44, 0.46], "Ni": [0.56, 0.54]})
    assert row["activation_energy_kj_per_mol"] == pytest.approx(265.0)
    mixing = WorldConfig(oxidation=OxidationModel(law="mixing"))
    assert math.isnan(critical_cr_fraction(mixing))
    assert oxidation_truth(mixing, {"Cr": 0.5, "Ni": 0.5})["regime"] == "mixing"


def test_coupon_rows_truth_reads_the_as_built_composition_of_each_row() -> None:
    w = World(WorldConfig(), paused=True)
    c = w.add_coupon(Coupon("t", length_mm=20, width_mm=10, resolution_mm=1.0))
    cr = np.broadcast_to(0.05 * c.y_mm[:, None], c.shape)  # 0 -> 50 % Cr across y
    c.set_composition({"Cr": cr, "Ni": 1 - cr})
    truth = coupon_rows_truth(w, "t", [2.0, 10.0, 18.0], [1.0, 4.0, 9.0])
    assert truth["critical_cr_fraction"] == pytest.approx(0.2)
    rows = truth["rows"]
    assert isinstance(rows, list)
    assert [r["regime"] for r in rows] == ["NiO", "transition", "chromia"]
    assert rows[2]["cr_fraction"] == pytest.approx(0.45)


class Gradient:
    """A holder whose temperature falls linearly along x: ``hot`` K at x = 0 to ``cold``."""

    def __init__(self, hot: float, cold: float, length_mm: float) -> None:
        self.hot, self.cold, self.length = hot, cold, length_mm

    def temperature_along(self, x_mm: FloatArray) -> FloatArray:
        out: FloatArray = self.hot + (self.cold - self.hot) * np.asarray(x_mm) / self.length
        return out


def grown_al(al: float, kelvin: float, hours: float, p: RegimeParameters) -> float:
    state = ScaleState.new((1,), p, np.random.default_rng(0))
    for _ in range(round(hours * 60)):
        grow(state, np.zeros(1), np.array([kelvin]), 60.0, p, np.array([al]))
    return float(state.thickness_m(np.zeros(1), p, np.array([al]))[0])


def test_below_the_critical_al_content_nio_grows_fast_above_it_alumina_slowly() -> None:
    p = params(transient={"enabled": False})
    t_k = 1273.15  # the critical content's reference temperature: c_crit = fraction there
    c_crit = p.critical_al.fraction
    low, high = grown_al(c_crit - 0.05, t_k, 20, p), grown_al(c_crit + 0.05, t_k, 20, p)
    assert low == pytest.approx(math.sqrt(p.nio.kp(0.0, np.array(t_k)) * 20 * 3600), rel=1e-3)
    kp_al = p.alumina.kp(c_crit + 0.05, np.array(t_k))
    assert high == pytest.approx(math.sqrt(kp_al * 20 * 3600), rel=1e-3)  # parabolic alumina
    assert (low / high) ** 2 > 30
    # alumina's activation energy (about 340 kJ/mol): kp from two temperatures
    t1, t2 = 1173.15, 1323.15
    k1, k2 = (grown_al(0.25, t, 20, p) ** 2 for t in (t1, t2))
    q = 8.314462618 * math.log(k2 / k1) / (1 / t1 - 1 / t2) / 1e3
    assert q == pytest.approx(340.0, rel=0.01)
    mid = grown_al(c_crit, t_k, 20, p)
    assert mid == pytest.approx((low + grown_al(0.3, t_k, 20, p)) / 2, rel=0.1)


def test_the_critical_al_content_falls_with_temperature_by_wagners_criterion() -> None:
    p = params().critical_al
    hot, ref, cold = (float(p.fraction_at(t)) for t in (1333.15, 1273.15, 1120.15))
    assert ref == pytest.approx(p.fraction) and hot < ref < cold
    slope = p.wagner_energy_kj_per_mol * 1e3 / (2 * 8.314462618)
    assert math.log(cold / hot) == pytest.approx(slope * (1 / 1120.15 - 1 / 1333.15))
    assert hot > 0.05 and cold < 0.2  # Pettit 1967 / Hindam & Smeltzer 1980: 6-15 wt%
    # a Ni-Cr critical content has none by default
    cr = params().critical_cr
    assert float(cr.fraction_at(1120.15)) == float(cr.fraction_at(1333.15)) == cr.fraction


def test_world_grows_ni_al_regimes_along_a_gradient_and_reports_the_truth() -> None:
    w = World(WorldConfig(seed=3), paused=True)
    c = w.add_coupon(Coupon("a", length_mm=20, width_mm=10, resolution_mm=1.0))
    al = np.broadcast_to(0.03 * c.y_mm[:, None], c.shape)  # 0 -> 30 % Al across y
    c.set_composition({"Al": al, "Ni": 1 - al})
    hot, cold = 1333.15, 1120.15
    w.place("a", Gradient(hot, cold, 20.0))
    w.advance(20 * 3600)
    x = np.sqrt(c.oxide_x2_m2)
    assert x[0].mean() > 5 * x[-1].mean()  # NiO at 0 % Al, alumina at 30 %
    # 12 % Al: protected at the hot end (c_crit 0.092), mostly not at the cold end (0.129)
    row = int(np.argmin(np.abs(c.y_mm - 4.0)))
    f = WorldConfig().oxidation.regimes.critical_al
    assert float(f.protective_fraction(0.12, hot)) > 0.99
    assert float(f.protective_fraction(0.12, cold)) < 0.2
    nio_cold = math.sqrt(float(WorldConfig().oxidation.regimes.nio.kp(0, np.array(cold))) * 72e3)
    assert x[row, -1] > 0.75 * nio_cold  # cold end: mostly NiO
    assert x[row, 0] < 0.1 * x[0, 0]  # hot end: alumina, far thinner than NiO there
    truth = coupon_rows_truth(w, "a", [1.0, 10.0, 19.0], [1.0, 4.0, 9.0])
    temps = truth["temperature_k"]
    assert isinstance(temps, list) and temps[0] > temps[-1]
    crit = truth["critical_al_fraction"]
    assert isinstance(crit, list) and crit[0] < crit[-1]
    assert crit[1] == pytest.approx(critical_fraction(w.config, "Al", temps[1]))
    rows = truth["rows"]
    assert isinstance(rows, list)
    assert [r["regime"] for r in rows] == ["NiO", "transition", "alumina"]
    assert rows[2]["activation_energy_kj_per_mol"] == pytest.approx(340.0)
    assert rows[0]["activation_energy_kj_per_mol"] == pytest.approx(112.0)


def test_a_ni_cr_coupon_grows_exactly_as_before_al_existed() -> None:
    """A zero Al map leaves the Ni-Cr law alone, and the truth has no Al keys."""
    thickness = []
    for comp in ({}, {"Al": 0.0}):
        w = World(WorldConfig(seed=4), paused=True)
        c = w.add_coupon(Coupon("g", length_mm=10, width_mm=10, resolution_mm=1.0))
        cr = np.broadcast_to(np.linspace(0.0, 0.5, c.y_mm.size)[:, None], c.shape)
        c.set_composition({"Cr": cr, "Ni": 1 - cr, **comp})
        w.place("g", Uniform(1333.15))
        w.advance(5 * 3600)
        thickness.append(c.oxide_x2_m2.copy())
        assert c.scales is not None and c.scales.alumina_m is None
        assert set(coupon_rows_truth(w, "g", [5.0], [5.0])) == {"critical_cr_fraction", "rows"}
    np.testing.assert_array_equal(thickness[0], thickness[1])


def test_truth_with_al_and_cr_gives_chromia_the_first_claim() -> None:
    config = WorldConfig()
    both = oxidation_truth(config, {"Cr": 0.3, "Al": 0.2, "Ni": 0.5}, 1273.15)
    assert both["regime"] == "chromia" and both["al_fraction"] == 0.2
    al_only = oxidation_truth(config, {"Al": 0.2, "Ni": 0.8}, 1273.15)
    assert al_only["regime"] == "alumina"
    assert oxidation_truth(config, {"Al": 0.05, "Ni": 0.95}, 1273.15)["regime"] == "NiO"
    assert critical_fraction(config, "Al") == 0.10
    assert critical_fraction(config, "Cr", 1100.0) == critical_cr_fraction(config)
    with pytest.raises(KeyError, match="Fe"):
        critical_fraction(config, "Fe")
