"""Pure parts of the deposition plans: step-response fit, powder mix, lag inversion."""

from __future__ import annotations

import numpy as np
import pytest

from couponlab.interfaces.feeder import CompositionMap, FlowLog, Powder
from couponlab.plans import feed_model
from couponlab.plans.calibrate_feeder import fit_step_response
from couponlab.plans.print_graded import invert_lag, powder_mix, simulate_channel


def test_fit_recovers_delay_and_lag_from_a_noisy_step() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(0.0, 15.0, 0.05)
    sp = np.where(t >= 1.0, 8.0, 0.0)
    dt = t - 1.0 - 2.4
    y = np.where(dt > 0, 8.0 * 0.97 * (1 - np.exp(-np.maximum(dt, 0) / 0.9)), 0.0)
    y = y * (1 + 0.03 * rng.standard_normal(t.size))
    delay, tau, gain, rms = fit_step_response(FlowLog(t, sp, y))
    assert delay == pytest.approx(2.4, abs=0.05)
    assert tau == pytest.approx(0.9, rel=0.1)
    assert gain == pytest.approx(0.97, abs=0.02)
    assert rms < 0.5


def test_fit_ends_at_the_next_setpoint_change() -> None:
    # the plan stops the logger only after setting the rate back to 0: on a busy machine
    # the log goes on past that, and the falling flow is not part of the rising step
    t = np.arange(0.0, 20.0, 0.05)
    sp = np.where((t >= 1.0) & (t < 15.0), 8.0, 0.0)
    on = np.where(t - 1.0 - 2.4 > 0, 1 - np.exp(-np.maximum(t - 3.4, 0) / 0.9), 0.0)
    off = np.where(t - 15.0 - 2.4 > 0, 1 - np.exp(-np.maximum(t - 17.4, 0) / 0.9), 0.0)
    y = 8.0 * 0.97 * (on - off)
    delay, tau, gain, _ = fit_step_response(FlowLog(t, sp, y))
    assert delay == pytest.approx(2.4, abs=0.03)  # the step instant: half a sample
    assert tau == pytest.approx(0.9, rel=0.02)
    assert gain == pytest.approx(0.97, abs=0.005)


def test_fit_refuses_a_log_without_a_step() -> None:
    t = np.arange(0.0, 5.0, 0.05)
    with pytest.raises(ValueError, match="no rising"):
        fit_step_response(FlowLog(t, np.full(t.size, 5.0), np.full(t.size, 5.0)))


def test_powder_mix_reaches_the_target() -> None:
    x = np.linspace(0, 10, 5)
    cr = np.array([0.0, 0.1, 0.25, 0.4, 0.5])
    powders = [
        Powder("Ni", {"Ni": 1.0}),
        Powder("Ni-50Cr", {"Ni": 0.5, "Cr": 0.5}),
        Powder("Fe", {"Fe": 1.0}),
    ]
    mix = powder_mix(CompositionMap(x, {"Cr": cr, "Ni": 1 - cr}), powders)
    assert np.allclose(mix.sum(axis=1), 1.0)
    assert np.allclose(mix[:, 1], 2 * cr, atol=1e-6)
    assert np.allclose(mix[:, 2], 0.0, atol=1e-9)


def test_inverted_lag_delivers_the_wanted_flow() -> None:
    h, tau = 0.05, 0.8
    q = np.concatenate([np.zeros(40), np.linspace(0, 10, 100), np.full(60, 10.0)])
    u = invert_lag(q, tau, h)
    y = simulate_channel(u, 0.0, tau, 1.0, h)
    assert np.max(np.abs(y - q)) < 1e-9  # exact for piecewise-constant commands
    assert np.max(np.abs(simulate_channel(q, 0.0, tau, 1.0, h) - q)) > 1.0  # naive lags


def test_powder_mix_solves_each_distinct_composition_with_scipy_nnls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """mix_fractions hands scipy.optimize.nnls the element-by-powder matrix with a row of
    100s under it and the target with 100 appended, once per distinct composition, and uses
    the solution it gets back (normalised to sum 1)."""
    calls: list[tuple[np.ndarray, np.ndarray]] = []
    answers = [np.array([3.0, 1.0, 0.0]), np.array([0.0, 2.0, 2.0])]

    def fake_nnls(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, float]:
        calls.append((a.copy(), b.copy()))
        return answers[len(calls) - 1], 0.0

    monkeypatch.setattr(feed_model.optimize, "nnls", fake_nnls)
    powders = [
        Powder("Ni", {"Ni": 1.0}),
        Powder("Ni-50Cr", {"Ni": 0.5, "Cr": 0.5}),
        Powder("Fe", {"Fe": 1.0}),
    ]
    cr = np.array([0.1, 0.2, 0.1])  # two distinct compositions, the first one twice
    mix = feed_model.mix_fractions({"Cr": cr, "Ni": 1 - cr}, powders)

    assert len(calls) == 2
    # elements sorted (Cr, Fe, Ni), one column per powder, then the sum row
    expected_a = np.array(
        [[0.0, 0.5, 0.0], [0.0, 0.0, 1.0], [1.0, 0.5, 0.0], [100.0, 100.0, 100.0]]
    )
    for a, _ in calls:
        np.testing.assert_array_equal(a, expected_a)
    np.testing.assert_allclose(calls[0][1], [0.1, 0.0, 0.9, 100.0])
    np.testing.assert_allclose(calls[1][1], [0.2, 0.0, 0.8, 100.0])
    np.testing.assert_allclose(mix, [[0.75, 0.25, 0.0], [0.0, 0.5, 0.5], [0.75, 0.25, 0.0]])


def test_powder_mix_of_the_bundled_hoppers_does_not_warn() -> None:
    """The bundled feeder's four powders and 32.5 % Cr, where the old hand-written solver
    divided 0 by 0 (warnings are errors here): solved, non-negative, on target."""
    powders = [
        Powder("Ni", {"Ni": 1.0}),
        Powder("Ni-50Cr", {"Ni": 0.5, "Cr": 0.5}),
        Powder("Fe", {"Fe": 1.0}),
        Powder("Al", {"Al": 1.0}),
    ]
    cr = np.array([0.0, 0.325, 0.5])
    mix = feed_model.mix_fractions({"Cr": cr, "Ni": 1 - cr}, powders)
    np.testing.assert_allclose(mix, [[1, 0, 0, 0], [0.35, 0.65, 0, 0], [0, 1, 0, 0]], atol=1e-9)
