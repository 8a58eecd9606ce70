"""Specimens a coupon can give: the SS-J3 geometry, cut plans that refuse overlaps and
outlines off the coupon, and the one-specimen-per-band layout."""

from __future__ import annotations

from dataclasses import replace

import pytest

from couponlab.errors import InputError
from couponlab.interfaces.frame import SpecimenGeometry, describe_geometry
from couponlab.specimens import (
    SS_J3,
    Band,
    CutPlan,
    CutPlanError,
    PlacedSpecimen,
    bands_from_rows,
    layout_specimens,
    outline_mm,
)

DEMO_ROWS = [1.0 + 0.5 * i for i in range(18)]
"""The demo's composition rows across its 10 mm coupon (every 2.5 % Cr)."""
DEMO_REGIMES = ["NiO"] * 5 + ["transition"] * 3 + ["chromia"] * 10


def _boxes_apart(plan: CutPlan) -> float:
    """The least clearance between two outlines of ``plan``, mm (inf for one specimen)."""
    least = float("inf")
    for i, a in enumerate(plan.specimens):
        for b in plan.specimens[i + 1 :]:
            ax0, ax1, ay0, ay1 = plan.footprint(a)
            bx0, bx1, by0, by1 = plan.footprint(b)
            dx, dy = max(bx0 - ax1, ax0 - bx1), max(by0 - ay1, ay0 - by1)
            least = min(least, max(dx, dy) if dx < 0 or dy < 0 else (dx * dx + dy * dy) ** 0.5)
    return least


def test_ss_j3_is_16_by_4_with_a_5_by_1_2_by_0_5_gauge_and_says_so() -> None:
    assert outline_mm(SS_J3) == (16.0, 4.0)
    meta = describe_geometry(SS_J3)
    assert {k: v["value"] for k, v in meta.items() if k != "designation"} == {
        "gauge_length": 5.0,
        "width": 1.2,
        "thickness": 0.5,
        "reduced_length": 5.0,
        "overall_length": 16.0,
        "grip_width": 4.0,
    }
    assert meta["designation"].startswith("SS-J3")
    assert outline_mm(SpecimenGeometry()) == (100.0, 10.0)  # E8M sub-size: not a coupon's
    # unknown outline: the reduced section is what must fit
    assert outline_mm(replace(SS_J3, overall_length=None, grip_width=None)) == (5.0, 1.2)


def test_the_demos_regime_bands_each_get_a_specimen_inside_the_60_by_10_coupon() -> None:
    bands = bands_from_rows(DEMO_ROWS, DEMO_REGIMES, "10 mm")
    assert bands == (
        Band("NiO", 0.75, 3.25),
        Band("transition", 3.25, 4.75),
        Band("chromia", 4.75, 9.75),
    )
    plan = layout_specimens("60 mm", "1 cm", bands)
    assert [(s.index, s.band, s.orientation) for s in plan.specimens] == [
        (1, "NiO", "along"),
        (2, "transition", "along"),
        (3, "chromia", "along"),
    ]
    t1, t2, t3 = plan.specimens
    # NiO: pushed in from the edge just enough for the 4 mm grips (+ 0.3 mm kerf), its
    # gauge (y 1.7..2.9) still inside the band; the others at their bands' middles
    assert (t1.x_mm, t1.y_mm) == (8.3, 2.3)
    assert t2.y_mm == 4.0 and t3.y_mm == 7.25
    assert t3.x_mm == 8.3  # beside T1 (y 0.3..4.3 and 5.25..9.25)
    assert t2.x_mm == pytest.approx(8.3 + 16 + 0.3)  # overlaps both in y: the next column
    assert _boxes_apart(plan) >= 0.3 - 1e-9
    for s in plan.specimens:  # every outline inside the coupon with the edge allowance
        x0, x1, y0, y1 = plan.footprint(s)
        assert x0 >= 0.3 - 1e-9 and x1 <= 59.7 + 1e-9 and y0 >= 0.3 - 1e-9 and y1 <= 9.7 + 1e-9
    assert t2.specimen_id("K1-C01") == "K1-C01-T2"
    assert plan.describe()["specimens"][0] == {
        "index": 1,
        "x_mm": 8.3,
        "y_mm": 2.3,
        "orientation": "along",
        "band": "NiO",
    }


