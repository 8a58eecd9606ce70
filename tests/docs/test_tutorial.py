"""The tutorial's python blocks run verbatim, in order, in a fresh interpreter whose working
directory is a temporary folder, and every result or error their comments claim holds
(run_python_blocks.py says how comments are read). The runner itself is tested first: a
claim that does not hold, an unexpected error and an expected error that does not come all
fail."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).with_name("run_python_blocks.py")
TUTORIAL = ROOT / "docs" / "tutorial" / "simulated-campaign.md"


def _run(page: Path, cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RUNNER), str(page)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        check=False,
    )


def _page(tmp_path: Path, *blocks: str) -> Path:
    text = "# A page\n\n" + "\n\nSome prose.\n\n".join(f"```python\n{b}\n```" for b in blocks)
    page = tmp_path / "page.md"
    page.write_text(text + "\n")
    return page


@pytest.mark.parametrize(
    ("blocks", "verdict"),
    [
        (["x = 2\nx * 3  # 6", "x + 1  # 3: and the comment goes on"], "every claim held"),
        (["x = [1, 2, 3]\nx  # [1, 2, ...]", "'abcdef'  # 'abc...'"], "every claim held"),
        (["int('z')\n# ValueError: invalid literal", "1  # 1"], "every claim held"),
        (["x = 2", "x * 3  # 7"], "gave 6; the comment says 7"),
        (["x = [1, 2, 3]\nx  # [2, ...]"], "the comment says [2, Ellipsis]"),
        (["int('z')"], "raised ValueError"),
        (["int('1')  # ValueError: it raises"], "raised nothing; the comment says ['ValueError']"),
        (["int('z')  # KeyError: wrong type"], "the comment says ['KeyError']"),
        (["y = 1", "undefined_name"], "raised NameError"),
    ],
)
def test_the_runner_checks_every_claim(tmp_path: Path, blocks: list[str], verdict: str) -> None:
    result = _run(_page(tmp_path, *blocks), tmp_path, timeout=60)
    passed = "every claim held" in verdict
    assert result.returncode == (0 if passed else 1), result.stderr
    assert verdict in (result.stdout if passed else result.stderr)


def test_the_runner_runs_blocks_in_order_in_one_namespace(tmp_path: Path) -> None:
    page = _page(tmp_path, "a = 1", "b = a + 1", "b  # 2", "open('made.txt', 'w').close()")
    result = _run(page, tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "4 statements ran" in result.stdout
    assert (tmp_path / "made.txt").exists()  # the working directory is the caller's


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_tutorial_runs_verbatim(tmp_path: Path) -> None:
    result = _run(TUTORIAL, tmp_path, timeout=540)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr[-6000:]}"
    assert "every claim held" in result.stdout
    runs = list((tmp_path / "runs").glob("*.jsonl"))
    assert runs, "the tutorial's runs were not logged under its working directory"
