"""Run or resume a campaign on a lab, print its results (``couponlab campaign run|resume``).

:func:`run_campaign` opens a :class:`~couponlab.session.Session` on the campaign's lab (its
twins in a process of their own, if it has any), the registry ``<out>/samples.sqlite``,
runs :meth:`couponlab.plans.campaign.Campaign.plan` in the session's RunEngine and prints the
coupons, the agent's decisions with the estimate's interval after each coupon, the makespan
and each instrument's utilisation, and where the data are. On twins it sets the simulation's
speed-up per phase (:data:`SPEEDUPS`) through the twin control channel; the plans never do.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from couponlab.errors import InputError
from couponlab.labfile import LabFile, load_lab
from couponlab.plans.campaign_file import CampaignFile, load_campaign, parse_campaign
from couponlab.samples import SampleRegistry

SPEEDUPS: dict[str, float] = {
    "calibrate": 20.0,
    "print": 50.0,
    "transfer": 200.0,
    "map": 500.0,
    "tensile": 2000.0,
    "wait": 20000.0,
}
"""Simulation speed-up per campaign phase on twins (virtual s per wall s). Low where a plan
exchanges with an instrument often (a reply's wall-time jitter, times the speed-up, is
instrument time the step appears to take), high while the campaign only waits on the
furnace's program."""
REGISTRY = "samples.sqlite"


def campaign_lab(spec: CampaignFile, source: Path | None) -> LabFile:
    from couponlab.cli import sample_lab_path

    if spec.lab == "sim":
        return load_lab(sample_lab_path())
    path = Path(spec.lab)
    if not path.is_absolute() and source is not None:
        path = source.parent / path
    return load_lab(path)


def run_campaign(
    campaign: str | Path | CampaignFile | None = None,
    out_dir: str | Path = "runs/campaign",
    *,
    sequential: bool = False,
    resume: bool = False,
    speedups: dict[str, float] | None = None,
    lab: LabFile | None = None,
    store: bool = True,
    say: Callable[[str], None] = print,
) -> Any:
    """Run a campaign file (None: the bundled default) or resume the one in ``out_dir``.

    Returns the :class:`~couponlab.plans.campaign.CampaignSummary`. With ``store`` False the
    session keeps only the document log and the registry (no Tiled store in ``out_dir``:
    :class:`~couponlab.session.Session`'s ``store``), which saves the ingest process's 15-20 s
    of CPU when the session closes; the CLI always fills the store.

    Raises
    ------
    InputError
        A bad campaign file, or nothing to resume in ``out_dir`` (nothing started).
    """
    from couponlab.session import Session

    out = Path(out_dir)
    source: Path | None = None
    if resume:
        db = out / REGISTRY
        if not db.exists():
            raise InputError("campaign", f"nothing to resume: no registry {db}")
        with SampleRegistry(db, create=False) as reg:
            found = reg.campaigns()
            if len(found) != 1:
                raise InputError("campaign", f"{db} holds {len(found)} campaigns, not one")
            spec = parse_campaign(reg.campaign_spec(found[0]["id"]), str(db))
    elif isinstance(campaign, CampaignFile):
        spec = campaign
    else:
        source = Path(campaign) if campaign is not None else None
        spec = load_campaign(source)
    lab = lab or campaign_lab(spec, source)
    paces = dict(SPEEDUPS, **(speedups or {}))
    t_start = time.monotonic()
    mode = "one step after another (--sequential)" if sequential else "overlapped"
    verb = "resuming" if resume else "running"
    say(
        f"couponlab campaign {spec.id!r}: {verb} {len(spec.coupons)} coupons in batches of "
        f"{spec.carrier_batch}, {mode}, on lab {lab.name!r}"
    )
    with Session(lab, out_dir=out, store=store) as s, SampleRegistry(out / REGISTRY) as reg:
        if resume:
            done = reg.completed_steps(spec.id)
            say(f"  {len(done)} step(s) completed before: skipped")
        runner = campaign_in_session(
            s, spec, reg, out, sequential=sequential, speedups=paces, say=say
        )
        summary = s.run(runner.plan()).plan_result
        for line in summary_lines(summary):
            say(line)
    say(f"\ndone in {time.monotonic() - t_start:.0f} s wall time")
    return summary


