"""Which twin stands in for each instrument family.

Each family's twin module provides ``async def start_twin(world, entry) -> RunningTwin``.
Add one line here per family; the module is imported only when a lab asks for that twin.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from typing import Protocol

from couponlab.labfile import DeviceEntry
from couponlab.simulators.world import World

TWINS: dict[str, str] = {
    "gradient_furnace": "couponlab.simulators.furnace:start_twin",
    "test_frame": "couponlab.simulators.frame:start_twin",
    "powder_feeder": "couponlab.simulators.deposition.feeder_twin:start_twin",
    "deposition_cell": "couponlab.simulators.deposition.cell_twin:start_twin",
    "xy_stage": "couponlab.simulators.stage.xy_stage:start_twin",
    "thermocouple_scanner": "couponlab.simulators.detectors.thermocouple_scanner:start_twin",
    "oxide_profiler": "couponlab.simulators.detectors.oxide_profiler:start_twin",
    "xrf_probe": "couponlab.simulators.detectors.xrf_probe:start_twin",
    "camera": "couponlab.simulators.detectors.camera:start_twin",
}
"""Family name -> ``"module:function"`` that starts its twin."""


class RunningTwin(Protocol):
    """A twin serving its wire protocol."""

    address: str
    """The resolved address a driver connects to (with the real port)."""

    async def stop(self) -> None:
        """Stop serving and release the port."""
        ...


StartTwin = Callable[[World, DeviceEntry], Awaitable[RunningTwin]]


def twin_starter(family: str) -> StartTwin:
    """Return the ``start_twin`` function of a family; raise ``KeyError`` if none exists."""
    try:
        path = TWINS[family]
    except KeyError:
        raise KeyError(f"no twin for family {family!r}; have {sorted(TWINS)}") from None
    module, func = path.split(":")
    starter: StartTwin = getattr(importlib.import_module(module), func)
    return starter


__all__ = ["TWINS", "RunningTwin", "StartTwin", "twin_starter"]
