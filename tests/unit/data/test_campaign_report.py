"""``couponlab report CAMPAIGN``: a campaign's report made from the store alone (its run log
ingested first). Its coupon's map and hold are drawn from the world's physics
(:mod:`couponlab.simulators.oxidation_campaign`), laid out as the campaign's runs record them:
the report analyses them as the campaign does (the same critical content as
``report_coupon`` on the log's tables, the ramp's scan left out of the hold), finds the
regimes and recovers the true Q and critical Cr content within their intervals, with every
figure, table, CSV and JSON; and a real headless browser (Debian's chromium) loads the page
and finds every image loaded."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask
import h5py
import matplotlib
import numpy as np
import pytest
from event_model import compose_run

from couponlab.cli import main
from couponlab.data import DocumentLog, event_table
from couponlab.plans.agents import report_coupon
from couponlab.plans.campaign_exposure import AMBIENT_C, SETTLE_S
from couponlab.plans.campaign_report import FIGURES
from couponlab.plans.coupon_maps import map_measurements
from couponlab.simulators.oxidation_campaign import (
    CampaignData,
    CampaignDesign,
    simulate_campaigns,
)
from couponlab.simulators.world import WorldConfig

matplotlib.use("Agg")
pytestmark = pytest.mark.slow  # opening a store imports Tiled's server (seconds)

CAMPAIGN = "K-report"
DESIGN = CampaignDesign()  # the demo's coupon, map and hold
ROWS, COLS = len(DESIGN.rows_y_mm), len(DESIGN.points_x_mm)
RAMP_RATE = 25.0
"""K/min."""
MAX_Z = 4.0
"""A truth further than this many standard uncertainties from the report's estimate fails."""


@pytest.fixture(autouse=True)
def dask_in_this_thread() -> Iterator[None]:
    """Read Tiled's tables in the calling thread (no process-wide dask pool left behind)."""
    with dask.config.set(scheduler="synchronous"):
        yield


def key(dtype: str = "number", shape: list[int] | None = None, units: str = "") -> Any:
    return {"source": "sim", "dtype": dtype, "shape": shape or [], "units": units}


def run(log: DocumentLog, md: dict[str, Any], streams: dict[str, tuple[Any, list[Any]]]) -> str:
    """Write one run: each stream's data keys and its events' data."""
    bundle = compose_run(metadata={"campaign_id": CAMPAIGN, **md})
    log("start", bundle.start_doc)
    for name, (data_keys, events) in streams.items():
        desc = bundle.compose_descriptor(name=name, data_keys=data_keys)
        log("descriptor", desc.descriptor_doc)
        for data in events:
            log("event", desc.compose_event(data=data, timestamps=dict.fromkeys(data, 0.0)))
    log("stop", bundle.compose_stop())
    return str(bundle.start_doc["uid"])


def simulated() -> CampaignData:
    """One coupon's map and hold, drawn from the world's physics (a fixed seed)."""
    return simulate_campaigns(WorldConfig(), DESIGN, np.random.default_rng(8), 1)[0]


