"""Faults of a line twin (SCPI or ASCII over TCP): the link's, the error queue's, the power's,
and, through a family's own hooks, its sensors' and actuators'.

:class:`LinkFaults` is what a :class:`~couponlab.simulators.line_server.LineServer` consults
for every connection and line (refuse, hold, corrupt); :class:`LineFaultTarget` is the
:class:`~couponlab.simulators.faults.FaultTarget` every line twin registers on
``world.faults``. A family adds ``sensor_loss`` and ``jam`` with a :class:`FamilyFaults`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from couponlab.simulators.faults import LINK_KINDS, Fault, FaultKind, FaultTarget, int_param
from couponlab.simulators.scpi import ScpiDispatcher

HARDWARE_ERROR = -240
"""SCPI "Hardware error", the default code of an injected instrument error."""


class LinkFaults:
    """What a line server's link does wrong now (all off by default).

    Attributes
    ----------
    refusing
        New connections are closed at once (power off, a link that stays down).
    garble, truncate
        Replies are corrupted (bytes with the high bit set) or cut to their first half.
    """

    def __init__(self) -> None:
        self.refusing = False
        self.garble = False
        self.truncate = False
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.after_line: list[Callable[[], None]] = []
        """Called after every line the instrument handled (an error it keeps reporting)."""

    @property
    def stalled(self) -> bool:
        """Return whether the instrument holds every line back now."""
        return not self._flowing.is_set()

    def stall(self, on: bool) -> None:
        """Hold every line back (``on``) or let them through again."""
        if on:
            self._flowing.clear()
        else:
            self._flowing.set()

    async def hold(self) -> None:
        """Wait while the instrument is stalled."""
        if not self._flowing.is_set():
            await self._flowing.wait()

    def mangle(self, data: bytes, terminator: bytes) -> bytes:
        """Return ``data`` (one reply, with its terminator) as the faulty link delivers it."""
        if not (self.garble or self.truncate):
            return data
        body, tail = (
            (data[: -len(terminator)], terminator) if data.endswith(terminator) else (data, b"")
        )
        if self.truncate:
            body = body[: len(body) // 2]
        if self.garble:
            body = bytes(b | 0x80 if i % 2 == 0 else b for i, b in enumerate(body)) or b"\xff"
        return body + tail


@dataclass
class FamilyFaults:
    """A family's own faults (sensors, actuators) and what its power loss switches off.

    Attributes
    ----------
    sensor_loss, jam, gas_loss
        ``(apply, clear)`` of each kind the family has (None: the twin has no such part).
        ``apply`` validates the fault's params (raise ``FaultRefusedError``/``ValueError``
        with nothing changed) and acts.
    power_off
        Switches outputs off and forgets what a power loss forgets beyond the dispatcher's
        ``*RST`` (a loaded program, a mounted specimen's test, a motion in progress).
    """

    sensor_loss: tuple[Callable[[Fault], None], Callable[[Fault], None]] | None = None
    jam: tuple[Callable[[Fault], None], Callable[[Fault], None]] | None = None
    gas_loss: tuple[Callable[[Fault], None], Callable[[Fault], None]] | None = None
    power_off: Callable[[], None] = field(default=lambda: None)

    def handlers(self) -> dict[FaultKind, tuple[Callable[[Fault], None], Callable[[Fault], None]]]:
        """Return kind -> ``(apply, clear)`` of the kinds this family has."""
        out = {}
        if self.sensor_loss is not None:
            out[FaultKind.SENSOR_LOSS] = self.sensor_loss
        if self.jam is not None:
            out[FaultKind.JAM] = self.jam
        if self.gas_loss is not None:
            out[FaultKind.GAS_LOSS] = self.gas_loss
        return out


class LineFaultTarget(FaultTarget):
    """The faults of one line twin.

    Parameters
    ----------
    link
        The server's :class:`LinkFaults`.
    drop_clients
        Closes every client connection now.
    dispatcher
        The twin's command set (error queue, ``*RST``, power-on flag).
    family
        The family's sensor and actuator faults and power-off action.
    """

    def __init__(
        self,
        link: LinkFaults,
        drop_clients: Callable[[], None],
        dispatcher: ScpiDispatcher,
        family: FamilyFaults | None = None,
    ) -> None:
        self.link = link
        self.drop_clients = drop_clients
        self.dispatcher = dispatcher
        self.family = family or FamilyFaults()
        self._own = self.family.handlers()
        self._errors: list[tuple[int, str]] = []
        self._refusals = 0

    @property
    def kinds(self) -> frozenset[FaultKind]:
        """Return the link kinds, ``error``, ``power_loss`` and the family's own."""
        return LINK_KINDS | {FaultKind.ERROR, FaultKind.POWER_LOSS} | set(self._own)

    def apply(self, fault: Fault) -> None:
        """Start ``fault`` (see :mod:`couponlab.simulators.faults` for what each kind does)."""
        kind = fault.kind
        if kind in self._own:
            self._own[kind][0](fault)
        elif kind is FaultKind.DROP:
            self._refuse(fault)
            self.drop_clients()
        elif kind is FaultKind.STALL:
            self.link.stall(True)
        elif kind is FaultKind.GARBLE:
            self.link.garble = True
        elif kind is FaultKind.TRUNCATE:
            self.link.truncate = True
        elif kind is FaultKind.ERROR:
            code = int_param(fault.params, "code", -999, -100, HARDWARE_ERROR)
            message = str(fault.params.get("message", "Hardware error"))
            fault.params.update(code=code, message=message)
            self.dispatcher.push_error(code, message)
            if fault.for_s is not None or fault.wall_s is not None:
                self._errors.append((code, message))
                self._sync_after_line()
        elif kind is FaultKind.POWER_LOSS:
            self._refuse(fault)
            self.drop_clients()
            self.link.stall(False)
            self.family.power_off()
            self.dispatcher.reset()
            self.dispatcher.power_off()

    def clear(self, fault: Fault) -> None:
        """End ``fault``: the link answers again, the sensor is mended, power is back."""
        kind = fault.kind
        if kind in self._own:
            self._own[kind][1](fault)
        elif kind is FaultKind.DROP:
            self._unrefuse(fault)
        elif kind is FaultKind.STALL:
            self.link.stall(False)
        elif kind is FaultKind.GARBLE:
            self.link.garble = False
        elif kind is FaultKind.TRUNCATE:
            self.link.truncate = False
        elif kind is FaultKind.ERROR:
            pair = (int(fault.params["code"]), str(fault.params["message"]))
            if pair in self._errors:
                self._errors.remove(pair)
            self._sync_after_line()
        elif kind is FaultKind.POWER_LOSS:
            self.dispatcher.power_on()
            self._unrefuse(fault)

    def _refuse(self, fault: Fault) -> None:
        if fault.for_s is not None or fault.wall_s is not None:
            self._refusals += 1
            self.link.refusing = True

    def _unrefuse(self, fault: Fault) -> None:
        if fault.for_s is not None or fault.wall_s is not None:
            self._refusals = max(0, self._refusals - 1)
            self.link.refusing = self._refusals > 0

    def _push_errors(self) -> None:
        for code, message in self._errors:
            self.dispatcher.push_error(code, message)

    def _sync_after_line(self) -> None:
        if self._push_errors in self.link.after_line:
            self.link.after_line.remove(self._push_errors)
        if self._errors:
            self.link.after_line.append(self._push_errors)


def channel_faults(
    count: int, key: str, set_broken: Callable[[int, bool], None], *, base: int = 1
) -> tuple[Callable[[Fault], None], Callable[[Fault], None]]:
    """Return ``(apply, clear)`` of a fault of one of ``count`` numbered parts (a thermocouple
    channel, a zone, a hopper): parameter ``key`` is its number, ``base``..``count-1+base``
    (default: the first); ``set_broken(index0, on)`` acts on the 0-based index."""

    def apply(fault: Fault) -> None:
        n = int_param(fault.params, key, base, count - 1 + base, base)
        fault.params[key] = n
        set_broken(n - base, True)

    def clear(fault: Fault) -> None:
        set_broken(int(fault.params[key]) - base, False)

    return apply, clear


__all__ = [
    "HARDWARE_ERROR",
    "FamilyFaults",
    "LineFaultTarget",
    "LinkFaults",
    "channel_faults",
]
