"""The Arrhenius fit recovers known activation energies from synthetic thickness data."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from couponlab.plans.oxidation_analysis import R_GAS, fit_activation_energy, fit_per_row


def _thickness(q_j: float, ln_k0: float, t_k: np.ndarray, time_s: float) -> np.ndarray:
    return np.sqrt(np.exp(ln_k0 - q_j / (R_GAS * t_k)) * time_s)


@settings(deadline=None)
@given(q=st.floats(80e3, 400e3), ln_k0=st.floats(-30, 5))
def test_exact_data_gives_exact_q(q: float, ln_k0: float) -> None:
    t = np.linspace(873.15, 1373.15, 40)
    fit = fit_activation_energy(_thickness(q, ln_k0, t, 3.6e5), t, 3.6e5)
    assert fit.activation_energy_kj_per_mol == pytest.approx(q / 1e3, rel=1e-9)
    assert fit.ln_k0 == pytest.approx(ln_k0, abs=1e-6)
    assert fit.r_squared == pytest.approx(1.0)


def test_noisy_data_within_stderr() -> None:
    rng = np.random.default_rng(3)
    t = np.linspace(873.15, 1373.15, 60)
    x = _thickness(250e3, -12.0, t, 3.6e5) * rng.normal(1, 0.03, t.size)
    fit = fit_activation_energy(x, t, 3.6e5)
    assert abs(fit.activation_energy_kj_per_mol - 250) < 4 * fit.stderr_kj_per_mol
    assert fit.stderr_kj_per_mol < 5


def test_invalid_points_are_ignored() -> None:
    t = np.linspace(900, 1300, 10)
    x = _thickness(200e3, -10, t, 1e4)
    x[0], x[1] = np.nan, 0.0
    valid = np.ones(10, bool)
    valid[2] = False
    x[2] = 1.0  # a wild point, masked out
    fit = fit_activation_energy(x, t, 1e4, valid=valid)
    assert fit.n_points == 7
    assert fit.activation_energy_kj_per_mol == pytest.approx(200, rel=1e-9)


def test_per_row_fit() -> None:
    t = np.linspace(900, 1300, 20)
    qs = [112e3, 180e3, 250e3]
    x = np.vstack([_thickness(q, -10, t, 1e5) for q in qs])
    fits = fit_per_row(x, t, 1e5)
    assert [f.activation_energy_kj_per_mol for f in fits] == pytest.approx([112, 180, 250])


@pytest.mark.parametrize(
    ("x", "t", "time", "match"),
    [
        ([1e-6], [1000.0], 10.0, "at least two"),
        ([1e-6, 2e-6], [1000.0, 1100.0], 0.0, "time must be > 0"),
        ([1e-6, 2e-6], [-10.0, 1100.0], 1.0, "kelvin"),
        ([1e-6, 2e-6], [1000.0], 1.0, "shape"),
    ],
)
def test_bad_input(x: list[float], t: list[float], time: float, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        fit_activation_energy(x, t, time)