def write_campaign(folder: Path, sim: CampaignData) -> Path:
    """An exposure, the coupon's print and map, one tensile test and one decision; return the
    map's run file."""
    log = DocumentLog(folder)
    tc_mm = list(DESIGN.tc_positions_mm)
    lab = {"devices": [{"name": "tcs1", "settings": {"positions_mm": tc_mm}}]}
    ramp_s = (DESIGN.hot_c - AMBIENT_C) / RAMP_RATE * 60.0
    interval = DESIGN.hold_s / sim.tc_scans_c.shape[0]
    # a scan of the cold furnace at the program's start (not the hold's), then the hold's
    clock = [0.0] + [ramp_s + SETTLE_S + (k + 0.5) * interval for k in range(len(sim.tc_scans_c))]
    scans = [np.full(len(tc_mm), AMBIENT_C), *sim.tc_scans_c]
    run(
        log,
        {
            "plan_name": "campaign_exposure",
            "coupon_id": ["C1"],
            "batch": "B1",
            "hot_end_c": DESIGN.hot_c,
            "cold_end_c": DESIGN.cold_c,
            "hold_duration_s": DESIGN.hold_s,
            "ramp_rate_k_per_min": RAMP_RATE,
            "program_start_s": 0.0,
            "lab_file": lab,
        },
        {
            "primary": (
                {
                    "furnace1-profile": key("array", [8], "degC"),
                    "furnace1-clock-sim_time": key(units="s"),
                    "tcs1-temperatures": key("array", [len(tc_mm)], "degC"),
                },
                [
                    {
                        "furnace1-profile": np.linspace(DESIGN.hot_c, DESIGN.cold_c, 8)
                        * min(1.0, t / ramp_s),
                        "furnace1-clock-sim_time": t,
                        "tcs1-temperatures": scan,
                    }
                    for t, scan in zip(clock, scans, strict=True)
                ],
            )
        },
    )
    run(
        log,
        {
            "plan_name": "print_graded_coupon",
            "coupon_id": "C1",
            "system": "Ni-Cr",
            "gradient": {"element": "Cr", "low": DESIGN.cr_min, "high": DESIGN.cr_max},
        },
        {},
    )
    thick = sim.thickness_m.ravel()
    cr = sim.cr_xrf.ravel()
    events = [
        {
            "profiler1-thickness": float(t * 1e9) if np.isfinite(t) else 0.0,
            "profiler1-range_flag": "ok" if np.isfinite(t) else "over",
            "xrf1-fraction_cr": float(c),
            "xrf1-fraction_ni": float(1.0 - c),
            "xrf1-counts": DESIGN.xrf_counts,
            "stage1-x": x,
            "stage1-y": y,
        }
        for t, c, (y, x) in zip(
            thick,
            cr,
            [(y, x) for y in DESIGN.rows_y_mm for x in DESIGN.points_x_mm],
            strict=True,
        )
    ]
    mapped = run(
        log,
        {
            "plan_name": "raster_map",
            "coupon_id": "C1",
            "detectors": ["profiler1", "xrf1"],
            "plan_args": {"dwell": f"{DESIGN.profiler_dwell_s} s"},
            "shape": [ROWS, COLS],
            "extents": [
                [DESIGN.rows_y_mm[0], DESIGN.rows_y_mm[-1]],
                [DESIGN.points_x_mm[0], DESIGN.points_x_mm[-1]],
            ],
        },
        {
            "primary": (
                {
                    "profiler1-thickness": key(units="nm"),
                    "profiler1-range_flag": key("string"),
                    "xrf1-fraction_cr": key(),
                    "xrf1-fraction_ni": key(),
                    "xrf1-counts": key(),
                    "stage1-x": key(units="mm"),
                    "stage1-y": key(units="mm"),
                },
                events,
            )
        },
    )
    tensile_md = {
        "plan_name": "tensile_test",
        "coupon_id": "C1",
        "specimen_id": "C1-T1",
        "specimen": {
            "width": {"value": 1.2, "units": "mm"},
            "thickness": {"value": 0.5, "units": "mm"},
        },
    }
    strain = np.linspace(0.0, 0.3, 50)
    force = 400.0 * np.tanh(strain * 50)
    run(
        log,
        tensile_md,
        {
            "results": (
                {"frame1_tensile-uts": key(units="MPa"), "frame1_tensile-yield_strength": key()},
                [{"frame1_tensile-uts": 666.0, "frame1_tensile-yield_strength": 400.0}],
            ),
            "curve": (
                {"frame1-force": key(units="N"), "frame1-strain": key(units="mm/mm")},
                [
                    {"frame1-force": float(f), "frame1-strain": float(s)}
                    for f, s in zip(force, strain, strict=True)
                ],
            ),
        },
    )
    run(
        log,
        {
            "plan_name": "campaign_decision",
            "proposal": {"coupon_id": "C2", "system": "Ni-Cr"},
        },
        {
            "decision": (
                {"proposal_low": key(), "proposal_high": key(), "proposal_element": key("string")},
                [{"proposal_low": 0.15, "proposal_high": 0.3, "proposal_element": "Cr"}],
            )
        },
    )
    with h5py.File(folder / "unused.h5", "w"):
        pass  # (a device file the report has no need of)
    log.close()
    return folder / f"{mapped}.jsonl"


@pytest.fixture(scope="module")
def sim() -> CampaignData:
    return simulated()


@pytest.fixture
def campaign(tmp_path: Path, sim: CampaignData) -> Path:
    """A campaign's output folder of its own (its log, no store yet)."""
    out = tmp_path / "campaign"
    write_campaign(out, sim)
    return out


