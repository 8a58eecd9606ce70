"""IEEE 488.2 ``*OPC?`` that waits: the reply comes when the instrument's pending operation
(a move, a dwell) has finished on its own clock, as on a real instrument.

:class:`OpcDispatcher` handles the commands of a line up to ``*OPC?``; if an operation is
pending it returns a coroutine that sleeps until the operation ends (virtual time / speed-up),
brings the world up to date and handles the rest of the line. :class:`OpcLineServer` awaits
such replies before writing them. A driver may thus send ``MOV:X 12;:SYST:ERR?;:*OPC?;:STAT?``
and get the settled state in one exchange (docs/protocols/xy-stage-scpi.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from couponlab.simulators.line_server import LineServer
from couponlab.simulators.scpi import ScpiDispatcher
from couponlab.simulators.world import World

log = logging.getLogger(__name__)


class OpcDispatcher(ScpiDispatcher):
    """A dispatcher whose ``*OPC?`` waits for :meth:`pending_s` to reach zero.

    Parameters
    ----------
    idn
        ``*IDN?`` reply.
    world
        The world whose clock the wait follows.
    pending_s
        Returns the virtual seconds until the pending operation ends (0 when none).
    """

    def __init__(self, idn: str, world: World, pending_s: Callable[[], float]) -> None:
        super().__init__(idn)
        self.world = world
        self.pending_s = pending_s

    def handle(self, line: str) -> Any:
        """Handle a line; return a coroutine instead of a reply when ``*OPC?`` must wait."""
        parts = line.split(";")
        for i, part in enumerate(parts):
            if part.strip().lstrip(":").upper() != "*OPC?":
                continue
            head = super().handle(";".join(parts[:i]))
            if isinstance(head, bytes):
                return head
            self.world.sync()  # an operation shorter than this line's handling is over
            if self.pending_s() <= 0:
                tail = super().handle(";".join(parts[i + 1 :])) if i + 1 < len(parts) else None
                if isinstance(tail, bytes):
                    tail = tail.decode("ascii", errors="replace").rstrip("\n")
                return ";".join(p for p in (head, "1", tail) if p)
            return self._wait_then(head, ";".join(parts[i + 1 :]))
        return super().handle(line)

    async def _wait_then(self, head: str | None, rest: str) -> str:
        while True:
            left = self.pending_s()
            if left <= 0:
                break
            wall = left / self.world.speedup
            # the loop's timers resolve about 1 ms: below that, yield and look again
            await asyncio.sleep(wall if wall > 1e-3 else 0)
            self.world.sync()
        tail = super().handle(rest) if rest.strip() else None
        if isinstance(tail, bytes):
            tail = tail.decode("ascii", errors="replace").rstrip("\n")
        return ";".join(p for p in (head, "1", tail) if p)


class OpcLineServer(LineServer):
    """A :class:`LineServer` that awaits replies given as coroutines (a waiting ``*OPC?``)."""

    async def _serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        term = self.terminator.encode(self.encoding)
        try:
            while True:
                try:
                    raw = await reader.readuntil(term)
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                except asyncio.LimitOverrunError:
                    log.warning("line too long from client; closing")
                    break
                line = raw[: -len(term)].decode(self.encoding, errors="replace").rstrip("\r")
                self.world.sync()
                reply: Any = self.handler(line)
                if inspect.iscoroutine(reply):
                    coro: Coroutine[Any, Any, str] = reply
                    reply = await coro
                if reply is None:
                    continue
                data = (
                    reply
                    if isinstance(reply, bytes)
                    else (reply + self.terminator).encode(self.encoding, errors="replace")
                )
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._conns.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()


__all__ = ["OpcDispatcher", "OpcLineServer"]
