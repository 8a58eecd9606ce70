"""A report per campaign, made again from the store alone (issue 13).

:func:`write_report` reads a campaign's runs from the store (:mod:`couponlab.store`: start
key ``campaign_id``) and writes, into one folder:

- ``report.html`` and ``report.md``: the page, with the figures and tables below;
- PNG figures: ``arrhenius.png`` (every map row's ln(x^2/t) against 1000/T, coloured by its
  composition) and ``activation-energy.png`` (Q of each row with its 68 % interval against
  its composition, marked by regime, and each coupon's critical content with its 68 %
  interval), ``maps.png`` (oxide thickness and the graded element's fraction of
  every coupon), ``furnace.png`` (each exposure's hottest and coldest zone and every zone
  against instrument time), ``stress-strain.png`` (every specimen's curve) and
  ``decisions.png`` (the interval the closed loop proposed at each decision);
- the numbers as CSV (``rows.csv``, ``critical.csv``, ``tensile.csv``, ``decisions.csv``)
  and all of them in ``report.json``.

Each mapped coupon is analysed as the campaign analysed it
(:func:`couponlab.plans.agents.analyse_coupon` on
:func:`couponlab.plans.coupon_maps.map_measurements`, with the thermocouple scans of its
exposure's hold, :func:`couponlab.plans.campaign_exposure.hold_window`): per row the
oxidation regime, growth law and activation energy with its 68 % interval, per coupon the
critical content of its graded element with its 68 % and 95 % intervals. Nothing here reads
the JSON-lines log or talks to an instrument. See docs/howto/run-a-campaign.md.
"""

from __future__ import annotations

import csv
import html
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from couponlab.errors import InputError
from couponlab.plans.agents import analyse_coupon
from couponlab.plans.campaign_exposure import hold_window
from couponlab.plans.campaign_file import SYSTEMS
from couponlab.plans.coupon_maps import map_measurements
from couponlab.plans.oxidation_analysis import R_GAS
from couponlab.units import to_magnitude

FIGURES = (
    ("arrhenius.png", "Arrhenius plot of every map row"),
    ("activation-energy.png", "Activation energy per composition"),
    ("maps.png", "Oxide thickness and composition maps"),
    ("furnace.png", "Furnace profile of each exposure"),
    ("stress-strain.png", "Stress-strain curves"),
    ("decisions.png", "The closed loop's decisions"),
)
"""The report's figures: file name and caption, in page order."""


@dataclass
class RowFit:
    """One map row as the campaign's analysis sees it (68 % intervals)."""

    coupon_id: str
    y_mm: float
    element: str
    fraction: float
    """Mean content of the graded element over the row's used points (XRF), mass fraction."""
    fraction_sigma: float
    regime: str
    """``NiO``, ``transition``, the protective scale (``chromia``, ``alumina``), ``unknown``."""
    law: str
    q_kj_per_mol: float
    q_sigma_kj_per_mol: float
    q_low_kj_per_mol: float
    q_high_kj_per_mol: float
    points_used: int
    t_min_k: float
    t_max_k: float


@dataclass
class CampaignData:
    """What the report shows, read from the store."""

    campaign_id: str
    rows: list[RowFit] = field(default_factory=list)
    critical: list[dict[str, Any]] = field(default_factory=list)
    """Each mapped coupon's :class:`~couponlab.plans.agents.CouponReport` as plain data: the
    critical content's estimate, sigma, 68 % and 95 % intervals, or the side it lies on."""
    arrhenius: list[tuple[str, str, float, Any, Any]] = field(default_factory=list)
    """(coupon, element, fraction, 1000/T, ln(x^2/t)) per row, for the plot."""
    maps: dict[str, dict[str, Any]] = field(default_factory=dict)
    furnace: dict[str, dict[str, Any]] = field(default_factory=dict)
    tensile: list[dict[str, Any]] = field(default_factory=list)
    curves: dict[str, tuple[Any, Any, str]] = field(default_factory=dict)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    runs: int = 0


