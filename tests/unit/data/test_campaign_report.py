"""``couponlab report CAMPAIGN``: a campaign's report made from the store alone (its run log
ingested first), with the activation energy the synthetic thicknesses were made with, every
figure, table, CSV and JSON, and a real headless browser (Debian's chromium) that loads the
page and finds every image loaded."""

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
from couponlab.data import DocumentLog
from couponlab.plans.campaign_report import FIGURES

matplotlib.use("Agg")
pytestmark = pytest.mark.slow  # opening a store imports Tiled's server (seconds)

CAMPAIGN = "K-report"
Q_KJ = 230.0
HOLD_S = 72000.0
TC_MM = [0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0]
ROWS, COLS = 3, 8


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


def temperature_c(x_mm: Any) -> Any:
    return np.interp(x_mm, TC_MM, np.linspace(1100.0, 800.0, len(TC_MM)))


def write_campaign(folder: Path) -> None:
    """An exposure, the map of its coupon, one tensile test and one decision."""
    log = DocumentLog(folder)
    lab = {"devices": [{"name": "tcs1", "settings": {"positions_mm": TC_MM}}]}
    ramp_s = (1100.0 - 25.0) / 25.0 * 60.0
    clock = [0.0, ramp_s + 3600.0, ramp_s + 36000.0, ramp_s + HOLD_S]
    run(
        log,
        {
            "plan_name": "campaign_exposure",
            "coupon_id": ["C1"],
            "batch": "B1",
            "hot_end_c": 1100.0,
            "cold_end_c": 800.0,
            "hold_duration_s": HOLD_S,
            "ramp_rate_k_per_min": 25.0,
            "program_start_s": 0.0,
            "lab_file": lab,
        },
        {
            "primary": (
                {
                    "furnace1-profile": key("array", [8], "degC"),
                    "furnace1-clock-sim_time": key(units="s"),
                    "tcs1-temperatures": key("array", [len(TC_MM)], "degC"),
                },
                [
                    {
                        "furnace1-profile": np.linspace(1100.0, 800.0, 8) * min(1.0, t / ramp_s),
                        "furnace1-clock-sim_time": t,
                        "tcs1-temperatures": temperature_c(np.asarray(TC_MM)),
                    }
                    for t in clock
                ],
            )
        },
    )
    x = np.linspace(3.0, 57.0, COLS)
    temperature_k = temperature_c(x) + 273.15
    thickness_nm = np.sqrt(1e-4 * np.exp(-Q_KJ * 1e3 / (8.314462618 * temperature_k)) * HOLD_S)
    events = [
        {
            "profiler1-thickness": float(thickness_nm[c] * 1e9),
            "profiler1-range_flag": "ok",
            "xrf1-fraction_cr": 0.1 + 0.15 * r,
            "xrf1-fraction_ni": 0.9 - 0.15 * r,
            "stage1-x": float(x[c]),
            "stage1-y": 1.0 + 4.0 * r,
        }
        for r in range(ROWS)
        for c in range(COLS)
    ]
    run(
        log,
        {
            "plan_name": "raster_map",
            "coupon_id": "C1",
            "shape": [ROWS, COLS],
            "extents": [[1.0, 9.0], [3.0, 57.0]],
        },
        {
            "primary": (
                {
                    "profiler1-thickness": key(units="nm"),
                    "profiler1-range_flag": key("string"),
                    "xrf1-fraction_cr": key(),
                    "xrf1-fraction_ni": key(),
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


@pytest.fixture
def report(tmp_path: Path) -> Path:
    out = tmp_path / "campaign"
    write_campaign(out)
    assert main(["report", CAMPAIGN, "--store", str(out), "--out", str(tmp_path / "rep")]) == 0
    return tmp_path / "rep"


def test_the_report_is_made_from_the_store_with_every_figure_and_number(report: Path) -> None:
    for name, _ in FIGURES:
        assert (report / name).read_bytes()[:4] == b"\x89PNG", name
    with (report / "rows.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == ROWS
    assert [float(r["q_kj_per_mol"]) for r in rows] == pytest.approx([Q_KJ] * ROWS)
    assert [float(r["fraction"]) for r in rows] == pytest.approx([0.1, 0.25, 0.4])
    assert {r["element"] for r in rows} == {"Cr"}  # the graded one, not Ni
    summary = json.loads((report / "report.json").read_text())
    assert summary["tensile"][0]["uts"] == 666.0
    assert summary["decisions"][0]["low"] == 0.15
    assert summary["exposures"] == {"B1": {"coupons": ["C1"]}}
    page = (report / "report.html").read_text()
    assert page.count("<img ") == len(FIGURES)
    markdown = (report / "report.md").read_text()
    assert markdown.count("](") == len(FIGURES) and "| C1 |" in markdown


def test_an_unknown_campaign_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "campaign"
    write_campaign(out)
    assert main(["report", "K-none", "--store", str(out)]) == 2


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
