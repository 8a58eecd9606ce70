"""The default agent with the real analysis: the interval narrows after each coupon.

Four coupons per system, each drawn at the analysis level (the world's physics and the
instruments' noise, no wire) over the range the agent proposed, analysed, reported and
told to the agent. Seeded; the widths are in docs/science/oxidation-analysis.md.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from science_campaigns import measurements

from couponlab.plans.agents import CriticalContentAgent, report_coupon
from couponlab.simulators.oxidation_campaign import CampaignDesign, simulate_campaigns
from couponlab.simulators.oxidation_truth import critical_fraction
from couponlab.simulators.world import WorldConfig

pytestmark = pytest.mark.timeout(300)


@pytest.mark.parametrize(("system", "element", "seed"), [("Ni-Cr", "Cr", 21), ("Ni-Al", "Al", 22)])
def test_the_critical_content_interval_narrows_after_each_coupon(
    system: str, element: str, seed: int
) -> None:
    config, rng = WorldConfig(), np.random.default_rng(seed)
    agent = CriticalContentAgent()
    for n in range(1, 5):
        p = agent.ask(system)
        design = CampaignDesign(element=element, cr_min=p.low, cr_max=p.high)
        [data] = simulate_campaigns(config, design, rng, 1)
        report = report_coupon(
            measurements(data, design), element, coupon_id=f"L-C{n}", printed=(p.low, p.high)
        )
        assert report.located, report
        agent.tell(report)
    history = agent.history(system)
    widths = [h.width95 for h in history]
    assert all(b < a for a, b in itertools.pairwise(widths)), widths
    assert widths[-1] < widths[0] / 2, widths
    # the combined estimate refers to the coupons' mean temperature (Al depends on it)
    truth = critical_fraction(config, element, history[-1].temperature_k)
    assert history[-1].low95 < truth < history[-1].high95, (history[-1], truth)
    # the proposals narrowed from the hoppers' whole reach to the transition and a margin
    reach, last = agent.reach[system], agent.ask(system)
    assert last.low < truth < last.high
    assert last.high - last.low < 0.6 * (reach.high - reach.low)
