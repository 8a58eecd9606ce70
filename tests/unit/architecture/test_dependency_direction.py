"""Dependencies point one way: plans -> interfaces/core, drivers -> core, simulators -> core.

Runtime code never imports the simulators (only couponlab.twins may, lazily, as the one
entry point that starts twins); plans never import a vendor driver module; drivers never
import plans; nothing imports the tests.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
FOLDERS = {
    "core": ROOT / "src" / "couponlab",
    "drivers": ROOT / "drivers",
    "plans": ROOT / "plans",
    "simulators": ROOT / "simulators",
}
FORBIDDEN = {
    "core": ["couponlab.simulators", "couponlab.plans", "couponlab.drivers", "tests"],
    "drivers": ["couponlab.simulators", "couponlab.plans", "tests"],
    "plans": ["couponlab.simulators", "couponlab.drivers", "tests"],
    "simulators": ["couponlab.drivers", "couponlab.plans", "tests"],
}
# The one entry point that starts twins imports the simulators lazily, inside functions;
# the command line dispatches to the demo plan lazily.
ALLOWED_LAZY = {ROOT / "src" / "couponlab" / "twins.py", ROOT / "src" / "couponlab" / "cli.py"}


def _imports(path: Path, top_level_only: bool) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: list[tuple[int, str]] = []
    for node in nodes:
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def _sources(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("layer", sorted(FOLDERS))
def test_layer_imports_point_one_way(layer: str) -> None:
    bad: list[str] = []
    for path in _sources(FOLDERS[layer]):
        lazy_ok = path in ALLOWED_LAZY
        for lineno, module in _imports(path, top_level_only=lazy_ok):
            for prefix in FORBIDDEN[layer]:
                if module == prefix or module.startswith(prefix + "."):
                    bad.append(f"{path.relative_to(ROOT)}:{lineno} imports {module}")
    assert not bad, "imports against the dependency direction:\n" + "\n".join(bad)


def test_the_check_sees_a_violation(tmp_path: Path) -> None:
    """The scanner itself finds an import (so the test above can fail)."""
    p = tmp_path / "x.py"
    p.write_text("from couponlab.simulators.world import World\n")
    assert _imports(p, top_level_only=False) == [(1, "couponlab.simulators.world")]
