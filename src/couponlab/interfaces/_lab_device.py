"""What every couponlab device offers, whatever its family."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from bluesky.protocols import Readable


@runtime_checkable
class LabDevice(Readable[Any], Protocol):
    """A connected instrument: identity, state, readings and a safe state.

    Every driver class also provides ``from_lab_entry(entry)`` (a classmethod building it
    from a :class:`~couponlab.labfile.DeviceEntry`).
    """

    async def identify(self) -> str:
        """Return the instrument's identity (maker, model, serial, firmware)."""
        ...

    async def state(self) -> str:
        """Return a short human-readable state ("standby", "running", "interlock" ...)."""
        ...

    async def safe_state(self) -> None:
        """Put the instrument into its safe state (heaters to standby, feeders off ...)."""
        ...

    async def disconnect(self) -> None:
        """Close the link to the instrument (``connect()`` opens it again)."""
        ...
