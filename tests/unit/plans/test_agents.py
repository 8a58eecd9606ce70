"""The campaign agents: reports, proposals, the default agent's narrowing, a plug-in agent.

Pure Python: a stand-in for the analysis (:func:`fake_report`) makes each coupon's report
from its range the way the real analysis behaves (located when the range spans the
transition band, its interval narrower when the range is narrower: more rows per unit
content), so the loop runs in microseconds.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field, replace
from statistics import NormalDist

import pytest

from couponlab.errors import InputError
from couponlab.plans.agents import (
    DEFAULT_REACH,
    CampaignAgent,
    CouponReport,
    CriticalContentAgent,
    Proposal,
    SystemReach,
    combine,
    estimate_history,
)

TRUTH = {"Ni-Cr": ("Cr", 0.20, 0.015), "Ni-Al": ("Al", 0.11, 0.01)}
"""Per system: element, true critical content, spread of the transition (mass fractions)."""


def fake_report(system: str, proposal: Proposal, n: int, error_z: float = 0.5) -> CouponReport:
    """What the analysis reports of a coupon graded over ``proposal`` (18 rows).

    Located when the range holds both pure regimes (3 spreads beyond the truth on each
    side); sigma 0.1 of the row spacing per sqrt of the rows in the band; the estimate
    ``error_z`` sigmas off the truth.
    """
    element, truth, spread = TRUTH[system]
    lo, hi = proposal.low, proposal.high
    cid = f"{system}-C{n:02d}"
    if hi < truth + 3 * spread:
        return CouponReport(cid, system, element, lo, hi, "above", regimes=("NiO",) * 18)
    if lo > truth - 3 * spread:
        return CouponReport(cid, system, element, lo, hi, "below", regimes=("alumina",) * 18)
    spacing = (hi - lo) / 17
    in_band = max(1.0, 6 * spread / spacing)
    sigma = 0.6 * spacing / math.sqrt(in_band)
    return CouponReport(
        cid,
        system,
        element,
        lo,
        hi,
        "located",
        estimate=truth + error_z * sigma,
        sigma=sigma,
        temperature_k=1223.0,
        band=(truth - 2.33 * spread, truth + 3.09 * spread),
    )


def test_proposal_and_report_refuse_impossible_ranges() -> None:
    with pytest.raises(InputError, match=r"not a range within 0\.\.1"):
        Proposal("Cr", 0.3, 0.2, "backwards")
    with pytest.raises(InputError, match=r"not a range within 0\.\.1"):
        Proposal("Cr", -0.1, 0.2, "negative")
    with pytest.raises(InputError, match=r"not a range within 0\.\.1"):
        Proposal("Al", 0.1, math.nan, "nan")
    with pytest.raises(InputError, match="finite estimate"):
        CouponReport("C1", "Ni-Cr", "Cr", 0.0, 0.5, "located")
    with pytest.raises(InputError, match="side"):
        CouponReport("C1", "Ni-Cr", "Cr", 0.0, 0.5, "beside")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="min_width"):
        CriticalContentAgent(min_width=0.0)


def test_report_intervals_and_plain_data() -> None:
    r = CouponReport(
        "C1", "Ni-Cr", "Cr", 0.0, 0.5, "located", estimate=0.2, sigma=0.01, band=(0.17, 0.24)
    )
    lo, hi = r.interval(0.95)
    assert (lo, hi) == pytest.approx((0.2 - 0.0196, 0.2 + 0.0196), abs=1e-5)
    data = r.as_dict()
    assert data["interval_68"] == pytest.approx([0.19, 0.21], abs=1e-4)
    assert data["band"] == [0.17, 0.24] and data["side"] == "located"
    nope = CouponReport("C2", "Ni-Cr", "Cr", 0.0, 0.1, "above")
    assert not nope.located and all(math.isnan(v) for v in nope.interval(0.68))
    assert Proposal("Cr", 0.1, 0.3, "why").as_dict() == {
        "element": "Cr",
        "low": 0.1,
        "high": 0.3,
        "reason": "why",
    }


def test_first_ask_is_the_whole_reach_of_the_hoppers() -> None:
    agent = CriticalContentAgent()
    cr, al = agent.ask("Ni-Cr"), agent.ask("Ni-Al")
    assert (cr.element, cr.low, cr.high) == ("Cr", 0.0, 0.5)
    assert (al.element, al.low, al.high) == ("Al", 0.0, 0.3)
    with pytest.raises(InputError, match="Ni-Fe"):
        agent.ask("Ni-Fe")


def test_a_located_report_narrows_the_range_around_interval_and_band() -> None:
    agent = CriticalContentAgent(margin=0.03)
    report = fake_report("Ni-Cr", agent.ask("Ni-Cr"), 1)
    agent.tell(report)
    p = agent.ask("Ni-Cr")
    lo95, hi95 = report.interval(0.95)
    assert report.band is not None
    assert p.low == pytest.approx(min(lo95, report.band[0]) - 0.03, abs=1e-6)
    assert p.high == pytest.approx(max(hi95, report.band[1]) + 0.03, abs=1e-6)
    assert p.width < 0.5 / 2 and "critical Cr" in p.reason


def test_not_located_moves_the_range_to_the_side_the_content_lies_on() -> None:
    agent = CriticalContentAgent(margin=0.02)
    agent.tell(CouponReport("A1", "Ni-Al", "Al", 0.0, 0.06, "above"))
    up = agent.ask("Ni-Al")
    assert up.low == pytest.approx(0.04) and up.high == pytest.approx(0.12)
    assert "lies higher" in up.reason
    agent.tell(CouponReport("A2", "Ni-Al", "Al", 0.25, 0.3, "below"))
    down = agent.ask("Ni-Al")
    assert down.high == pytest.approx(0.27) and down.low == pytest.approx(0.19)
    # the bracket of the two sides: 0.06 .. 0.25
    [first, second] = agent.history("Ni-Al")
    assert (first.low95, first.high95) == (0.06, 0.3)
    assert (second.low95, second.high95) == (0.06, 0.25) and second.located == 0
    # never beyond what the hoppers reach
    edge = CriticalContentAgent()
    edge.tell(CouponReport("A3", "Ni-Al", "Al", 0.2, 0.3, "above"))
    top = edge.ask("Ni-Al")
    assert top.high == 0.3 and top.low == pytest.approx(0.2)


def test_a_coupon_told_twice_counts_once() -> None:
    agent = CriticalContentAgent()
    report = fake_report("Ni-Cr", agent.ask("Ni-Cr"), 1)
    agent.tell(report)
    agent.tell(replace(report))  # a resumed campaign repeating itself
    assert len(agent.reports) == 1
    nope = CouponReport(report.coupon_id, "Ni-Cr", "Cr", 0.0, 0.5, "above")
    with pytest.raises(InputError, match="different report"):
        agent.tell(nope)
    unnamed = CouponReport("", "Ni-Cr", "Cr", 0.0, 0.5, "above")
    agent.tell(unnamed)
    agent.tell(unnamed)
    assert len(agent.reports) == 3


def test_a_coupon_that_told_nothing_widens_the_range() -> None:
    agent = CriticalContentAgent()
    agent.tell(CouponReport("C1", "Ni-Cr", "Cr", 0.15, 0.25, "unknown"))
    p = agent.ask("Ni-Cr")
    assert (p.low, p.high) == pytest.approx((0.1, 0.3)) and "widened" in p.reason
    [only] = agent.history("Ni-Cr")
    assert (only.low95, only.high95, only.located) == (0.0, 0.5, 0)


def test_the_agent_refuses_a_report_of_the_wrong_element() -> None:
    agent = CriticalContentAgent()
    with pytest.raises(InputError, match="graded element"):
        agent.tell(CouponReport("C1", "Ni-Cr", "Al", 0.0, 0.5, "above"))
    with pytest.raises(InputError, match="unknown"):
        agent.tell(CouponReport("C1", "Fe-Cr", "Cr", 0.0, 0.5, "above"))


@pytest.mark.parametrize("system", ["Ni-Cr", "Ni-Al"])
def test_the_closed_loop_tightens_the_interval_after_each_coupon(system: str) -> None:
    agent = CriticalContentAgent()
    element, truth, _ = TRUTH[system]
    widths = []
    for n in range(1, 5):
        proposal = agent.ask(system)
        assert proposal.element == element
        reach = DEFAULT_REACH[system]
        assert reach.low <= proposal.low < proposal.high <= reach.high
        assert proposal.low < truth < proposal.high
        agent.tell(fake_report(system, proposal, n, error_z=(-1) ** n * 0.7))
        widths.append(agent.history(system)[-1].width95)
    assert all(b < a for a, b in itertools.pairwise(widths)), widths
    assert widths[-1] < widths[0] / 3
    final = agent.history(system)[-1]
    assert final.low95 < truth < final.high95


def test_a_coupon_that_misses_the_transition_is_recovered_from() -> None:
    """A first Ni-Al coupon graded too lean (0..0.06 Al) reports 'above'; the agent moves up
    until a coupon locates the critical content."""
    agent = CriticalContentAgent()
    agent.tell(fake_report("Ni-Al", Proposal("Al", 0.0, 0.06, "lean"), 1))
    for n in range(2, 6):
        agent.tell(fake_report("Ni-Al", agent.ask("Ni-Al"), n))
    history = agent.history("Ni-Al")
    assert history[0].located == 0 and history[-1].located >= 1
    assert history[-1].low95 < TRUTH["Ni-Al"][1] < history[-1].high95


def test_combined_estimate_is_the_inverse_variance_mean() -> None:
    reports = [
        CouponReport("C1", "Ni-Cr", "Cr", 0.0, 0.5, "located", estimate=0.21, sigma=0.02),
        CouponReport("C2", "Ni-Cr", "Cr", 0.1, 0.3, "located", estimate=0.19, sigma=0.01),
    ]
    est = combine(reports, DEFAULT_REACH["Ni-Cr"])
    assert est.estimate == pytest.approx((0.21 / 4e-4 + 0.19 / 1e-4) / (1 / 4e-4 + 1 / 1e-4))
    assert est.sigma == pytest.approx(1 / math.sqrt(1 / 4e-4 + 1 / 1e-4))
    z = NormalDist().inv_cdf(0.975)
    assert est.width95 == pytest.approx(2 * z * est.sigma)
    history = estimate_history(reports, "Ni-Cr")
    assert [h.coupons for h in history] == [1, 2]
    assert history[1].width95 < history[0].width95
    assert estimate_history(reports, "Ni-Al") == []
    with pytest.raises(InputError, match="different systems"):
        combine([reports[0], CouponReport("A1", "Ni-Al", "Al", 0, 0.3, "above")])


def test_coupons_at_slightly_different_temperatures_combine_at_one() -> None:
    """A temperature-dependent critical content (Al) is brought to the common temperature
    along each coupon's slope before the coupons are averaged."""
    slope = 2400.0  # K: c_crit falls as T rises
    a = CouponReport(
        "A1", "Ni-Al", "Al", 0.0, 0.3, "located", estimate=0.110, sigma=0.001,
        temperature_k=1220.0, temperature_slope_k=slope,
    )  # fmt: skip
    b = replace(a, coupon_id="A2", estimate=0.108, temperature_k=1230.0)
    est = combine([a, b])
    t_common = 2 / (1 / 1220.0 + 1 / 1230.0)
    assert est.temperature_k == pytest.approx(t_common)
    moved = [r.estimate * math.exp(slope * (1 / t_common - 1 / r.temperature_k)) for r in (a, b)]
    assert est.estimate == pytest.approx(sum(moved) / 2)
    assert moved[0] < a.estimate and moved[1] > b.estimate  # toward the middle temperature
    # without a slope (Cr) the estimates are averaged as they are
    flat = combine([replace(a, temperature_slope_k=0.0), replace(b, temperature_slope_k=0.0)])
    assert flat.estimate == pytest.approx(0.109)


