"""The fault-injection how-to's python blocks run verbatim against the bundled simulated lab,
and every result or error their comments claim holds (tests/docs/run_python_blocks.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).with_name("run_python_blocks.py")
HOWTO = ROOT / "docs" / "howto" / "inject-faults.md"


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_the_inject_faults_howto_runs_verbatim(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(RUNNER), str(HOWTO)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=360,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        check=False,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr[-6000:]}"
    assert "every claim held" in result.stdout
