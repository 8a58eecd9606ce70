"""The docs link only to files inside the repository (and those files exist), and every
decision record says its status."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_stay_inside_the_repository(page: Path) -> None:
    text = page.read_text()
    bad = [m for m in re.findall(r"[\w./]*shared/\w+\.md", text)]
    prose = re.sub(r"```.*?```|`[^`\n]*`", "", text, flags=re.S)  # code is not a link
    for target in LINK.findall(prose):
        if re.match(r"^[a-z]+://", target) or target.startswith("#"):
            continue
        path = (page.parent / target.split("#")[0]).resolve()
        if not path.is_relative_to(ROOT) or not path.exists():
            bad.append(target)
    assert not bad, f"{page.relative_to(ROOT)} links outside the repository or to nothing: {bad}"


@pytest.mark.parametrize(
    "record", sorted((ROOT / "docs" / "decisions").glob("*.md")), ids=lambda p: p.name
)
def test_every_decision_record_has_a_status(record: Path) -> None:
    head = record.read_text().splitlines()[:6]
    assert any(line.startswith("Status: ") for line in head), f"{record.name} has no Status line"
