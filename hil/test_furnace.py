"""The gradient-furnace conformance suite against every furnace of the ``--lab`` file.

On a twin the checks run in seconds (the world's speed-up); on hardware they heat to the
moderate temperatures of :class:`~couponlab.testing.furnace.FurnaceConformance` and wait in
real time (each long action is allowed 2 h of instrument time). The interlock check trips the
interlock by lowering its limit, so it runs on twins only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from couponlab.interfaces.furnace import GradientFurnace
from couponlab.lab import make_device
from couponlab.labfile import LabFile
from couponlab.testing.furnace import FURNACE_CHECKS, FurnaceConformance

INSTRUMENT_TIME_PER_ACTION_S = 7200.0


async def _limit_trip(
    device: Any,
) -> tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]:
    """Return (trip, recover): lower the interlock limit below every zone, then restore it.

    The driver never writes an interlock limit above the lab's ``max_temperature``
    (decision 0041): a default above it (the twin's 1225 degC) comes back as the lab limit.
    """
    limit = min(await device.interlock.limit.get_value(), device.lab_max_temperature_c)

    async def trip() -> None:
        await device.interlock.limit.set(100.0)

    async def recover() -> None:
        await device.interlock.limit.set(limit)

    return trip, recover


@pytest.mark.parametrize("check", list(FURNACE_CHECKS))
async def test_furnace_conformance(lab: LabFile, check: str) -> None:
    furnaces = lab.by_family("gradient_furnace")
    if not furnaces:
        pytest.skip(f"lab {lab.name!r} has no gradient_furnace device")
    real = [e.name for e in furnaces if not e.twin]
    if check == "interlock":  # never trip a real furnace's interlock on purpose
        furnaces = [e for e in furnaces if e.twin]
        if not furnaces:
            pytest.skip(f"interlock trips only twins; {', '.join(real)} not checked (real)")
    for entry in furnaces:
        name = entry.name
        device: Any = make_device(entry)
        await device.connect(timeout=10.0)
        try:
            assert isinstance(device, GradientFurnace), f"{name} is not a GradientFurnace"
            speed_up = float(lab.world.get("speedup", 1.0)) if entry.twin else 1.0
            ctx = FurnaceConformance(
                device, timeout=30.0 + INSTRUMENT_TIME_PER_ACTION_S / max(speed_up, 1.0)
            )
            if check == "interlock":
                ctx.trip, ctx.recover = await _limit_trip(device)
            await FURNACE_CHECKS[check](ctx)
        finally:
            await device.safe_state()
            disconnect = getattr(device, "disconnect", None)
            if disconnect is not None:
                await disconnect()
    if check == "interlock" and real:
        checked = ", ".join(e.name for e in furnaces)
        pytest.skip(f"interlock checked on {checked} only; {', '.join(real)} not checked (real)")
