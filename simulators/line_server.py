"""A TCP server for line-based twins (ASCII serial protocols, SCPI over sockets).

One handler call per received line, on the event loop that also drives the world, so a
reply sees the world at "now" (:meth:`World.sync` runs before every line). The server binds
127.0.0.1 by default; port 0 picks a free port, read back from :attr:`LineServer.port`.

A handler may return an awaitable instead of a reply (an IEEE 488.2 ``*OPC?`` that waits
for a pending operation, see ``simulators/detectors/_opc_server.py``); the server awaits it
before writing, so that client's next line waits too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from couponlab.simulators.bind_host import check_bind_host
from couponlab.simulators.line_faults import LinkFaults
from couponlab.simulators.world import World

log = logging.getLogger(__name__)

LineHandler = Callable[[str], "str | bytes | Awaitable[str | bytes | None] | None"]
"""Takes one received line (without terminator); returns a reply line (terminator added),
raw bytes (sent as they are), None (no reply), or an awaitable of one of these (a deferred
reply, e.g. a waiting ``*OPC?``)."""


class LineServer:
    """Serve a line handler over TCP.

    Parameters
    ----------
    world
        World to bring up to date before each line.
    handler
        Called once per line; may return an awaitable reply (awaited before writing).
    host, port
        Where to listen (127.0.0.1 and a free port by default).
    terminator
        Line terminator of both directions (``"\\n"`` by default; ``"\\r"`` is stripped).
    encoding
        Text encoding (``"ascii"``).
    on_error
        The instrument's reply to a line whose handler raised (None: no reply). The
        exception is logged and the connection stays open either way. SCPI dispatchers
        answer their own errors through the error queue and never raise.
    limit
        Longest line, bytes (a longer one closes the connection).
    """

    def __init__(
        self,
        world: World,
        handler: LineHandler,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        terminator: str = "\n",
        encoding: str = "ascii",
        on_error: Callable[[str, Exception], str | bytes | None] | None = None,
        limit: int = 1 << 16,
    ) -> None:
        self.world = world
        self.handler = handler
        self.host = host
        self._requested_port = port
        self.terminator = terminator
        self.encoding = encoding
        self.on_error = on_error
        self.limit = limit
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.Task[None]] = set()
        self.port = 0
        self.faults = LinkFaults()
        """What the link does wrong now (injected faults; all off by default)."""

    async def start(self) -> None:
        """Start listening (on 127.0.0.1, or the operator's ``--bind`` host).

        Raises
        ------
        ValueError
            ``host`` is another address (see
            :func:`~couponlab.simulators.bind_host.check_bind_host`).
        """
        check_bind_host(self.host, "line server")
        self._server = await asyncio.start_server(
            self._serve_client, self.host, self._requested_port, limit=self.limit
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and close every client connection."""
        if self._server is not None:
            self._server.close()
            for task in list(self._conns):
                task.cancel()
            for task in list(self._conns):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self._server.wait_closed()
            self._server = None

    async def drop_clients(self) -> None:
        """Close every client connection but keep listening (to test reconnection)."""
        self.drop_clients_now()

    def drop_clients_now(self) -> None:
        """Close every client connection but keep listening (callable off a coroutine)."""
        for task in list(self._conns):
            task.cancel()

    async def _serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        term = self.terminator.encode(self.encoding)
        faults = self.faults
        try:
            while not faults.refusing:
                try:
                    raw = await reader.readuntil(term)
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                except asyncio.LimitOverrunError:
                    log.warning("line too long from client; closing")
                    break
                line = raw[: -len(term)].decode(self.encoding, errors="replace").rstrip("\r")
                await faults.hold()
                self.world.sync()
                try:
                    reply = self.handler(line)
                    if reply is not None and not isinstance(reply, (str, bytes)):
                        reply = await reply  # a deferred reply
                except Exception as exc:  # answer, never drop the link over one line
                    log.exception("twin handler failed on %r", line)
                    reply = self.on_error(line, exc) if self.on_error is not None else None
                for after in faults.after_line:
                    after()
                if reply is None:
                    continue
                data = (
                    reply
                    if isinstance(reply, bytes)
                    else (reply + self.terminator).encode(self.encoding, errors="replace")
                )
                writer.write(faults.mangle(data, term))
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._conns.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()


__all__ = ["LineHandler", "LineServer"]