# -- reading --------------------------------------------------------------------------------
def _start(run: Any) -> dict[str, Any]:
    return dict(run.metadata["start"])


def _column(run: Any, stream: str, key: str) -> Any:
    """Return one column of a stream as a numpy array (Tiled's client; keys as written)."""
    node = run[stream]
    for name in (key, key.replace("-", "_")):
        if name in node:
            return np.asarray(node[name].read())
    raise KeyError(f"{stream}/{key}")


def _data_keys(stream: Any) -> list[str]:
    """Return a stream's data columns (not the ``ts_`` timestamp, ``seq_num`` and ``time``
    columns beside them)."""
    return [k for k in stream if not k.startswith("ts_") and k not in ("seq_num", "time")]


def _has(run: Any, stream: str) -> bool:
    return stream in run


def _scanner_positions(start: dict[str, Any]) -> tuple[str, Any]:
    for device in (start.get("lab_file") or {}).get("devices", []):
        positions = (device.get("settings") or {}).get("positions_mm")
        if positions:
            return str(device["name"]), np.asarray(positions, float)
    raise InputError("report", "no thermocouple scanner with positions_mm in the lab file")


def _stream_table(stream: Any) -> dict[str, list[Any]]:
    """Return a stream's data columns as lists, keyed ``<device>-<field>`` as written (Tiled
    may give ``_`` for the ``-``; the names of the devices in the start document tell)."""
    return {k: np.asarray(stream[k].read()).tolist() for k in _data_keys(stream)}


def _device_keys(table: dict[str, list[Any]], devices: list[str]) -> dict[str, list[Any]]:
    """Return ``table`` with each ``<device>_<field>`` key spelt ``<device>-<field>``."""
    out = {}
    for k, v in table.items():
        device = next((d for d in devices if k.startswith(d + "_")), None)
        out[f"{device}-{k[len(device) + 1 :]}" if device else k] = v
    return out


def _seconds(value: Any) -> float:
    """Return a duration recorded in a start document (``{"value", "units"}``, or text such
    as ``"0.2 s"`` from an older run), s."""
    if isinstance(value, dict):
        value = f"{value['value']} {value['units']}"
    return to_magnitude(value, "s", what="dwell")


def _hold_scans(runs: list[Any]) -> tuple[Any, Any, float]:
    """Return (thermocouple positions mm, scans during the hold degC, hold s) of a batch's
    exposure: the runs that started and re-attached to its program, as the campaign reads
    them (:func:`couponlab.plans.campaign_exposure.hold_window`)."""
    start = _start(runs[0])
    scanner, positions = _scanner_positions(start)
    hold = float(start["hold_duration_s"])
    lo, hi = hold_window(
        float(start.get("program_start_s", 0.0)),
        float(start["hot_end_c"]),
        float(start["ramp_rate_k_per_min"]),
        hold,
    )
    taken: list[Any] = []
    for run in runs:
        if not _has(run, "primary"):
            continue
        keys = _data_keys(run["primary"])
        clock_key = next(
            (k for k in keys if k.endswith(("clock-sim_time", "clock_sim_time"))), None
        )
        if clock_key is None:
            continue
        clock = np.asarray(run["primary"][clock_key].read(), float)
        scans = np.atleast_2d(_column(run, "primary", f"{scanner}-temperatures"))
        taken.extend(scans[(clock >= lo) & (clock <= hi)])
    return positions, np.asarray(taken, float), hold


def _graded(run: Any, fields: list[str]) -> str:
    """Return the XRF fraction field of the graded element: the one, besides the nickel base
    (which varies as its complement), that varies most across the map."""
    alloying = [f for f in fields if not f.endswith("fraction_ni")] or fields
    spread = {f: float(np.nanstd(_column(run, "primary", f))) for f in alloying}
    return max(spread, key=lambda f: spread[f])


