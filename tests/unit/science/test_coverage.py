"""Coverage of the oxidation analysis' intervals over 200 simulated campaigns.

Each campaign is drawn from the world's oxide physics (regimes, transient, volatilisation,
spallation) and the instruments' noise models (profiler, XRF counting, type-K tolerance and
drift, placement, hold time), at the analysis level: no wire. Seeded, so the figures are
fixed; docs/science/oxidation-analysis.md records them.

Q is checked on every row whose regime the analysis and the truth agree is a pure one (NiO
or chromia; about 2960 rows); rows of one campaign share their temperatures, so the
standard error of the bias uses one mean per campaign.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from science_campaigns import measurements

from couponlab.plans.oxidation_analysis import analyse_coupons
from couponlab.simulators.oxidation_campaign import CampaignDesign, simulate_campaigns
from couponlab.simulators.world import WorldConfig

CAMPAIGNS = 200
SEED = 11
pytestmark = pytest.mark.timeout(600)  # about 25 s of CPU; the fixture runs in the first test


@dataclass(frozen=True)
class Figures:
    q_z: np.ndarray
    """(fit - truth) / sigma of every pure-regime row."""
    q_campaign_mean_z: np.ndarray
    c_z: np.ndarray
    """(fit - truth) / sigma of the critical Cr content, per campaign."""
    regime_agreement: float


@pytest.fixture(scope="module")
def figures() -> Figures:
    config, design = WorldConfig(), CampaignDesign()
    data = simulate_campaigns(config, design, np.random.default_rng(SEED), CAMPAIGNS)
    results = analyse_coupons([measurements(d, design) for d in data])
    q_z, camp, c_z, agree, rows = [], [], [], 0, 0
    for d, res in zip(data, results, strict=True):
        zs = []
        for row, regime, q in zip(res.rows, d.true_regime, d.true_q_kj_per_mol, strict=True):
            rows += 1
            agree += row.regime == regime
            if row.regime == regime and regime in ("NiO", "chromia"):
                zs.append((row.activation_energy_kj_per_mol - q) / row.q_sigma_kj_per_mol)
        q_z += zs
        camp.append(np.mean(zs))
        if res.critical.located:
            c_z.append((res.critical.fraction - d.true_critical_cr) / res.critical.sigma)
    return Figures(np.array(q_z), np.array(camp), np.array(c_z), agree / rows)


def coverage(z: np.ndarray, level_sigma: float) -> float:
    return float(np.mean(np.abs(z) < level_sigma))


def test_q_intervals_cover_the_truth_at_their_nominal_rate(figures: Figures) -> None:
    assert figures.q_z.size > 2500
    assert 0.62 <= coverage(figures.q_z, 1.0) <= 0.74, coverage(figures.q_z, 1.0)
    assert 0.92 <= coverage(figures.q_z, 1.959964) <= 0.98, coverage(figures.q_z, 1.959964)


def test_critical_cr_intervals_cover_the_truth_at_their_nominal_rate(figures: Figures) -> None:
    assert figures.c_z.size == CAMPAIGNS  # located on every coupon
    assert 0.62 <= coverage(figures.c_z, 1.0) <= 0.74, coverage(figures.c_z, 1.0)
    assert 0.92 <= coverage(figures.c_z, 1.959964) <= 0.98, coverage(figures.c_z, 1.959964)


def test_the_regimes_found_are_the_worlds(figures: Figures) -> None:
    assert figures.regime_agreement > 0.97


def test_q_bias_sits_within_its_own_standard_error(figures: Figures) -> None:
    """Mean z of Q over campaign means (rows of one campaign share their temperatures)."""
    se_q = figures.q_campaign_mean_z.std(ddof=1) / np.sqrt(figures.q_campaign_mean_z.size)
    assert abs(figures.q_campaign_mean_z.mean()) <= se_q


def test_critical_cr_bias_sits_within_its_own_standard_error(figures: Figures) -> None:
    """Mean z of the critical Cr content over the coupons (one per campaign)."""
    se_c = figures.c_z.std(ddof=1) / np.sqrt(figures.c_z.size)
    assert abs(figures.c_z.mean()) <= se_c
