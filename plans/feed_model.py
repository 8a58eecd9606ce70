"""The powder-delivery model the graded-print plans plan with: feed channels, the powder mix
that reaches a composition, first-order lag inversion and the forward model of a channel
(transport delay + first-order lag + gain, Pan, Landers & Liou 2006; decision 0012).

Pure functions on arrays, no devices: the single-pass planner
(:mod:`couponlab.plans.print_graded`) and the multi-track planner
(:mod:`couponlab.plans.track_schedule`) share them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import optimize

from couponlab.errors import InputError
from couponlab.interfaces.feeder import CompositionMap, Powder
from couponlab.plans.calibrate_feeder import HopperCalibration

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Channel:
    """One feed channel of the cell: its feeder, hopper, powder and calibration."""

    feeder: str
    hopper: int
    powder: Powder
    calibration: HopperCalibration | None


def mix_fractions(
    fractions: Mapping[str, FloatArray], powders: Sequence[Powder], decimals: int = 9
) -> FloatArray:
    """Return the mass fraction of each powder that reaches the element ``fractions`` at each
    of N points (arrays shaped (N,)), shape (N, npowders).

    Fractions are non-negative and sum to 1 (non-negative least squares,
    :func:`scipy.optimize.nnls`, on the element rows plus a row of 100s that enforces the sum);
    identical compositions (to ``decimals``) are solved once.

    Raises
    ------
    InputError
        The target needs an element that no powder contains.
    """
    missing = [
        e
        for e, f in fractions.items()
        if np.max(np.asarray(f, float), initial=0.0) > 0
        and not any(p.composition.get(e, 0) > 0 for p in powders)
    ]
    if missing:
        raise InputError("", f"no powder contains {missing}; powders: {[p.name for p in powders]}")
    elements = sorted(set(fractions) | {e for p in powders for e in p.composition})
    a = np.array([[p.composition.get(e, 0.0) for p in powders] for e in elements], float)
    a = np.vstack([a, 100.0 * np.ones(len(powders))])
    n = len(next(iter(fractions.values()))) if fractions else 0
    b_all = np.array(
        [np.asarray(fractions.get(e, np.zeros(n)), float) for e in elements], float
    ).reshape(len(elements), n)
    unique, inverse = np.unique(np.round(b_all.T, decimals), axis=0, return_inverse=True)
    solved = np.zeros((unique.shape[0], len(powders)))
    for i, row in enumerate(unique):
        w, _residual = optimize.nnls(a, np.append(row, 100.0))
        solved[i] = w / w.sum() if w.sum() > 0 else w
    mix: FloatArray = solved[np.asarray(inverse).ravel()]
    return mix


def powder_mix(target: CompositionMap, powders: Sequence[Powder]) -> FloatArray:
    """Return the mass fraction of each powder at each node of a map along x, shape
    (nx, npowders) (see :func:`mix_fractions`).

    Raises
    ------
    InputError
        The target needs an element that no powder contains.
    """
    return mix_fractions({e: np.asarray(f, float) for e, f in target.fractions.items()}, powders)


def invert_lag(q: FloatArray, tau: float, h: float) -> FloatArray:
    """Return piecewise-constant commands ``u`` whose first-order lag output (time constant
    ``tau`` s, step ``h`` s, zero-order hold) follows ``q``: ``u[n] = (q[n+1] - a q[n]) / (1-a)``.
    """
    a = math.exp(-h / tau) if tau > 0 else 0.0
    nxt = np.append(q[1:], q[-1])
    u: FloatArray = (nxt - a * q) / (1.0 - a)
    return u


def simulate_channel(u: FloatArray, delay: float, tau: float, gain: float, h: float) -> FloatArray:
    """Return the nozzle flow of a channel (delay + lag + gain) for commands ``u`` at step h."""
    a = math.exp(-h / tau) if tau > 0 else 0.0
    y = np.zeros_like(u)
    state = 0.0
    for n in range(u.size):
        y[n] = state
        state = a * state + (1 - a) * gain * u[n]
    shift = round(delay / h)
    out = np.zeros_like(y)
    if shift < y.size:
        out[shift:] = y[: y.size - shift]
    return out


def lead_and_invert(
    q: FloatArray,
    calibration: HopperCalibration,
    h: float,
    max_rate: float,
) -> FloatArray:
    """Return feed-forward commands (g/min, clipped to ``0..max_rate``) whose nozzle flow
    follows the wanted flow ``q`` (g/min, one sample every ``h`` s).

    The commands lead ``q`` by the channel's delay and invert its first-order lag against
    the lag's simulated state, so a command clipped at a limit is caught up afterwards
    (``u[n] = (q[n+1+d] - a y[n]) / ((1 - a) gain)``, ``a = exp(-h / tau)``); with no
    clipping this equals :func:`invert_lag` of the led flow divided by the gain.
    """
    cal = calibration
    idx = np.arange(q.size, dtype=float)
    ahead = np.interp(idx + cal.delay_s / h, idx, q)  # ends held
    a = math.exp(-h / cal.tau_s) if cal.tau_s > 0 else 0.0
    gain = max(cal.gain, 1e-3)
    u = np.zeros_like(q)
    state = 0.0
    for n in range(q.size):
        want = ahead[n + 1] if n + 1 < q.size else ahead[-1]
        cmd = (want - a * state) / ((1.0 - a) * gain)
        cmd = min(max(cmd, 0.0), max_rate)
        u[n] = cmd
        state = a * state + (1.0 - a) * gain * cmd
    return u


__all__ = [
    "Channel",
    "invert_lag",
    "lead_and_invert",
    "mix_fractions",
    "powder_mix",
    "simulate_channel",
]
