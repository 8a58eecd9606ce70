"""Resumable steps: a completed step is skipped, a step's writes commit together with its
completion mark, and an exception, a crash or a kill inside a step leaves nothing of it."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from couponlab.errors import RegistryError
from couponlab.samples import SampleRegistry


class BoomError(Exception):
    pass


def _print_step(reg: SampleRegistry) -> None:
    reg.add_coupon("K1-C02", "K1", print_params={"low": 0.2}, location="build_plate")
    reg.move("K1-C01", "furnace1.slot1", step="C02.print")
    reg.record_run("K1-C02", "uid-print", "print_coupon", "C02.print")


def test_a_step_runs_once_then_is_done(reg: SampleRegistry) -> None:
    with reg.step("K1", "C02.print") as done:
        assert done is False
        _print_step(reg)
        reg.set_step_result({"coupon": "K1-C02"})
    with reg.step("K1", "C02.print") as done:
        assert done is True
    assert reg.completed_steps("K1") == ["C02.print"]
    assert reg.step_result("K1", "C02.print") == {"coupon": "K1-C02"}
    assert reg.location("K1-C02") == "build_plate"


def test_writes_of_an_open_step_are_invisible_to_another_reader_until_it_ends(
    reg: SampleRegistry, db: Path
) -> None:
    with SampleRegistry(db) as other:
        with reg.step("K1", "C02.print"):
            _print_step(reg)
            assert reg.location("K1-C01") == "furnace1.slot1"  # the writer sees its own
            assert [s["id"] for s in other.samples()] == ["K1-C01"]  # WAL: readers see before
            assert other.location("K1-C01") == "build_plate"
            assert other.completed_steps("K1") == []
        assert [s["id"] for s in other.samples()] == ["K1-C01", "K1-C02"]
        assert other.completed_steps("K1") == ["C02.print"]


def test_an_exception_inside_a_step_rolls_all_of_it_back(reg: SampleRegistry) -> None:
    before = reg.canonical("K1")

    def interrupted() -> None:
        with reg.step("K1", "C02.print") as done:
            assert not done
            _print_step(reg)
            raise BoomError

    with pytest.raises(BoomError):
        interrupted()
    assert reg.canonical("K1") == before
    assert reg.completed_steps("K1") == []
    with reg.step("K1", "C02.print") as done:  # redone from nothing, no duplicate refused
        assert not done
        _print_step(reg)
    assert reg.completed_steps("K1") == ["C02.print"]


def test_a_refused_write_inside_a_step_undoes_only_itself(reg: SampleRegistry) -> None:
    with reg.step("K1", "C02.print"):
        reg.move("K1-C01", "stage1", step="C02.print")
        with pytest.raises(RegistryError, match="exists already"):
            reg.add_coupon("K1-C01", "K1", print_params={}, location="rack.1")
    assert reg.location("K1-C01") == "stage1"
    assert reg.completed_steps("K1") == ["C02.print"]


def test_writes_inside_a_completed_step_are_refused(reg: SampleRegistry) -> None:
    with reg.step("K1", "a"):
        pass
    with reg.step("K1", "a") as done:
        assert done
        with pytest.raises(RegistryError, match="step 'a' of campaign 'K1' completed before"):
            reg.move("K1-C01", "stage1", step="a")
    reg.move("K1-C01", "stage1", step="b")  # outside the block, writes work again


def test_steps_do_not_nest(reg: SampleRegistry) -> None:
    with reg.step("K1", "outer"):
        with pytest.raises(RegistryError, match="steps do not nest or overlap"):
            reg.step("K1", "inner").__enter__()
        reg.move("K1-C01", "stage1", step="outer")
    assert reg.completed_steps("K1") == ["outer"]


def test_step_with_no_writes_is_marked_and_keys_are_per_campaign(reg: SampleRegistry) -> None:
    reg.start_campaign("K2", {})
    with reg.step("K1", "load"):
        pass
    with reg.step("K2", "load") as done:
        assert not done
    assert reg.completed_steps("K1") == reg.completed_steps("K2") == ["load"]
    with pytest.raises(RegistryError, match="step 'unload' of campaign 'K1' has not completed"):
        reg.step_result("K1", "unload")


def test_a_write_from_another_thread_joins_the_open_step(reg: SampleRegistry) -> None:
    """A plan under a RunEngine runs in the RunEngine's thread; its writes join the step."""
    errors: list[BaseException] = []

    def in_thread() -> None:
        try:
            reg.move("K1-C01", "stage1", step="C01.map")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def interrupted() -> None:
        with reg.step("K1", "C01.map"):
            t = threading.Thread(target=in_thread)
            t.start()
            t.join(timeout=10)
            assert not t.is_alive() and not errors
            assert reg.location("K1-C01") == "stage1"
            raise BoomError

    with pytest.raises(BoomError):
        interrupted()
    assert reg.location("K1-C01") == "build_plate"  # rolled back with the step


