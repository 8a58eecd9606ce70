"""The SCPI link of the test frame: checked settings, typed replies, instrument-timed polling.

The shared part (typed replies, clock rate) is
:class:`~couponlab.drivers._scpi_link.ScpiLineLink`.
"""

from __future__ import annotations

import asyncio

from couponlab.drivers._scpi_link import ScpiLineLink
from couponlab.errors import ProtocolError
from couponlab.transports import VisaLineTransport

NO_ERROR = '0,"No error"'


class FrameLink(ScpiLineLink):
    """Request/reply with the frame over one :class:`~couponlab.transports.LineTransport`.

    A setting is sent together with its error check (``CMD;:SYST:ERR?``) in one round trip;
    an instrument error becomes a :class:`~couponlab.errors.ProtocolError` that names the
    device, the command and the instrument's message.

    Parameters
    ----------
    device
        Device name for error messages.
    address
        VISA resource name, e.g. ``TCPIP::127.0.0.1::5025::SOCKET``.
    timeout
        Timeout of one exchange, s (> 0).
    """

    def __init__(self, device: str, address: str, *, timeout: float = 2.0) -> None:
        super().__init__(device, address, VisaLineTransport(device, address, timeout=timeout))

    async def open(self) -> None:
        """Connect, clear the error queue and read the instrument's clock rate."""
        await self.transport.connect()
        await self.transport.write("*CLS")
        await self.read_clock_rate()

    async def send(self, command: str) -> None:
        """Send a command and its error check; raise :class:`ProtocolError` on an error."""
        reply = await self.transport.query(f"{command};:SYST:ERR?")
        if reply != NO_ERROR:
            raise ProtocolError(self.device, f"{command!r} refused by the instrument: {reply}")

    async def sleep_instrument(
        self, seconds: float, *, low: float = 0.002, high: float = 0.1
    ) -> None:
        """Sleep ``seconds`` of instrument time, bounded to ``low .. high`` s of wall time."""
        await asyncio.sleep(min(high, max(low, seconds / self.clock_rate)))


__all__ = ["NO_ERROR", "FrameLink"]
