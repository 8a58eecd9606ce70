"""The temperature each point of a coupon saw during a hold, with its covariance.

From the carrier thermocouples' scans over the whole hold (not the last scan):

1. each thermocouple's effective temperature is the Arrhenius-weighted mean of its scans,
   ``T_eff = -E / (R ln mean(exp(-E / (R T))))`` with ``E`` = ``weight_energy_kj_per_mol``
   (the temperature that grows the same oxide as the real history); broken channels
   (non-finite or overflow readings) are left out;
2. a point's temperature is the straight line through its two neighbouring thermocouples;
   beyond the first or last thermocouple the end segment's gradient is extrapolated (the
   coupon's ends are not clamped to the last thermocouple's reading);
3. the covariance of the points' temperatures comes from each thermocouple's error (IEC
   60584-1 type-K tolerance, taken as uniform over its band, drift over the hold, the
   scanner's own error, the scatter of the mean) through the interpolation weights, plus a
   shift of the whole coupon along the carrier (``position_sigma_mm``) times the local
   gradient. Points between the same thermocouples are therefore correlated, and so are all
   composition rows, which share the same temperatures.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from couponlab.errors import InputError

R_GAS = 8.314462618
"""Gas constant, J/(mol K)."""
KELVIN = 273.15
OVERFLOW = 9.0e37
"""Readings at or above this are an open thermocouple (Keithley overflow)."""

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class ThermocoupleErrors:
    """What the experimenter knows about the carrier thermocouples (datasheet values).

    Defaults: type K class 1, the scanner's 0.5 K per channel, a drift allowance of
    0.02 K/h at 1000 degC (zero below 800 degC), the coupon placed on the carrier to within
    0.25 mm (standard uncertainties; the tolerance band is a limit, taken as uniform).
    """

    tolerance_class: int = 1
    """IEC 60584-1 class of the type-K thermocouples (1 or 2)."""
    scanner_sigma_k: float = 0.5
    """The scanner's own error per channel, K (1 sigma)."""
    drift_sigma_k_per_h: float = 0.02
    """Spread of drift rates at 1000 degC, K/h (1 sigma)."""
    drift_onset_c: float = 800.0
    """No drift below this, degC."""
    position_sigma_mm: float = 0.25
    """Placement of the coupon along the carrier, mm (1 sigma)."""

    def tolerance_k(self, temperature_c: FloatArray) -> FloatArray:
        """Return the tolerance band half-width (K) at ``temperature_c`` (degC)."""
        if self.tolerance_class not in (1, 2):
            raise InputError("thermocouples", f"tolerance class {self.tolerance_class}: 1 or 2")
        fixed, rel = (1.5, 0.004) if self.tolerance_class == 1 else (2.5, 0.0075)
        out: FloatArray = np.maximum(fixed, rel * np.abs(temperature_c))
        return out

    def variance_k2(self, temperature_c: FloatArray, hold_s: float) -> FloatArray:
        """Return each thermocouple's error variance (K^2) averaged over a hold of ``hold_s``."""
        t = np.asarray(temperature_c, float)
        drift_scale = np.clip((t - self.drift_onset_c) / (1000.0 - self.drift_onset_c), 0, None)
        mean_drift_sigma = self.drift_sigma_k_per_h * drift_scale * hold_s / 3600.0 / 2.0
        out: FloatArray = (
            self.tolerance_k(t) ** 2 / 3.0 + self.scanner_sigma_k**2 + mean_drift_sigma**2
        )
        return out


@dataclass(frozen=True)
class PointTemperatures:
    """Temperatures (K) at points along a coupon and their covariance (K^2)."""

    x_mm: FloatArray
    temperature_k: FloatArray
    covariance_k2: FloatArray
    thermocouples_used: int
    extrapolated: NDArray[np.bool_]
    """True where a point lies beyond the first or last thermocouple used."""

    @property
    def sigma_k(self) -> FloatArray:
        """Return the standard uncertainty of each point's temperature, K."""
        out: FloatArray = np.sqrt(np.diag(self.covariance_k2))
        return out


