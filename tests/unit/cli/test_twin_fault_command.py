"""``couponlab twin fault|faults|clear``: faults through the control channel of running twins,
named by a resolved lab file or the channel's address; refusals exit 2 with the reason."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from couponlab.cli import main
from couponlab.labfile import LabFile
from couponlab.twins import BackgroundTwins


@pytest.fixture(scope="module")
def twins() -> Iterator[BackgroundTwins]:
    lab = LabFile.model_validate(
        {
            "name": "cli-faults",
            "world": {"speedup": 1, "seed": 1},
            "devices": [
                {
                    "name": "tcs1",
                    "family": "thermocouple_scanner",
                    "driver": "couponlab.drivers.detectors:ScpiThermocoupleScanner",
                    "address": "TCPIP::127.0.0.1::0::SOCKET",
                    "twin": True,
                    "settings": {"positions_mm": [0, 10, 20, 30]},
                }
            ],
        }
    )
    running = BackgroundTwins(lab)
    try:
        yield running
    finally:
        running.stop()


def test_fault_faults_and_clear_by_resolved_lab_file(
    twins: BackgroundTwins, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    resolved = tmp_path / "resolved.yaml"
    twins.lab.dump(resolved)
    target = str(resolved)
    assert main(["twin", "fault", target, "tcs1", "sensor_loss", "-p", "channel=2"]) == 0
    fault = json.loads(capsys.readouterr().out)
    assert (fault["device"], fault["kind"], fault["params"]) == (
        "tcs1",
        "sensor_loss",
        {"channel": 2},
    )
    assert twins.call(lambda: 1 in twins.world.instrument("tcs1").broken)  # type: ignore[attr-defined]
    assert main(["twin", "faults", target]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [f["id"] for f in listed["active"]] == [fault["id"]]
    assert "sensor_loss" in listed["devices"]["tcs1"]
    assert main(["twin", "clear", target, "tcs1"]) == 0
    assert [f["id"] for f in json.loads(capsys.readouterr().out)] == [fault["id"]]
    assert twins.call(lambda: twins.world.instrument("tcs1").broken) == set()  # type: ignore[attr-defined]


def test_durations_by_address(twins: BackgroundTwins, capsys: pytest.CaptureFixture[str]) -> None:
    address = twins.lab.twin_control
    assert address is not None
    assert main(["twin", "fault", address, "tcs1", "stall", "--for", "3600"]) == 0
    assert json.loads(capsys.readouterr().out)["for_s"] == 3600
    assert main(["twin", "fault", address, "tcs1", "garble", "--wall", "600"]) == 0
    assert json.loads(capsys.readouterr().out)["wall_s"] == 600
    assert main(["twin", "clear", address]) == 0
    assert sorted(f["kind"] for f in json.loads(capsys.readouterr().out)) == ["garble", "stall"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["tcs1", "jam"], "cannot do 'jam'"),
        (
            ["tcs1", "sensor_loss", "-p", "channel=9"],
            "channel = 9 is outside the allowed range 1..4",
        ),
        (["nobody", "drop"], "nobody: no twin takes faults"),
        (["tcs1", "stall", "--for", "-5"], "for_s = -5.0 s is outside"),
    ],
)
def test_a_refused_fault_exits_2_with_the_reason(
    twins: BackgroundTwins, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    address = twins.lab.twin_control
    assert address is not None
    assert main(["twin", "fault", address, *argv]) == 2
    assert message in capsys.readouterr().err
    assert twins.call(twins.world.faults.active) == []


def test_a_lab_file_without_twin_control_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["twin", "faults", "sim"]) == 2
    assert "names no twin_control" in capsys.readouterr().err
