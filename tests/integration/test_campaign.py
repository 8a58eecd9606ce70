"""The campaign on the twins: a reduced campaign completes with every coupon's genealogy in
the registry, every run tied to the campaign and its coupon, and the overlapped schedule
shorter than the same steps one after another; a campaign SIGKILLed after a step (against a
twin process the test owns, as instruments outlive a crashed control computer) and resumed
gives the same registry as one never interrupted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from event_model import DocumentNames, schema_validators

from couponlab.cli import sample_lab_path
from couponlab.data import read_run
from couponlab.labfile import load_lab
from couponlab.plans.campaign_file import parse_campaign
from couponlab.plans.campaign_run import run_campaign
from couponlab.samples import SampleRegistry
from couponlab.twins import TwinProcess

pytestmark = pytest.mark.slow

REDUCED: dict[str, Any] = {
    "id": "t12",
    "carrier_batch": 2,
    "exposure": {"hold": "6 h", "scan_interval": "2 h"},
    "map": {"x_points": 6, "y_rows": 8, "dwell": "0.5 s"},
    "specimens": [],
    "coupons": [
        {"system": "Ni-Cr", "gradient": {"low": 0.0, "high": 0.5}, "specimens": ["5 mm"]},
        {"system": "Ni-Al", "gradient": {"low": 0.0, "high": 0.3}},
        {"system": "Ni-Cr", "gradient": "proposed"},
        {"system": "Ni-Al", "gradient": "proposed"},
    ],
}
"""Four coupons in two batches; the second batch's gradients are the agent's (asked while the
first batch is in the furnace: nothing analysed yet, so the whole reach, deterministically)."""


def _quiet(line: str) -> None:
    pass


def _starts(folder: Path) -> list[dict[str, Any]]:
    return [
        next(d for n, d in read_run(p) if n == "start") for p in sorted(folder.glob("*.jsonl"))
    ]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """Run the reduced campaign once, overlapped and never interrupted (on the lab of
    :func:`_twin_lab`); return its output folder and summary. Both tests read it: the first
    checks it, the second compares a killed and resumed campaign with it."""
    out = tmp_path_factory.mktemp("campaign") / "over"
    return out, run_campaign(parse_campaign(REDUCED), out, lab=_twin_lab(), say=_quiet)


@pytest.mark.timeout(900)
def test_a_campaign_completes_overlapped_and_shorter_than_sequential(
    uninterrupted: tuple[Path, Any], tmp_path: Path
) -> None:
    spec = parse_campaign(REDUCED)
    over_dir, over = uninterrupted
    # the sequential run is here for its timeline only: no Tiled store (the shared run fills
    # its store as the CLI does; the store is checked by tests/integration/test_store_session.py)
    seq = run_campaign(spec, tmp_path / "seq", sequential=True, store=False, say=_quiet)
    ids = spec.coupon_ids()
    with SampleRegistry(over_dir / "samples.sqlite", create=False) as reg:
        for cid in ids:  # every coupon's genealogy, from print to storage
            g = reg.genealogy(cid)
            stations = [loc["station"] for loc in g["locations"]]
            assert stations[0] == "build_plate" and stations[-1].startswith("rack.")
            assert any(s.startswith("furnace1.slot") for s in stations)
            assert "stage1" in stations
            assert len(g["exposures"]) == 1 and g["exposures"][0]["hold_s"] == 6 * 3600.0
            plans = {r["plan"] for r in g["runs"]}
            assert {"print_graded_coupon", "campaign_exposure", "raster_map"} <= plans
        specimen = reg.genealogy(f"{ids[0]}-T1")
        assert specimen["parents"] == [ids[0]] and specimen["inherited_exposures"]
        assert {r["plan"] for r in specimen["runs"]} == {"tensile_test"}
        decisions = reg.decisions(spec.id)
        assert [d["proposal"]["coupon_id"] for d in decisions] == ids[2:]
        assert all(d["reason"] for d in decisions)
        assert sorted(reg.completed_steps(spec.id)) == sorted(
            [f"print-{c}" for c in ids]
            + [f"measure-{c}" for c in ids]
            + [f"expose-B{k}.{p}" for k in (1, 2) for p in ("start", "finish")]
        )
    starts = _starts(over_dir)
    for start in starts:  # the campaign and the coupon by one key in every run
        assert start["campaign_id"] == spec.id
        if start["plan_name"] != "calibrate_feeder":
            assert start["coupon_id"], start["plan_name"]
    assert sum(s["plan_name"] == "campaign_decision" for s in starts) == 2
    for path in over_dir.glob("*.jsonl"):  # interleaved runs: each closed, valid
        docs = list(read_run(path))
        assert docs[-1][0] == "stop" and docs[-1][1]["exit_status"] == "success", path.name
        for name, doc in docs:
            assert not list(schema_validators[DocumentNames[name]].iter_errors(doc))
    # the overlap: the stage and the cell worked while a furnace program ran; sequentially
    # nothing but the furnace is busy inside a furnace interval
    assert _inside_furnace(over.timeline, "stage1") and _inside_furnace(over.timeline, "cell1")
    for name in ("stage1", "cell1", "frame1"):
        assert not _inside_furnace(seq.timeline, name)
    assert over.timeline.makespan_s() < seq.timeline.makespan_s()
    assert [c.report is not None for c in over.coupons] == [True] * 4


def _inside_furnace(timeline: Any, instrument: str) -> bool:
    furnace = [(b.start_s, b.end_s) for b in timeline.intervals if b.instrument == "furnace1"]
    return any(
        lo <= b.start_s and b.end_s <= hi
        for b in timeline.intervals
        if b.instrument == instrument
        for lo, hi in furnace
    )


def _twin_lab() -> Any:
    """The bundled lab with the furnace's communication watchdog off: a killed campaign's
    furnace program keeps running (with it armed, the furnace would abort the program after
    10 s and resume would refuse to expose the batch twice)."""
    lab = load_lab(sample_lab_path())
    devices = []
    for d in lab.devices:
        if d.name == "furnace1":
            d = d.model_copy(update={"settings": {**d.settings, "watchdog_s": 0}})
        devices.append(d)
    return lab.model_copy(update={"devices": devices})


def _campaign_file(folder: Path, lab_yaml: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "campaign.yaml"
    path.write_text(yaml.safe_dump({**REDUCED, "lab": str(lab_yaml)}))
    return path


def _run_cli(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "couponlab.cli", "campaign", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@pytest.mark.timeout(900)
def test_a_killed_campaign_resumes_to_the_same_registry(
    uninterrupted: tuple[Path, Any], tmp_path: Path
) -> None:
    spec = parse_campaign(REDUCED)
    kill_after = f"print-{spec.coupon_ids()[3]}"  # then it waits on batch 1's furnace program
    lab = _twin_lab()
    with TwinProcess(lab, workdir=tmp_path / "twins-a") as twins_a:
        out = tmp_path / "killed"
        file = _campaign_file(tmp_path / "a", twins_a.workdir / "resolved.yaml")
        proc = _run_cli("run", str(file), "--out", str(out))
        try:
            done = _wait_for_step(out / "samples.sqlite", spec.id, kill_after, proc)
            # the instruments' clock stands still while the kill lands (at the campaign's
            # speed-up, a stall of about a second here is the rest of batch 1's program)
            twins_a.control.pause()
            os.kill(proc.pid, signal.SIGKILL)
            # the instruments run on while the control computer restarts (at 10x, so that
            # batch 1's program is still running when the campaign resumes)
            twins_a.control.set_speedup(10.0)
            twins_a.control.resume()
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(30)
            assert proc.stderr is not None
            proc.stderr.close()
        assert kill_after in done and "expose-B1.finish" not in done
        resumed = _run_cli("resume", str(out))
        _, err = resumed.communicate(timeout=600)
        assert resumed.returncode == 0, err.decode()[-2000:]
    whole, _ = uninterrupted  # the same campaign run through, on its own twins
    with (
        SampleRegistry(out / "samples.sqlite", create=False) as a,
        SampleRegistry(whole / "samples.sqlite", create=False) as b,
    ):
        got, want = a.canonical(spec.id), b.canonical(spec.id)
    got["spec"].pop("lab"), want["spec"].pop("lab")  # each ran against its own twins
    assert got == want
    # the crash is in the documents: batch 1's exposure run was cut and continued
    exposure = sorted(
        (s for s in _starts(out) if s["plan_name"] == "campaign_exposure"), key=lambda s: s["time"]
    )
    assert [s.get("reattached", False) for s in exposure if s["batch"] == "B1"] == [False, True]


def _wait_for_step(
    db: Path, campaign: str, key: str, proc: subprocess.Popen[bytes], timeout: float = 400.0
) -> list[str]:
    """Poll the registry (read-only) until ``key`` completed; return the completed steps."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            assert proc.stderr is not None
            raise AssertionError(f"campaign ended early: {proc.stderr.read().decode()[-2000:]}")
        if db.exists():
            try:
                with SampleRegistry(db, create=False) as reg:
                    if reg.campaigns():
                        done = reg.completed_steps(campaign)
                        if key in done:
                            return done
            except Exception:  # the schema is being created: try again
                pass
        time.sleep(0.05)
    raise AssertionError(f"step {key} did not complete within {timeout} s")
