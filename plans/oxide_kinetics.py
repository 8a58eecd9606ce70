"""Oxide-growth laws and their fit to one composition row of a gradient exposure.

The laws, for a hold of ``t`` at temperature ``T`` (``kp = kp_ref exp(-Q/R (1/T - 1/T_ref))``):

- ``parabolic``: ``x**2 = kp t``;
- ``transient``: ``x**2 = kp t + A`` (a fast transient before steady growth, A >= 0);
- ``paralinear``: Tedmon's ``dx/dt = kp / (2x) - kv`` integrated over ``t``, with
  ``kv = kv_ref exp(-Q_v/R (1/T - 1/1273.15 K))``; Q_v is not fitted (a row's hot end alone
  cannot tell it) but taken as ``volatilisation_energy_kj_per_mol`` (CrO3 formation);
- ``paralinear+transient``: both.

The fit is generalised least squares in ``ln x``: the covariance of the residuals holds the
profiler's noise (per point), the points' temperature covariance (thermocouple tolerance,
drift, placement; see :mod:`couponlab.plans.coupon_temperature`) mapped through
``d ln x / dT``, and the hold time's uncertainty mapped through ``d ln x / d ln t``. So the
parameters' covariance carries every one of them, and the rows' shared temperatures give
correlated Q between rows (:func:`cross_covariance`).

Choice of law (the stated criterion): the regime sets the base law: parabolic for NiO (and
transition) rows, paralinear for chromia rows (volatilisation is part of chromia's physics
above about 1000 degC, and choosing it only when a row's few hot points prove it biased Q
low whenever they did not, measured in the coverage test). The transient offset is added
only when the likelihood-ratio test gives ``p < 0.01`` (chi-square drop > 6.63). (Fitting
it always made the intervals too wide: 79 % coverage for a nominal 68 %; with one hold
time the transient and volatilisation bend the line alike.) The likelihood-ratio p of
paralinear against parabolic is reported as the evidence for volatilisation. Points
thinner than the best fit by more than ``spall_ln_ratio`` in ln x (a factor of 1.65 by
default: far beyond noise and any paralinear bend) are flagged as off the model (spalled)
and left out before the choice.
The covariance is scaled by the Birge ratio ``chi2/dof`` when it exceeds 1 (scatter beyond
the noise model is taken as unmodelled physics); a row whose chi-square is improbable
(``p < 0.001``) is also flagged ``off_model``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from couponlab.plans.small_least_squares import (
    batched_matvec,
    levenberg_marquardt,
    one_blas_thread,
)

R_GAS = 8.314462618
"""Gas constant, J/(mol K)."""
KV_REFERENCE_K = 1273.15
"""Reference temperature of kv, K."""
LAWS = ("parabolic", "transient", "paralinear", "paralinear+transient")
EXTRA = {"transient": ("A",), "paralinear": ("kv",), "paralinear+transient": ("kv", "A")}
SELECT_P = 0.01
"""A richer law is chosen when its likelihood-ratio p-value is below this."""
OFF_MODEL_P = 0.001
"""A row whose chi-square p-value is below this is flagged off the model."""

FloatArray = NDArray[np.float64]


def tedmon_thickness(kp: FloatArray, kv: FloatArray, t_s: float | FloatArray) -> FloatArray:
    """Return the thickness (m) after ``t_s`` of ``dx/dt = kp/(2x) - kv`` from x = 0.

    With ``u = 2 kv x / kp`` the law integrates to ``-u - ln(1 - u) = tau = 2 kv**2 t / kp``;
    it is solved for ``w = -ln(1 - u)`` (``w + expm1(-w) = tau``) by Newton steps from
    above (the function is convex, so they converge monotonically), and by the series
    ``u = s (1 - s/3 + s**2/36)``, ``s = sqrt(2 tau)``, where tau < 1e-8. ``kv = 0`` gives
    ``sqrt(kp t)``.
    """
    kp = np.asarray(kp, float)
    kv = np.asarray(kv, float)
    tau = 2.0 * kv**2 * t_s / kp
    s = np.sqrt(2.0 * tau)
    w = s + tau  # above the root
    for _ in range(6):
        u = -np.expm1(-w)
        w = w - (w - u - tau) / np.maximum(u, 1e-300)
    u = np.where(tau < 1e-8, s * (1.0 - s / 3.0 + s * s / 36.0), -np.expm1(-w))
    safe_kv = np.where(kv > 0, kv, 1.0)
    x: FloatArray = np.where(kv > 0, u * kp / (2.0 * safe_kv), np.sqrt(kp * t_s))
    return x


@dataclass(frozen=True)
class GrowthLaw:
    """One law's ln-thickness as a function of its parameters, for a batch of rows.

    Parameters ``theta`` (batch, p): ``ln kp_ref`` (kp in m^2/s at each row's reference
    temperature), ``Q`` (kJ/mol), then per law ``ln kv_ref`` (kv in m/s at 1273.15 K) and/or
    ``A`` (um^2).
    """

    name: str
    volatilisation_energy_kj_per_mol: float = 400.0

    @property
    def n_params(self) -> int:
        """Return the number of parameters."""
        return 2 + len(EXTRA.get(self.name, ()))

    def ln_x(
        self,
        theta: FloatArray,
        temperature_k: FloatArray,
        t_s: FloatArray,
        t_ref: FloatArray,
        offset_m2: FloatArray | None = None,
    ) -> FloatArray:
        """Return ln(thickness / m) (batch, n) at ``temperature_k`` (batch, n) after ``t_s``.

        ``offset_m2`` (batch, n), m^2, is a known transient offset added to ``x**2`` (see
        :func:`fit_rows`)."""
        inv = 1.0 / temperature_k - 1.0 / t_ref[:, None]
        kp = np.exp(theta[:, :1] - theta[:, 1:2] * 1e3 / R_GAS * inv)
        extra = EXTRA.get(self.name, ())
        t = t_s[:, None]
        if "kv" in extra:
            qv = self.volatilisation_energy_kj_per_mol * 1e3 / R_GAS
            kv = np.exp(theta[:, 2:3] - qv * (1.0 / temperature_k - 1.0 / KV_REFERENCE_K))
            x2 = tedmon_thickness(kp, kv, t) ** 2
        else:
            x2 = kp * t
        if "A" in extra:
            x2 = x2 + theta[:, 2 + extra.index("A"), None] * 1e-12
        if offset_m2 is not None:
            x2 = x2 + offset_m2
        out: FloatArray = 0.5 * np.log(x2)
        return out

    def bounds(self) -> tuple[FloatArray, FloatArray]:
        """Return lower and upper bounds of the parameters."""
        lo, hi = [-80.0, 1.0], [0.0, 800.0]
        for p in EXTRA.get(self.name, ()):
            lo.append(-45.0 if p == "kv" else 0.0)
            hi.append(-15.0 if p == "kv" else 1e4)
        return np.asarray(lo), np.asarray(hi)


@dataclass(frozen=True)
class Rows:
    """A batch of rows to fit: arrays with a leading batch axis; unused points masked."""

    ln_x: FloatArray
    var_ln_x: FloatArray
    use: NDArray[np.bool_]
    temperature_k: FloatArray
    temperature_cov_k2: FloatArray
    t_s: FloatArray
    sigma_ln_t: FloatArray
    t_ref: FloatArray
    offset_m2: FloatArray | None = None
    """Known transient offset of ``x**2`` per point, m^2 (None: none)."""
    ln_offset_sigma: float = 0.0
    """Standard uncertainty of ln(offset), the same for every point of a row (correlated)."""

    def subset(self, idx: NDArray[np.intp], use: NDArray[np.bool_] | None = None) -> Rows:
        """Return the rows ``idx`` (with another mask if given)."""
        return Rows(
            np.where(self.use[idx] if use is None else use[idx], self.ln_x[idx], 0.0),
            self.var_ln_x[idx],
            self.use[idx] if use is None else use[idx],
            self.temperature_k[idx],
            self.temperature_cov_k2[idx],
            self.t_s[idx],
            self.sigma_ln_t[idx],
            self.t_ref[idx],
            None if self.offset_m2 is None else self.offset_m2[idx],
            self.ln_offset_sigma,
        )


@dataclass(frozen=True)
class LawFit:
    """The generalised-least-squares fit of one law to the used points of one row."""

    law: str
    theta: FloatArray
    covariance: FloatArray
    chi2: float
    dof: int
    temperature_influence: FloatArray
    """d theta / d T of every point (params x points; 0 where unused), for cross-row
    covariances."""
    reference_k: float

    @property
    def p_value(self) -> float:
        """Return the chi-square p-value of the fit (1 with no degrees of freedom)."""
        return float(stats.chi2.sf(self.chi2, self.dof)) if self.dof > 0 else 1.0


def fit_law(law: GrowthLaw, rows: Rows, start: FloatArray) -> list[LawFit]:
    """Fit ``law`` to every row of a batch by generalised least squares (module docstring)."""
    lo, hi = law.bounds()
    theta = np.clip(start.astype(float), lo + 1e-9, hi - 1e-9)
    m = rows.use.astype(float)
    t_s, t_ref = rows.t_s, rows.t_ref

    def model(
        th: FloatArray, temps: FloatArray = rows.temperature_k, t: FloatArray = t_s
    ) -> FloatArray:
        return law.ln_x(th, temps, t, t_ref, rows.offset_m2)

    n = m.shape[1]
    eye = np.eye(n)
    for _ in range(2):  # the covariance depends on the slopes at the solution: refit once
        h = 0.05
        d_t = (
            m
            * (model(theta, rows.temperature_k + h) - model(theta, rows.temperature_k - h))
            / (2 * h)
        )
        d_lnt = (
            m * (model(theta, t=t_s * np.exp(1e-4)) - model(theta, t=t_s * np.exp(-1e-4))) / 2e-4
        )
        v = (
            eye * (m * rows.var_ln_x + (1.0 - m))[:, None, :]
            + d_t[:, :, None] * rows.temperature_cov_k2 * d_t[:, None, :]
            + (rows.sigma_ln_t**2)[:, None, None] * d_lnt[:, :, None] * d_lnt[:, None, :]
        )
        if rows.offset_m2 is not None and rows.ln_offset_sigma > 0:
            # d ln x / d ln(offset) = offset / (2 x^2), one uncertain factor per row
            d_off = m * 0.5 * rows.offset_m2 * np.exp(-2.0 * model(theta))
            v = v + rows.ln_offset_sigma**2 * d_off[:, :, None] * d_off[:, None, :]
        whiten = np.linalg.inv(np.linalg.cholesky(v))
        if law.name == "parabolic" and rows.offset_m2 is None:  # linear: solve directly
            inv = 1.0 / rows.temperature_k - 1.0 / t_ref[:, None]
            design = np.stack([0.5 * m, -0.5e3 / R_GAS * inv * m], axis=2)
            wd = whiten @ design
            wy = batched_matvec(whiten, m * (rows.ln_x - 0.5 * np.log(t_s)[:, None]))
            theta = np.linalg.solve(
                np.swapaxes(wd, 1, 2) @ wd, np.swapaxes(wd, 1, 2) @ wy[:, :, None]
            )[:, :, 0]
        else:

            def resid(th: FloatArray, whiten: FloatArray = whiten) -> FloatArray:
                out: FloatArray = batched_matvec(whiten, m * (rows.ln_x - model(th)))
                return out

            theta, _ = levenberg_marquardt(resid, theta, lo, hi)
    f0 = model(theta)
    jac = np.empty((*f0.shape, theta.shape[1]))
    for i in range(theta.shape[1]):
        step = 1e-6 * np.maximum(1.0, np.abs(theta[:, i]))
        up = theta.copy()
        up[:, i] += step
        jac[:, :, i] = m * (model(up) - f0) / step[:, None]
    vinv_j = np.linalg.solve(v, jac)
    cov = np.linalg.pinv(np.swapaxes(jac, 1, 2) @ vinv_j, hermitian=True)
    influence = -cov @ np.transpose(vinv_j * d_t[:, :, None], (0, 2, 1))
    r = batched_matvec(whiten, m * (rows.ln_x - f0))
    chi2 = np.einsum("bi,bi->b", r, r)
    dof = rows.use.sum(axis=1) - theta.shape[1]
    return [
        LawFit(
            law.name, theta[b], cov[b], float(chi2[b]), int(dof[b]), influence[b], float(t_ref[b])
        )
        for b in range(theta.shape[0])
    ]


@dataclass(frozen=True)
class RowKinetics:
    """The kinetics of one composition row: chosen law, Q, k0 and their uncertainties."""

    fit: LawFit
    used: NDArray[np.bool_]
    """Points used in the fit."""
    spalled: NDArray[np.bool_]
    """Points flagged off the model as spalled (far thinner than the law)."""
    off_model: bool
    """The chosen law leaves an improbable chi-square (p < 0.001): covariance scaled."""
    likelihood_ratio_p: dict[str, float] = field(default_factory=dict)
    """p-value of each richer law tried against the law it extends."""

    @property
    def law(self) -> str:
        """Return the chosen law's name."""
        return self.fit.law

    @property
    def activation_energy_kj_per_mol(self) -> float:
        """Return Q, kJ/mol."""
        return float(self.fit.theta[1])

    @property
    def q_sigma_kj_per_mol(self) -> float:
        """Return the standard uncertainty of Q, kJ/mol."""
        return float(np.sqrt(self.covariance[1, 1]))

    @property
    def ln_k0(self) -> float:
        """Return ln(k0 / (m^2/s)) = ln kp_ref + Q / (R T_ref)."""
        return float(self.fit.theta[0] + self.fit.theta[1] * 1e3 / (R_GAS * self.fit.reference_k))

    @property
    def ln_k0_sigma(self) -> float:
        """Return the standard uncertainty of ln k0."""
        g = np.zeros(self.fit.theta.size)
        g[0], g[1] = 1.0, 1e3 / (R_GAS * self.fit.reference_k)
        return float(np.sqrt(g @ self.covariance @ g))

    @property
    def covariance(self) -> FloatArray:
        """Return the parameters' covariance, scaled by the Birge ratio chi2/dof when > 1."""
        scale = self.fit.chi2 / self.fit.dof if self.fit.dof > 0 else 1.0
        out: FloatArray = self.fit.covariance * max(scale, 1.0)
        return out

    def interval_kj_per_mol(self, level: float = 0.68) -> tuple[float, float]:
        """Return the central interval of Q (kJ/mol) at confidence ``level`` (0..1)."""
        z = float(stats.norm.ppf(0.5 + level / 2))
        q, s = self.activation_energy_kj_per_mol, self.q_sigma_kj_per_mol
        return (q - z * s, q + z * s)


