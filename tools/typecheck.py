"""Type-check the whole ``couponlab`` namespace with mypy (strict).

The namespace is assembled from four folders (src/couponlab, drivers, simulators, plans) by
setuptools' package-dir mapping, which mypy cannot follow. This script lays the same tree
out as symlinks under ``build/typecheck`` and runs mypy on it. Usage::

    python tools/typecheck.py
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TREE = ROOT / "build" / "typecheck"
MOUNTS = {"drivers": "drivers", "simulators": "simulators", "plans": "plans"}


def main() -> int:
    """Build the symlink tree and run mypy; return mypy's exit code."""
    if TREE.exists():
        shutil.rmtree(TREE)
    pkg = TREE / "couponlab"
    pkg.mkdir(parents=True)
    for item in (ROOT / "src" / "couponlab").iterdir():
        if item.name != "__pycache__":
            (pkg / item.name).symlink_to(item)
    for name, folder in MOUNTS.items():
        (pkg / name).symlink_to(ROOT / folder)
    cmd = [
        sys.executable,
        "-m",
        "mypy",
        "--config-file",
        str(ROOT / "pyproject.toml"),
        "-p",
        "couponlab",
    ]
    return subprocess.call(cmd, cwd=TREE)


if __name__ == "__main__":
    sys.exit(main())