def read_campaign(store: Any, campaign_id: str) -> CampaignData:
    """Read what the report shows of campaign ``campaign_id`` from ``store``, each mapped
    coupon analysed as the campaign analysed it.

    Raises
    ------
    InputError
        The store holds no run of that campaign.
    """
    from couponlab.store import runs

    found = runs(store, campaign_id=campaign_id)
    if not found:
        raise InputError("report", f"the store holds no run of campaign {campaign_id!r}")
    data = CampaignData(campaign_id, runs=len(found))
    batches: dict[str, list[Any]] = {}
    batch_of: dict[str, str] = {}
    prints: dict[str, dict[str, Any]] = {}
    for run in found:  # oldest first: the run that started a batch's program leads its list
        start = _start(run)
        plan = start.get("plan_name")
        if plan == "campaign_exposure":
            batch = str(start.get("batch", len(batches) + 1))
            batches.setdefault(batch, []).append(run)
            for cid in start.get("coupon_id") or []:
                batch_of[str(cid)] = batch
            if not start.get("reattached") and _has(run, "primary"):
                _read_furnace(data, batch, run)
        elif plan == "print_graded_coupon" and start.get("coupon_id"):
            prints[str(start["coupon_id"])] = start
    for exposure in batches.values():  # the run that started the program first
        exposure.sort(key=lambda r: bool(_start(r).get("reattached")))
    for run in found:
        start = _start(run)
        plan = start.get("plan_name")
        cid = start.get("coupon_id")
        if plan == "raster_map" and isinstance(cid, str) and cid in batch_of:
            _read_map(data, run, batches[batch_of[cid]], prints.get(cid, {}))
        elif plan == "tensile_test" and _has(run, "results"):
            _read_tensile(data, run)
        elif plan == "campaign_decision" and _has(run, "decision"):
            _read_decision(data, run)
    return data


def _read_furnace(data: CampaignData, batch: str, run: Any) -> None:
    keys = _data_keys(run["primary"])
    profile = next((k for k in keys if k.endswith("profile") and "setpoint" not in k), None)
    clock = next((k for k in keys if k.endswith(("clock-sim_time", "clock_sim_time"))), None)
    if profile is None or clock is None:
        return
    data.furnace[batch] = {
        "coupons": list(_start(run).get("coupon_id") or []),
        "time_h": (np.asarray(run["primary"][clock].read(), float) / 3600.0).tolist(),
        "zones_c": np.atleast_2d(np.asarray(run["primary"][profile].read(), float)).tolist(),
    }


