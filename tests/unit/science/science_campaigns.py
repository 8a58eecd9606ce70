"""Simulated campaigns turned into what the analysis reads (shared by the science tests)."""

from __future__ import annotations

import numpy as np

from couponlab.plans.oxidation_analysis import CouponMeasurements
from couponlab.simulators.oxidation_campaign import CampaignData, CampaignDesign


def measurements(data: CampaignData, design: CampaignDesign) -> CouponMeasurements:
    """Return the analysis' view of a simulated campaign (no truth in it)."""
    sigma = design.profiler_sigma_m(np.nan_to_num(data.thickness_m))
    cr_sigma = np.sqrt(np.clip(data.cr_xrf * (1 - data.cr_xrf), 1e-6, None) / design.xrf_counts)
    return CouponMeasurements(
        x_mm=np.asarray(design.points_x_mm),
        thickness_m=data.thickness_m,
        thickness_sigma_m=sigma,
        cr=data.cr_xrf,
        cr_sigma=cr_sigma,
        tc_positions_mm=np.asarray(design.tc_positions_mm),
        tc_scans_c=data.tc_scans_c,
        hold_s=design.hold_s,
        hold_sigma_s=design.hold_sigma_s,
    )
