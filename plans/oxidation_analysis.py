"""Oxidation activation energy from one gradient exposure.

Two levels: :func:`fit_activation_energy` / :func:`fit_per_row` fit the bare parabolic
Arrhenius line (the law of the world's ``mixing`` law; no regimes, least-squares slope error
only); :func:`analyse_coupons` is the full analysis (regimes, laws, every uncertainty, the
critical Cr content; docs/science/oxidation-analysis.md).

Parabolic growth ``x**2 = kp t`` with ``kp = k0 exp(-Q / (R T))`` gives
``ln(x**2 / t) = ln k0 - Q / (R T)``: on a coupon held for a time ``t`` in a temperature
gradient, thickness against temperature along the coupon is a straight line in
``(1/T, ln(x**2/t))`` whose slope is ``-Q/R``. With the composition graded across the
coupon, each composition row gives its own Q.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from couponlab.errors import InputError
from couponlab.plans.coupon_temperature import (
    PointTemperatures,
    ThermocoupleErrors,
    temperatures_at,
)
from couponlab.plans.critical_chromium import Coupons, CriticalChromium, locate_critical_cr
from couponlab.plans.oxide_kinetics import RowKinetics, cross_covariance, fit_rows

if TYPE_CHECKING:
    from couponlab.plans.agents import CouponReport, Side

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


# -- the whole-coupon analysis: regimes, kinetics, critical Cr content ----------------------


@dataclass(frozen=True)
class CouponMeasurements:
    """What one gradient exposure and its maps give the analysis.

    Maps are shaped (rows, points): rows are compositions across the coupon, points the
    positions along the gradient (the thermocouples' axis).
    """

    x_mm: NDArray[np.float64]
    """Positions of the points along the coupon, mm."""
    thickness_m: NDArray[np.float64]
    """Oxide thickness, m (NaN where the profiler flagged the point out of range)."""
    thickness_sigma_m: NDArray[np.float64]
    """The profiler's standard uncertainty at each point, m."""
    cr: NDArray[np.float64]
    """Cr mass fraction at each point (XRF)."""
    cr_sigma: NDArray[np.float64]
    """Its standard uncertainty (counting statistics)."""
    tc_positions_mm: NDArray[np.float64]
    tc_scans_c: NDArray[np.float64]
    """Thermocouple readings over the hold, degC, shaped (scans, thermocouples)."""
    hold_s: float
    """Time at temperature, s."""
    hold_sigma_s: float = 300.0
    """Its standard uncertainty, s (transfer into and out of the hot furnace)."""
    fractions: Mapping[str, NDArray[np.float64]] = field(default_factory=dict)
    """Other elements' mass fractions at each point (XRF), by symbol, e.g. ``{"Al": ...}``."""
    fraction_sigmas: Mapping[str, NDArray[np.float64]] = field(default_factory=dict)
    """Their standard uncertainties (counting statistics), by symbol."""

    def fraction(self, element: str) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Return (mass fraction, standard uncertainty) of ``element`` at each point.

        ``"Cr"`` is :attr:`cr`; any other element comes from :attr:`fractions` and
        :attr:`fraction_sigmas`.

        Raises
        ------
        InputError
            The element's map or its uncertainty is missing, or shaped unlike the thickness.
        """
        if element == "Cr" and element not in self.fractions:
            return self.cr, self.cr_sigma
        if element not in self.fractions or element not in self.fraction_sigmas:
            raise InputError(
                "oxidation_analysis",
                f"no XRF map of {element!r} with its uncertainty; have "
                f"{sorted({'Cr', *self.fractions})}",
            )
        frac = np.asarray(self.fractions[element], float)
        sig = np.asarray(self.fraction_sigmas[element], float)
        if frac.shape != self.thickness_m.shape or sig.shape != frac.shape:
            raise InputError(
                "oxidation_analysis",
                f"{element} map {frac.shape} / {sig.shape} is not shaped like the thickness "
                f"{self.thickness_m.shape}",
            )
        return frac, sig


@dataclass(frozen=True)
class RowResult:
    """One composition row: regime, chosen law, Q and k0 with uncertainties, flags."""

    cr: float
    """Mean content of the graded element (:attr:`element`, Cr by default) over the row's
    used points, mass fraction."""
    cr_sigma: float
    regime: str
    """``NiO``, ``transition`` or the protective scale (``chromia`` for Cr, ``alumina`` for
    Al; from the protective fraction), or ``unknown``."""
    protective_fraction: float
    law: str
    """Chosen growth law (``none`` when the row could not be fitted)."""
    activation_energy_kj_per_mol: float
    q_sigma_kj_per_mol: float
    ln_k0: float
    ln_k0_sigma: float
    points_used: int
    out_of_range: int
    """Points the profiler flagged out of its range."""
    off_model: int
    """Points flagged off the model (spalled), plus 1000 if the row's chi-square is off."""
    likelihood_ratio_p: dict[str, float]
    element: str = "Cr"
    """The graded element the analysis was for: ``cr`` and ``cr_sigma`` are its content."""

    def q_interval(self, level: float = 0.68) -> tuple[float, float]:
        """Return the central interval of Q (kJ/mol) at confidence ``level`` (0..1)."""
        z = float(stats.norm.ppf(0.5 + level / 2))
        q, s = self.activation_energy_kj_per_mol, self.q_sigma_kj_per_mol
        return (q - z * s, q + z * s)


@dataclass(frozen=True)
class CouponAnalysis:
    """The result of :func:`analyse_coupons` for one coupon."""

    rows: list[RowResult]
    critical: CriticalChromium
    temperatures: PointTemperatures
    q_correlation: NDArray[np.float64]
    """Correlation of the rows' Q created by their shared temperatures (rows x rows)."""
    element: str = "Cr"
    """The graded element whose critical content :attr:`critical` is."""

    def report(
        self,
        element: str | None = None,
        *,
        system: str | None = None,
        coupon_id: str = "",
        printed: tuple[float, float] | None = None,
    ) -> CouponReport:
        """Return what this coupon tells a campaign agent (:mod:`couponlab.plans.agents`).

        ``element`` must be the analysed one (default it); ``system`` defaults to
        ``"Ni-<element>"``; ``printed`` is the range printed across the coupon (mass
        fractions), by default the lowest and highest row means measured. ``side`` is
        ``located`` with an estimate; otherwise each row's scale is judged by its apparent Q
        (:data:`NIO_Q_BELOW_KJ_PER_MOL`) and ``side`` is ``above`` when no row grew the
        protective scale, ``below`` when none grew NiO, ``unknown`` otherwise.
        """
        from couponlab.plans.agents import CouponReport

        element = element or self.element
        if element != self.element:
            raise InputError(
                "oxidation_analysis", f"analysed for {self.element!r}, not {element!r}"
            )
        crit = self.critical
        means = [r.cr for r in self.rows if np.isfinite(r.cr)]
        if printed is None:
            if not means:
                raise InputError("oxidation_analysis", "no usable row: give the printed range")
            printed = (max(0.0, min(means)), min(1.0, max(means)))
        protective = PROTECTIVE_SCALE.get(element, "protective")
        rows = sorted(self.rows, key=lambda r: r.cr if np.isfinite(r.cr) else np.inf)
        head = (coupon_id, system or f"Ni-{element}", element, printed[0], printed[1])
        if crit.located:
            return CouponReport(
                *head,
                "located",
                estimate=crit.fraction,
                sigma=crit.sigma,
                temperature_k=crit.reference_temperature_k,
                temperature_slope_k=crit.temperature_slope_k,
                band=crit.band(),
                regimes=tuple(r.regime for r in rows),
            )
        # not located: the fit's regimes mean nothing; each row's apparent Q tells its scale
        by_q = tuple(_scale_by_q(r, protective) for r in rows)
        side: Side = (
            "above"
            if "NiO" in by_q and set(by_q) <= {"NiO", "unknown"}
            else "below"
            if protective in by_q and set(by_q) <= {protective, "unknown"}
            else "unknown"
        )
        return CouponReport(*head, side, regimes=by_q)


NIO_Q_BELOW_KJ_PER_MOL = 150.0
"""Without a located critical content, a row whose Q lies below this (by 2 sigma) grew NiO
(about 112 kJ/mol on Ni), above it a protective scale (chromia 169-250, alumina about 340
kJ/mol; ../shared/DOMAIN.md)."""


def _scale_by_q(row: RowResult, protective: str) -> str:
    q, s = row.activation_energy_kj_per_mol, row.q_sigma_kj_per_mol
    if not (np.isfinite(q) and np.isfinite(s)):
        return "unknown"
    if q + 2 * s < NIO_Q_BELOW_KJ_PER_MOL:
        return "NiO"
    if q - 2 * s > NIO_Q_BELOW_KJ_PER_MOL:
        return protective
    return "unknown"


PROTECTIVE_SCALE: dict[str, str] = {"Cr": "chromia", "Al": "alumina"}
TRANSIENT_DURATION_S = 60.0
"""Typical duration of the transient before chromia is continuous, s, at
:data:`TRANSIENT_REFERENCE_K` (docs/science/oxidation-world.md): during it the protected area
grows at the NiO rate, so a chromia row carries ``kp_NiO(T) t_tr(T)`` in ``x**2``."""
TRANSIENT_REFERENCE_K = 1173.15
TRANSIENT_ENERGY_KJ_PER_MOL = 112.0
"""Activation energy of ``1 / t_tr`` (Cr supply to the surface), kJ/mol."""
TRANSIENT_LN_SIGMA = float(np.log(3.0))
"""Standard uncertainty of ln t_tr: the duration is known to a factor of about 3."""


def _transient_offset(
    first: list[RowKinetics | None],
    regimes: list[str],
    temperature_k: NDArray[np.float64],
    protective: list[bool],
) -> NDArray[np.float64]:
    """Return the transient offset of ``x**2`` (m^2) of every protective row's points: the NiO
    rate of the same coupon (the mean ln kp of its NiO rows, first-pass parabolic fits) times
    the typical transient duration; 0 for other rows, and for a coupon without NiO rows."""
    nrows, npt = temperature_k.shape
    nio = [k for k, r in zip(first, regimes, strict=True) if k is not None and r == "NiO"]
    out: NDArray[np.float64] = np.zeros((nrows, npt))
    if not nio:
        return out
    t = temperature_k[0]
    ln_kp = np.mean(
        [
            k.fit.theta[0] - k.fit.theta[1] * 1e3 / R_GAS * (1.0 / t - 1.0 / k.fit.reference_k)
            for k in nio
        ],
        axis=0,
    )
    t_tr = TRANSIENT_DURATION_S * np.exp(
        TRANSIENT_ENERGY_KJ_PER_MOL * 1e3 / R_GAS * (1.0 / t - 1.0 / TRANSIENT_REFERENCE_K)
    )
    out[np.asarray(protective, bool)] = np.exp(ln_kp) * t_tr
    return out


"""The protective scale of each graded element (the regime's name above its critical content)."""


def analyse_coupons(
    coupons: list[CouponMeasurements],
    errors: ThermocoupleErrors | None = None,
    *,
    element: str = "Cr",
) -> list[CouponAnalysis]:
    """Analyse gradient exposures: per row the regime, law, Q and k0; per coupon c_crit.

    ``element`` is the graded element whose critical content is located: ``"Cr"`` (chromia;
    the default) or ``"Al"`` (alumina: its critical content may depend on temperature, and
    its rows grow parabolically, without volatilisation); its XRF map comes from
    :meth:`CouponMeasurements.fraction`.

    1. The points' temperatures and covariance from the thermocouples over the whole hold
       (:mod:`couponlab.plans.coupon_temperature`).
    2. Spalled spots flagged against a parabolic line per row
       (:mod:`couponlab.plans.oxide_kinetics`).
    3. The two-scale fit of all rows locates the critical Cr content and each row's regime
       (:mod:`couponlab.plans.critical_chromium`).
    4. Each row's law by its regime (NiO and transition: parabolic, with the transient
       offset when the data ask for it; chromia: paralinear with the transient offset, the
       print's Cr scatter along the row as noise); Q and k0 with their standard
       uncertainties, and the rows' Q correlation.

    Every coupon of the list is fitted in the same array operations (a coverage test
    passes hundreds).
    """
    if element not in PROTECTIVE_SCALE:
        raise InputError(
            "oxidation_analysis",
            f"no protective-scale model for {element!r}; have {sorted(PROTECTIVE_SCALE)}",
        )
    if not coupons:
        return []
    content = [c.fraction(element) for c in coupons]
    protective = PROTECTIVE_SCALE[element]
    temps = [
        temperatures_at(c.x_mm, c.tc_positions_mm, c.tc_scans_c, c.hold_s, errors=errors)
        for c in coupons
    ]
    nr, npt = coupons[0].thickness_m.shape
    if any(c.thickness_m.shape != (nr, npt) for c in coupons):
        raise ValueError("every coupon of a batch needs the same rows and points")
    x = np.concatenate([c.thickness_m for c in coupons])
    sig = np.concatenate([c.thickness_sigma_m for c in coupons])
    t_rows = np.concatenate([np.broadcast_to(t.temperature_k, (nr, npt)) for t in temps])
    c_rows = np.concatenate([np.broadcast_to(t.covariance_k2, (nr, npt, npt)) for t in temps])
    hold = np.repeat([c.hold_s for c in coupons], nr)
    hold_sig = np.repeat([c.hold_sigma_s for c in coupons], nr)
    first = fit_rows(x, sig, t_rows, c_rows, hold, sigma_t_s=hold_sig, transient="never")
    empty = np.zeros(npt, bool)
    used = np.array([k.used if k is not None else empty for k in first])
    spalled = np.array([k.spalled if k is not None else empty for k in first])
    nb = len(coupons)
    crit_used, crit_spalled = used, spalled
    if element != "Cr":
        # where c_crit moves with temperature a transition row turns protective at its hot
        # end: a thinner point there is the regime, not a spalled spot (and alumina and NiO
        # scales stay below their spalling thickness in the world's defaults)
        crit_used, crit_spalled = np.isfinite(x) & (x > 0), np.zeros_like(spalled)
    crit = locate_critical_cr(
        Coupons(
            x.reshape(nb, nr, npt),
            sig.reshape(nb, nr, npt),
            crit_used.reshape(nb, nr, npt),
            np.stack([f for f, _ in content]),
            np.stack([s for _, s in content]),
            np.stack([t.temperature_k for t in temps]),
            np.stack([t.covariance_k2 for t in temps]),
            np.array([c.hold_s for c in coupons]),
            np.array([c.hold_sigma_s for c in coupons]),
            crit_spalled.reshape(nb, nr, npt),
        ),
        protective=protective,
        temperature_dependent=element != "Cr",
    )
    regimes = [r for cc in crit for r in cc.regimes]
    chromia = [r == protective for r in regimes]
    # chromia volatilises (paralinear); alumina grows parabolically
    protective_law = "paralinear" if element == "Cr" else "parabolic"
    # a chromia row's thickness depends on Cr: the print's scatter along the row is noise
    extra = (
        np.concatenate(
            [np.broadcast_to(cc.ln_x_cr_slope**2 * cc.print_variance, (nr, npt)) for cc in crit]
        )
        * np.asarray(chromia)[:, None]
    )
    offset = None
    if element == "Cr":  # the transient before chromia is continuous (its Q is NiO's)
        offset = np.concatenate(
            [
                _transient_offset(
                    first[b * nr : (b + 1) * nr],
                    list(crit[b].regimes),
                    t_rows[b * nr : (b + 1) * nr],
                    chromia[b * nr : (b + 1) * nr],
                )
                for b in range(nb)
            ]
        )
    final = fit_rows(
        x,
        sig,
        t_rows,
        c_rows,
        hold,
        sigma_t_s=hold_sig,
        valid=used,
        base=[protective_law if c else "parabolic" for c in chromia],
        transient="test",
        extra_var_ln=extra,
        transient_offset_m2=offset,
        transient_offset_ln_sigma=TRANSIENT_LN_SIGMA,
    )
    out = []
    for b, coupon in enumerate(coupons):
        rows = []
        kin = final[b * nr : (b + 1) * nr]
        frac, frac_sigma = content[b]
        for r in range(nr):
            k, g = kin[r], b * nr + r
            ok = used[g] & np.isfinite(frac[r])
            cr_r = float(np.mean(frac[r][ok])) if ok.any() else float("nan")
            cr_s = float(np.sqrt(np.sum(frac_sigma[r][ok] ** 2)) / max(ok.sum(), 1))
            nan = float("nan")
            rows.append(
                RowResult(
                    cr=cr_r,
                    cr_sigma=cr_s,
                    regime=crit[b].regimes[r],
                    protective_fraction=float(crit[b].protective_fraction[r]),
                    law=k.law if k else "none",
                    activation_energy_kj_per_mol=k.activation_energy_kj_per_mol if k else nan,
                    q_sigma_kj_per_mol=k.q_sigma_kj_per_mol if k else nan,
                    ln_k0=k.ln_k0 if k else nan,
                    ln_k0_sigma=k.ln_k0_sigma if k else nan,
                    points_used=int(k.used.sum()) if k else 0,
                    out_of_range=int((~np.isfinite(coupon.thickness_m[r])).sum()),
                    off_model=int(spalled[g].sum()) + (1000 if k and k.off_model else 0),
                    likelihood_ratio_p=dict(k.likelihood_ratio_p) if k else {},
                    element=element,
                )
            )
        corr = np.eye(nr)
        for i in range(nr):
            for j in range(i + 1, nr):
                ki, kj = kin[i], kin[j]
                if ki is None or kj is None:
                    corr[i, j] = corr[j, i] = np.nan
                    continue
                cov = cross_covariance(ki, kj, temps[b].covariance_k2)
                both = ki.q_sigma_kj_per_mol * kj.q_sigma_kj_per_mol
                # a row whose Q sits on a bound of its fit has no sigma: no correlation
                corr[i, j] = corr[j, i] = cov / both if both > 0 else np.nan
        out.append(CouponAnalysis(rows, crit[b], temps[b], corr, element))
    return out


__all__ = [
    "NIO_Q_BELOW_KJ_PER_MOL",
    "PROTECTIVE_SCALE",
    "R_GAS",
    "ArrheniusFit",
    "CouponAnalysis",
    "CouponMeasurements",
    "RowResult",
    "analyse_coupons",
    "fit_activation_energy",
    "fit_per_row",
]
