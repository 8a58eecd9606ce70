"""The deposition cell's communication watchdog (docs/protocols/deposition-cell-serial.md,
"Communication watchdog"; docs/decisions/0008-communication-watchdogs.md).

``SYST:WDOG <s>`` arms it (0 = off, the power-on value unless ``watchdog_timeout_s`` is set
in the twin config); every line the cell receives feeds it. When no line arrives for the
timeout (wall seconds of the link) while the cell lases, moves or prints, the cell goes to
its safe state as ``STOP`` does (print aborted, laser off, axis stopped, its feeders off),
with the print's reason and ``SYST:WDOG:REAS?`` saying why, and ``SYST:WDOG:EXP?`` latched
at 1 until ``SYST:WDOG:RES``.
"""

from __future__ import annotations

from couponlab.simulators.deposition.cell_model import CellModel
from couponlab.simulators.scpi import DATA_OUT_OF_RANGE, ScpiDispatcher, ScpiError, parse_float
from couponlab.simulators.watchdog import MAX_TIMEOUT_S, CommWatchdog


class CellWatchdog:
    """The watchdog of one cell: its commands on ``protocol`` and the wall-clock timer.

    Parameters
    ----------
    model
        The cell.
    protocol
        The cell's dispatcher (the ``SYST:WDOG`` commands are registered on it; its
        ``handle`` must call :meth:`feed` for every line).
    timeout_s
        Timeout at power-on, s (0 = off).
    """

    def __init__(self, model: CellModel, protocol: ScpiDispatcher, timeout_s: float = 0.0) -> None:
        self.model = model
        self.expired = False
        """Latched when the watchdog stopped the cell (cleared by ``SYST:WDOG:RES``)."""
        self.reason = ""
        self.timer = CommWatchdog(self.active, self._trip, timeout_s=timeout_s)
        reg = protocol.register
        reg("SYST:WDOG", self._set)
        reg("SYST:WDOG?", lambda a: f"{self.timer.timeout_s:.3f}")
        reg("SYST:WDOG:EXP?", lambda a: "1" if self.expired else "0")
        reg("SYST:WDOG:REAS?", lambda a: self.reason)
        reg("SYST:WDOG:RES", lambda a: self._reset())

    def feed(self) -> None:
        """A line arrived from a client."""
        self.timer.feed()

    def active(self) -> bool:
        """Return whether the cell lases, moves or prints (what a lost client must stop)."""
        m = self.model
        return m.laser_on or m.busy() or m.print_state == "RUNNING"

    async def _trip(self, reason: str) -> None:
        self.model.world.sync()  # act at "now" (a print may have ended meanwhile)
        if not self.active():
            return
        self.model.stop(reason)
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


__all__ = ["CellWatchdog"]
