"""Example counts of the property tests: the default share, the full count when asked."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from couponlab.testing import thoroughness
from couponlab.testing.thoroughness import THOROUGH_ENV, examples


@pytest.fixture
def restore() -> Iterator[None]:
    was = thoroughness._thorough
    yield None
    thoroughness.set_thorough(was)


def test_the_default_run_draws_the_default_count(
    restore: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(THOROUGH_ENV, raising=False)
    thoroughness.set_thorough(False)
    assert examples(60, 200) == 60


def test_thorough_by_option_or_environment_draws_the_full_count(
    restore: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(THOROUGH_ENV, raising=False)
    thoroughness.set_thorough(True)
    assert examples(60, 200) == 200
    thoroughness.set_thorough(False)
    monkeypatch.setenv(THOROUGH_ENV, "1")
    assert examples(60, 200) == 200
    monkeypatch.setenv(THOROUGH_ENV, "yes")  # only "1" asks for it
    assert examples(60, 200) == 60


@pytest.mark.parametrize(("default", "full"), [(0, 10), (11, 10), (-1, 5)])
def test_counts_out_of_order_are_refused(default: int, full: int) -> None:
    with pytest.raises(ValueError, match="default <= thorough"):
        examples(default, full)


def test_the_option_reaches_the_counts(restore: object, pytester: pytest.Pytester) -> None:
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    pytester.makepyfile(
        """
        from couponlab.testing.thoroughness import examples

        def test_count():
            assert examples(1, 5) == 5
        """
    )
    default = pytester.runpytest_inprocess("-p", "couponlab.testing.pytest_plugin")
    default.assert_outcomes(failed=1)  # drew 1, not 5
    assert "couponlab: property tests draw default counts" in default.stdout.str()
    result = pytester.runpytest_inprocess("-p", "couponlab.testing.pytest_plugin", "--thorough")
    result.assert_outcomes(passed=1)
    assert "couponlab: property tests draw thorough counts" in result.stdout.str()
