"""The tensile analysis against synthetic curves whose properties are known exactly.

The curves are built here, independently of the twin: linear elastic, then linear work
hardening (so the 0.2 % offset yield is known in closed form), a parabolic top and a
parabolic drop to fracture.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from couponlab.plans.tensile_analysis import AnalysisError, analyse_tensile

AREA = 12.0  # mm^2


def synthetic(
    *,
    e_mpa: float = 200e3,
    sy: float = 400.0,
    h: float = 2000.0,
    ep_top: float = 0.10,
    top_width: float = 0.05,
    neck: float = 0.08,
    drop: float = 0.3,
    toe: float = 0.0,
    n: int = 20000,
    noise_mpa: float = 0.0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """Return (strain, force, truth) of a curve with known properties.

    Stress against plastic strain p: ``sy + h p`` up to ``ep_top - top_width``, then a
    parabola with zero slope at ``ep_top`` (UTS), then a parabolic drop of ``drop * UTS``
    over ``neck`` of strain, then fracture (force 0).
    """
    p1 = ep_top - top_width
    s1 = sy + h * p1
    uts = s1 + h * top_width / 2  # parabola continuing slope h to zero at ep_top
    p = np.linspace(0.0, ep_top + neck, n)
    s = np.where(p <= p1, sy + h * p, uts - h / (2 * top_width) * (p - ep_top) ** 2)
    s = np.where(p > ep_top, uts - drop * uts * ((p - ep_top) / neck) ** 2, s)
    eps_plastic_branch = p + s / e_mpa
    # elastic loading before yield
    el_s = np.linspace(0.0, sy, max(n // 10, 50), endpoint=False)
    strain = np.concatenate((el_s / e_mpa, eps_plastic_branch, [eps_plastic_branch[-1]] * 20))
    stress = np.concatenate((el_s, s, np.zeros(20)))
    strain = strain + toe
    rng = np.random.default_rng(seed)
    stress = stress + rng.normal(0.0, noise_mpa, stress.shape) if noise_mpa else stress
    s_frac = float(s[-1])
    truth = {
        "modulus": e_mpa / 1000.0,
        "yield_strength": sy + h * 0.002,
        "uts": uts,
        "uniform_elongation": 100.0 * ep_top,
        "total_elongation": 100.0 * float(eps_plastic_branch[-1]),
        "elongation_after_fracture": 100.0 * (float(eps_plastic_branch[-1]) - s_frac / e_mpa),
    }
    return strain, stress * AREA, truth


def test_exact_properties_of_a_noise_free_curve() -> None:
    strain, force, truth = synthetic()
    r = analyse_tensile(strain, force, AREA, smooth_samples=1)
    assert r.modulus == pytest.approx(truth["modulus"], rel=1e-9)
    assert r.yield_strength == pytest.approx(truth["yield_strength"], rel=1e-4)
    assert r.uts == pytest.approx(truth["uts"], rel=1e-9)
    assert r.uniform_elongation == pytest.approx(truth["uniform_elongation"], abs=0.01)
    assert r.total_elongation == pytest.approx(truth["total_elongation"], abs=1e-9)
    assert r.elongation_after_fracture == pytest.approx(
        truth["elongation_after_fracture"], abs=1e-9
    )
    assert r.fractured and r.modulus_r2 == pytest.approx(1.0)


@pytest.mark.parametrize(
    "params",
    [
        {"e_mpa": 193e3, "sy": 480.0, "h": 1200.0, "ep_top": 0.22, "top_width": 0.1},
        {"e_mpa": 205e3, "sy": 420.0, "h": 2500.0, "ep_top": 0.28, "top_width": 0.08},
        {"e_mpa": 70e3, "sy": 250.0, "h": 900.0, "ep_top": 0.08, "top_width": 0.03},
    ],
)
def test_noisy_curves_within_tolerances(params: dict[str, float]) -> None:
    strain, force, truth = synthetic(**params, noise_mpa=0.2, seed=1)  # type: ignore[arg-type]
    r = analyse_tensile(strain, force, AREA)
    assert r.modulus == pytest.approx(truth["modulus"], rel=0.01)
    assert r.yield_strength == pytest.approx(truth["yield_strength"], rel=0.005)
    assert r.uts == pytest.approx(truth["uts"], rel=0.001)
    assert r.uniform_elongation == pytest.approx(truth["uniform_elongation"], abs=1.0)
    assert r.total_elongation == pytest.approx(truth["total_elongation"], abs=0.05)
    assert r.elongation_after_fracture == pytest.approx(
        truth["elongation_after_fracture"], abs=0.05
    )


def test_toe_offset_is_removed() -> None:
    strain, force, truth = synthetic(toe=0.003)
    r = analyse_tensile(strain, force, AREA, smooth_samples=1)
    assert r.toe_strain == pytest.approx(0.003, abs=1e-9)
    assert r.yield_strength == pytest.approx(truth["yield_strength"], rel=1e-4)
    assert r.total_elongation == pytest.approx(truth["total_elongation"], abs=1e-9)


def test_curve_without_fracture_reports_nan_elongations() -> None:
    strain, force, _ = synthetic()
    keep = len(strain) - 2000
    r = analyse_tensile(strain[:keep], force[:keep], AREA)
    assert not r.fractured
    assert math.isnan(r.total_elongation) and math.isnan(r.elongation_after_fracture)
    assert r.uts > 0


def test_unusable_curves_raise() -> None:
    with pytest.raises(AnalysisError, match="too few"):
        analyse_tensile(np.zeros(5), np.zeros(5), AREA)
    with pytest.raises(AnalysisError, match="same length"):
        analyse_tensile(np.zeros(50), np.zeros(49), AREA)
    with pytest.raises(AnalysisError, match="area"):
        analyse_tensile(np.zeros(50), np.zeros(50), 0.0)
    with pytest.raises(AnalysisError, match="above zero"):
        analyse_tensile(np.linspace(0, 1, 50), np.zeros(50), AREA)
    elastic = np.linspace(0, 0.002, 100)
    with pytest.raises(AnalysisError, match="offset line"):
        analyse_tensile(elastic, elastic * 200e3 * AREA, AREA)
