"""`couponlab check` against running twins prints identity, state and readbacks with units."""

from __future__ import annotations

from pathlib import Path

import pytest

from couponlab.cli import main, sample_lab_path
from couponlab.labfile import load_lab
from couponlab.twins import BackgroundTwins


def test_check_prints_every_device(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lab = load_lab(sample_lab_path())
    lab = lab.model_copy(update={"devices": [lab.device("furnace1"), lab.device("frame1")]})
    with BackgroundTwins(lab) as twins:
        path = tmp_path / "resolved.yaml"
        twins.lab.dump(path)
        assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "GF-8 gradient tube furnace" in out
    assert "furnace1-profile" in out
    assert "degC" in out
    assert "frame1-force" in out
    assert "2 of 2 device(s) OK" in out


def test_check_fails_for_a_device_that_does_not_answer(
    tmp_path: Path, free_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    lab = load_lab(sample_lab_path())
    entry = lab.device("frame1").model_copy(
        update={"address": f"TCPIP::127.0.0.1::{free_port}::SOCKET", "twin": False}
    )
    path = tmp_path / "lab.yaml"
    lab.model_copy(update={"devices": [entry]}).dump(path)
    assert main(["check", str(path), "--timeout", "2"]) == 1
    assert "FAILED" in capsys.readouterr().out