def _read_map(data: CampaignData, run: Any, exposure: list[Any], printed: dict[str, Any]) -> None:
    """Analyse one coupon's map with its exposure's hold as the campaign did
    (:func:`couponlab.plans.agents.analyse_coupon`); ``printed`` is its print run's start
    document (its alloy system and printed gradient), empty if the store lacks it."""
    start = _start(run)
    cid = str(start["coupon_id"])
    rows, cols = (int(n) for n in start["shape"])
    (y0, y1), (x0, x1) = start["extents"]
    devices = [str(d) for d in start.get("detectors") or []]
    table = _device_keys(_stream_table(run["primary"]), devices)
    profiler = next(k for k in table if k.endswith("-thickness")).rsplit("-", 1)[0]
    xrf = next(k for k in table if "-fraction_" in k).split("-fraction_", 1)[0]
    system = printed.get("system")
    if system in SYSTEMS:
        element = SYSTEMS[str(system)].element
    else:  # a map without its print run: the element that varies most
        element = _graded(run, [k for k in run["primary"] if "fraction_" in k])
        element = element.rsplit("fraction_", 1)[1].capitalize()
    gradient = printed.get("gradient") or {}
    span = (
        (float(gradient["low"]), float(gradient["high"]))
        if "low" in gradient and "high" in gradient
        else None
    )
    x_mm = np.linspace(float(x0), float(x1), cols)
    y_mm = np.linspace(float(y0), float(y1), rows)
    positions, scans, hold = _hold_scans(exposure)
    if scans.size == 0:
        raise InputError("report", f"no thermocouple scan of the hold of {cid} in the store")
    measured = map_measurements(
        table,
        profiler=profiler,
        xrf=xrf,
        x_mm=x_mm,
        rows=rows,
        dwell_s=_seconds(start["plan_args"]["dwell"]),
        tc_positions_mm=positions,
        tc_scans_c=scans,
        hold_s=hold,
        elements=(element,),
    )
    analysis, report = analyse_coupon(
        measured, element, system=system, coupon_id=cid, printed=span
    )
    fraction, _ = measured.fraction(element)
    data.maps[cid] = {
        "element": element,
        "extent": [float(x0), float(x1), float(y0), float(y1)],
        "thickness_nm": (measured.thickness_m * 1e9).tolist(),
        "fraction": fraction.tolist(),
    }
    data.critical.append(report.as_dict())
    temperature_k = analysis.temperatures.temperature_k
    for y, row, x_m in zip(y_mm, analysis.rows, measured.thickness_m, strict=True):
        lo, hi = row.q_interval(0.68)
        ok = np.isfinite(x_m) & (x_m > 0)
        data.rows.append(
            RowFit(
                cid,
                float(y),
                element,
                row.cr,
                row.cr_sigma,
                row.regime,
                row.law,
                row.activation_energy_kj_per_mol,
                row.q_sigma_kj_per_mol,
                lo,
                hi,
                row.points_used,
                float(np.min(temperature_k[ok])) if ok.any() else math.nan,
                float(np.max(temperature_k[ok])) if ok.any() else math.nan,
            )
        )
        if ok.any():
            inv_t, ln_rate = 1000.0 / temperature_k[ok], np.log(x_m[ok] ** 2 / hold)
            data.arrhenius.append((cid, element, row.cr, inv_t, ln_rate))


def _read_tensile(data: CampaignData, run: Any) -> None:
    start = _start(run)
    sid = str(start.get("specimen_id") or start.get("uid", "")[:8])
    results = run["results"]
    row: dict[str, Any] = {"specimen_id": sid, "coupon_id": start.get("coupon_id", "")}
    for key in _data_keys(results):
        value = np.asarray(results[key].read()).ravel()
        if value.size:
            name = key.split("tensile_", 1)[-1].split("tensile-", 1)[-1]
            item = value[0].item() if hasattr(value[0], "item") else value[0]
            row[name] = item
    data.tensile.append(row)
    if _has(run, "curve"):
        keys = _data_keys(run["curve"])
        force = next((k for k in keys if k.endswith("force")), None)
        strain = next((k for k in keys if k.endswith("strain")), None)
        if force and strain:
            geometry = start.get("specimen") or {}
            area = None
            if isinstance(geometry.get("width"), dict) and isinstance(
                geometry.get("thickness"), dict
            ):
                area = float(geometry["width"]["value"]) * float(geometry["thickness"]["value"])
            f = np.asarray(run["curve"][force].read(), float)
            s = np.asarray(run["curve"][strain].read(), float)
            data.curves[sid] = (s, f / area if area else f, "MPa" if area else "N")


def _read_decision(data: CampaignData, run: Any) -> None:
    start = _start(run)
    stream = run["decision"]
    row: dict[str, Any] = {"decision": len(data.decisions) + 1}
    proposal = start.get("proposal") or {}
    row["coupon_id"] = start.get("coupon_id") or proposal.get("coupon_id", "")
    row["system"] = start.get("system") or proposal.get("system", "")
    for key in _data_keys(stream):
        value = np.asarray(stream[key].read()).ravel()
        if value.size:
            row[key.removeprefix("proposal_")] = (
                value[0].item() if hasattr(value[0], "item") else value[0]
            )
    data.decisions.append(row)


# -- figures --------------------------------------------------------------------------------
def _save(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=100)
    plt.close(fig)


def _empty(ax: Any, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what} in the store", ha="center", va="center")
    ax.set_axis_off()


