"""Every run's start document names the couponlab version that produced it, and records its
plan's arguments and the lab file with quantities as numbers with units, never as text."""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

import bluesky.plan_stubs as bps
from bluesky.utils import MsgGenerator

from couponlab.run_engine import LabRunEngine


def _empty_run() -> MsgGenerator[str]:
    uid: str = yield from bps.open_run()
    yield from bps.close_run()
    return uid


def test_start_document_versions_name_couponlab() -> None:
    engine = LabRunEngine({}, call_returns_result=True)
    starts: list[dict[str, Any]] = []
    engine.subscribe(lambda name, doc: starts.append(doc) if name == "start" else None)
    engine(_empty_run())
    (start,) = starts
    assert start["versions"]["couponlab"] == version("couponlab")
    assert "bluesky" in start["versions"]  # bluesky's own entries are kept


def test_plan_arguments_and_the_lab_file_are_numbers_with_units() -> None:
    lab_file = {"devices": [{"name": "furnace1", "limits": {"max_temperature": "1150 degC"}}]}
    engine = LabRunEngine({"lab_file": lab_file}, call_returns_result=True)
    starts: list[dict[str, Any]] = []
    engine.subscribe(lambda name, doc: starts.append(doc) if name == "start" else None)
    plan_args = {
        "furnace": "furnace1",
        "duration": "50.0 h",
        "settings": {"crosshead_rate": "0.075 mm/min", "strain_rate": "0.015 / min"},
        "x_range": [3.0, "57 mm", 10],
        "given": {"value": 2.5, "units": "1/min"},
        "track_run_in": "2.0",
        "target_form": "per_track",
    }

    def plan() -> MsgGenerator[str]:
        uid: str = yield from bps.open_run(md={"plan_args": plan_args})
        yield from bps.close_run()
        return uid

    engine(plan())
    (start,) = starts
    assert start["plan_args"] == {
        "furnace": "furnace1",
        "duration": {"value": 50.0, "units": "h"},
        "settings": {
            "crosshead_rate": {"value": 0.075, "units": "mm/min"},
            "strain_rate": {"value": 0.015, "units": "1/min"},
        },
        "x_range": [3.0, {"value": 57.0, "units": "mm"}, 10],
        "given": {"value": 2.5, "units": "1/min"},
        "track_run_in": 2.0,
        "target_form": "per_track",
    }
    limits = start["lab_file"]["devices"][0]["limits"]
    assert limits == {"max_temperature": {"value": 1150.0, "units": "degC"}}
    assert engine.md["lab_file"] == lab_file  # the RunEngine's own metadata stays as given