@pytest.fixture(scope="module")
def reported(tmp_path_factory: pytest.TempPathFactory, sim: CampaignData) -> tuple[Path, Path]:
    """Make the campaign's report once, from a fresh folder (its store ingested first by the
    command); return the report's folder and the map's run file. Both report tests only read
    them."""
    folder = tmp_path_factory.mktemp("report")
    mapped = write_campaign(folder / "campaign", sim)
    with dask.config.set(scheduler="synchronous"):  # as dask_in_this_thread, for this fixture
        code = main(
            ["report", CAMPAIGN, "--store", str(folder / "campaign"), "--out", str(folder / "rep")]
        )
    assert code == 0
    return folder / "rep", mapped


@pytest.fixture
def report(reported: tuple[Path, Path]) -> Path:
    return reported[0]


def test_the_report_is_made_from_the_store_with_every_figure_and_number(
    report: Path, reported: tuple[Path, Path], sim: CampaignData
) -> None:
    for name, _ in FIGURES:
        assert (report / name).read_bytes()[:4] == b"\x89PNG", name
    with (report / "rows.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == ROWS
    assert {r["element"] for r in rows} == {"Cr"}  # the graded one, not Ni
    assert {"NiO", "transition", "chromia"} <= {r["regime"] for r in rows}
    for r, regime, q in zip(rows, sim.true_regime, sim.true_q_kj_per_mol, strict=True):
        lo, hi = float(r["q_low_kj_per_mol"]), float(r["q_high_kj_per_mol"])
        assert lo < float(r["q_kj_per_mol"]) < hi
        if r["regime"] in ("NiO", "chromia") and r["regime"] == regime:  # a pure row
            sigma = (hi - lo) / 2  # the 68 % interval is +/- one standard uncertainty
            assert abs(float(r["q_kj_per_mol"]) - q) <= MAX_Z * sigma, r
    with (report / "critical.csv").open() as f:
        [crit] = list(csv.DictReader(f))
    assert crit["side"] == "located" and crit["coupon_id"] == "C1"
    estimate, sigma = float(crit["estimate"]), float(crit["sigma"])
    truth = sim.true_critical_at(float(crit["temperature_k"]))
    assert abs(estimate - truth) <= MAX_Z * sigma
    assert float(crit["low_95"]) < float(crit["low_68"]) < estimate < float(crit["high_68"])
    # the campaign's own analysis of the same map and hold (from the log) says the same
    table = event_table(reported[1])
    measured = map_measurements(
        table,
        profiler="profiler1",
        xrf="xrf1",
        x_mm=np.asarray(DESIGN.points_x_mm),
        rows=ROWS,
        dwell_s=DESIGN.profiler_dwell_s,
        tc_positions_mm=np.asarray(DESIGN.tc_positions_mm),
        tc_scans_c=sim.tc_scans_c,
        hold_s=DESIGN.hold_s,
        elements=("Cr",),
    )
    campaign = report_coupon(measured, "Cr", coupon_id="C1", printed=(0.0, 0.5))
    assert (estimate, sigma) == pytest.approx((campaign.estimate, campaign.sigma), rel=1e-9)
    summary = json.loads((report / "report.json").read_text())
    assert summary["tensile"][0]["uts"] == 666.0
    assert summary["decisions"][0]["low"] == 0.15
    assert summary["exposures"] == {"B1": {"coupons": ["C1"]}}
    page = (report / "report.html").read_text()
    assert page.count("<img ") == len(FIGURES)
    markdown = (report / "report.md").read_text()
    assert markdown.count("](") == len(FIGURES) and "| C1 |" in markdown


def test_an_unknown_campaign_is_refused(campaign: Path) -> None:
    assert main(["report", "K-none", "--store", str(campaign)]) == 2


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.mark.skipif(
    shutil.which("chromium") is None and not os.environ.get("COUPONLAB_CI"),
    reason="Debian's chromium is not installed (apt-get install chromium; .ci/run installs it)",
)
@pytest.mark.timeout(240)
def test_a_headless_browser_loads_the_page_and_every_image(report: Path, tmp_path: Path) -> None:
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    done = subprocess.run(
        [
            "chromium",
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            (report / "report.html").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f'data-images="{len(FIGURES)}/{len(FIGURES)}"' in done.stdout, done.stdout[:500]
