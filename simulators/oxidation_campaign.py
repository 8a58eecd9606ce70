"""A gradient-oxidation campaign at the analysis level: the world's oxide physics and the
instruments' noise models, no wire, fast enough to repeat hundreds of times.

One :func:`simulate_campaign` call draws what one real campaign would give the analysis:

- the coupon's as-built content of the graded element per point (Cr, or Al for a Ni-Al
  coupon: a linear gradient across y plus print noise);
- the true temperature along x (piecewise linear through zone temperatures, with zone
  errors), the coupon placed on the carrier with a placement error;
- oxide grown with :func:`couponlab.simulators.oxidation_regimes.grow` for the hold (in
  steps of 10 s for the first hour, then 600 s: the world itself steps 60 s), then cooled to
  ambient through :func:`~couponlab.simulators.oxidation_regimes.spall`;
- the profiler's reading (noise ``hypot(floor, rel x) sqrt(ref_dwell/dwell)``, out of range
  as NaN), the XRF fraction (Poisson counts), the thermocouple scans of the scanner twin's
  error model (IEC tolerance fraction, drift, scanner error, noise), and the true hold time.

Nothing here is used by the lab; tests use it to measure the analysis' coverage.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from couponlab.simulators.oxidation_regimes import CriticalContent, ScaleState, grow, spall
from couponlab.simulators.oxidation_truth import critical_fraction, oxidation_truth, row_truth
from couponlab.simulators.world import WorldConfig

FloatArray = NDArray[np.float64]
KELVIN = 273.15


@dataclass(frozen=True)
class CampaignDesign:
    """Geometry, exposure and instrument settings of a campaign (defaults: the demo's)."""

    points_x_mm: tuple[float, ...] = tuple(float(x) for x in np.linspace(3.0, 57.0, 10))
    rows_y_mm: tuple[float, ...] = tuple(float(y) for y in np.arange(1.0, 9.51, 0.5))
    width_mm: float = 10.0
    cr_max: float = 0.5
    """Fraction of the graded element at y = width (``cr_min`` at y = 0)."""
    print_noise: float = 0.003
    """Standard deviation of the as-built fraction about the target, per point."""
    element: str = "Cr"
    """The graded element: ``"Cr"`` (Ni-Cr) or ``"Al"`` (Ni-Al), the balance Ni."""
    cr_min: float = 0.0
    """Fraction of the graded element at y = 0."""
    hot_c: float = 1060.0
    cold_c: float = 847.0
    zone_mm: tuple[float, ...] = (-20.0, 23.0, 66.0)
    """Positions of the furnace zones' temperature knots along the coupon, mm."""
    zone_sigma_k: float = 2.0
    hold_s: float = 50 * 3600.0
    hold_sigma_s: float = 300.0
    placement_sigma_mm: float = 0.25
    tc_positions_mm: tuple[float, ...] = tuple(float(x) for x in range(0, 60, 5))
    tc_class: int = 1
    tc_scanner_sigma_k: float = 0.5
    tc_drift_sigma_k_per_h: float = 0.02
    tc_noise_k: float = 0.1
    scans: int = 11
    profiler_floor_m: float = 2e-9
    profiler_relative: float = 0.01
    profiler_dwell_s: float = 0.2
    profiler_range_m: tuple[float, float] = (30e-9, 20e-6)
    xrf_counts: float = 2.0e4 * 0.2
    """Total XRF counts per point (count rate x dwell)."""

    def profiler_sigma_m(self, thickness_m: FloatArray) -> FloatArray:
        """Return the profiler's standard uncertainty at ``thickness_m``, m."""
        out: FloatArray = np.hypot(
            self.profiler_floor_m, self.profiler_relative * thickness_m
        ) * np.sqrt(0.1 / self.profiler_dwell_s)
        return out


@dataclass(frozen=True)
class CampaignData:
    """What the analysis gets, and the truth it should recover."""

    thickness_m: FloatArray
    """(rows, points), NaN out of range."""
    in_range: NDArray[np.bool_]
    cr_xrf: FloatArray
    """(rows, points) fraction of the graded element (Cr or Al) measured by XRF."""
    tc_scans_c: FloatArray
    """(scans, thermocouples), degC."""
    true_cr: FloatArray
    true_temperature_k: FloatArray
    """(points,) the temperature each point saw."""
    true_q_kj_per_mol: FloatArray
    """(rows,) Q of each row's mean composition (dominant scale)."""
    true_regime: tuple[str, ...]
    true_critical_cr: float
    """The critical content of the graded element at its reference temperature."""
    critical: CriticalContent | None = None
    """The world's model of the graded element's critical content."""

    def true_critical_at(self, temperature_k: float) -> float:
        """Return the true critical content of the graded element at ``temperature_k`` (K)."""
        if self.critical is None:
            return self.true_critical_cr
        return float(self.critical.fraction_at(temperature_k))


def _profile(design: CampaignDesign, zone_k: FloatArray, x_mm: FloatArray) -> FloatArray:
    """Return the temperature (K) at ``x_mm`` (coupon axis) through the zone knots.

    ``zone_k`` is (campaigns, zones), ``x_mm`` (campaigns, points) or (points,).
    """
    z = np.asarray(design.zone_mm)
    x = np.broadcast_to(x_mm, (zone_k.shape[0], np.shape(x_mm)[-1]))
    seg = np.clip(np.searchsorted(z, x) - 1, 0, z.size - 2)
    u = (x - z[seg]) / (z[seg + 1] - z[seg])
    rows = np.arange(zone_k.shape[0])[:, None]
    out: FloatArray = zone_k[rows, seg] * (1 - u) + zone_k[rows, seg + 1] * u
    return out


def simulate_campaigns(
    config: WorldConfig, design: CampaignDesign, rng: np.random.Generator, n: int = 1
) -> list[CampaignData]:
    """Draw ``n`` campaigns' data from the world's physics and the instruments' noise
    (grown together, as one array, for speed)."""
    params = config.oxidation.regimes
    x = np.asarray(design.points_x_mm)
    y = np.asarray(design.rows_y_mm)
    shape = (n, y.size, x.size)
    if design.element not in ("Cr", "Al"):
        raise ValueError(f"graded element {design.element!r}: the world knows 'Cr' and 'Al'")
    cr = (
        design.cr_min
        + (design.cr_max - design.cr_min) * y[None, :, None] / design.width_mm
        + design.print_noise * rng.standard_normal(shape)
    )
    cr = np.clip(cr, 0.0, 1.0)
    # on a Ni-Al coupon the graded content is Al and there is no Cr
    al = cr if design.element == "Al" else None
    cr_grow = np.zeros(shape) if al is not None else cr
    z = np.asarray(design.zone_mm)
    nominal = design.hot_c + (design.cold_c - design.hot_c) * z / 60.0 + KELVIN
    zone_k = nominal + design.zone_sigma_k * rng.standard_normal((n, z.size))
    shift = design.placement_sigma_mm * rng.standard_normal((n, 1))
    t_true = _profile(design, zone_k, x[None, :] + shift)
    hold = design.hold_s + design.hold_sigma_s * rng.standard_normal(n)
    state = ScaleState.new(shape, params, rng)
    temps = np.broadcast_to(t_true[:, None, :], shape)
    first = np.minimum(3600.0, hold)[:, None, None]
    for _ in range(360):
        grow(state, cr_grow, temps, first / 360, params, al)
    rest = (hold[:, None, None] - first) / 294
    for _ in range(294):
        grow(state, cr_grow, temps, rest, params, al)
    spall(state, np.full(shape, config.ambient_temperature_c + KELVIN), params)
    true_x = state.thickness_m(cr_grow, params, al)
    meas = true_x + design.profiler_sigma_m(true_x) * rng.standard_normal(shape)
    lo, hi = design.profiler_range_m
    in_range = (meas >= lo) & (meas <= hi)
    thickness = np.where(in_range, meas, np.nan)
    cr_xrf = rng.binomial(int(design.xrf_counts), cr) / design.xrf_counts
    # thermocouples: the scanner twin's error model over the hold (carrier not shifted)
    tc = np.asarray(design.tc_positions_mm)
    t_tc = _profile(design, zone_k, tc)
    fixed, rel = (1.5, 0.004) if design.tc_class == 1 else (2.5, 0.0075)
    tol = np.maximum(fixed, rel * (t_tc - KELVIN))
    u = rng.uniform(-1, 1, (n, tc.size))
    rate = design.tc_drift_sigma_k_per_h * rng.standard_normal((n, tc.size))
    rate *= np.clip((t_tc - KELVIN - 800.0) / 200.0, 0, None)
    scanner = design.tc_scanner_sigma_k * rng.standard_normal((n, tc.size))
    times_h = np.linspace(0.0, design.hold_s / 3600.0, design.scans)
    scans = (
        (t_tc + u * tol + scanner)[:, None, :]
        + rate[:, None, :] * times_h[None, :, None]
        + design.tc_noise_k * rng.standard_normal((n, design.scans, tc.size))
        - KELVIN
    )
    out = []
    for k in range(n):
        if design.element == "Al":
            truths = [
                row_truth(config, {"Al": list(c), "Ni": list(1 - c)}, list(t_true[k]))
                for c in cr[k]
            ]
        else:
            truths = [oxidation_truth(config, {"Cr": float(c)}) for c in cr[k].mean(axis=1)]
        out.append(
            CampaignData(
                thickness_m=thickness[k],
                in_range=in_range[k],
                cr_xrf=cr_xrf[k],
                tc_scans_c=scans[k],
                true_cr=cr[k],
                true_temperature_k=t_true[k],
                true_q_kj_per_mol=np.array(
                    [float(str(t["activation_energy_kj_per_mol"])) for t in truths]
                ),
                true_regime=tuple(str(t["regime"]) for t in truths),
                true_critical_cr=critical_fraction(config, design.element),
                critical=params.critical_al if design.element == "Al" else None,
            )
        )
    return out


def simulate_campaign(
    config: WorldConfig, design: CampaignDesign, rng: np.random.Generator
) -> CampaignData:
    """Draw one campaign (see :func:`simulate_campaigns`)."""
    return simulate_campaigns(config, design, rng, 1)[0]


__all__ = ["CampaignData", "CampaignDesign", "simulate_campaign", "simulate_campaigns"]