def campaign_in_session(
    session: Any,
    spec: CampaignFile,
    registry: SampleRegistry,
    out_dir: str | Path,
    *,
    sequential: bool = False,
    speedups: dict[str, float] | None = None,
    say: Callable[[str], None] = print,
) -> Any:
    """Return the :class:`~couponlab.plans.campaign.Campaign` of ``spec`` on an open
    :class:`~couponlab.session.Session`'s devices (run its ``plan()`` in the session).

    Every run of the session carries ``campaign_id`` from here on; on twins the campaign's
    phases set the simulation's speed-up (``speedups``, default :data:`SPEEDUPS`) through the
    control channel.
    """
    from couponlab.plans.campaign import Campaign, CampaignDevices

    session.RE.md["campaign_id"] = spec.id  # in every run, the calibrations' included
    twins = session.twins
    paces = dict(SPEEDUPS, **(speedups or {}))

    def pace(phase: str) -> None:
        if twins is not None:  # simulation only: how fast virtual time runs
            twins.control.set_speedup(paces[phase])

    devices = CampaignDevices.from_lab(session.lab, session.devices)
    return Campaign(
        spec, session.lab, devices, registry, out_dir, sequential=sequential, pace=pace, say=say
    )


def summary_lines(summary: Any) -> list[str]:
    """Return the printout of a campaign's results."""
    from couponlab.plans.agents import estimate_history

    lines = ["", "coupons (68 % intervals of the critical content):"]
    for c in summary.coupons:
        r = c.report
        if r is None:
            found = "not measured"
        elif r.located:
            lo, hi = r.interval(0.68)
            found = f"critical {c.element} {r.estimate:.4f} ({lo:.4f}-{hi:.4f})"
        else:
            found = f"critical {c.element} {r.side} its range"
        tensile = "; ".join(
            f"y {t['across_mm']:g} mm: YS {t['yield_mpa']:.0f} MPa, UTS {t['uts_mpa']:.0f} MPa"
            for t in c.tensile
        )
        lines.append(
            f"  {c.coupon_id} {c.system} {c.element} {c.low:.3f}->{c.high:.3f}: {found}"
            + (f"; {tensile}" if tensile else "")
        )
    lines.append("\ndecisions (the agent's proposals, and why):")
    proposed = [c for c in summary.coupons if c.proposed]
    for c in proposed:
        lines.append(
            f"  {c.coupon_id} {c.system} {c.element} {c.low:.3f}->{c.high:.3f}: {c.reason}"
        )
    if not proposed:
        lines.append("  none (every gradient was given in the file)")
    reports = [c.report for c in summary.coupons if c.report is not None]
    lines.append("\nthe estimate after each coupon (95 % interval, its width):")
    for system in dict.fromkeys(c.system for c in summary.coupons):
        history = estimate_history(reports, system)
        for c, e in zip([r for r in reports if r.system == system], history, strict=True):
            est = f"{e.estimate:.4f}" if e.located else "not located"
            lines.append(
                f"  {system} after {c.coupon_id}: {est}, 95 % {e.low95:.4f}..{e.high95:.4f} "
                f"(width {e.width95:.4f})"
            )
    t = summary.timeline
    lines.append(
        f"\nmakespan {t.makespan_s() / 3600:.1f} h of instrument time "
        f"({'one step after another' if summary.sequential else 'overlapped'}); utilisation:"
    )
    for name, u in t.utilisation().items():
        lines.append(f"  {name:<10} busy {t.busy_s(name) / 3600:6.1f} h  {100 * u:5.1f} %")
    lines.append(
        f"\ndata: run documents {summary.out_dir}/<uid>.jsonl, registry {summary.registry} "
        f"(couponlab samples --db {summary.registry} list), timeline "
        f"{t.path}"
    )
    return lines


__all__ = ["SPEEDUPS", "campaign_in_session", "campaign_lab", "run_campaign", "summary_lines"]
