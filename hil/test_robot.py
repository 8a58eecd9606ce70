"""HIL checks of the sample-transfer family: every transfer robot of the lab file passes the
conformance suite. The checks that move a sample run only against twins: on hardware they
are skipped (they would move a dummy sample between two free rack places)."""

from __future__ import annotations

from typing import Any

import pytest

from couponlab.lab import make_device
from couponlab.labfile import LabFile
from couponlab.testing.robot import MOVING, TRANSFER_CHECKS, TransferConformance


@pytest.mark.parametrize("check", sorted(TRANSFER_CHECKS))
async def test_transfer_robots_conform(lab: LabFile, check: str) -> None:
    entries = lab.by_family("transfer_robot")
    if not entries:
        pytest.skip(f"lab {lab.name!r} has no transfer_robot device")
    for entry in entries:
        if check in MOVING and not entry.twin:
            pytest.skip(f"{entry.name}: {check} moves a sample (twins only)")
        robot: Any = make_device(entry)
        await robot.connect(timeout=10.0)
        try:
            await TRANSFER_CHECKS[check](TransferConformance(robot, timeout=60.0))
        finally:
            await robot.safe_state()
            await robot.disconnect()
