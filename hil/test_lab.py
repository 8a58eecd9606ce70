"""Every device of the lab, whatever its family: connects, identifies, reports a state, reads
with units, and reaches its safe state."""

from __future__ import annotations

from typing import Any

import pytest

from couponlab.interfaces import LabDevice
from couponlab.lab import make_device
from couponlab.labfile import LabFile


async def test_every_device_connects_reads_and_goes_safe(lab: LabFile) -> None:
    for entry in lab.devices:
        device: Any = make_device(entry)
        await device.connect(timeout=10.0)
        try:
            assert isinstance(device, LabDevice), f"{entry.name} does not implement LabDevice"
            identity = await device.identify()
            assert identity.strip(), f"{entry.name} has an empty identity"
            assert (await device.state()).strip()
            reading = await device.read()
            assert reading, f"{entry.name} reads nothing"
            await device.safe_state()
        finally:
            await device.disconnect()


@pytest.mark.parametrize("field", ["units"])
async def test_numeric_readings_carry_units(lab: LabFile, field: str) -> None:
    for entry in lab.devices:
        device: Any = make_device(entry)
        await device.connect(timeout=10.0)
        try:
            for key, desc in (await device.describe()).items():
                if desc["dtype"] == "number":
                    assert desc.get(field), f"{key} of {entry.name} has no {field}"
        finally:
            await device.disconnect()
