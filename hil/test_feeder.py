"""HIL checks of the deposition family: every powder feeder and deposition cell of the lab
file passes the conformance suite (safe on hardware: the cell check never fires the laser)."""

from __future__ import annotations

from typing import Any

import pytest

from couponlab.lab import make_device
from couponlab.labfile import LabFile
from couponlab.testing.feeder import check_deposition_cell, check_powder_feeder


def _entries(lab: LabFile, family: str) -> list[Any]:
    entries = lab.by_family(family)
    if not entries:
        pytest.skip(f"lab {lab.name!r} has no {family} device")
    return entries


async def test_powder_feeders_conform(lab: LabFile) -> None:
    for entry in _entries(lab, "powder_feeder"):
        feeder: Any = make_device(entry)
        await feeder.connect(timeout=10.0)
        try:
            await check_powder_feeder(feeder)
        finally:
            await feeder.safe_state()
            await feeder.close()


async def test_deposition_cells_conform(lab: LabFile) -> None:
    for entry in _entries(lab, "deposition_cell"):
        cell: Any = make_device(entry)
        await cell.connect(timeout=10.0)
        try:
            await check_deposition_cell(cell)
        finally:
            await cell.safe_state()
            await cell.close()
