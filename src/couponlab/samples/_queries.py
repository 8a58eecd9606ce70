"""Read-only queries over a registry connection: samples, genealogy, campaigns, canonical form.

Every function returns plain data (dicts, lists, strings, numbers: JSON-ready). The caller
holds the registry's lock; unknown ids are refused by the caller before these run.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from couponlab.samples._values import from_json

_SAMPLE_COLUMNS = "s.id, s.kind, s.parent_id, s.campaign_id, s.created, s.attributes"


def current_location(conn: sqlite3.Connection, sample_id: str) -> str | None:
    """Return the sample's last recorded station (None: unknown sample)."""
    row = conn.execute(
        "SELECT station FROM locations WHERE sample_id = ? ORDER BY seq DESC LIMIT 1",
        (sample_id,),
    ).fetchone()
    return None if row is None else str(row[0])


def _sample_row(row: sqlite3.Row | tuple[Any, ...], location: str | None) -> dict[str, Any]:
    sid, kind, parent, campaign, created, attributes = row
    return {
        "id": sid,
        "kind": kind,
        "parent": parent,
        "campaign": campaign,
        "created": created,
        "location": location,
        "attributes": from_json(attributes),
    }


def sample_rows(conn: sqlite3.Connection, campaign_id: str | None) -> list[dict[str, Any]]:
    """Return every sample (of one campaign, or all), ordered by campaign then id."""
    where, args = ("WHERE s.campaign_id = ?", (campaign_id,)) if campaign_id else ("", ())
    rows = conn.execute(
        f"SELECT {_SAMPLE_COLUMNS}, "
        "(SELECT station FROM locations l WHERE l.sample_id = s.id ORDER BY seq DESC LIMIT 1) "
        f"FROM samples s {where} ORDER BY s.campaign_id, s.id",
        args,
    ).fetchall()
    return [_sample_row(r[:6], r[6]) for r in rows]


def one_sample(conn: sqlite3.Connection, sample_id: str) -> dict[str, Any] | None:
    """Return one sample as :func:`sample_rows` gives it (None: unknown)."""
    row = conn.execute(f"SELECT {_SAMPLE_COLUMNS} FROM samples s WHERE id = ?", (sample_id,))
    found = row.fetchone()
    return None if found is None else _sample_row(found, current_location(conn, sample_id))


