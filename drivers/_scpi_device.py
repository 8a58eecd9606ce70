"""What every SCPI/line device of couponlab shares on top of
:class:`~couponlab.transports.ScpiClient`: a connector that opens the client on connect and
then reads the instrument's static state."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ophyd_async.core import Device, DeviceConnector

from couponlab.errors import ProtocolError
from couponlab.transports import ScpiClient


class ScpiConnector(DeviceConnector):
    """Open the device's :class:`ScpiClient` on connect, then run its ``on_connect`` hook.

    Parameters
    ----------
    client
        The client to open (its clock rate is read at open).
    on_connect
        Called after the link is open (reads static instrument state into signals).
    """

    def __init__(self, client: ScpiClient, on_connect: Callable[[], Awaitable[None]]) -> None:
        self.client = client
        self.on_connect = on_connect

    async def connect_real(self, device: Device, timeout: float, force_reconnect: bool) -> None:
        """Open the link, connect the children, then run ``on_connect``."""
        await self.client.open(clock=True)
        await super().connect_real(device, timeout, force_reconnect)
        await self.on_connect()


def require(value: Any, device: str, what: str) -> Any:
    """Return ``value``; raise ProtocolError if it is None (state read at connect missing)."""
    if value is None:
        raise ProtocolError(device, f"{what} unknown: connect the device first")
    return value


__all__ = ["ScpiConnector", "require"]
