"""Line transport over a TCP socket with asyncio streams (twins, LAN instruments)."""

from __future__ import annotations

import asyncio

from couponlab.errors import InputError
from couponlab.transports._base import LineTransport
from couponlab.transports._deadline import reply_deadline


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
        self._buf = bytearray()
        """Received, not yet read: what follows a reply in the same segment."""

    @property
    def address(self) -> str:
        """Return ``host:port``."""
        return f"{self.host}:{self.port}"

    async def _open(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        self._buf.clear()

    async def _close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            try:
                # a peer that stopped reading (a stalled instrument) keeps unsent bytes, and
                # the close, pending: bounded, then the socket is aborted
                async with reply_deadline(self.timeout):
                    await writer.wait_closed()
            except TimeoutError:
                writer.transport.abort()
            except OSError:
                pass

    async def _send(self, data: bytes) -> None:
        """Send ``data``; a peer that takes none of it within the timeout is a lost link
        (``TimeoutError``, an ``OSError``)."""
        assert self._writer is not None
        self._writer.write(data)
        async with reply_deadline(self.timeout):
            await self._writer.drain()

    async def _fill(self) -> None:
        assert self._reader is not None
        chunk = await self._reader.read(65536)
        if not chunk:
            raise EOFError("peer closed the connection")
        self._buf += chunk

    async def _recv_until(self, terminator: bytes) -> bytes:
        while (end := self._buf.find(terminator)) < 0:
            await self._fill()
        end += len(terminator)
        line = bytes(self._buf[:end])
        del self._buf[:end]
        return line

    async def _recv_exactly(self, n: int) -> bytes:
        while len(self._buf) < n:
            await self._fill()
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    def _discard_input(self) -> bytes:
        """Drop what was received after the last reply (it is no answer to the next command)."""
        stale = bytes(self._buf)
        self._buf.clear()
        return stale