def interpolation_weights(points_mm: FloatArray, tc_mm: FloatArray) -> FloatArray:
    """Return W (points x thermocouples): linear between neighbours, end gradients beyond.

    ``tc_mm`` must be strictly increasing with at least two positions.
    """
    w = np.zeros((points_mm.size, tc_mm.size))
    seg = np.clip(np.searchsorted(tc_mm, points_mm) - 1, 0, tc_mm.size - 2)
    x0, x1 = tc_mm[seg], tc_mm[seg + 1]
    u = (points_mm - x0) / (x1 - x0)
    rows = np.arange(points_mm.size)
    w[rows, seg] = 1.0 - u
    w[rows, seg + 1] = u
    return w


def temperatures_at(
    points_mm: ArrayLike,
    tc_positions_mm: ArrayLike,
    scans_c: ArrayLike,
    hold_s: float,
    *,
    errors: ThermocoupleErrors | None = None,
    weight_energy_kj_per_mol: float = 200.0,
) -> PointTemperatures:
    """Return the temperature each point saw over the hold, with covariance.

    Parameters
    ----------
    points_mm
        Positions of the points along the coupon, mm (same axis as the thermocouples).
    tc_positions_mm
        Thermocouple positions, mm (strictly increasing).
    scans_c
        Readings, degC, shaped (scans, thermocouples) (or one scan); open channels read
        overflow or NaN in any scan and are left out.
    hold_s
        Duration of the hold the scans cover, s (> 0; sets the drift allowance).
    errors
        What is known of the thermocouples' errors (defaults: :class:`ThermocoupleErrors`).
    weight_energy_kj_per_mol
        Activation energy for the Arrhenius-weighted mean over scans, kJ/mol (> 0).

    Raises
    ------
    InputError
        Fewer than two working thermocouples, positions not increasing, or shapes that differ.
    """
    err = errors or ThermocoupleErrors()
    x = np.asarray(points_mm, float).ravel()
    tc = np.asarray(tc_positions_mm, float).ravel()
    scans = np.atleast_2d(np.asarray(scans_c, float))
    if scans.shape[1] != tc.size:
        raise InputError(
            "thermocouples", f"scans of {scans.shape[1]} channels, {tc.size} positions"
        )
    if np.any(np.diff(tc) <= 0):
        raise InputError("thermocouples", "positions must increase strictly")
    if not hold_s > 0:
        raise InputError("thermocouples", f"hold time {hold_s} s must be > 0")
    ok = np.all(np.isfinite(scans) & (np.abs(scans) < OVERFLOW), axis=0)
    if ok.sum() < 2:
        raise InputError("thermocouples", f"{int(ok.sum())} working thermocouples; need 2")
    tc, scans = tc[ok], scans[:, ok] + KELVIN
    e = weight_energy_kj_per_mol * 1e3 / R_GAS
    boltz = np.exp(-e / scans + e / scans.mean(axis=0))  # scaled: no underflow
    t_eff = e / (e / scans.mean(axis=0) - np.log(boltz.mean(axis=0)))
    n = scans.shape[0]
    var_mean = scans.var(axis=0, ddof=1) / n if n > 1 else np.zeros(tc.size)
    var_tc = err.variance_k2(t_eff - KELVIN, hold_s) + var_mean
    w = interpolation_weights(x, tc)
    t_pts = w @ t_eff
    seg = np.clip(np.searchsorted(tc, x) - 1, 0, tc.size - 2)
    gradient = (t_eff[seg + 1] - t_eff[seg]) / (tc[seg + 1] - tc[seg])
    cov = (w * var_tc) @ w.T + err.position_sigma_mm**2 * np.outer(gradient, gradient)
    return PointTemperatures(
        x_mm=x,
        temperature_k=t_pts,
        covariance_k2=cov,
        thermocouples_used=int(tc.size),
        extrapolated=(x < tc[0]) | (x > tc[-1]),
    )


__all__ = [
    "KELVIN",
    "PointTemperatures",
    "ThermocoupleErrors",
    "interpolation_weights",
    "temperatures_at",
]
