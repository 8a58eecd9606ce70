"""docs/howto/query-samples.md: its python blocks run verbatim in an empty folder and every
claim holds; the command line then reads the registry they wrote."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from couponlab.cli import main

ROOT = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).with_name("run_python_blocks.py")
PAGE = ROOT / "docs" / "howto" / "query-samples.md"


def test_the_howto_runs_verbatim_and_the_cli_reads_what_it_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    result = subprocess.run(
        [sys.executable, str(RUNNER), str(PAGE)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "every claim held" in result.stdout
    monkeypatch.chdir(tmp_path)
    assert main(["samples", "list"]) == 0  # the default path, runs/samples.sqlite
    rows = [line.split()[:4] for line in capsys.readouterr().out.splitlines()[1:]]
    assert rows == [
        ["demo-01-C01", "coupon", "-", "furnace1.slot1"],
        ["demo-01-C01-T1", "specimen", "demo-01-C01", "frame1"],
    ]