def draw_figures(data: CampaignData, folder: Path) -> list[Path]:
    """Write the report's PNG figures into ``folder``; return their paths (page order)."""
    import matplotlib as mpl
    import matplotlib.pyplot as plt

    paths = [folder / name for name, _ in FIGURES]
    elements = sorted({r.element for r in data.rows}) or ["graded element"]
    cmap = mpl.colormaps["viridis"]

    fig, axes = plt.subplots(
        1, len(elements), figsize=(5.6 * len(elements), 4.2), layout="constrained", squeeze=False
    )
    for ax, element in zip(axes[0], elements, strict=True):
        mine = [a for a in data.arrhenius if a[1] == element]
        if not mine:
            _empty(ax, "map of an exposed coupon")
            continue
        norm = mpl.colors.Normalize(min(a[2] for a in mine), max(a[2] for a in mine))
        for _cid, _element, frac, inv_t, y in mine:
            ax.plot(inv_t, y, "o-", color=cmap(norm(frac)), ms=2.5, lw=0.6)
        fig.colorbar(mpl.cm.ScalarMappable(norm, cmap), ax=ax, label=f"{element} fraction")
        ax.set(
            xlabel="1000 / T (1/K)",
            ylabel="ln(x^2 / t)  (x in m, t in s)",
            title=f"Ni-{element}: every map row",
        )
    _save(fig, paths[0])

    fig, axes = plt.subplots(
        1, len(elements), figsize=(5.6 * len(elements), 4.2), layout="constrained", squeeze=False
    )
    for ax, element in zip(axes[0], elements, strict=True):
        fits = [r for r in data.rows if r.element == element]
        if not fits:
            _empty(ax, "row fit")
            continue
        for k, cid in enumerate(sorted({r.coupon_id for r in fits})):
            rows = [r for r in fits if r.coupon_id == cid]
            ax.errorbar(
                [r.fraction for r in rows],
                [r.q_kj_per_mol for r in rows],
                yerr=[
                    0.0 if math.isnan(r.q_sigma_kj_per_mol) else r.q_sigma_kj_per_mol for r in rows
                ],
                fmt="os^vD<>"[k % 7],
                ms=4,
                capsize=2,
                color=f"C{k % 10}",
                label=cid,
            )
            for r in rows:
                if r.regime == "transition":  # an apparent Q, not one scale's
                    ax.plot(r.fraction, r.q_kj_per_mol, "x", color="grey", ms=7)
            crit = next((c for c in data.critical if c["coupon_id"] == cid), None)
            if crit is not None and crit["side"] == "located":
                lo, hi = crit["interval_68"]
                ax.axvspan(lo, hi, color=f"C{k % 10}", alpha=0.15, lw=0)
        ax.set(
            xlabel=f"{element} fraction (XRF, row mean)",
            ylabel="Q (kJ/mol), 68 % interval",
            title=f"Ni-{element}: the campaign's analysis (shaded: critical content, 68 %;"
            " x: transition rows, apparent Q)",
        )
        ax.title.set_fontsize("small")
        ax.legend(fontsize="x-small")
    _save(fig, paths[1])

    n = max(len(data.maps), 1)
    fig, axes = plt.subplots(n, 2, figsize=(9.0, 2.4 * n), layout="constrained", squeeze=False)
    for (cid, m), (left, right) in zip(sorted(data.maps.items()), axes, strict=False):
        for ax, values, label in (
            (left, m["thickness_nm"], "oxide thickness (nm)"),
            (right, m["fraction"], f"{m['element']} fraction"),
        ):
            shown = ax.imshow(
                np.asarray(values, float), origin="lower", aspect="auto", extent=m["extent"]
            )
            fig.colorbar(shown, ax=ax, label=label)
            ax.set(xlabel="x (mm)", ylabel="y (mm)", title=cid)
    if not data.maps:
        _empty(axes[0][0], "map")
        axes[0][1].set_axis_off()
    _save(fig, paths[2])

    n = max(len(data.furnace), 1)
    fig, axes = plt.subplots(1, n, figsize=(4.6 * n, 3.6), layout="constrained", squeeze=False)
    for ax, (batch, f) in zip(axes[0], sorted(data.furnace.items()), strict=False):
        zones = np.asarray(f["zones_c"], float)
        t = np.asarray(f["time_h"], float)
        for z in range(zones.shape[1]):
            ax.plot(t, zones[:, z], lw=0.8, color=plt.cm.inferno(0.15 + 0.7 * z / zones.shape[1]))
        ax.set(
            xlabel="instrument time (h)",
            ylabel="zone temperature (degC)",
            title=f"{batch}: {', '.join(f['coupons'])}",
        )
        ax.title.set_fontsize("small")
    if not data.furnace:
        _empty(axes[0][0], "exposure")
    _save(fig, paths[3])

    fig, ax = plt.subplots(figsize=(6.4, 4.4), layout="constrained")
    units = {u for _, _, u in data.curves.values()}
    unit = units.pop() if len(units) == 1 else "MPa or N"
    for sid, (strain, load, _) in sorted(data.curves.items()):
        ax.plot(strain, load, lw=0.8, label=sid)
    if data.curves:
        ax.set(xlabel="strain (mm/mm)", ylabel=f"engineering stress ({unit})")
        ax.legend(fontsize="xx-small", ncol=2)
    else:
        _empty(ax, "tensile curve")
    _save(fig, paths[4])

    fig, ax = plt.subplots(figsize=(6.4, 3.8), layout="constrained")
    for d in data.decisions:
        low, high = float(d.get("low", np.nan)), float(d.get("high", np.nan))
        ax.plot([d["decision"]] * 2, [low, high], "-", lw=4, color="C0", alpha=0.7)
        ax.annotate(str(d.get("element", "")), (d["decision"], high), fontsize="x-small")
    if data.decisions:
        ax.set(
            xlabel="decision",
            ylabel="proposed content (mass fraction)",
            title="the range the agent asked to print next",
        )
    else:
        _empty(ax, "decision")
    _save(fig, paths[5])
    return paths


