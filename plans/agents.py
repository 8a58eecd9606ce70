"""Campaign agents: read one coupon's analysis, propose the next coupon's gradient.

In the spirit of bluesky-adaptive: an agent is *told* what each coupon showed and *asked*
for the next point. Here a report is a :class:`CouponReport` (what one coupon's analysis
tells about the critical content of one element) and a point is a :class:`Proposal` (the
range of that element to grade across the next coupon of a system, with the reason).

- :class:`CampaignAgent` is the protocol a lab's own agent implements:
  ``tell(report) -> None`` and ``ask(system) -> Proposal``.
- :class:`CriticalContentAgent` (the default) narrows each system's range to where its
  critical content lies: the 95 % interval and the transition band, plus a margin, within
  what the hoppers can reach; when the critical content was not located, it moves the range
  toward the side it must lie on.
- :func:`report_coupon` turns one coupon's measurements into a :class:`CouponReport`
  (the analysis of :mod:`couponlab.plans.oxidation_analysis`; :func:`analyse_coupon` gives
  the whole analysis beside it, for the campaign's report);
  :func:`estimate_history` gives the combined estimate and its interval after each coupon.

Everything but :func:`report_coupon` and :func:`analyse_coupon` is plain Python (no numpy):
fast to test, and a report or a proposal converts to plain data (:meth:`CouponReport.as_dict`,
:meth:`Proposal.as_dict`) for run documents and the sample registry.
See docs/howto/write-a-campaign-agent.md.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from statistics import NormalDist
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from couponlab.errors import InputError

if TYPE_CHECKING:
    from couponlab.plans.oxidation_analysis import CouponAnalysis, CouponMeasurements

Side = Literal["located", "above", "below", "unknown"]
"""Where the critical content lies against the coupon's range: ``located`` inside it (an
estimate), ``above`` its top (no protective row), ``below`` its bottom (no unprotected row),
``unknown`` (the coupon tells nothing: every row in the transition, or none usable)."""

AGENT = "couponlab.plans.agents"


def _check_range(element: str, low: float, high: float, what: str) -> None:
    if not element:
        raise InputError(AGENT, f"{what}: an element symbol is needed (e.g. 'Cr')")
    if not (math.isfinite(low) and math.isfinite(high) and 0.0 <= low < high <= 1.0):
        raise InputError(
            AGENT,
            f"{what} of {element}: {low!r} .. {high!r} is not a range within 0..1 "
            "(mass fractions, low < high)",
        )


@dataclass(frozen=True)
class SystemReach:
    """What the hoppers can print of one alloy system: its graded element and range.

    ``low`` .. ``high`` are mass fractions of ``element`` (0..1), the range a proposal may
    span (the hoppers' blend can reach it, and it is a sensible range to search).
    """

    element: str
    low: float
    high: float

    def __post_init__(self) -> None:
        _check_range(self.element, self.low, self.high, "reach")


DEFAULT_REACH: Mapping[str, SystemReach] = {
    "Ni-Cr": SystemReach("Cr", 0.0, 0.5),
    "Ni-Al": SystemReach("Al", 0.0, 0.3),
}
"""The bundled lab's systems: Ni-Cr from the Ni and Ni-50Cr hoppers (0..0.5 Cr); Ni-Al from
the Ni and Al hoppers (0..1 possible; 0..0.3 kept: beyond it Ni-Al is an intermetallic)."""


@dataclass(frozen=True)
class Proposal:
    """The next coupon of a system: grade ``element`` from ``low`` to ``high`` across it.

    ``low`` and ``high`` are mass fractions of ``element`` (0 <= low < high <= 1), the balance
    the system's base (Ni); ``reason`` says why, in words (it goes into the documents).
    """

    element: str
    low: float
    high: float
    reason: str

    def __post_init__(self) -> None:
        _check_range(self.element, self.low, self.high, "proposal")

    @property
    def width(self) -> float:
        """Return ``high - low`` (mass fraction)."""
        return self.high - self.low

    def as_dict(self) -> dict[str, object]:
        """Return the proposal as plain data (element, low, high, reason)."""
        return asdict(self)


@dataclass(frozen=True)
class CouponReport:
    """What one coupon's analysis tells about the critical content of one element.

    Fractions are mass fractions of ``element`` (0..1). When the critical content was
    located, ``estimate`` and ``sigma`` are set and ``side`` is ``"located"``; otherwise
    they are NaN and ``side`` says where it must lie (``"above"`` the range: no row grew
    the protective scale; ``"below"``: every row did; ``"unknown"``).
    """

    coupon_id: str
    system: str
    """The alloy system, e.g. ``"Ni-Cr"`` or ``"Ni-Al"``."""
    element: str
    """The graded element whose critical content is meant, e.g. ``"Cr"``."""
    low: float
    """The lowest content on the coupon (printed or measured), mass fraction."""
    high: float
    """The highest content on the coupon, mass fraction."""
    side: Side
    estimate: float = math.nan
    """Critical content (protective fraction 0.5), mass fraction; NaN when not located."""
    sigma: float = math.nan
    """Its standard uncertainty."""
    temperature_k: float = math.nan
    """Temperature the estimate refers to, K (the coupon's mean 1/T; NaN if not stated)."""
    temperature_slope_k: float = 0.0
    """``d ln(critical content) / d(1/T)``, K: how the estimate moves with temperature (0:
    not at all, as for Cr; Wagner's criterion for Al). :func:`combine` uses it to bring
    coupons held at slightly different temperatures to one."""
    band: tuple[float, float] | None = None
    """Contents over which the fitted transition band runs on this coupon (f from 0.01 to
    0.999 over its temperatures), mass fractions; None when not located."""
    regimes: tuple[str, ...] = ()
    """Each composition row's regime, low to high content (e.g. ``NiO``, ``chromia``)."""

    def __post_init__(self) -> None:
        _check_range(self.element, self.low, self.high, f"coupon {self.coupon_id} range")
        if self.side not in ("located", "above", "below", "unknown"):
            raise InputError(AGENT, f"coupon {self.coupon_id}: side {self.side!r} unknown")
        if self.side == "located" and not (
            math.isfinite(self.estimate) and math.isfinite(self.sigma) and self.sigma > 0
        ):
            raise InputError(
                AGENT,
                f"coupon {self.coupon_id}: a located critical content needs a finite estimate "
                f"and sigma > 0, got {self.estimate!r} +/- {self.sigma!r}",
            )

    @property
    def located(self) -> bool:
        """Return whether the coupon located the critical content."""
        return self.side == "located"

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        """Return the central interval of the estimate at ``level`` (0..1); NaNs if not
        located."""
        return _interval(self.estimate, self.sigma, level)

    def as_dict(self) -> dict[str, object]:
        """Return the report as plain data, with its 68 % and 95 % intervals."""
        out = asdict(self)
        out["band"] = list(self.band) if self.band is not None else None
        out["regimes"] = list(self.regimes)
        out["interval_68"] = list(self.interval(0.68))
        out["interval_95"] = list(self.interval(0.95))
        return out


def _interval(estimate: float, sigma: float, level: float) -> tuple[float, float]:
    if not 0.0 < level < 1.0:
        raise InputError(AGENT, f"interval level {level!r} is not within (0, 1)")
    z = NormalDist().inv_cdf(0.5 + level / 2)
    return (estimate - z * sigma, estimate + z * sigma)


@runtime_checkable
class CampaignAgent(Protocol):
    """What a campaign needs of an agent: tell it each coupon's report, ask for the next.

    ``ask`` must return a :class:`Proposal` for the system even before any report (the
    first coupon's range).
    """

    def tell(self, report: CouponReport) -> None:
        """Take one coupon's report into account."""
        ...

    def ask(self, system: str) -> Proposal:
        """Return the next coupon's gradient for ``system`` (e.g. ``"Ni-Cr"``)."""
        ...


@dataclass(frozen=True)
class Estimate:
    """The critical content of one system after some coupons (:func:`estimate_history`).

    When located (any coupon located it): the inverse-variance mean of the located coupons'
    estimates (each brought to ``temperature_k`` along its ``temperature_slope_k``),
    ``sigma`` its standard uncertainty, ``low95``/``high95`` its 95 % interval.
    Otherwise the bracket the coupons' sides allow (``low95``..``high95``, within the
    reach) and NaN estimate and sigma.
    """

    system: str
    element: str
    coupons: int
    """Reports taken into account."""
    located: int
    """Of them, those that located the critical content."""
    estimate: float
    sigma: float
    low95: float
    high95: float
    temperature_k: float = math.nan
    """Temperature the combined estimate refers to, K (the located coupons' weighted mean
    1/T; NaN when they stated none)."""

    @property
    def width95(self) -> float:
        """Return the width of the 95 % interval (or of the bracket), mass fraction."""
        return self.high95 - self.low95

    def as_dict(self) -> dict[str, object]:
        """Return the estimate as plain data, with ``width95``."""
        return {**asdict(self), "width95": self.width95}


def combine(reports: Sequence[CouponReport], reach: SystemReach | None = None) -> Estimate:
    """Return the combined estimate of one system's critical content from its reports.

    Located reports combine by inverse-variance weights (they are independent coupons),
    each first brought to the common temperature (the weighted mean of their 1/T) along its
    own ``temperature_slope_k``: coupons of one exposure differ by a few kelvin, which moves
    a temperature-dependent critical content (Al) by about its own uncertainty. Without
    any located report, the sides bound it: above a coupon's top, below a coupon's bottom,
    within ``reach`` (or 0..1).
    """
    if not reports:
        raise InputError(AGENT, "no report to combine")
    system, element = reports[0].system, reports[0].element
    if any(r.system != system or r.element != element for r in reports):
        raise InputError(AGENT, "reports of different systems or elements cannot be combined")
    found = [r for r in reports if r.located]
    if found:
        weight = sum(1.0 / r.sigma**2 for r in found)
        stated = [r for r in found if math.isfinite(r.temperature_k)]
        t_common = math.nan
        if stated:
            w_t = sum(1.0 / r.sigma**2 for r in stated)
            t_common = w_t / sum(1.0 / (r.temperature_k * r.sigma**2) for r in stated)

        def at_common(r: CouponReport) -> float:
            if not (r.temperature_slope_k and math.isfinite(r.temperature_k)):
                return r.estimate
            shift = r.temperature_slope_k * (1.0 / t_common - 1.0 / r.temperature_k)
            return r.estimate * math.exp(shift)

        est = sum(at_common(r) / r.sigma**2 for r in found) / weight
        sigma = 1.0 / math.sqrt(weight)
        lo, hi = _interval(est, sigma, 0.95)
        return Estimate(system, element, len(reports), len(found), est, sigma, lo, hi, t_common)
    lo = reach.low if reach else 0.0
    hi = reach.high if reach else 1.0
    for r in reports:
        if r.side == "above":
            lo = max(lo, r.high)
        elif r.side == "below":
            hi = min(hi, r.low)
    return Estimate(system, element, len(reports), 0, math.nan, math.nan, lo, max(lo, hi))


def estimate_history(
    reports: Iterable[CouponReport], system: str, reach: SystemReach | None = None
) -> list[Estimate]:
    """Return the combined estimate of ``system`` after each of its coupons, in order.

    This is what a campaign prints to show the loop narrowing in (``width95`` after each
    coupon).
    """
    mine = [r for r in reports if r.system == system]
    return [combine(mine[: i + 1], reach) for i in range(len(mine))]


@dataclass
class CriticalContentAgent:
    """The default agent: narrow each system's range to where its critical content lies.

    Parameters
    ----------
    reach
        Per system, the graded element and the range the hoppers can print
        (default :data:`DEFAULT_REACH`).
    margin
        Added on both sides of the 95 % interval and the transition band, mass fraction
        (>= 0): both regimes must stay on the next coupon for it to locate the critical
        content again.
    min_width
        Narrowest range proposed, mass fraction (> 0): the coupon's rows must still
        resolve the transition.
    """

    reach: Mapping[str, SystemReach] = field(default_factory=lambda: dict(DEFAULT_REACH))
    margin: float = 0.03
    min_width: float = 0.08
    reports: list[CouponReport] = field(default_factory=list)
    """Every report told so far, in order."""

    def __post_init__(self) -> None:
        if not (self.margin >= 0 and math.isfinite(self.margin)):
            raise InputError(AGENT, f"margin {self.margin!r} must be >= 0 (mass fraction)")
        if not 0 < self.min_width <= 1:
            raise InputError(AGENT, f"min_width {self.min_width!r} must be in (0, 1]")

    def _reach(self, system: str) -> SystemReach:
        try:
            return self.reach[system]
        except KeyError:
            raise InputError(
                AGENT, f"system {system!r} unknown; known: {sorted(self.reach)}"
            ) from None

    def tell(self, report: CouponReport) -> None:
        """Take one coupon's report; refuse a system or element the agent does not know.

        Telling the same report of a coupon again changes nothing (a resumed campaign may
        repeat itself: counting a coupon twice would narrow the interval falsely); another
        report under a coupon id already told is refused. Reports without an id are all
        taken.
        """
        reach = self._reach(report.system)
        if report.element != reach.element:
            raise InputError(
                AGENT,
                f"report of {report.coupon_id}: element {report.element!r} is not the graded "
                f"element {reach.element!r} of {report.system}",
            )
        if report.coupon_id:
            for told in self.reports:
                if told.coupon_id != report.coupon_id:
                    continue
                if _same(told, report):
                    return
                raise InputError(
                    AGENT, f"coupon {report.coupon_id} was told a different report before"
                )
        self.reports.append(report)

    def history(self, system: str) -> list[Estimate]:
        """Return the combined estimate of ``system`` after each of its coupons."""
        return estimate_history(self.reports, system, self._reach(system))

    def ask(self, system: str) -> Proposal:
        """Return the next coupon's range of ``system``'s graded element, with the reason."""
        reach = self._reach(system)
        mine = [r for r in self.reports if r.system == system]
        if not mine:
            return Proposal(
                reach.element,
                reach.low,
                reach.high,
                f"first {system} coupon: the whole reach of the hoppers",
            )
        est = combine(mine, reach)
        last = mine[-1]
        if est.located:
            lo, hi = est.low95, est.high95
            for r in mine:  # every located coupon's band must fit, so both regimes show
                if r.band is not None:
                    lo, hi = min(lo, r.band[0]), max(hi, r.band[1])
            lo, hi = lo - self.margin, hi + self.margin
            at = f" at {est.temperature_k:.0f} K" if math.isfinite(est.temperature_k) else ""
            why = (
                f"critical {reach.element} {est.estimate:.4f} +/- {est.sigma:.4f}{at} "
                f"(95 % {est.low95:.4f}..{est.high95:.4f}, {est.located} coupon(s)); "
                f"the transition band and a margin of {self.margin:g} around it"
            )
        elif last.side == "above":
            width = max(last.high - last.low, self.min_width)
            lo = max(est.low95 - self.margin, reach.low)
            hi = lo + width
            why = (
                f"no protective scale up to {last.high:.3f} {reach.element} on {last.coupon_id}: "
                "the critical content lies higher; range moved up"
            )
        elif last.side == "below":
            width = max(last.high - last.low, self.min_width)
            hi = min(est.high95 + self.margin, reach.high)
            lo = hi - width
            why = (
                f"protective scale down to {last.low:.3f} {reach.element} on {last.coupon_id}: "
                "the critical content lies lower; range moved down"
            )
        else:
            centre, width = (last.low + last.high) / 2, 2 * (last.high - last.low)
            lo, hi = centre - width / 2, centre + width / 2
            why = f"{last.coupon_id} told nothing of the critical content: range widened"
        lo, hi = self._fit(lo, hi, reach)
        if (lo, hi) == (reach.low, reach.high) and est.located == 0:
            why += " (the whole reach of the hoppers)"
        return Proposal(reach.element, lo, hi, why)

    def _fit(self, lo: float, hi: float, reach: SystemReach) -> tuple[float, float]:
        """Widen to ``min_width`` about the centre, then shift/clip into the reach."""
        span = reach.high - reach.low
        width = min(max(hi - lo, self.min_width), span)
        centre = (lo + hi) / 2
        lo = min(max(centre - width / 2, reach.low), reach.high - width)
        return (round(lo, 6), round(lo + width, 6))


def _same(a: CouponReport, b: CouponReport) -> bool:
    """Return whether two reports say the same (NaN equal to NaN)."""
    return json.dumps(a.as_dict(), sort_keys=True) == json.dumps(b.as_dict(), sort_keys=True)


def analyse_coupon(
    measurements: CouponMeasurements,
    element: str = "Cr",
    *,
    system: str | None = None,
    coupon_id: str = "",
    printed: tuple[float, float] | None = None,
) -> tuple[CouponAnalysis, CouponReport]:
    """Analyse one coupon's measurements: return the whole analysis (each row's regime, law,
    Q with its uncertainty; the critical content) and what it tells an agent.

    The campaign, and its report made from the store, both analyse a coupon through this
    function; the parameters are those of :func:`report_coupon`.
    """
    from couponlab.plans.oxidation_analysis import analyse_coupons

    [analysis] = analyse_coupons([measurements], element=element)
    report = analysis.report(element, system=system, coupon_id=coupon_id, printed=printed)
    return analysis, report


def report_coupon(
    measurements: CouponMeasurements,
    element: str = "Cr",
    *,
    system: str | None = None,
    coupon_id: str = "",
    printed: tuple[float, float] | None = None,
) -> CouponReport:
    """Analyse one coupon's measurements and return what it tells about ``element``.

    Parameters
    ----------
    measurements
        The coupon's maps, thermocouple scans and hold (as :mod:`couponlab.plans.demo`
        builds them); for ``element`` other than ``"Cr"`` its XRF map must be in
        ``measurements.fractions`` (and its uncertainty in ``fraction_sigmas``).
    element
        The graded element whose critical content is wanted: ``"Cr"`` or ``"Al"``.
    system
        The alloy system (default ``"Ni-" + element``).
    coupon_id
        The coupon's key, carried into the report.
    printed
        The element's range printed across the coupon (mass fractions); default the lowest
        and highest row means of the XRF map.
    """
    return analyse_coupon(
        measurements, element, system=system, coupon_id=coupon_id, printed=printed
    )[1]


__all__ = [
    "DEFAULT_REACH",
    "CampaignAgent",
    "CouponReport",
    "CriticalContentAgent",
    "Estimate",
    "Proposal",
    "Side",
    "SystemReach",
    "analyse_coupon",
    "combine",
    "estimate_history",
    "report_coupon",
]
