"""A fresh registry in a temporary folder, with one campaign and one coupon on the plate."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from couponlab.samples import SampleRegistry

SPEC = {"lab": "sim", "coupons": [{"system": "Ni-Cr"}, {"system": "Ni-Al"}]}


@pytest.fixture
def spec() -> dict[str, Any]:
    """The spec the ``reg`` fixture's campaign K1 was started with."""
    return {**SPEC}


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "runs" / "samples.sqlite"


@pytest.fixture
def reg(db: Path) -> Iterator[SampleRegistry]:
    with SampleRegistry(db) as r:
        r.start_campaign("K1", SPEC)
        r.add_coupon(
            "K1-C01", "K1", print_params={"low": 0.1, "high": 0.3}, location="build_plate"
        )
        yield r
