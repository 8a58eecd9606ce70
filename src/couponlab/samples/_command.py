"""``couponlab samples``: read the sample registry from the command line.

``couponlab samples [--db PATH] campaigns``               one line per campaign
``couponlab samples [--db PATH] list [--campaign ID]``    one line per sample
``couponlab samples [--db PATH] show ID``                 one sample's genealogy

``--json`` (anywhere after ``samples``) prints the same data as JSON instead of a table. The
registry is opened for reading only: a path without one is refused (exit code 2), never
created.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from couponlab.samples._registry import DEFAULT_PATH, SampleRegistry


def _when(iso: str | None) -> str:
    """``2026-12-01T13:30:00.123456+00:00`` -> ``2026-12-01 13:30:00`` (UTC)."""
    return "-" if not iso else iso[:19].replace("T", " ")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Return ``rows`` under ``headers`` in left-aligned columns (two blanks apart)."""
    cells = [[str(h) for h in headers], *[["-" if c is None else str(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def _campaigns(reg: SampleRegistry) -> tuple[Any, str]:
    data = reg.campaigns()
    rows = [
        (c["id"], _when(c["created"]), c["coupons"], c["specimens"], c["steps"], c["decisions"])
        for c in data
    ]
    head = ("campaign", "created (UTC)", "coupons", "specimens", "steps done", "decisions")
    text = table(head, rows) if data else "no campaigns in this registry"
    return data, text


def _list(reg: SampleRegistry, campaign: str | None) -> tuple[Any, str]:
    data = reg.samples(campaign)
    rows = [
        (s["id"], s["kind"], s["parent"], s["location"], s["campaign"], _when(s["created"]))
        for s in data
    ]
    head = ("sample", "kind", "parent", "location", "campaign", "created (UTC)")
    text = table(head, rows) if data else "no samples"
    return data, text


def _exposure_line(e: dict[str, Any]) -> str:
    return (
        f"{e['hot_c']:g}..{e['cold_c']:g} degC, hold {e['hold_s']:g} s, exposure "
        f"{e['exposure_s']:g} s: {', '.join(e['samples'])} (run {e['run_uid']}, "
        f"{_when(e['recorded'])})"
    )


def _show(reg: SampleRegistry, sample_id: str) -> tuple[Any, str]:
    g = reg.genealogy(sample_id)
    of = f" of {g['parent']}" if g["parent"] else ""
    lines = [
        f"{g['id']}: {g['kind']}{of}, campaign {g['campaign']}, created {_when(g['created'])} UTC",
        f"  parents    {' <- '.join(g['parents']) or '-'}",
        f"  children   {', '.join(g['children']) or '-'}",
        f"  attributes {json.dumps(g['attributes'], sort_keys=True)}",
        f"  location   {g['location']}",
        "  location history (UTC):",
        *(
            f"    {_when(h['at'])}  {h['station']}  step {h['step'] or '-'}"
            for h in g["locations"]
        ),
    ]
    for title, key in (("exposures", "exposures"), ("inherited exposures", "inherited_exposures")):
        lines.append(f"  {title}:" + ("" if g[key] else " -"))
        lines += [f"    {_exposure_line(e)}" for e in g[key]]
    lines.append("  runs (UTC):" + ("" if g["runs"] else " -"))
    lines += [
        f"    {_when(r['recorded'])}  {r['plan']}  step {r['step']}  run {r['run_uid']}"
        for r in g["runs"]
    ]
    return g, "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run ``couponlab samples ...``; print a table (or JSON); return 0."""
    with SampleRegistry(getattr(args, "db", DEFAULT_PATH), create=False) as reg:
        if args.samples_cmd == "campaigns":
            data, text = _campaigns(reg)
        elif args.samples_cmd == "list":
            data, text = _list(reg, args.campaign)
        else:
            data, text = _show(reg, args.sample_id)
    print(json.dumps(data, indent=2, sort_keys=True) if getattr(args, "json", False) else text)
    return 0


def add_parser(sub: Any) -> None:
    """Add ``samples`` and its sub-commands to the ``couponlab`` command's sub-parsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--db",
        default=argparse.SUPPRESS,
        metavar="PATH",
        help=f"the registry's SQLite file (default: {DEFAULT_PATH})",
    )
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print JSON, not a table"
    )
    samples = sub.add_parser("samples", parents=[common], help="query the sample registry")
    cmds = samples.add_subparsers(dest="samples_cmd", required=True)
    cmds.add_parser("campaigns", parents=[common], help="list the campaigns")
    listing = cmds.add_parser("list", parents=[common], help="list the samples")
    listing.add_argument("--campaign", metavar="ID", help="only this campaign's samples")
    show = cmds.add_parser("show", parents=[common], help="show one sample's genealogy")
    show.add_argument("sample_id", metavar="ID", help="a coupon or specimen id")
    samples.set_defaults(func=run)
