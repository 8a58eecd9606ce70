"""The couponlab command: argument handling and the check table on unreachable devices."""

from __future__ import annotations

from pathlib import Path

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
    assert "not a valid lab file" in capsys.readouterr().err


def test_subcommand_required() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args([])
