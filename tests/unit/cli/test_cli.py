"""The couponlab command: argument handling and the check table on unreachable devices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from couponlab.cli import build_parser, main, sample_lab_path
from couponlab.labfile import load_lab

NO_TWINS = """
name: real-lab
devices:
  - name: furnace1
    family: gradient_furnace
    driver: couponlab.drivers.furnace:OpcUaGradientFurnace
    address: opc.tcp://127.0.0.1:{port}
"""


def test_bundled_sim_lab_is_valid_and_all_twins() -> None:
    lab = load_lab(sample_lab_path())
    assert lab.devices
    assert all(d.twin for d in lab.devices)
    assert all("127.0.0.1" in d.address for d in lab.devices)


def test_serve_refuses_a_lab_without_twins(
    tmp_path: Path, free_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    p = tmp_path / "lab.yaml"
    p.write_text(NO_TWINS.format(port=free_port))
    assert main(["twin", "serve", str(p)]) == 2
    assert "nothing to serve" in capsys.readouterr().err


def test_bad_lab_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "lab.yaml"
    p.write_text("name: x\ndevices: [{name: A}]\n")
    assert main(["check", str(p)]) == 2
    assert f"{p}: device 'A': name: device name 'A' must match" in capsys.readouterr().err


def test_subcommand_required() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args([])


# -- exit codes and failure reports ------------------------------------------------------------
def test_exit_codes_by_kind_of_failure() -> None:
    from bluesky.utils import FailedStatus, RunEngineInterrupted

    from couponlab.cli import ExitCode, exit_code
    from couponlab.errors import (
        InstrumentTimeoutError,
        OutOfLimitsError,
        SafeStateError,
    )

    timeout = InstrumentTimeoutError("furnace1", "no reply within 2 s")
    wrapped = TimeoutError("furnace1")  # as ophyd-async wraps a typed timeout
    wrapped.__cause__ = timeout

    class _Done:  # a finished, failed status (what bluesky's FailedStatus carries)
        def exception(self) -> BaseException:
            return timeout

    assert exit_code(KeyboardInterrupt()) == ExitCode.INTERRUPTED == 130
    assert exit_code(RunEngineInterrupted()) == ExitCode.INTERRUPTED
    assert exit_code(OutOfLimitsError("f", "T", 2000, 0, 1200, "degC")) == ExitCode.USAGE == 2
    assert exit_code(timeout) == ExitCode.DEVICE_FAULT == 3
    assert exit_code(wrapped) == ExitCode.DEVICE_FAULT
    assert exit_code(FailedStatus(_Done())) == ExitCode.DEVICE_FAULT
    assert exit_code(SafeStateError({"furnace1": timeout})) == ExitCode.DEVICE_FAULT
    assert exit_code(ValueError("a bug")) == ExitCode.INTERNAL == 4


def _fake_lab(*modes: str) -> object:
    from couponlab.testing.fake_device import fake_lab_entry

    return load_lab_dict(
        {"name": "fake", "devices": [fake_lab_entry(f"dev{i}", m) for i, m in enumerate(modes)]}
    )


def load_lab_dict(data: dict[str, object]) -> object:
    from couponlab.labfile import LabFile

    return LabFile.model_validate(data)


def _pausing_plan(device: object) -> object:
    import bluesky.plan_stubs as bps
    from bluesky.utils import Msg

    yield from bps.open_run()
    yield from bps.mv(device, 1.0)
    yield from bps.checkpoint()
    yield Msg("pause", None, defer=False)
    yield from bps.close_run()


def _demo_that(
    monkeypatch: pytest.MonkeyPatch, modes: tuple[str, ...], fail: BaseException | None
) -> None:
    """Make `couponlab demo` open a Session on fake devices and fail inside it."""
    import couponlab.plans.demo as demo
    from couponlab.session import Session

    def fake_run_demo(lab: object, out_dir: Path) -> int:
        # the log is what these tests read: no Tiled store (an ingest process at close)
        with Session(_fake_lab(*modes), out_dir=out_dir, store=False) as s:  # type: ignore[arg-type]
            if isinstance(fail, KeyboardInterrupt):
                raise fail
            if fail is not None:  # a Ctrl-C during a plan: the RunEngine pauses
                s.run(_pausing_plan(s.devices["dev0"]))
            s.call(s.devices["dev0"].refuse)  # type: ignore[attr-defined]
        return 0

    monkeypatch.setattr(demo, "run_demo", fake_run_demo)


def test_a_device_fault_prints_the_cause_first_then_the_clean_up_and_exits_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _demo_that(monkeypatch, ("ok", "error"), None)
    assert main(["demo", "--out", str(tmp_path)]) == 3
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == (
        "couponlab: dev0: instrument replied -222,'Data out of range' (ProtocolError); "
        "lab: NOT SAFE (dev1 not in their safe state)"
    )
    assert lines[1] == "  clean-up: dev1: no reply to STOP within 2 s (InstrumentTimeoutError)"
    assert lines[2] == f"  full traceback: {tmp_path / 'couponlab.log'} (or run with --debug)"
    assert len(lines) == 3  # no traceback on the screen
    logged = (tmp_path / "couponlab.log").read_text()
    assert "Traceback (most recent call last)" in logged and "ProtocolError" in logged


def test_debug_shows_the_traceback_on_the_screen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _demo_that(monkeypatch, ("ok",), None)
    assert main(["--debug", "demo", "--out", str(tmp_path)]) == 3
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert "couponlab: dev0: instrument replied -222,'Data out of range' (ProtocolError); " in err
    assert "lab: safe (all 1 device(s) in their safe state)" in err


def test_ctrl_c_leaves_the_lab_safe_and_exits_130(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _demo_that(monkeypatch, ("ok", "ok"), KeyboardInterrupt())
    assert main(["--log", str(tmp_path / "x.log"), "demo", "--out", str(tmp_path)]) == 130
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "couponlab: interrupted; lab: safe (all 2 device(s) in their safe state)"
    assert (tmp_path / "x.log").exists()


def test_ctrl_c_during_a_plan_ends_the_paused_run_and_exits_130(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bluesky.utils import RunEngineInterrupted

    from couponlab.data import read_run

    _demo_that(monkeypatch, ("ok",), RunEngineInterrupted())
    assert main(["demo", "--out", str(tmp_path)]) == 130
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "couponlab: interrupted; lab: safe (all 1 device(s) in their safe state)"
    (run,) = tmp_path.glob("*.jsonl")
    stop = [doc for name, doc in read_run(run) if name == "stop"]
    assert stop[0]["exit_status"] == "abort"


def test_a_lab_without_twins_is_a_usage_error_for_the_demo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = tmp_path / "lab.yaml"
    p.write_text(NO_TWINS.format(port=4840))
    assert main(["demo", "--lab", str(p), "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("couponlab: the demo drives twins only")


def test_check_formats_an_all_nan_array_without_a_warning() -> None:
    """`couponlab check` shows arrays by their range; one with no value yet (a scanner not
    scanned) is said so, not warned about (warnings are errors here)."""
    from couponlab.cli import _format_value

    assert _format_value(np.full(12, np.nan), "degC") == "[12] no value yet"
    assert _format_value(np.array([np.nan, 800.0, 1100.0]), "degC") == "[3] 800..1100 degC"
