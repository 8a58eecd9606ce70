"""Every detector and stage driver passes its family's conformance suite against its twin."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bluesky.run_engine import call_in_bluesky_event_loop, get_bluesky_event_loop
from detectors_lab import BackgroundTwins, detector_lab, grow_coupon

from couponlab.lab import make_device
from couponlab.testing.detectors import CHECKS

FAMILY_OF = {
    "stage": "xy_stage",
    "profiler": "oxide_profiler",
    "xrf": "xrf_probe",
    "tcs": "thermocouple_scanner",
    "cam": "camera",
}
CASES = [(name, check) for name, fam in FAMILY_OF.items() for check in sorted(CHECKS[fam])]


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[dict[str, Any]]:
    from bluesky import RunEngine

    RunEngine({})  # starts the bluesky event loop the devices live on
    assert get_bluesky_event_loop() is not None
    twins = BackgroundTwins(detector_lab(camera_dir=tmp_path))
    devices: dict[str, Any] = {}
    try:
        twins.call(grow_coupon, twins.world)
        for name in FAMILY_OF:
            dev: Any = make_device(twins.lab.device(name))
            call_in_bluesky_event_loop(dev.connect(timeout=5.0))
            devices[name] = dev
        yield devices
    finally:
        for dev in devices.values():
            call_in_bluesky_event_loop(dev.disconnect())
        twins.stop()


@pytest.mark.parametrize(("device", "check"), CASES)
def test_conformance(lab: dict[str, Any], device: str, check: str) -> None:
    call_in_bluesky_event_loop(CHECKS[FAMILY_OF[device]][check](lab[device]))