def test_a_generator_closed_inside_a_step_rolls_it_back(reg: SampleRegistry) -> None:
    """A bluesky plan that is aborted gets GeneratorExit at its yield: nothing is recorded."""

    def plan() -> Any:
        with reg.step("K1", "C01.map") as done:
            if not done:
                reg.move("K1-C01", "stage1", step="C01.map")
                yield "wait for the instrument"
                reg.record_run("K1-C01", "m1", "map_coupon", "C01.map")

    g = plan()
    next(g)
    g.close()
    assert reg.location("K1-C01") == "build_plate"
    assert reg.completed_steps("K1") == []


CRASH = """
import os, sys
from couponlab.samples import SampleRegistry
reg = SampleRegistry(sys.argv[1])
reg.start_campaign("K1", {"lab": "sim"})
reg.add_coupon("K1-C01", "K1", print_params={}, location="build_plate")
with reg.step("K1", "C01.print") as done:
    reg.set_step_result({"ok": True})
with reg.step("K1", "C01.expose") as done:
    reg.move("K1-C01", "furnace1.slot1", step="C01.expose")
    reg.add_specimen("K1-C01-T1", "K1-C01", geometry={}, location="rack.2")
    reg.record_exposure(
        ["K1-C01"], hot_c=1000, cold_c=600, hold_s=10, exposure_s=12, run_uid="f1"
    )
    print("inside", flush=True)
    {how}
"""


@pytest.mark.parametrize(
    "how",
    ["os._exit(9)", "import signal; os.kill(os.getpid(), signal.SIGKILL)"],
    ids=["os._exit", "SIGKILL"],
)
def test_a_crash_inside_a_step_leaves_nothing_of_it(tmp_path: Path, how: str) -> None:
    db = tmp_path / "samples.sqlite"
    script = textwrap.dedent(CRASH).replace("{how}", how)
    done = subprocess.run(
        [sys.executable, "-c", script, str(db)], capture_output=True, text=True, timeout=60
    )
    assert done.stdout == "inside\n", done.stderr
    assert done.returncode != 0
    with SampleRegistry(db) as reg:
        assert reg.completed_steps("K1") == ["C01.print"]
        assert reg.step_result("K1", "C01.print") == {"ok": True}
        assert [s["id"] for s in reg.samples()] == ["K1-C01"]
        g = reg.genealogy("K1-C01")
        assert [h["station"] for h in g["locations"]] == ["build_plate"]
        assert g["exposures"] == []
        with reg.step("K1", "C01.expose") as again:  # the resumed step runs from nothing
            assert not again
            reg.move("K1-C01", "furnace1.slot1", step="C01.expose")
        assert reg.completed_steps("K1") == ["C01.print", "C01.expose"]
    check = sqlite3.connect(db)
    try:
        assert check.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert check.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        check.close()


def test_a_second_writer_is_refused_while_a_step_holds_the_lock(
    reg: SampleRegistry, db: Path
) -> None:
    with SampleRegistry(db, busy_timeout_s=0.05) as other:
        with reg.step("K1", "C01.map"):
            reg.move("K1-C01", "stage1", step="C01.map")  # the step now holds the write lock
            with pytest.raises(RegistryError, match=r"write lock for more than 0.05 s"):
                other.move("K1-C01", "rack.1", step="other")
            assert other.location("K1-C01") == "build_plate"  # reading never waits
        other.move("K1-C01", "rack.1", step="other")  # the lock is free again
        assert reg.location("K1-C01") == "rack.1"
