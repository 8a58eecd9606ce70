"""Every run's start document names the couponlab version that produced it."""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

import bluesky.plan_stubs as bps
from bluesky.utils import MsgGenerator

from couponlab.run_engine import LabRunEngine


def _empty_run() -> MsgGenerator[str]:
    uid: str = yield from bps.open_run()
    yield from bps.close_run()
    return uid


def test_start_document_versions_name_couponlab() -> None:
    engine = LabRunEngine({}, call_returns_result=True)
    starts: list[dict[str, Any]] = []
    engine.subscribe(lambda name, doc: starts.append(doc) if name == "start" else None)
    engine(_empty_run())
    (start,) = starts
    assert start["versions"]["couponlab"] == version("couponlab")
    assert "bluesky" in start["versions"]  # bluesky's own entries are kept
