"""The parts of the oxidation analysis: thermocouple profile, Tedmon's law, the batched
least squares, and one whole coupon analysed."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pytest
from science_campaigns import measurements
from scipy import optimize
from scipy.integrate import solve_ivp

from couponlab.errors import InputError
from couponlab.plans.agents import report_coupon
from couponlab.plans.coupon_temperature import ThermocoupleErrors, temperatures_at
from couponlab.plans.oxidation_analysis import CouponMeasurements, analyse_coupons
from couponlab.plans.oxide_kinetics import tedmon_thickness
from couponlab.plans.small_least_squares import levenberg_marquardt
from couponlab.simulators.oxidation_campaign import CampaignDesign, simulate_campaigns
from couponlab.simulators.oxidation_truth import coupon_rows_truth, critical_fraction
from couponlab.simulators.world import Coupon, World, WorldConfig


def test_the_coupon_end_beyond_the_last_thermocouple_follows_the_gradient() -> None:
    """57 mm lies 2 mm past the last thermocouple (55 mm): extrapolated, not clamped."""
    tc = np.arange(0.0, 60.0, 5.0)
    true_c = 1060.0 - 3.5 * tc
    got = temperatures_at([3.0, 57.0], tc, np.tile(true_c, (5, 1)), 50 * 3600.0)
    assert got.temperature_k[1] - 273.15 == pytest.approx(1060.0 - 3.5 * 57.0)
    assert list(got.extrapolated) == [False, True]
    assert got.sigma_k[1] > got.sigma_k[0]  # extrapolation amplifies the end errors


def test_point_temperature_covariance_has_the_iec_tolerance_and_the_placement() -> None:
    tc = np.arange(0.0, 60.0, 5.0)
    scans = np.tile(1000.0 - 3.0 * tc, (3, 1))
    errors = ThermocoupleErrors(drift_sigma_k_per_h=0.0, scanner_sigma_k=0.0)
    at_tc = temperatures_at(tc, tc, scans, 3600.0, errors=errors)
    tol = 0.004 * (1000.0 - 3.0 * tc)  # class 1 above 375 degC, uniform: sigma = tol/sqrt 3
    expected = tol**2 / 3 + (0.25 * 3.0) ** 2
    np.testing.assert_allclose(np.diag(at_tc.covariance_k2), expected, rtol=1e-6)
    # every pair shares the placement error (gradient x 0.25 mm), so rows are correlated
    assert at_tc.covariance_k2[0, -1] == pytest.approx((0.25 * 3.0) ** 2)
    broken = scans.copy()
    broken[:, 3] = 9.9e37
    assert temperatures_at(tc, tc, broken, 3600.0).thermocouples_used == 11
    with pytest.raises(InputError, match="working thermocouples"):
        temperatures_at(tc, tc[:2], scans[:, :2] * np.nan, 3600.0)


def test_tedmon_thickness_matches_an_ode_solve() -> None:
    kp, t = 3e-16, 1.8e5
    for kv in (0.0, 1e-13, 1e-11, 5e-11):
        ode = solve_ivp(
            lambda _, x, kv=kv: kp / (2 * x) - kv,
            (1e-3, t),
            [np.sqrt(kp * 1e-3)],
            rtol=1e-10,
            atol=1e-18,
        )
        got = float(tedmon_thickness(np.array([kp]), np.array([kv]), t)[0])
        assert got == pytest.approx(ode.y[0, -1], rel=1e-6)


def test_batched_levenberg_marquardt_agrees_with_scipy() -> None:
    rng = np.random.default_rng(1)
    t = np.linspace(0, 4, 30)
    truth = np.array([[2.0, 0.7], [1.0, 1.5], [3.0, 0.2]])
    y = truth[:, :1] * np.exp(-truth[:, 1:] * t) + 0.01 * rng.standard_normal((3, t.size))

    def resid(th: np.ndarray) -> np.ndarray:
        return th[:, :1] * np.exp(-th[:, 1:] * t) - y

    got, _ = levenberg_marquardt(resid, np.ones((3, 2)), np.zeros(2), np.full(2, 10.0))
    for k in range(3):
        ref = optimize.least_squares(
            lambda th, k=k: th[0] * np.exp(-th[1] * t) - y[k], np.ones(2)
        ).x
        np.testing.assert_allclose(got[k], ref, rtol=1e-5)


def test_one_coupon_gives_regimes_q_and_the_critical_cr_content() -> None:
    config, design = WorldConfig(), CampaignDesign()
    data = simulate_campaigns(config, design, np.random.default_rng(5), 1)[0]
    [result] = analyse_coupons([measurements(data, design)])
    regimes = [r.regime for r in result.rows]
    assert regimes[0] == "NiO" and regimes[-1] == "chromia" and "transition" in regimes
    agree = sum(a == b for a, b in zip(regimes, data.true_regime, strict=True))
    assert agree >= len(regimes) - 2
    lo, hi = result.critical.interval(0.95)
    assert result.critical.located and lo < data.true_critical_cr < hi
    for row, q in zip(result.rows, data.true_q_kj_per_mol, strict=True):
        if row.regime in ("NiO", "chromia"):
            lo, hi = row.q_interval(0.999)
            assert lo < q < hi, (row, q)
    chromia = [r for r in result.rows if r.regime == "chromia"]
    assert all(r.law.startswith("paralinear") for r in chromia)
    # the rows share their temperatures, so their Q are correlated
    corr = result.q_correlation
    assert np.all(np.abs(corr[np.isfinite(corr)]) <= 1 + 1e-9) and corr[0, 1] > 0.1


def test_one_coupon_reports_to_the_campaign_agent() -> None:
    """The analysis' report (what the agent is told) carries the critical content found."""
    config, design = WorldConfig(), CampaignDesign()
    data = simulate_campaigns(config, design, np.random.default_rng(5), 1)[0]
    coupon = measurements(data, design)
    report = report_coupon(coupon, "Cr", coupon_id="K-C01", printed=(0.0, 0.5))
    [result] = analyse_coupons([coupon])
    assert (report.system, report.element, report.side) == ("Ni-Cr", "Cr", "located")
    assert (report.estimate, report.sigma) == (result.critical.fraction, result.critical.sigma)
    assert report.interval(0.95) == pytest.approx(result.critical.interval(0.95))
    assert report.band is not None and report.band[0] < report.estimate < report.band[1]
    assert 1100 < report.temperature_k < 1350
    # a coupon graded below (above) the transition only: the content lies above (below) it
    lean = _rows_where(coupon, lambda cr: cr < 0.14)
    side = report_coupon(lean, "Cr")
    assert side.side == "above" and math.isnan(side.estimate), side
    assert side.high == pytest.approx(float(np.nanmean(lean.cr[-1])), abs=0.01)
    assert report_coupon(_rows_where(coupon, lambda cr: cr > 0.3), "Cr").side == "below"
    with pytest.raises(InputError, match="no XRF map of 'Al'"):
        report_coupon(coupon, "Al")


