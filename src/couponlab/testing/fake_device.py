"""A lab device with no instrument behind it, for tests of what surrounds devices.

:class:`FakeLabDevice` lets tests of :class:`~couponlab.session.Session`, the ``couponlab``
command and the RunEngine's pause handling make a device fail or hang on purpose, which a
twin cannot do on demand. Its lab entry's ``settings``:

- ``safe_state``: ``"ok"`` (default), ``"error"`` (raises an
  :class:`~couponlab.errors.InstrumentTimeoutError` as a silent instrument would) or
  ``"hang"`` (never returns; the caller's timeout must end it).

It is never a stand-in for an instrument in an integration test (those use twins).
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar, Literal

from ophyd_async.core import AsyncStatus, StandardReadable, soft_signal_rw

from couponlab.errors import InputError, InstrumentTimeoutError, ProtocolError
from couponlab.lab_settings import DeviceSettings
from couponlab.labfile import DeviceEntry
from couponlab.registry import DriverSpec

SAFE_STATE_MODES = ("ok", "error", "hang")
"""Accepted values of the ``safe_state`` setting."""


class FakeSettings(DeviceSettings):
    """Settings of a :class:`FakeLabDevice`: ``safe_state`` (one of
    :data:`SAFE_STATE_MODES`)."""

    safe_state: Literal["ok", "error", "hang"] = "ok"


class FakeLabDevice(StandardReadable):
    """A readable, settable, pausable device that records what was asked of it.

    Parameters
    ----------
    name
        Device name.
    safe_state_mode
        How :meth:`safe_state` behaves: one of :data:`SAFE_STATE_MODES`.
    """

    family = "xy_stage"
    """Any family will do; this one has no twin-only settings."""
    lab_spec: ClassVar[DriverSpec] = DriverSpec(
        family="xy_stage", settings=FakeSettings, example={"address": "none://"}
    )
    """Family and settings (no twin); registered as the ``fake_lab_device`` driver."""

    def __init__(self, name: str = "", safe_state_mode: str = "ok") -> None:
        if safe_state_mode not in SAFE_STATE_MODES:
            raise InputError(
                name, f"safe_state = {safe_state_mode!r} must be one of {SAFE_STATE_MODES}"
            )
        self.safe_state_mode = safe_state_mode
        self.calls: list[str] = []
        """Names of the methods called, in order (``set``, ``stop``, ``pause`` ...)."""
        self.safe = False
        """True once :meth:`safe_state` has succeeded."""
        with self.add_children_as_readables():
            self.value = soft_signal_rw(float, 0.0, units="mm")
        super().__init__(name)

    @classmethod
    def from_lab_entry(cls, entry: DeviceEntry) -> FakeLabDevice:
        """Build from a lab entry (``settings: {safe_state: ok|error|hang}``)."""
        return cls(entry.name, FakeSettings.of(entry).safe_state)

    async def identify(self) -> str:
        """Return ``"couponlab, fake, 0, 0"``."""
        return "couponlab, fake, 0, 0"

    async def state(self) -> str:
        """Return ``"safe"`` after a successful :meth:`safe_state`, else ``"ready"``."""
        return "safe" if self.safe else "ready"

    async def safe_state(self) -> None:
        """Succeed, raise or hang, as ``safe_state_mode`` says."""
        self.calls.append("safe_state")
        if self.safe_state_mode == "error":
            raise InstrumentTimeoutError(self.name, "no reply to STOP within 2 s")
        if self.safe_state_mode == "hang":
            await asyncio.Event().wait()
        self.safe = True

    async def refuse(self) -> None:
        """Fail as an instrument that refuses a command does (a ProtocolError)."""
        raise ProtocolError(self.name, "instrument replied -222,'Data out of range'")

    def set(self, value: float) -> AsyncStatus[None]:
        """Set :attr:`value` (mm); records ``set``."""
        self.calls.append("set")
        return self.value.set(value)

    def stop(self, success: bool = True) -> None:
        """Record ``stop``."""
        self.calls.append("stop")

    def pause(self) -> None:
        """Record ``pause``."""
        self.calls.append("pause")

    def resume(self) -> None:
        """Record ``resume``."""
        self.calls.append("resume")

    async def disconnect(self) -> None:
        """Record ``disconnect``."""
        self.calls.append("disconnect")

    def __repr__(self) -> str:
        """Return ``FakeLabDevice(name)``."""
        return f"FakeLabDevice({self.name!r})"


def fake_lab_entry(name: str, safe_state: str = "ok", **extra: Any) -> dict[str, Any]:
    """Return a lab-file entry (a dict) for a :class:`FakeLabDevice`."""
    return {
        "name": name,
        "family": FakeLabDevice.family,
        "driver": "couponlab.testing.fake_device:FakeLabDevice",
        "address": "none://",
        "settings": {"safe_state": safe_state},
        **extra,
    }


__all__ = ["SAFE_STATE_MODES", "FakeLabDevice", "FakeSettings", "fake_lab_entry"]