@one_blas_thread
def fit_rows(
    thickness_m: FloatArray,
    sigma_m: FloatArray,
    temperature_k: FloatArray,
    temperature_cov_k2: FloatArray,
    t_s: float | FloatArray,
    *,
    sigma_t_s: float | FloatArray = 0.0,
    valid: NDArray[np.bool_] | None = None,
    base: str | list[str] = "parabolic",
    transient: str | list[str] = "test",
    extra_var_ln: FloatArray | None = None,
    spall_ln_ratio: float = 0.5,
    volatilisation_energy_kj_per_mol: float = 400.0,
    transient_offset_m2: FloatArray | None = None,
    transient_offset_ln_sigma: float = 0.0,
) -> list[RowKinetics | None]:
    """Choose and fit the growth law of every row (see the module docstring).

    Parameters
    ----------
    thickness_m, sigma_m
        Thickness and its standard uncertainty per point, m, shaped (rows, points) (NaN:
        not measured).
    temperature_k, temperature_cov_k2
        Temperature per point (K) and their covariance (K^2): (points,) and
        (points, points) when every row shares them, else with a leading rows axis.
    t_s, sigma_t_s
        Time at temperature and its standard uncertainty, s (scalars or per row).
    valid
        Points allowed (e.g. the profiler's in-range flag), shaped like ``thickness_m``.
    base
        Per row (or for all): ``"parabolic"`` (NiO rows) or ``"paralinear"`` (chromia rows:
        CrO3 volatilisation is always part of the law; its kv may come out near zero).
    transient
        Per row (or for all): ``"test"`` the transient offset (kept when its
        likelihood-ratio p < 0.01), ``"always"`` fit it, ``"never"``.
    extra_var_ln
        Further independent variance of each point's ln x (e.g. from the composition's
        scatter along the row), shaped like ``thickness_m``.
    transient_offset_m2, transient_offset_ln_sigma
        A transient offset of ``x**2`` known from elsewhere (m^2, shaped like
        ``thickness_m``; 0 where none), and the standard uncertainty of its logarithm (one
        factor per row). Every law of the final fit adds it; the outlier screen does not.

    Returns
    -------
    list
        One :class:`RowKinetics` per row, None where fewer than three points are usable.
    """
    x = np.atleast_2d(np.asarray(thickness_m, float))
    nrow, npt = x.shape
    sig = np.broadcast_to(np.asarray(sigma_m, float), x.shape)
    temps = np.broadcast_to(np.asarray(temperature_k, float), x.shape)
    cov_t = np.broadcast_to(np.asarray(temperature_cov_k2, float), (nrow, npt, npt))
    bases = [base] * nrow if isinstance(base, str) else list(base)
    transients = [transient] * nrow if isinstance(transient, str) else list(transient)
    ok = np.isfinite(x) & (x > 0) & np.isfinite(sig) & (sig > 0)
    if valid is not None:
        ok &= np.asarray(valid, bool)
    t_arr = np.broadcast_to(np.asarray(t_s, float), (nrow,)).copy()
    s_ln_t = np.broadcast_to(np.asarray(sigma_t_s, float), (nrow,)) / t_arr
    fitted = np.flatnonzero(ok.sum(axis=1) >= 3)
    out: list[RowKinetics | None] = [None] * nrow
    if fitted.size == 0:
        return out
    inv_t = np.where(ok, 1.0 / temps, 0.0)
    t_ref = ok.sum(axis=1) / np.maximum(inv_t.sum(axis=1), 1e-300)
    safe_x = np.where(ok, x, 1.0)
    all_rows = Rows(
        np.log(safe_x),
        (sig / safe_x) ** 2 + (0.0 if extra_var_ln is None else np.nan_to_num(extra_var_ln)),
        ok,
        temps,
        cov_t,
        t_arr,
        np.asarray(s_ln_t, float),
        np.where(np.isfinite(t_ref) & (t_ref > 0), t_ref, 1000.0),
    )
    par, plin = GrowthLaw("parabolic"), GrowthLaw("paralinear", volatilisation_energy_kj_per_mol)
    zero = np.zeros((fitted.size, 2))
    use = ok.copy()
    spalled = np.zeros_like(ok)
    # gross outliers (spalled spots) against the parabolic line, one point per row per round
    for _ in range(3):
        rows = all_rows.subset(fitted, use)
        fits = fit_law(par, rows, zero)
        theta = np.stack([f.theta for f in fits])
        resid = np.where(
            rows.use, rows.ln_x - par.ln_x(theta, rows.temperature_k, rows.t_s, rows.t_ref), 0.0
        )
        worst = np.argmin(resid, axis=1)
        drop = (resid[np.arange(fitted.size), worst] < -spall_ln_ratio) & (
            rows.use.sum(axis=1) > 3
        )
        if not drop.any():
            break
        use[fitted[drop], worst[drop]] = False
        spalled[fitted[drop], worst[drop]] = True
    if transient_offset_m2 is not None:
        all_rows = replace(
            all_rows,
            offset_m2=np.nan_to_num(np.broadcast_to(transient_offset_m2, x.shape).astype(float)),
            ln_offset_sigma=float(transient_offset_ln_sigma),
        )
    rows = all_rows.subset(fitted, use)
    chosen = fit_law(par, replace(rows, offset_m2=None), zero)
    if rows.offset_m2 is not None:  # nonlinear with the offset: start from the line
        chosen = fit_law(par, rows, np.stack([f.theta for f in chosen]))
    tried: list[dict[str, float]] = [{} for _ in fitted]
    lin = np.array([bases[r] == "paralinear" for r in fitted])
    if lin.any():
        idx = np.flatnonzero(lin)
        start = np.stack([np.append(chosen[i].theta, -28.0) for i in idx])
        for i, f in zip(idx, fit_law(plin, rows.subset(idx), start), strict=True):
            tried[i]["paralinear"] = float(stats.chi2.sf(max(chosen[i].chi2 - f.chi2, 0.0), 1))
            chosen[i] = f
    mode = np.array([transients[r] for r in fitted])
    for name, group in (("transient", ~lin), ("paralinear+transient", lin)):
        idx = np.flatnonzero(group & (mode != "never") & (rows.use.sum(axis=1) > 4 + lin))
        if idx.size == 0:
            continue
        start = np.stack([np.append(chosen[i].theta, 0.01) for i in idx])
        law = GrowthLaw(name, volatilisation_energy_kj_per_mol)
        for i, f in zip(idx, fit_law(law, rows.subset(idx), start), strict=True):
            p = float(stats.chi2.sf(max(chosen[i].chi2 - f.chi2, 0.0), 1))
            tried[i][name] = p
            if p < SELECT_P or mode[i] == "always":
                chosen[i] = f
    for k, r in enumerate(fitted):
        out[r] = RowKinetics(
            chosen[k], use[r].copy(), spalled[r].copy(), chosen[k].p_value < OFF_MODEL_P, tried[k]
        )
    return out


def cross_covariance(a: RowKinetics, b: RowKinetics, temperature_cov_k2: FloatArray) -> float:
    """Return cov(Q_a, Q_b) (kJ/mol)^2 that two rows' shared temperatures create.

    ``temperature_cov_k2`` is the covariance of the points' temperatures (the same
    positions in every row).
    """
    return float(
        a.fit.temperature_influence[1] @ temperature_cov_k2 @ b.fit.temperature_influence[1]
    )


__all__ = [
    "LAWS",
    "GrowthLaw",
    "LawFit",
    "RowKinetics",
    "Rows",
    "cross_covariance",
    "fit_law",
    "fit_rows",
    "tedmon_thickness",
]