@dataclass
class GridAgent:
    """A plug-in agent (the how-to's example): walks a fixed list of ranges per system."""

    grid: dict[str, list[tuple[str, float, float]]]
    told: list[CouponReport] = field(default_factory=list)

    def tell(self, report: CouponReport) -> None:
        self.told.append(report)

    def ask(self, system: str) -> Proposal:
        done = sum(r.system == system for r in self.told)
        element, low, high = self.grid[system][done % len(self.grid[system])]
        return Proposal(element, low, high, f"grid point {done + 1} of {system}")


def test_a_lab_plugs_in_its_own_agent() -> None:
    agent = GridAgent({"Ni-Cr": [("Cr", 0.0, 0.5), ("Cr", 0.1, 0.3)]})
    assert isinstance(agent, CampaignAgent)
    assert isinstance(CriticalContentAgent(), CampaignAgent)
    first = agent.ask("Ni-Cr")
    agent.tell(fake_report("Ni-Cr", first, 1))
    assert agent.ask("Ni-Cr") == Proposal("Cr", 0.1, 0.3, "grid point 2 of Ni-Cr")


def test_a_lab_can_give_its_own_reach() -> None:
    agent = CriticalContentAgent(reach={"Ni-Cr": SystemReach("Cr", 0.05, 0.35)})
    assert (agent.ask("Ni-Cr").low, agent.ask("Ni-Cr").high) == (0.05, 0.35)
    with pytest.raises(InputError, match="not a range"):
        SystemReach("Cr", 0.4, 0.35)
