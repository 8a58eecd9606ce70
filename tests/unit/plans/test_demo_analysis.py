"""The demo's analysis step on a map and a hold laid out as the demo's runs record them
(event tables), without the twins: the campaign's data come from the analysis-level
simulation of the world's physics."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from couponlab.interfaces.feeder import CompositionMap
from couponlab.plans import demo
from couponlab.plans.coupon_maps import map_measurements
from couponlab.plans.oxidation_analysis import analyse_coupons
from couponlab.simulators.oxidation_campaign import CampaignDesign, simulate_campaigns
from couponlab.simulators.oxidation_truth import coupon_rows_truth
from couponlab.simulators.world import Coupon, World, WorldConfig


def test_demo_reports_regime_q_and_critical_cr_with_the_simulation_truth_beside() -> None:
    design = CampaignDesign(
        points_x_mm=tuple(demo.X_POINTS.tolist()), rows_y_mm=tuple(demo.Y_ROWS.tolist())
    )
    data = simulate_campaigns(WorldConfig(), design, np.random.default_rng(8), 1)[0]
    # the raster's event table: one event per point, rows of y, x fastest
    thick = data.thickness_m.ravel()
    table: dict[str, list[Any]] = {
        "profiler1-thickness": list(np.where(np.isfinite(thick), thick * 1e9, np.nan)),
        "profiler1-range_flag": ["ok" if np.isfinite(v) else "over" for v in thick],
        "xrf1-fraction_cr": list(data.cr_xrf.ravel()),
        "xrf1-counts": [design.xrf_counts] * thick.size,
    }
    tc_x = np.asarray(design.tc_positions_mm)
    measured = map_measurements(
        table,
        profiler="profiler1",
        xrf="xrf1",
        x_mm=demo.X_POINTS,
        rows=demo.Y_ROWS.size,
        dwell_s=demo.MAP_DWELL_S,
        tc_positions_mm=tc_x,
        tc_scans_c=data.tc_scans_c,
        hold_s=design.hold_s,
    )
    assert np.isnan(measured.thickness_m).sum() == (~data.in_range).sum()
    [result] = analyse_coupons([measured])
    world = World(WorldConfig(), paused=True)
    c = world.add_coupon(Coupon("d"))
    cr = np.broadcast_to(0.05 * c.y_mm[:, None], c.shape)
    c.set_composition({"Cr": cr, "Ni": 1 - cr})
    truth = coupon_rows_truth(world, "d", demo.X_POINTS.tolist(), demo.Y_ROWS.tolist())
    lines = demo._analysis_lines(result, truth)
    text = "\n".join(line for line, _ in lines)
    assert all(ok for _, ok in lines), text
    assert "simulation truth" in text and "critical Cr content" in text
    for regime in ("NiO", "transition", "chromia"):
        assert f" {regime} " in text
    target = CompositionMap(c.x_mm, {"Cr": cr, "Ni": 1 - cr}, c.y_mm)
    [built] = demo._as_built_lines(target, measured.cr, measured.cr_sigma)
    assert "of which XRF counting 0.00" in built


def test_the_printout_of_the_hold_names_what_the_coupon_saw() -> None:
    """The coupon's ends come from the thermocouples (extrapolated), not the setpoints."""
    design = CampaignDesign()
    data = simulate_campaigns(WorldConfig(), design, np.random.default_rng(9), 1)[0]
    from couponlab.plans.coupon_temperature import temperatures_at

    seen = temperatures_at([0.0, 60.0], design.tc_positions_mm, data.tc_scans_c, design.hold_s)
    assert seen.temperature_k[0] - 273.15 == pytest.approx(1060.0, abs=10.0)
    assert seen.temperature_k[1] - 273.15 == pytest.approx(847.0, abs=10.0)
