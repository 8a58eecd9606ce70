"""Simulated campaigns turned into what the analysis reads (shared by the science tests)."""

from __future__ import annotations

import numpy as np

from couponlab.plans.oxidation_analysis import CouponMeasurements
from couponlab.simulators.oxidation_campaign import CampaignData, CampaignDesign


def measurements(data: CampaignData, design: CampaignDesign) -> CouponMeasurements:
    """Return the analysis' view of a simulated campaign (no truth in it).

    A Ni-Al campaign's graded element goes into ``fractions["Al"]`` (its Cr map is 0).
    """
    sigma = design.profiler_sigma_m(np.nan_to_num(data.thickness_m))
    xrf = data.cr_xrf
    xrf_sigma = np.sqrt(np.clip(xrf * (1 - xrf), 1e-6, None) / design.xrf_counts)
    cr, cr_sigma = (xrf, xrf_sigma) if design.element == "Cr" else (0 * xrf, 0 * xrf + 1e-3)
    other = {} if design.element == "Cr" else {design.element: xrf}
    other_sigma = {} if design.element == "Cr" else {design.element: xrf_sigma}
    return CouponMeasurements(
        x_mm=np.asarray(design.points_x_mm),
        thickness_m=data.thickness_m,
        thickness_sigma_m=sigma,
        cr=cr,
        cr_sigma=cr_sigma,
        fractions=other,
        fraction_sigmas=other_sigma,
        tc_positions_mm=np.asarray(design.tc_positions_mm),
        tc_scans_c=data.tc_scans_c,
        hold_s=design.hold_s,
        hold_sigma_s=design.hold_sigma_s,
    )
