"""Oxidation activation energy from one gradient exposure.

Parabolic growth ``x**2 = kp t`` with ``kp = k0 exp(-Q / (R T))`` gives
``ln(x**2 / t) = ln k0 - Q / (R T)``: on a coupon held for a time ``t`` in a temperature
gradient, thickness against temperature along the coupon is a straight line in
``(1/T, ln(x**2/t))`` whose slope is ``-Q/R``. With the composition graded across the
coupon, each composition row gives its own Q.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

R_GAS = 8.314462618
"""Gas constant, J/(mol K)."""


@dataclass(frozen=True)
class ArrheniusFit:
    """The result of one Arrhenius fit.

    Attributes
    ----------
    activation_energy_kj_per_mol
        Q, kJ/mol.
    stderr_kj_per_mol
        Standard error of Q from the least-squares fit, kJ/mol (NaN with 2 points).
    ln_k0
        Intercept, ln(k0 / (m^2/s)).
    r_squared
        Coefficient of determination of the line.
    n_points
        Points used (finite, positive thickness, inside the valid mask).
    t_min_k, t_max_k
        Temperature range of the points used, K.
    """

    activation_energy_kj_per_mol: float
    stderr_kj_per_mol: float
    ln_k0: float
    r_squared: float
    n_points: int
    t_min_k: float
    t_max_k: float

    def as_metadata(self) -> dict[str, float | int]:
        """Return the fit as a flat dict for run metadata (keys carry the units)."""
        return asdict(self)


def fit_activation_energy(
    thickness_m: ArrayLike,
    temperature_k: ArrayLike,
    time_s: float,
    *,
    valid: ArrayLike | None = None,
) -> ArrheniusFit:
    """Fit Q from oxide thicknesses measured at known temperatures after ``time_s``.

    Parameters
    ----------
    thickness_m
        Oxide thickness per point, m (> 0; NaN or <= 0 points are ignored).
    temperature_k
        Temperature each point saw during the exposure, K (> 0).
    time_s
        Exposure time at temperature, s (> 0).
    valid
        Optional boolean mask of points to use (e.g. the profiler's in-range flag).

    Raises
    ------
    ValueError
        Fewer than two usable points, or a non-positive time or temperature.
    """
    x = np.asarray(thickness_m, float).ravel()
    t = np.asarray(temperature_k, float).ravel()
    if x.shape != t.shape:
        raise ValueError(f"thickness {x.shape} and temperature {t.shape} differ in shape")
    if not time_s > 0:
        raise ValueError(f"exposure time must be > 0 s, got {time_s}")
    ok = np.isfinite(x) & (x > 0) & np.isfinite(t)
    if valid is not None:
        ok &= np.asarray(valid, bool).ravel()
    if np.any(t[ok] <= 0):
        raise ValueError("temperatures must be in kelvin (> 0)")
    if ok.sum() < 2:
        raise ValueError(f"need at least two usable points, have {int(ok.sum())}")
    inv_t = 1.0 / t[ok]
    y = np.log(x[ok] ** 2 / time_s)
    a = np.vstack([inv_t, np.ones_like(inv_t)]).T
    (slope, intercept), *_ = np.linalg.lstsq(a, y, rcond=None)
    resid = y - (slope * inv_t + intercept)
    n = int(ok.sum())
    ss_res = float(resid @ resid)
    ss_tot = float(((y - y.mean()) ** 2).sum())
    if n > 2:
        sigma2 = ss_res / (n - 2)
        se_slope = float(np.sqrt(sigma2 / ((inv_t - inv_t.mean()) ** 2).sum()))
    else:
        se_slope = float("nan")
    return ArrheniusFit(
        activation_energy_kj_per_mol=float(-slope * R_GAS / 1e3),
        stderr_kj_per_mol=se_slope * R_GAS / 1e3,
        ln_k0=float(intercept),
        r_squared=1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0,
        n_points=n,
        t_min_k=float(t[ok].min()),
        t_max_k=float(t[ok].max()),
    )


def fit_per_row(
    thickness_m: ArrayLike,
    temperature_k: ArrayLike,
    time_s: float,
    *,
    valid: ArrayLike | None = None,
) -> list[ArrheniusFit]:
    """Fit Q for each row of a thickness map (rows: compositions; columns: positions along
    the gradient). ``temperature_k`` is one row (shared) or a full map like ``thickness_m``.
    """
    x = np.atleast_2d(np.asarray(thickness_m, float))
    t: NDArray[np.float64] = np.broadcast_to(np.asarray(temperature_k, float), x.shape)
    v = None if valid is None else np.broadcast_to(np.asarray(valid, bool), x.shape)
    return [
        fit_activation_energy(x[i], t[i], time_s, valid=None if v is None else v[i])
        for i in range(x.shape[0])
    ]


__all__ = ["R_GAS", "ArrheniusFit", "fit_activation_energy", "fit_per_row"]
