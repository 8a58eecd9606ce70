"""What a furnace lab entry may hold: its ``settings`` and ``limits`` (unknown keys refused)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StrictInt

from couponlab.lab_settings import DeviceLimits, DeviceSettings, Watchdog, quantity, temperature
from couponlab.transports import OpcUaSecuritySettings


class FurnaceSettings(DeviceSettings):
    """Settings of an OPC UA gradient furnace.

    Attributes
    ----------
    zones
        Number of zones N the instrument must have (1..32; checked at connect).
    poll_period_s
        Wall-clock period of the status polls, s (0.005..5).
    namespace_uri
        OPC UA namespace of the furnace's nodes (None: the driver's default).
    watchdog_s
        Communication watchdog armed at connect, s (0 = off, the default; 10 suggested).
    carrier_slots
        Slots of the coupon carrier the instrument must have (1..16; checked at connect):
        coupons side by side across the carrier, all at one offset along the tube.
    security
        OPC UA security (policy, user, where the password is, certificate folder); absent:
        NoSecurity, anonymous (docs/decisions/0069-opcua-security.md).
    """

    zones: Annotated[StrictInt, Field(ge=1, le=32)] = 8
    poll_period_s: Annotated[float, quantity("s", ge=0.005, le=5.0)] = 0.05
    namespace_uri: str | None = None
    watchdog_s: Watchdog = 0.0
    carrier_slots: Annotated[StrictInt, Field(ge=1, le=16)] = 1
    security: OpcUaSecuritySettings | None = None


class FurnaceLabLimits(DeviceLimits):
    """Lab limits of a gradient furnace.

    Attributes
    ----------
    max_temperature
        Highest setpoint the lab allows, degC (an absolute temperature above 0 degC; the
        instrument's own limit applies when absent).
    """

    max_temperature: Annotated[float | None, temperature("degC", gt=0)] = None


__all__ = ["FurnaceLabLimits", "FurnaceSettings"]
