"""Render the screenshots of a live session in docs/images/ (issue 13).

Runs ``couponlab demo`` on the bundled twins with the live feedback of ``couponlab ipython``
subscribed (:class:`couponlab.plans.live.LiveFeedback`, Agg backend: no screen), then writes
each live figure as it stood at the end of its run, and the terminal's live tables as text
rendered to a PNG. Usage: ``python tools/live_screenshots.py [OUT_DIR]`` (default
docs/images); the demo's run documents go to a temporary folder.
"""

from __future__ import annotations

import sys
import tempfile
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from couponlab.cli import sample_lab_path
from couponlab.labfile import load_lab
from couponlab.plans.demo import run_demo
from couponlab.plans.live import LiveFeedback


def terminal_png(lines: list[str], path: Path, max_lines: int = 46) -> None:
    """Render terminal text (the last ``max_lines`` lines) to a PNG, white on dark."""
    shown = [line[:110] for line in lines[-max_lines:]]
    fig = plt.figure(figsize=(10.5, 0.155 * len(shown) + 0.3), facecolor="#1e1e1e")
    fig.text(
        0.01,
        0.99,
        "\n".join(shown),
        family="monospace",
        size=8.5,
        color="#e8e8e8",
        va="top",
        ha="left",
    )
    fig.savefig(path, dpi=110, facecolor=fig.get_facecolor())
    plt.close(fig)


def main(out: Path) -> int:
    """Run the demo with live feedback; write the PNGs to ``out``."""
    lines: list[str] = []

    def table(text: str) -> None:
        lines.extend(text.splitlines())

    live = LiveFeedback(out=table)
    with tempfile.TemporaryDirectory(prefix="couponlab-live-") as runs:
        code = run_demo(load_lab(sample_lab_path()), Path(runs), subscribers=[live])
        paths = live.save(out / "live")
    terminal_png(lines, out / "live" / "live-table.png")
    live.close()
    for path in [*paths, out / "live" / "live-table.png"]:
        print(path)
    print(textwrap.shorten(f"demo exit code {code}", 80))
    return code


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/images")))
