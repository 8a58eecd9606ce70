"""Line transport over a TCP socket with asyncio streams (twins, LAN instruments)."""

from __future__ import annotations

import asyncio
import contextlib

from couponlab.errors import InputError
from couponlab.transports._base import LineTransport


class TcpLineTransport(LineTransport):
    """A :class:`LineTransport` over TCP.

    Parameters
    ----------
    host, port
        Where the instrument (or its twin) listens; port in 1..65535.
    **kwargs
        Passed to :class:`LineTransport` (timeout, terminations, encoding, backoff).
    """

    def __init__(self, device: str, host: str, port: int, **kwargs: object) -> None:
        if not 0 < port < 65536:
            raise InputError(device, f"port must be in 1..65535, got {port}")
        super().__init__(device, **kwargs)  # type: ignore[arg-type]
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    @property
    def address(self) -> str:
        """Return ``host:port``."""
        return f"{self.host}:{self.port}"

    async def _open(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)

    async def _close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _send(self, data: bytes) -> None:
        assert self._writer is not None
        self._writer.write(data)
        await self._writer.drain()

    async def _recv_until(self, terminator: bytes) -> bytes:
        assert self._reader is not None
        try:
            return await self._reader.readuntil(terminator)
        except asyncio.IncompleteReadError as exc:
            raise EOFError("peer closed the connection") from exc

    async def _recv_exactly(self, n: int) -> bytes:
        assert self._reader is not None
        try:
            return await self._reader.readexactly(n)
        except asyncio.IncompleteReadError as exc:
            raise EOFError("peer closed the connection") from exc
