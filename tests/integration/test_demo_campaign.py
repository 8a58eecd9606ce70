"""The main job end to end: print, oxidise, map, analyse, pull -- and the analysis finds the
simulated world's regimes, activation energies and critical Cr content within their
intervals (the demo exits non-zero when a truth is more than 4 sigma off); every document
the demo writes is valid against event-model's schemas, and its start documents carry the
same campaign_id, the coupon_id, couponlab's version and no quantity or number as text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from event_model import DocumentNames, schema_validators

from couponlab.cli import sample_lab_path
from couponlab.data import read_run
from couponlab.labfile import load_lab
from couponlab.plans.demo import run_demo
from couponlab.units import numbers_with_units


@pytest.mark.timeout(400)
def test_demo_campaign_recovers_q_and_logs_every_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_demo(load_lab(sample_lab_path()), out_dir=tmp_path) == 0
    out = capsys.readouterr().out
    assert "critical Cr content for a protective chromia scale" in out
    assert "simulation truth" in out
    for regime in ("NiO", "transition", "chromia"):
        assert f" {regime} " in out
    assert "as built (XRF" in out and "the coupon saw" in out
    runs = sorted(tmp_path.glob("*.jsonl"))
    plans = {next(d for n, d in read_run(p) if n == "start")["plan_name"] for p in runs}
    assert {
        "calibrate_feeder",
        "print_graded_coupon",
        "gradient_oxidation_hold",
        "raster_map",
        "tensile_test",
    } <= plans
    for p in runs:  # every run closed cleanly
        assert list(read_run(p))[-1][1].get("exit_status") == "success"
    assert _schema_errors(runs) == []
    starts = [next(d for n, d in read_run(p) if n == "start") for p in runs]
    # [6] miniature specimens, one per regime band, laid out inside the coupon, named honestly
    assert "SS-J3 class miniature flat" in out and "E8M" not in out
    assert "simulation truth: oxidation consumed" in out  # the thermal history, named
    pulls = sorted(
        (st for st in starts if st["plan_name"] == "tensile_test"), key=lambda st: st["time"]
    )
    cut = pulls[0]["cut_plan"]
    bands = [p["band"] for p in cut["specimens"]]
    assert set(bands) == {"NiO", "transition", "chromia"}  # every band the analysis reports
    assert bands[0] == "NiO" and bands[-1] == "chromia" and len(pulls) == len(bands)
    assert [st["specimen_id"] for st in pulls] == [
        f"{pulls[0]['coupon_id']}-T{k}" for k in range(1, len(pulls) + 1)
    ]
    for st, placed in zip(pulls, cut["specimens"], strict=True):
        assert st["sample"]["position"]["value"] == placed["x_mm"]
        assert st["sample"]["across"]["value"] == placed["y_mm"]
        assert st["specimen"]["overall_length"] == {"value": 16.0, "units": "mm"}
    assert len({start["campaign_id"] for start in starts}) == 1  # one key for the demo
    assert starts[0]["campaign_id"].startswith("demo-")
    for start in starts:  # the coupon by one key, couponlab's version, in every run
        assert start["versions"]["couponlab"]
        if start["plan_name"] != "calibrate_feeder":  # the only run without a coupon
            assert isinstance(start["coupon_id"], str), start["plan_name"]
        assert _text_quantities(start) == [], start["plan_name"]


def _text_quantities(doc: Any, where: str = "") -> list[str]:
    """Every string of ``doc`` that is a quantity or a number written as text."""
    if isinstance(doc, dict):  # (a "units" entry is the unit of its "value": text)
        return [
            t for k, v in doc.items() if k != "units" for t in _text_quantities(v, f"{where}/{k}")
        ]
    if isinstance(doc, list):
        return [t for i, v in enumerate(doc) for t in _text_quantities(v, f"{where}/{i}")]
    if isinstance(doc, str) and numbers_with_units(doc) != doc:
        return [f"{where} = {doc!r}"]
    return []


def _schema_errors(runs: list[Path]) -> list[str]:
    """Every way a document of ``runs`` breaks event-model's schema of its kind."""
    errors = []
    for path in runs:
        for name, doc in read_run(path):
            validator = schema_validators[DocumentNames[name]]
            errors += [f"{path.name} {name}: {e.message}" for e in validator.iter_errors(doc)]
    return errors
