"""The furnace's state enumerations (``Furnace.State``, ``Furnace.Program.State``)."""

from __future__ import annotations

from ophyd_async.core import StrictEnum


class FurnaceState(StrictEnum):
    """``Furnace.State``."""

    STANDBY = "standby"
    MANUAL = "manual"
    PROGRAM = "program"
    INTERLOCK = "interlock"


class ProgramState(StrictEnum):
    """``Furnace.Program.State``."""

    IDLE = "idle"
    RUNNING = "running"
    HELD = "held"
    COMPLETE = "complete"
    ABORTED = "aborted"


__all__ = ["FurnaceState", "ProgramState"]
