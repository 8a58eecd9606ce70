"""What the registry records (coupons, specimens, moves, exposures, runs, decisions) and what it
refuses, with nothing of a refused call recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from couponlab.errors import InputError, OutOfLimitsError, RegistryError
from couponlab.samples import SampleRegistry


def _everything(reg: SampleRegistry) -> dict[str, Any]:
    return {"samples": reg.samples(), "campaigns": reg.campaigns(), "canon": reg.canonical("K1")}


def test_registry_error_is_an_input_error() -> None:
    assert issubclass(RegistryError, InputError)


def test_a_coupon_is_recorded_with_its_print_parameters_and_station(reg: SampleRegistry) -> None:
    (row,) = reg.samples("K1")
    assert row["id"] == "K1-C01"
    assert row["kind"] == "coupon"
    assert row["parent"] is None
    assert row["campaign"] == "K1"
    assert row["location"] == "build_plate"
    assert row["attributes"] == {"low": 0.1, "high": 0.3}
    assert reg.location("K1-C01") == "build_plate"


def test_numpy_values_in_attributes_are_stored_as_numbers(reg: SampleRegistry) -> None:
    reg.add_coupon(
        "K1-C02", "K1", print_params={"p": np.float32(0.5), "n": np.int64(3)}, location="rack.1"
    )
    assert reg.genealogy("K1-C02")["attributes"] == {"p": 0.5, "n": 3}


def test_start_campaign_is_idempotent_for_the_same_spec(
    reg: SampleRegistry, spec: dict[str, Any]
) -> None:
    reg.start_campaign("K1", dict(reversed(list(spec.items()))))  # key order does not matter
    assert [c["id"] for c in reg.campaigns()] == ["K1"]
    assert reg.campaign_spec("K1") == spec


def test_a_different_spec_under_an_existing_campaign_id_is_refused(
    reg: SampleRegistry, spec: dict[str, Any]
) -> None:
    with pytest.raises(
        RegistryError, match=r"'K1' exists with another spec \(differs in \['lab'\]"
    ):
        reg.start_campaign("K1", {**spec, "lab": "real"})
    assert reg.campaign_spec("K1") == spec


def test_a_specimen_belongs_to_its_parents_campaign(reg: SampleRegistry) -> None:
    reg.add_specimen("K1-C01-T1", "K1-C01", geometry={"gauge_mm": 25.0}, location="frame1")
    g = reg.genealogy("K1-C01-T1")
    assert (g["kind"], g["parent"], g["campaign"]) == ("specimen", "K1-C01", "K1")
    assert reg.genealogy("K1-C01")["children"] == ["K1-C01-T1"]


def test_moves_make_a_location_history(reg: SampleRegistry) -> None:
    reg.move("K1-C01", "furnace1.slot2", step="C01.load")
    reg.move("K1-C01", "stage1", step="C01.map")
    history = reg.genealogy("K1-C01")["locations"]
    assert [(h["station"], h["step"]) for h in history] == [
        ("build_plate", None),
        ("furnace1.slot2", "C01.load"),
        ("stage1", "C01.map"),
    ]
    assert reg.location("K1-C01") == "stage1"
    assert reg.at("stage1") == ["K1-C01"]
    assert reg.at("build_plate") == []


def test_the_registry_records_two_samples_at_one_station(reg: SampleRegistry) -> None:
    """Decision 0061: the robot (or operator) enforces one sample per station; the registry
    records what happened and shows it."""
    reg.add_coupon("K1-C02", "K1", print_params={}, location="rack.1")
    reg.move("K1-C02", "build_plate", step="s")
    assert reg.at("build_plate") == ["K1-C01", "K1-C02"]


def test_exposures_and_runs_are_in_the_genealogy(reg: SampleRegistry) -> None:
    reg.add_coupon("K1-C02", "K1", print_params={}, location="rack.1")
    reg.record_exposure(
        ["K1-C02", "K1-C01"],
        hot_c=1100,
        cold_c=700.5,
        hold_s=36000,
        exposure_s=40000,
        run_uid="f1",
    )
    reg.record_run("K1-C01", "f1", "furnace_program", "expose.1")
    reg.record_run("K1-C01", "m1", "map_coupon", "C01.map")
    reg.add_specimen("K1-C01-T1", "K1-C01", geometry={}, location="frame1")
    g = reg.genealogy("K1-C01")
    (e,) = g["exposures"]
    assert (e["hot_c"], e["cold_c"], e["hold_s"], e["exposure_s"]) == (1100, 700.5, 36000, 40000)
    assert e["samples"] == ["K1-C01", "K1-C02"]
    assert e["run_uid"] == "f1"
    assert [(r["run_uid"], r["plan"], r["step"]) for r in g["runs"]] == [
        ("f1", "furnace_program", "expose.1"),
        ("m1", "map_coupon", "C01.map"),
    ]
    t = reg.genealogy("K1-C01-T1")
    assert t["exposures"] == []
    assert t["inherited_exposures"] == g["exposures"]


def test_parent_chain_nearest_first(reg: SampleRegistry) -> None:
    reg.add_specimen("K1-C01-T1", "K1-C01", geometry={}, location="frame1")
    reg.add_specimen("K1-C01-T1-a", "K1-C01-T1", geometry={"half": "upper"}, location="rack.3")
    assert reg.genealogy("K1-C01-T1-a")["parents"] == ["K1-C01-T1", "K1-C01"]


def test_decisions_in_seq_order(reg: SampleRegistry) -> None:
    reg.record_decision("K1", 1, agent="critical", proposal={"low": 0.2}, reason="narrower")
    reg.record_decision("K1", 0, agent="critical", proposal={"low": 0.0}, reason="start")
    got = reg.decisions("K1")
    assert [(d["seq"], d["proposal"], d["reason"]) for d in got] == [
        (0, {"low": 0.0}, "start"),
        (1, {"low": 0.2}, "narrower"),
    ]


# -- refusals ------------------------------------------------------------------------------------
def _add_c02(reg: SampleRegistry, **kw: Any) -> None:
    args: dict[str, Any] = {"print_params": {}, "location": "rack.1", **kw}
    reg.add_coupon("K1-C02", "K1", **args)


REFUSALS: list[tuple[str, Any, str]] = [
    (
        "unknown sample: move",
        lambda r: r.move("K1-C09", "stage1", step="s"),
        "'K1-C09' is unknown",
    ),
    ("unknown sample: location", lambda r: r.location("K1-C09"), "'K1-C09' is unknown"),
    ("unknown sample: genealogy", lambda r: r.genealogy("K1-C09"), "'K1-C09' is unknown"),
    (
        "unknown sample: run",
        lambda r: r.record_run("K1-C09", "u", "p", "s"),
        "'K1-C09' is unknown",
    ),
    (
        "unknown sample in an exposure",
        lambda r: r.record_exposure(
            ["K1-C01", "K1-C09"], hot_c=900, cold_c=500, hold_s=1, exposure_s=1, run_uid="f"
        ),
        "'K1-C09' is unknown",
    ),
    (
        "specimen of an unknown parent",
        lambda r: r.add_specimen("K1-C09-T1", "K1-C09", geometry={}, location="frame1"),
        "sample 'K1-C09' is unknown",
    ),
    (
        "duplicate coupon",
        lambda r: r.add_coupon("K1-C01", "K1", print_params={}, location="rack.1"),
        "'K1-C01' exists already",
    ),
    (
        "specimen under a coupon's id",
        lambda r: r.add_specimen("K1-C01", "K1-C01", geometry={}, location="rack.1"),
        "'K1-C01' exists already",
    ),
    (
        "coupon of an unknown campaign",
        lambda r: r.add_coupon("K2-C01", "K2", print_params={}, location="rack.1"),
        "campaign 'K2' is unknown",
    ),
    ("move to where it is", lambda r: r.move("K1-C01", "build_plate", step="s"), "already"),
    ("bad station", lambda r: r.move("K1-C01", "Stage 1", step="s"), "station 'Stage 1'"),
    ("empty step", lambda r: r.move("K1-C01", "stage1", step=""), "step ''"),
    (
        "bad id",
        lambda r: r.add_coupon("K1 C02", "K1", print_params={}, location="rack.1"),
        "coupon 'K1 C02' must match",
    ),
    (
        "attributes not JSON",
        lambda r: _add_c02(r, print_params={"f": object()}),
        "print_params is not storable",
    ),
    ("NaN in attributes", lambda r: _add_c02(r, print_params={"f": float("nan")}), "storable"),
    ("attributes not a mapping", lambda r: _add_c02(r, print_params=[1]), "must be a mapping"),
    (
        "cold above hot",
        lambda r: r.record_exposure(
            ["K1-C01"], hot_c=500, cold_c=900, hold_s=1, exposure_s=1, run_uid="f"
        ),
        "cold_c = 900.0 degC is above hot_c = 500.0 degC",
    ),
    (
        "exposure names a sample twice",
        lambda r: r.record_exposure(
            ["K1-C01", "K1-C01"], hot_c=900, cold_c=500, hold_s=1, exposure_s=1, run_uid="f"
        ),
        "names a sample twice",
    ),
    (
        "exposure of no sample",
        lambda r: r.record_exposure(
            [], hot_c=900, cold_c=500, hold_s=1, exposure_s=1, run_uid="f"
        ),
        "non-empty list",
    ),
    (
        "a string is not a list of ids",
        lambda r: r.record_exposure(
            "K1-C01", hot_c=900, cold_c=500, hold_s=1, exposure_s=1, run_uid="f"
        ),
        "non-empty list",
    ),
    (
        "temperature as a string",
        lambda r: r.record_exposure(
            ["K1-C01"], hot_c="900", cold_c=500, hold_s=1, exposure_s=1, run_uid="f"
        ),
        "hot_c = '900' must be a number in degC",
    ),
    (
        "decision of an unknown campaign",
        lambda r: r.record_decision("K2", 0, agent="a", proposal={}, reason="r"),
        "campaign 'K2' is unknown",
    ),
    (
        "negative decision seq",
        lambda r: r.record_decision("K1", -1, agent="a", proposal={}, reason="r"),
        "seq -1",
    ),
    (
        "decision without a reason",
        lambda r: r.record_decision("K1", 0, agent="a", proposal={}, reason=""),
        "reason ''",
    ),
    ("samples of an unknown campaign", lambda r: r.samples("K2"), "campaign 'K2' is unknown"),
    ("canonical of an unknown campaign", lambda r: r.canonical("K2"), "'K2' is unknown"),
    ("step of an unknown campaign", lambda r: r.step("K2", "a").__enter__(), "'K2' is unknown"),
]


@pytest.mark.parametrize(
    ("call", "match"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_refused_and_nothing_recorded(reg: SampleRegistry, call: Any, match: str) -> None:
    before = _everything(reg)
    with pytest.raises(RegistryError, match=match) as info:
        call(reg)
    assert str(reg.path) in str(info.value)  # names the registry
    assert _everything(reg) == before


@pytest.mark.parametrize(
    ("field", "value"),
    [("hot_c", 3500.0), ("cold_c", -300.0), ("hold_s", -1.0), ("exposure_s", float("inf"))],
)
def test_exposure_numbers_out_of_range_are_refused(
    reg: SampleRegistry, field: str, value: float
) -> None:
    args: dict[str, Any] = {"hot_c": 900.0, "cold_c": 500.0, "hold_s": 1.0, "exposure_s": 1.0}
    with pytest.raises(OutOfLimitsError, match=f"{field} = {value}"):
        reg.record_exposure(["K1-C01"], run_uid="f", **{**args, field: value})
    assert reg.genealogy("K1-C01")["exposures"] == []


def test_duplicate_exposure_run_and_decision_are_refused(reg: SampleRegistry) -> None:
    reg.record_exposure(["K1-C01"], hot_c=900, cold_c=500, hold_s=1, exposure_s=1, run_uid="f")
    with pytest.raises(RegistryError, match="exposure of run 'f' is recorded already"):
        reg.record_exposure(["K1-C01"], hot_c=900, cold_c=500, hold_s=1, exposure_s=1, run_uid="f")
    reg.record_run("K1-C01", "m", "map_coupon", "s")
    with pytest.raises(RegistryError, match="run 'm' of sample 'K1-C01' is recorded already"):
        reg.record_run("K1-C01", "m", "map_coupon", "s")
    reg.record_decision("K1", 0, agent="a", proposal={}, reason="r")
    with pytest.raises(RegistryError, match="decision 0 of campaign 'K1' exists already"):
        reg.record_decision("K1", 0, agent="a", proposal={}, reason="r")
    g = reg.genealogy("K1-C01")
    assert (len(g["exposures"]), len(g["runs"]), len(reg.decisions("K1"))) == (1, 1, 1)


def test_a_closed_registry_refuses(db: Path) -> None:
    reg = SampleRegistry(db)
    reg.close()
    reg.close()  # idempotent
    with pytest.raises(RegistryError, match="closed"):
        reg.campaigns()