# -- writing --------------------------------------------------------------------------------
ROW_FIELDS = [f.name for f in RowFit.__dataclass_fields__.values()]


CRITICAL_COLUMNS = [
    *("coupon_id", "system", "side", "estimate", "sigma"),
    *("low_68", "high_68", "low_95", "high_95"),
]
"""Columns of the page's table of each coupon's critical content."""
ROW_COLUMNS = [
    *("coupon_id", "y_mm", "element", "fraction", "regime", "law"),
    *("q_kj_per_mol", "q_low_kj_per_mol", "q_high_kj_per_mol"),
]
"""Columns of the page's table of each map row."""


def _critical_row(report: dict[str, Any]) -> dict[str, Any]:
    """Return a coupon's critical content as a flat table row (intervals split in two)."""
    row = {k: report[k] for k in ("coupon_id", "system", "element", "low", "high", "side")}
    row |= {"estimate": report["estimate"], "sigma": report["sigma"]}
    for level in ("68", "95"):
        row[f"low_{level}"], row[f"high_{level}"] = report[f"interval_{level}"]
    row["temperature_k"] = report["temperature_k"]
    return row


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    fields: list[str] = []
    for row in rows:
        fields.extend(k for k in row if k not in fields)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields or ["none"])
        writer.writeheader()
        writer.writerows(rows)


def _table(rows: list[dict[str, Any]], columns: list[str]) -> tuple[str, str]:
    """Return (HTML, Markdown) of a table."""

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return "nan" if math.isnan(v) else f"{v:.4g}"
        return str(v)

    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(fmt(r.get(c, '')))}</td>" for c in columns) + "</tr>"
        for r in rows
    )
    md = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    md += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return f"<table><tr>{head}</tr>{body}</table>", "\n".join(md)


