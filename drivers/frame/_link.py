"""The SCPI link of the test frame: checked settings, typed replies, instrument-timed polling."""

from __future__ import annotations

import asyncio

from couponlab.errors import ProtocolError
from couponlab.transports import LineTransport, VisaLineTransport

NO_ERROR = '0,"No error"'


class FrameLink:
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
        self.device = device
        self.address = address
        self.transport: LineTransport = VisaLineTransport(device, address, timeout=timeout)
        self.clock_rate = 1.0
        """Instrument seconds per wall second (``SYST:CLOC:RATE?``; 1 on hardware)."""

    async def open(self) -> None:
        """Connect, clear the error queue and read the instrument's clock rate."""
        await self.transport.connect()
        await self.transport.write("*CLS")
        (rate,) = await self.query_floats("SYST:CLOC:RATE?", 1)
        if not rate > 0:
            raise ProtocolError(self.device, f"clock rate {rate} is not > 0")
        self.clock_rate = rate

    async def close(self) -> None:
        """Close the link (idempotent)."""
        await self.transport.close()

    async def query(self, command: str) -> str:
        """Send a query and return its reply line."""
        return await self.transport.query(command)

    async def query_floats(self, command: str, n: int | None = None) -> list[float]:
        """Send a query whose reply is comma-separated numbers (exactly ``n`` if given)."""
        reply = await self.transport.query(command)
        try:
            values = [float(v) for v in reply.split(",")]
        except ValueError:
            raise ProtocolError(
                self.device, f"reply to {command!r} is not numeric: {reply!r}"
            ) from None
        if n is not None and len(values) != n:
            raise ProtocolError(
                self.device, f"reply to {command!r} has {len(values)} values, expected {n}"
            )
        return values

    async def send(self, command: str) -> None:
        """Send a command and its error check; raise :class:`ProtocolError` on an error."""
        reply = await self.transport.query(f"{command};:SYST:ERR?")
        if reply != NO_ERROR:
            raise ProtocolError(self.device, f"{command!r} refused by the instrument: {reply}")

    async def query_block(self, command: str) -> bytes:
        """Send a query answered by an IEEE 488.2 definite-length block."""
        return await self.transport.query_block(command)

    async def sleep_instrument(
        self, seconds: float, *, low: float = 0.002, high: float = 0.1
    ) -> None:
        """Sleep ``seconds`` of instrument time, bounded to ``low .. high`` s of wall time."""
        await asyncio.sleep(min(high, max(low, seconds / self.clock_rate)))


__all__ = ["NO_ERROR", "FrameLink"]