def campaign_rows(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Return every campaign with its spec and counts of coupons, specimens and steps."""
    rows = conn.execute(
        "SELECT c.id, c.created, c.spec, "
        "(SELECT COUNT(*) FROM samples s WHERE s.campaign_id = c.id AND kind = 'coupon'), "
        "(SELECT COUNT(*) FROM samples s WHERE s.campaign_id = c.id AND kind = 'specimen'), "
        "(SELECT COUNT(*) FROM steps t WHERE t.campaign_id = c.id), "
        "(SELECT COUNT(*) FROM decisions d WHERE d.campaign_id = c.id) "
        "FROM campaigns c ORDER BY c.created, c.id"
    ).fetchall()
    keys = ("id", "created", "spec", "coupons", "specimens", "steps", "decisions")
    out = [dict(zip(keys, r, strict=True)) for r in rows]
    for c in out:
        c["spec"] = from_json(c["spec"])
    return out


def _exposures(conn: sqlite3.Connection, sample_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT e.seq, e.run_uid, e.hot_c, e.cold_c, e.hold_s, e.exposure_s, e.step, e.recorded "
        "FROM exposures e JOIN exposure_samples x ON x.exposure_seq = e.seq "
        "WHERE x.sample_id = ? ORDER BY e.seq",
        (sample_id,),
    ).fetchall()
    out = []
    for seq, uid, hot, cold, hold, exposure, step, recorded in rows:
        together = conn.execute(
            "SELECT sample_id FROM exposure_samples WHERE exposure_seq = ? ORDER BY sample_id",
            (seq,),
        ).fetchall()
        out.append(
            {
                "run_uid": uid,
                "hot_c": hot,
                "cold_c": cold,
                "hold_s": hold,
                "exposure_s": exposure,
                "samples": [r[0] for r in together],
                "step": step,
                "recorded": recorded,
            }
        )
    return out


def genealogy(conn: sqlite3.Connection, sample_id: str) -> dict[str, Any]:
    """Return a known sample's identity, parent chain, children, history, exposures and runs.

    ``parents`` lists the ancestors nearest first; ``children`` the direct children (ids);
    ``locations`` the whole history, oldest first; ``exposures`` the sample's own thermal
    exposures and ``inherited_exposures`` those of its ancestors (a specimen cut from an
    exposed coupon carries the coupon's history; ``recorded`` says when each happened).
    """
    found = one_sample(conn, sample_id)
    assert found is not None, sample_id  # the registry refuses unknown ids first
    parents: list[str] = []
    parent = found["parent"]
    while parent is not None:
        parents.append(parent)
        row = conn.execute("SELECT parent_id FROM samples WHERE id = ?", (parent,)).fetchone()
        parent = row[0]
    children = conn.execute(
        "SELECT id FROM samples WHERE parent_id = ? ORDER BY id", (sample_id,)
    ).fetchall()
    locations = conn.execute(
        "SELECT station, step, at FROM locations WHERE sample_id = ? ORDER BY seq", (sample_id,)
    ).fetchall()
    runs = conn.execute(
        "SELECT run_uid, plan, step, recorded FROM runs WHERE sample_id = ? ORDER BY seq",
        (sample_id,),
    ).fetchall()
    return {
        **found,
        "parents": parents,
        "children": [r[0] for r in children],
        "locations": [{"station": s, "step": k, "at": t} for s, k, t in locations],
        "exposures": _exposures(conn, sample_id),
        "inherited_exposures": [e for p in parents for e in _exposures(conn, p)],
        "runs": [{"run_uid": u, "plan": p, "step": k, "recorded": t} for u, p, k, t in runs],
    }


def _sorted_by_content(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(items, key=lambda d: json.dumps(d, sort_keys=True))


def canonical(conn: sqlite3.Connection, campaign_id: str) -> dict[str, Any]:
    """Return a known campaign's content in a form that two registries can be compared by.

    No wall times and no run uids: a run is its ``(plan, step)``, an exposure names the
    ``(plan, step)`` of the runs recorded under its run uid. Lists are in a deterministic
    order: samples by id, a sample's locations in history order, exposures and runs by
    content, decisions by seq, steps by key.
    """
    spec = conn.execute("SELECT spec FROM campaigns WHERE id = ?", (campaign_id,)).fetchone()
    samples = []
    for s in sample_rows(conn, campaign_id):
        locations = conn.execute(
            "SELECT station, step FROM locations WHERE sample_id = ? ORDER BY seq", (s["id"],)
        ).fetchall()
        samples.append(
            {
                "id": s["id"],
                "kind": s["kind"],
                "parent": s["parent"],
                "attributes": s["attributes"],
                "locations": [{"station": st, "step": k} for st, k in locations],
            }
        )
    in_campaign = "SELECT id FROM samples WHERE campaign_id = ?"
    runs = conn.execute(
        f"SELECT sample_id, plan, step FROM runs WHERE sample_id IN ({in_campaign})",
        (campaign_id,),
    ).fetchall()
    exposures = []
    for seq, uid, hot, cold, hold, exposure, step in conn.execute(
        "SELECT seq, run_uid, hot_c, cold_c, hold_s, exposure_s, step FROM exposures WHERE seq IN "
        f"(SELECT exposure_seq FROM exposure_samples WHERE sample_id IN ({in_campaign}))",
        (campaign_id,),
    ).fetchall():
        together = conn.execute(
            "SELECT sample_id FROM exposure_samples WHERE exposure_seq = ? ORDER BY sample_id",
            (seq,),
        ).fetchall()
        measured_by = conn.execute(
            "SELECT DISTINCT plan, step FROM runs WHERE run_uid = ? ORDER BY plan, step", (uid,)
        ).fetchall()
        exposures.append(
            {
                "samples": [r[0] for r in together],
                "hot_c": hot,
                "cold_c": cold,
                "hold_s": hold,
                "exposure_s": exposure,
                "step": step,
                "runs": [{"plan": p, "step": k} for p, k in measured_by],
            }
        )
    decisions = conn.execute(
        "SELECT seq, agent, proposal, reason, step FROM decisions WHERE campaign_id = ? "
        "ORDER BY seq",
        (campaign_id,),
    ).fetchall()
    steps = conn.execute(
        "SELECT key, result FROM steps WHERE campaign_id = ? ORDER BY key", (campaign_id,)
    ).fetchall()
    return {
        "campaign": campaign_id,
        "spec": from_json(spec[0]),
        "samples": samples,
        "exposures": _sorted_by_content(exposures),
        "runs": _sorted_by_content([{"sample": s, "plan": p, "step": k} for s, p, k in runs]),
        "decisions": [
            {"seq": q, "agent": a, "proposal": from_json(p), "reason": r, "step": k}
            for q, a, p, r, k in decisions
        ],
        "steps": [{"key": k, "result": from_json(r)} for k, r in steps],
    }
