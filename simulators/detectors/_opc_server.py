"""IEEE 488.2 ``*OPC?`` that waits: the reply comes when the instrument's pending operation
(a move, a dwell) has finished on its own clock, as on a real instrument.

:class:`OpcDispatcher` handles the commands of a line up to ``*OPC?``; if an operation is
pending it returns a coroutine that sleeps until the operation ends (virtual time / speed-up),
brings the world up to date and handles the rest of the line;
:class:`~couponlab.simulators.line_server.LineServer` awaits such replies before writing
them. A driver may thus send ``MOV:X 12;:SYST:ERR?;:*OPC?;:STAT?`` and get the settled
state in one exchange (docs/protocols/xy-stage-scpi.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from couponlab.simulators.scpi import ScpiDispatcher
from couponlab.simulators.world import World


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


__all__ = ["OpcDispatcher"]