def _rows_where(coupon: CouponMeasurements, keep: Callable[[float], bool]) -> CouponMeasurements:
    """Return the coupon cut to the rows whose mean Cr ``keep`` accepts."""
    rows = [r for r in range(coupon.cr.shape[0]) if keep(float(np.nanmean(coupon.cr[r])))]
    return replace(
        coupon,
        thickness_m=coupon.thickness_m[rows],
        thickness_sigma_m=coupon.thickness_sigma_m[rows],
        cr=coupon.cr[rows],
        cr_sigma=coupon.cr_sigma[rows],
    )


@dataclass(frozen=True)
class LinearFurnace:
    """A holder at ``hot_k`` (K) at x = 0 falling linearly to ``cold_k`` at ``length_mm``."""

    hot_k: float
    cold_k: float
    length_mm: float = 60.0

    def temperature_along(self, x_mm: np.ndarray) -> np.ndarray:
        return self.hot_k + (self.cold_k - self.hot_k) * np.asarray(x_mm) / self.length_mm


def test_the_critical_al_content_is_recovered_from_a_seeded_world() -> None:
    """A Ni-Al coupon (0 -> 30 % Al across) held 50 h of stepped virtual time in the
    demo's gradient, read with the instruments' noise: the critical Al content at the
    stated temperature lies within the report's 95 % interval, the rows' regimes are the
    world's."""
    design = CampaignDesign(element="Al", cr_max=0.3)
    w = World(WorldConfig(seed=7), paused=True)
    c = w.add_coupon(Coupon("al", length_mm=60.0, width_mm=10.0, resolution_mm=0.5))
    al = np.broadcast_to(0.03 * c.y_mm[:, None], c.shape)
    c.set_composition({"Al": al, "Ni": 1 - al})
    furnace = LinearFurnace(1060.0 + 273.15, 847.0 + 273.15)
    w.place("al", furnace)
    w.advance(design.hold_s)
    w.place("al", None)  # out, cooled: spallation checked
    w.advance(120.0)
    x, y = np.asarray(design.points_x_mm), np.asarray(design.rows_y_mm)
    rng = w.rng_for("instruments of this test")
    true_x = c.oxide_thickness_grid(x, y)
    read = true_x + design.profiler_sigma_m(true_x) * rng.standard_normal(true_x.shape)
    lo, hi = design.profiler_range_m
    counts = int(design.xrf_counts)
    al_xrf = rng.binomial(counts, c.composition_grid(x, y)["Al"]) / counts
    tc = np.asarray(design.tc_positions_mm)
    tc_true_c = furnace.temperature_along(tc) - 273.15
    tc_scans = tc_true_c + rng.uniform(-1, 1, tc.size) * 0.004 * tc_true_c  # class 1
    tc_scans = tc_scans + 0.1 * rng.standard_normal((design.scans, tc.size))
    coupon = CouponMeasurements(
        x_mm=x,
        thickness_m=np.where((read >= lo) & (read <= hi), read, np.nan),
        thickness_sigma_m=design.profiler_sigma_m(np.nan_to_num(read)),
        cr=np.zeros_like(read),
        cr_sigma=np.full_like(read, 1e-3),
        tc_positions_mm=tc,
        tc_scans_c=tc_scans,
        hold_s=design.hold_s,
        fractions={"Al": al_xrf},
        fraction_sigmas={"Al": np.sqrt(np.clip(al_xrf * (1 - al_xrf), 1e-6, None) / counts)},
    )
    report = report_coupon(coupon, "Al", coupon_id="al")
    assert (report.system, report.side) == ("Ni-Al", "located")
    truth = critical_fraction(w.config, "Al", report.temperature_k)
    low, high = report.interval(0.95)
    assert low < truth < high, (report, truth)
    assert report.band is not None and report.band[0] < truth < report.band[1]
    world = coupon_rows_truth(w, "al", x.tolist(), y.tolist())
    rows = world["rows"]
    assert isinstance(rows, list)
    agree = sum(r == t["regime"] for r, t in zip(report.regimes, rows, strict=True))
    assert agree >= len(rows) - 1, (report.regimes, [t["regime"] for t in rows])
