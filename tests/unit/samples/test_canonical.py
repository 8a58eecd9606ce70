"""``canonical``: two registries that recorded the same campaign compare equal, whatever the
wall times, run uids and the order independent records arrived in; any difference shows."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from couponlab.samples import SampleRegistry


def _campaign(reg: SampleRegistry, uid: str, *, crash_in_expose: bool = False) -> None:
    """A small campaign; ``uid`` makes the run uids differ between registries."""
    reg.start_campaign("K1", {"coupons": 2})
    with reg.step("K1", "C01.print"):
        reg.add_coupon("K1-C01", "K1", print_params={"low": 0.1}, location="build_plate")
        reg.record_run("K1-C01", f"{uid}-p1", "print_coupon", "C01.print")
    with reg.step("K1", "C02.print"):
        reg.add_coupon("K1-C02", "K1", print_params={"low": 0.2}, location="build_plate")
        reg.move("K1-C01", "furnace1.slot1", step="C02.print")
        reg.record_run("K1-C02", f"{uid}-p2", "print_coupon", "C02.print")
    for attempt in range(2 if crash_in_expose else 1):
        try:
            with reg.step("K1", "expose.1") as done:
                if done:
                    continue
                reg.move("K1-C02", "furnace1.slot2", step="expose.1")
                reg.record_exposure(
                    ["K1-C02", "K1-C01"],
                    hot_c=1000,
                    cold_c=600,
                    hold_s=3600,
                    exposure_s=4000,
                    run_uid=f"{uid}-f",
                )
                for c in ("K1-C01", "K1-C02"):
                    reg.record_run(c, f"{uid}-f", "furnace_program", "expose.1")
                if crash_in_expose and attempt == 0:
                    raise KeyboardInterrupt  # Ctrl-C inside the step
        except KeyboardInterrupt:
            pass
    with reg.step("K1", "decide.1"):
        reg.record_decision("K1", 0, agent="critical", proposal={"low": 0.15}, reason="narrow")
        reg.add_specimen("K1-C01-T1", "K1-C01", geometry={"gauge_mm": 25}, location="frame1")
        reg.set_step_result({"next": [0.15, 0.25]})


def test_same_campaign_same_canonical_despite_times_uids_and_a_redone_step(tmp_path: Path) -> None:
    with (
        SampleRegistry(tmp_path / "a.sqlite") as a,
        SampleRegistry(tmp_path / "b.sqlite") as b,
    ):
        _campaign(a, "aaaa")
        _campaign(b, "bbbb", crash_in_expose=True)
        ca, cb = a.canonical("K1"), b.canonical("K1")
        assert ca == cb
        assert "aaaa" not in json.dumps(ca)
        assert "T1" in json.dumps(ca) and ca["steps"][0] == {"key": "C01.print", "result": None}
        (exposure,) = ca["exposures"]
        assert exposure["samples"] == ["K1-C01", "K1-C02"]
        assert exposure["runs"] == [{"plan": "furnace_program", "step": "expose.1"}]
        assert json.loads(json.dumps(ca)) == ca  # plain JSON data


def test_independent_records_in_another_order_compare_equal(tmp_path: Path) -> None:
    def fill(reg: SampleRegistry, order: list[str]) -> None:
        reg.start_campaign("K1", {})
        for c in order:
            reg.add_coupon(c, "K1", print_params={}, location=f"rack.{c[-1]}")
        for c in order:
            reg.record_run(c, f"u{c}", "map_coupon", f"{c}.map")
            reg.record_exposure(
                [c], hot_c=900, cold_c=500, hold_s=1, exposure_s=2, run_uid=f"f{c}"
            )

    with (
        SampleRegistry(tmp_path / "a.sqlite") as a,
        SampleRegistry(tmp_path / "b.sqlite") as b,
    ):
        fill(a, ["K1-C1", "K1-C2"])
        fill(b, ["K1-C2", "K1-C1"])
        assert a.canonical("K1") == b.canonical("K1")


def _extra_step(reg: SampleRegistry) -> None:
    with reg.step("K1", "x"):
        pass


DIFFERENCES: list[tuple[str, Callable[[SampleRegistry], None]]] = [
    ("an extra move", lambda r: r.move("K1-C01", "stage1", step="x")),
    ("an extra run", lambda r: r.record_run("K1-C01", "u9", "map_coupon", "x")),
    ("an extra step", _extra_step),
    (
        "an extra decision",
        lambda r: r.record_decision("K1", 1, agent="a", proposal={}, reason="r"),
    ),
]


@pytest.mark.parametrize("change", [d[1] for d in DIFFERENCES], ids=[d[0] for d in DIFFERENCES])
def test_any_difference_shows(tmp_path: Path, change: Callable[[SampleRegistry], None]) -> None:
    with (
        SampleRegistry(tmp_path / "a.sqlite") as a,
        SampleRegistry(tmp_path / "b.sqlite") as b,
    ):
        _campaign(a, "a")
        _campaign(b, "a")
        assert a.canonical("K1") == b.canonical("K1")
        change(b)
        assert a.canonical("K1") != b.canonical("K1")


def test_canonical_holds_only_its_campaign(tmp_path: Path) -> None:
    with SampleRegistry(tmp_path / "a.sqlite") as a:
        _campaign(a, "a")
        a.start_campaign("K2", {})
        a.add_coupon("K2-C01", "K2", print_params={}, location="rack.1")
        a.record_run("K2-C01", "a-p1", "print_coupon", "C01.print")
        c2 = a.canonical("K2")
        assert [s["id"] for s in c2["samples"]] == ["K2-C01"]
        assert c2["runs"] == [{"sample": "K2-C01", "plan": "print_coupon", "step": "C01.print"}]
        assert "K2" not in json.dumps(a.canonical("K1"))
