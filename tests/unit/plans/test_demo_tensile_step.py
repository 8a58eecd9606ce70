"""The demo's tensile step lays out one SS-J3 specimen per composition band that its
analysis reports, inside the default coupon and without overlap; a cut that cannot be made
is refused before anything runs."""

from __future__ import annotations

import numpy as np
import pytest

from couponlab.plans import demo
from couponlab.plans.oxidation_analysis import analyse_coupons
from couponlab.simulators.oxidation_campaign import CampaignDesign, simulate_campaigns
from couponlab.simulators.world import WorldConfig
from couponlab.specimens import SS_J3, CutPlan, CutPlanError


def _regimes_of_a_simulated_exposure() -> list[str]:
    """The analysis' regime of each demo row, from the world's physics at analysis level."""
    design = CampaignDesign(
        points_x_mm=tuple(demo.X_POINTS.tolist()), rows_y_mm=tuple(demo.Y_ROWS.tolist())
    )
    data = simulate_campaigns(WorldConfig(), design, np.random.default_rng(8), 1)[0]
    from couponlab.plans.oxidation_analysis import CouponMeasurements

    sigma = np.hypot(2e-9, 0.01 * np.nan_to_num(data.thickness_m))
    measured = CouponMeasurements(
        x_mm=demo.X_POINTS,
        thickness_m=np.where(data.in_range, data.thickness_m, np.nan),
        thickness_sigma_m=sigma,
        cr=data.cr_xrf,
        cr_sigma=np.full_like(data.cr_xrf, 0.004),
        tc_positions_mm=np.asarray(design.tc_positions_mm, float),
        tc_scans_c=data.tc_scans_c,
        hold_s=design.hold_s,
    )
    [result] = analyse_coupons([measured])
    return [row.regime for row in result.rows]


def _clearance(cut: CutPlan) -> float:
    least = np.inf
    for i, a in enumerate(cut.specimens):
        for b in cut.specimens[i + 1 :]:
            ax0, ax1, ay0, ay1 = cut.footprint(a)
            bx0, bx1, by0, by1 = cut.footprint(b)
            least = min(least, max(bx0 - ax1, ax0 - bx1, by0 - ay1, ay0 - by1))
    return float(least)


def test_every_band_the_demo_reports_gets_a_specimen_on_the_default_coupon() -> None:
    regimes = _regimes_of_a_simulated_exposure()
    bands = [r for i, r in enumerate(regimes) if i == 0 or r != regimes[i - 1]]
    assert set(bands) == {"NiO", "transition", "chromia"}
    cut = demo.tensile_cut(regimes)
    assert [s.band for s in cut.specimens] == bands
    assert cut.geometry is SS_J3
    assert (cut.length_mm, cut.width_mm) == (demo.COUPON_LENGTH_MM, demo.COUPON_WIDTH_MM)
    for s in cut.specimens:
        x0, x1, y0, y1 = cut.footprint(s)
        edge = cut.kerf_mm - 1e-9
        assert edge <= x0 and x1 <= cut.length_mm - edge
        assert edge <= y0 and y1 <= cut.width_mm - edge
        rows = [r for y, r in zip(demo.Y_ROWS, regimes, strict=True) if abs(y - s.y_mm) <= 0.25]
        assert s.band in rows or not rows  # the gauge's centre line lies in its band
    assert _clearance(cut) >= cut.kerf_mm - 1e-9
    assert [s.specimen_id("C1") for s in cut.specimens] == ["C1-T1", "C1-T2", "C1-T3"]
    # the demo pulls them at method C: 0.015/min of the 5 mm reduced section
    assert demo.TENSILE_SETTINGS.crosshead_rate == "0.075 mm/min"


def test_more_bands_than_the_coupon_holds_are_refused_before_anything_runs() -> None:
    alternating = ["NiO", "chromia"] * (demo.Y_ROWS.size // 2)
    with pytest.raises(CutPlanError, match="no room"):
        demo.tensile_cut(alternating)
    assert len(demo.tensile_cut(["chromia"] * demo.Y_ROWS.size).specimens) == 1