PAGE_SCRIPT = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const loaded = images.filter((i) => i.complete && i.naturalWidth > 0).length;
  document.body.setAttribute("data-images", loaded + "/" + images.length);
});
</script>"""
"""Marks the page with how many of its images loaded (a headless browser test reads it)."""


def write_report(store: Any, campaign_id: str, folder: str | Path) -> Path:
    """Write the report of ``campaign_id`` from ``store`` into ``folder``; return the HTML.

    Raises
    ------
    InputError
        The store holds no run of that campaign.
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    data = read_campaign(store, campaign_id)
    figures = draw_figures(data, out)
    rows = [asdict(r) for r in data.rows]
    critical = [_critical_row(c) for c in data.critical]
    _write_csv(out / "rows.csv", rows)
    _write_csv(out / "critical.csv", critical)
    _write_csv(out / "tensile.csv", data.tensile)
    _write_csv(out / "decisions.csv", data.decisions)
    summary = {
        "campaign_id": campaign_id,
        "runs": data.runs,
        "gas_constant_j_per_mol_k": R_GAS,
        "rows": rows,
        "critical": data.critical,
        "tensile": data.tensile,
        "decisions": data.decisions,
        "exposures": {b: {"coupons": f["coupons"]} for b, f in data.furnace.items()},
        "figures": [p.name for p in figures],
    }
    (out / "report.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
    tensile_cols = [
        c
        for c in (
            "specimen_id",
            "coupon_id",
            "yield_strength",
            "uts",
            "uniform_elongation",
            "total_elongation",
            "modulus",
        )
        if any(c in t for t in data.tensile)
    ]
    decision_cols = [c for c in ("decision", "coupon_id", "system", "element", "low", "high")]
    tables = {
        "Critical content per coupon": _table(critical, CRITICAL_COLUMNS),
        "Regime and activation energy of each map row": _table(rows, ROW_COLUMNS),
        "Tensile results": _table(data.tensile, tensile_cols),
        "Decisions": _table(data.decisions, decision_cols),
    }
    title = f"Campaign {campaign_id}"
    intro = (
        f"{data.runs} runs in the store; {len(data.maps)} coupons mapped and analysed as the "
        f"campaign analysed them ({len(data.rows)} rows; intervals at 68 % unless marked), "
        f"{len(data.tensile)} specimens pulled, {len(data.decisions)} decisions. "
        "Made from the store alone (couponlab report)."
    )
    html_parts = [
        "<!doctype html>",
        f'<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>',
        "<style>body{font-family:sans-serif;max-width:60em;margin:auto}"
        "img{max-width:100%}table{border-collapse:collapse;font-size:small}"
        "td,th{border:1px solid #ccc;padding:2px 6px}</style>",
        PAGE_SCRIPT,
        f"</head><body><h1>{html.escape(title)}</h1><p>{html.escape(intro)}</p>",
    ]
    md_parts = [f"# {title}", "", intro, ""]
    for path, (_, caption) in zip(figures, FIGURES, strict=True):
        html_parts.append(
            f'<figure><img src="{path.name}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
        md_parts += [f"## {caption}", "", f"![{caption}]({path.name})", ""]
    for heading, (table_html, table_md) in tables.items():
        html_parts.append(f"<h2>{html.escape(heading)}</h2>{table_html}")
        md_parts += [f"## {heading}", "", table_md, ""]
    links = "rows.csv, critical.csv, tensile.csv, decisions.csv, report.json"
    html_parts.append(f"<p>Numbers: {html.escape(links)}</p></body></html>")
    md_parts.append(f"Numbers: {links}")
    page = out / "report.html"
    page.write_text("\n".join(html_parts) + "\n", encoding="utf-8")
    (out / "report.md").write_text("\n".join(md_parts) + "\n", encoding="utf-8")
    return page


__all__ = ["FIGURES", "CampaignData", "RowFit", "draw_figures", "read_campaign", "write_report"]
