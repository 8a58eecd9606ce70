"""``couponlab samples``: campaigns, list and show as tables and as JSON; refusals exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from couponlab.cli import main
from couponlab.samples import SampleRegistry


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "samples.sqlite"
    with SampleRegistry(path) as reg:
        reg.start_campaign("K1", {"coupons": 1})
        reg.start_campaign("K2", {"coupons": 1})
        reg.add_coupon("K1-C01", "K1", print_params={"low": 0.1}, location="build_plate")
        reg.add_coupon("K2-C01", "K2", print_params={"low": 0.5}, location="rack.4")
        reg.add_specimen("K1-C01-T1", "K1-C01", geometry={"gauge_mm": 25}, location="frame1")
        with reg.step("K1", "C01.expose"):
            reg.move("K1-C01", "furnace1.slot2", step="C01.expose")
            reg.record_exposure(
                ["K1-C01"], hot_c=1000, cold_c=600, hold_s=3600, exposure_s=4000, run_uid="f1"
            )
            reg.record_run("K1-C01", "f1", "furnace_program", "C01.expose")
    return path


def _out(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def test_campaigns_table(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = _out(capsys, "samples", "--db", str(db), "campaigns").splitlines()
    assert lines[0].split() == [
        "campaign", "created", "(UTC)", "coupons", "specimens", "steps", "done", "decisions"
    ]  # fmt: skip
    assert [ln.split()[:1] + ln.split()[3:] for ln in lines[1:]] == [
        ["K1", "1", "1", "1", "0"],
        ["K2", "1", "0", "0", "0"],
    ]


def test_list_table_of_one_campaign(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = _out(capsys, "samples", "list", "--campaign", "K1", "--db", str(db))
    rows = [ln.split()[:5] for ln in out.splitlines()[1:]]
    assert rows == [
        ["K1-C01", "coupon", "-", "furnace1.slot2", "K1"],
        ["K1-C01-T1", "specimen", "K1-C01", "frame1", "K1"],
    ]


def test_list_json_is_what_the_registry_returns(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    got = json.loads(_out(capsys, "samples", "--db", str(db), "list", "--json"))
    with SampleRegistry(db) as reg:
        assert got == reg.samples()
    assert [s["id"] for s in got] == ["K1-C01", "K1-C01-T1", "K2-C01"]


def test_show_prints_the_genealogy(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = _out(capsys, "samples", "--db", str(db), "show", "K1-C01")
    assert out.startswith("K1-C01: coupon, campaign K1, created ")
    assert "  children   K1-C01-T1\n" in out
    assert "build_plate  step -\n" in out and "furnace1.slot2  step C01.expose\n" in out
    assert "1000..600 degC, hold 3600 s, exposure 4000 s: K1-C01 (run f1" in out
    assert "furnace_program  step C01.expose  run f1\n" in out
    specimen = _out(capsys, "samples", "--db", str(db), "show", "K1-C01-T1")
    assert "  parents    K1-C01\n" in specimen
    assert "  exposures: -\n  inherited exposures:\n    1000..600 degC" in specimen


def test_show_json(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    got = json.loads(_out(capsys, "samples", "--json", "--db", str(db), "show", "K1-C01-T1"))
    assert (got["id"], got["parents"], got["location"]) == ("K1-C01-T1", ["K1-C01"], "frame1")


def test_an_unknown_sample_exits_2_with_one_line(
    db: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["samples", "--db", str(db), "show", "K1-C09"]) == 2
    err = capsys.readouterr().err
    assert err == f"couponlab: {db}: sample 'K1-C09' is unknown (RegistryError)\n"


def test_a_missing_registry_exits_2_and_is_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["samples", "list"]) == 2  # the default path, runs/samples.sqlite
    assert "runs/samples.sqlite: no sample registry at this path" in capsys.readouterr().err
    assert not (tmp_path / "runs" / "samples.sqlite").exists()


def test_samples_needs_a_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["samples"])
    assert info.value.code == 2