def test_six_bands_fill_the_coupon_and_a_seventh_is_refused_by_name() -> None:
    lows = [Band(f"b{k}", 0.0, 4.6) for k in range(3)] + [
        Band(f"h{k}", 5.4, 10.0) for k in range(3)
    ]
    plan = layout_specimens(60, 10, lows)
    assert len(plan.specimens) == 6 and _boxes_apart(plan) >= 0.3 - 1e-9
    with pytest.raises(CutPlanError, match=r"band 'extra'.*no room left along the 60 mm"):
        layout_specimens(60, 10, [*lows, Band("extra", 0.0, 10.0)])


def test_a_band_where_no_specimen_fits_is_refused_naming_it() -> None:
    # the outer 2 mm: a 4 mm wide outline cannot centre its gauge there
    with pytest.raises(CutPlanError, match=r"band 'Ni-rich' \(y 0\.5\.\.1\.5 mm\) has no room"):
        layout_specimens(60, 10, [Band("Ni-rich", 0.5, 1.5)])
    # a specimen longer than the coupon
    with pytest.raises(CutPlanError, match=r"100 x 10 mm specimen outline does not fit"):
        layout_specimens(60, 10, [Band("all", 0, 10)], geometry=SpecimenGeometry())
    with pytest.raises(InputError, match="coupon width"):
        layout_specimens(60, "10 N", [Band("all", 0, 10)])


def test_overlapping_specimens_are_refused_naming_both() -> None:
    with pytest.raises(CutPlanError, match=r"T1 .*and T2 .*overlap.*-1\.5 mm apart"):
        CutPlan(60, 10, SS_J3, (PlacedSpecimen(1, 10, 2.5), PlacedSpecimen(2, 10, 5.0)))
    # apart, but closer than the kerf
    with pytest.raises(CutPlanError, match=r"overlap: their outlines are 0\.1 mm apart"):
        CutPlan(60, 10, SS_J3, (PlacedSpecimen(1, 9, 5), PlacedSpecimen(2, 25.1, 5)))
    ok = CutPlan(60, 10, SS_J3, (PlacedSpecimen(1, 9, 5), PlacedSpecimen(2, 25.3, 5)))
    assert len(ok.specimens) == 2
    # the old demo's two E8M sub-size gauges at y = 3 and 7 mm
    with pytest.raises(CutPlanError, match="sticks out"):
        CutPlan(60, 10, SpecimenGeometry(), (PlacedSpecimen(1, 30, 3), PlacedSpecimen(2, 30, 7)))


def test_a_specimen_off_the_coupon_is_refused_naming_the_side() -> None:
    with pytest.raises(
        CutPlanError, match=r"T1 at x = 30, y = 8 mm sticks out of the 60 x 10 mm .*: y 10 > 9\.7$"
    ):
        CutPlan(60, 10, SS_J3, (PlacedSpecimen(1, 30, 8),))
    with pytest.raises(CutPlanError, match=r"x = 5, y = 5 mm sticks out.*x -3 < 0\.3"):
        CutPlan(60, 10, SS_J3, (PlacedSpecimen(1, 5, 5),))
    with pytest.raises(CutPlanError, match=r"y -5\.75 < 0\.3"):  # turned across: 16 mm in y
        CutPlan(60, 12, SS_J3, (PlacedSpecimen(1, 30, 2.25, "across"),))
    with pytest.raises(CutPlanError, match=r"indices \[2\] must be 1\.\.1"):
        CutPlan(60, 10, SS_J3, (PlacedSpecimen(2, 30, 5),))
    turned = CutPlan(60, 20, SS_J3, (PlacedSpecimen(1, 30, 10, "across"),))
    assert turned.footprint(turned.specimens[0]) == (28.0, 32.0, 2.0, 18.0)


def test_bands_from_rows_refuses_rows_that_do_not_increase() -> None:
    with pytest.raises(InputError, match="must increase"):
        bands_from_rows([1.0, 1.0], ["a", "b"], 10)
    with pytest.raises(InputError, match="2 rows but 1 labels"):
        bands_from_rows([1.0, 2.0], ["a"], 10)
