"""The communication watchdog of the deposition line twins (cell and feeder): the
``SYST:WDOG`` commands on their SCPI-style dispatcher and the wall-clock timer
(docs/protocols/deposition-cell-serial.md and feeder-serial.md, "Communication watchdog";
docs/decisions/0008-communication-watchdogs.md).

``SYST:WDOG <s>`` arms it (0 = off, the power-on value unless ``watchdog_timeout_s`` is set
in the twin config); every line the instrument receives feeds it. When no line arrives for
the timeout (wall seconds of the link) while the instrument is active, it goes to its safe
state as ``STOP`` does, ``SYST:WDOG:REAS?`` says why, and ``SYST:WDOG:EXP?`` stays 1 until
``SYST:WDOG:RES``.
"""

from __future__ import annotations

from collections.abc import Callable

from couponlab.simulators.scpi import DATA_OUT_OF_RANGE, ScpiDispatcher, ScpiError, parse_float
from couponlab.simulators.watchdog import MAX_TIMEOUT_S, CommWatchdog
from couponlab.simulators.world import World


class LineWatchdog:
    """The watchdog of one line instrument: its commands on ``protocol`` and the timer.

    Parameters
    ----------
    world
        The shared world (synced to "now" before acting).
    protocol
        The instrument's dispatcher (the ``SYST:WDOG`` commands are registered on it; its
        ``handle`` must call :meth:`feed` for every line).
    is_active
        Return whether the instrument does something a lost client must stop.
    safe_state
        Put the instrument in its safe state, given the reason (as ``STOP`` does).
    timeout_s
        Timeout at power-on, s (0 = off).
    """

    def __init__(
        self,
        world: World,
        protocol: ScpiDispatcher,
        is_active: Callable[[], bool],
        safe_state: Callable[[str], None],
        timeout_s: float = 0.0,
    ) -> None:
        self.world = world
        self._is_active = is_active
        self._safe_state = safe_state
        self.expired = False
        """Latched when the watchdog stopped the instrument (cleared by ``SYST:WDOG:RES``)."""
        self.reason = ""
        self.timer = CommWatchdog(is_active, self._trip, timeout_s=timeout_s)
        reg = protocol.register
        reg("SYST:WDOG", self._set)
        reg("SYST:WDOG?", lambda a: f"{self.timer.timeout_s:.3f}")
        reg("SYST:WDOG:EXP?", lambda a: "1" if self.expired else "0")
        reg("SYST:WDOG:REAS?", lambda a: self.reason)
        reg("SYST:WDOG:RES", lambda a: self._reset())

    def feed(self) -> None:
        """A line arrived from a client."""
        self.timer.feed()

    async def _trip(self, reason: str) -> None:
        self.world.sync()  # act at "now" (a print may have ended meanwhile)
        if not self._is_active():
            return
        self._safe_state(reason)
        self.expired, self.reason = True, reason

    def _set(self, args: list[str]) -> None:
        value = parse_float(args, 0, "timeout")
        try:
            self.timer.set_timeout(value)
        except ValueError:
            raise ScpiError(
                DATA_OUT_OF_RANGE,
                f"Data out of range; timeout={value:g} (allowed 0..{MAX_TIMEOUT_S:g} s)",
            ) from None

    def _reset(self) -> None:
        self.expired, self.reason = False, ""

    def start(self) -> None:
        """Start the timer task (on the twin's loop)."""
        self.timer.start()

    async def stop(self) -> None:
        """Stop the timer task."""
        await self.timer.stop()


__all__ = ["LineWatchdog"]
