"""HIL checks of the detectors and the x-y stage: every device of these families in the lab
file passes its conformance suite (couponlab.testing.detectors). A stage check moves the
stage by at most 1 mm inside its soft limits; a camera check takes one frame and removes the
file it wrote when that file is reachable from here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from couponlab.lab import make_device
from couponlab.labfile import LabFile
from couponlab.testing.detectors import CHECKS

CASES = [(family, check) for family in sorted(CHECKS) for check in sorted(CHECKS[family])]


@pytest.mark.parametrize(("family", "check"), CASES)
async def test_detectors_conform(lab: LabFile, family: str, check: str, tmp_path: Path) -> None:
    entries = lab.by_family(family)
    if not entries:
        pytest.skip(f"lab {lab.name!r} has no {family} device")
    for entry in entries:
        device: Any = make_device(entry, out_dir=tmp_path)  # files: tmp_path or data_dir
        await device.connect(timeout=10.0)
        before = _files(entry.settings.get("data_dir"))
        try:
            await CHECKS[family][check](device)
        finally:
            await device.safe_state()
            await device.disconnect()
            for path in _files(entry.settings.get("data_dir")) - before:
                path.unlink()


def _files(data_dir: object) -> set[Path]:
    if not isinstance(data_dir, str) or not Path(data_dir).is_dir():
        return set()
    return set(Path(data_dir).glob("*.h5"))
