"""README's test command collects tests/ and hil/ in one pytest run, in pytest's default
"prepend" import mode, where folders without ``__init__.py`` make a test module's name its
basename: two test modules with one basename break the collection of the whole run
(``import file mismatch``). So every test file's name is unique across both folders."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_test_module_basenames_are_unique_across_tests_and_hil() -> None:
    names = Counter(
        p.name for folder in ("tests", "hil") for p in (ROOT / folder).rglob("test_*.py")
    )
    assert sorted(n for n, count in names.items() if count > 1) == []
