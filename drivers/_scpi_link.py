"""The SCPI request/reply link the line-protocol drivers share.

One :class:`~couponlab.transports.LineTransport` per instrument; typed replies (numbers,
IEEE 488.2 blocks) whose malformations become a :class:`ProtocolError` naming the device and
the command; the instrument's clock rate (``SYST:CLOC:RATE?``: instrument seconds per wall
second, 1 on hardware, the speed-up on a twin), so waits can follow the instrument's time.
Each family subclasses it with how it opens the link and how it checks a setting.
"""

from __future__ import annotations

from couponlab.errors import ProtocolError
from couponlab.transports import LineTransport


class ScpiLineLink:
    """Request/reply with one SCPI instrument over a line transport.

    Parameters
    ----------
    device
        Device name for error messages.
    address
        Where the instrument is (informational; the transport is already made for it).
    transport
        The transport (not yet connected).
    """

    def __init__(self, device: str, address: str, transport: LineTransport) -> None:
        self.device = device
        self.address = address
        self.transport = transport
        self.clock_rate = 1.0
        """Instrument seconds per wall second (``SYST:CLOC:RATE?``, read at open; > 0)."""

    async def read_clock_rate(self) -> None:
        """Read the instrument's clock rate into :attr:`clock_rate`.

        Raises
        ------
        ProtocolError
            The rate is not a single number > 0.
        """
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
                self.device,
                f"reply to {command!r} has {len(values)} values, expected {n}: {reply!r}",
            )
        return values

    async def query_block(self, command: str) -> bytes:
        """Send a query answered by an IEEE 488.2 definite-length block."""
        return await self.transport.query_block(command)


__all__ = ["ScpiLineLink"]
