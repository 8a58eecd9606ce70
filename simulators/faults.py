"""Fault injection into running twins: what can go wrong with an instrument, on demand.

Every twin registers a :class:`FaultTarget` under its device name on the world's
:class:`FaultBoard` (``world.faults``). A fault is injected by device name and
:class:`FaultKind`, from Python (``world.faults.inject("feeder1", "jam", hopper=1)``), from
the twin control channel (``fault`` / ``clear_faults`` / ``faults``,
docs/protocols/twin-control.md) or from the command line (``couponlab twin fault``).

Durations
---------
A fault lasts until it is cleared, or for ``for_s`` seconds of **virtual** time (the world's
clock, like everything an instrument does; a test steps the world to end it), or for
``wall_s`` seconds of **wall** time (what a client's timeout sees: a 5 s stall at speed-up
1000 is 5 ms virtual). Give at most one. ``drop`` and ``power_loss`` without a duration act
once (the link drops, the controller restarts at once); with one, the instrument refuses
connections (is off) for that long.

The kinds (docs/howto/inject-faults.md says what each twin does for each):

- ``drop``: every client connection is closed; with a duration new ones are refused.
- ``stall``: the instrument stops answering (requests wait) until the fault ends.
- ``garble``: replies arrive with corrupted bytes (not ASCII: a typed ``ProtocolError``).
- ``truncate``: replies arrive cut short (the first half, then the terminator).
- ``error``: the instrument reports an error (SCPI: ``code,"message"`` on its error queue after
  every command while active, once without a duration; the furnace: a latched controller
  fault, heaters off).
- ``sensor_loss``: a sensor breaks (an open thermocouple: NaN or overrange and an error).
- ``jam``: an actuator jams (a clogged feeder, a stuck crosshead, a following error).
- ``gas_loss``: a feeder's carrier (shielding) gas supply fails: the measured gas falls to 0
  and, while the hopper feeds or its gas is on (purging between prints), the feeder latches
  its gas alarm and stops the powder.
- ``power_loss``: the controller loses power: connections drop, outputs go off, setpoints,
  programs and settings are lost, and it comes back with its power-on flag set (SCPI ``*ESR?``
  bit 7, PON; OPC UA ``ServerStatus.StartTime``) and its boot counter incremented.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from couponlab.errors import InputError

if TYPE_CHECKING:
    from couponlab.simulators.world import World


class FaultKind(StrEnum):
    """What goes wrong (see the module docstring)."""

    DROP = "drop"
    STALL = "stall"
    GARBLE = "garble"
    TRUNCATE = "truncate"
    ERROR = "error"
    SENSOR_LOSS = "sensor_loss"
    JAM = "jam"
    GAS_LOSS = "gas_loss"
    POWER_LOSS = "power_loss"


LINK_KINDS = frozenset({FaultKind.DROP, FaultKind.STALL, FaultKind.GARBLE, FaultKind.TRUNCATE})
"""Faults of the link, which every twin supports."""
ONCE_KINDS = frozenset({FaultKind.DROP, FaultKind.ERROR, FaultKind.POWER_LOSS})
"""Kinds that act once (and end at once) when given no duration."""
MAX_DURATION_S = 1e9
"""Longest duration of a fault, s (virtual or wall)."""


class FaultRefusedError(InputError):
    """A fault that cannot be injected: no such twin, a kind the twin cannot do, bad
    parameters. Nothing was changed."""


@dataclass
class Fault:
    """One injected fault.

    Attributes
    ----------
    id
        Number of the fault on its board (1, 2, ...).
    device
        The twin's device name.
    kind
        What goes wrong.
    params
        Kind-specific parameters (``zone``, ``channel``, ``hopper``, ``axis``, ``code``, ...).
    started_s
        Virtual time of the injection, s.
    for_s, wall_s
        Duration in virtual or wall seconds (None: until cleared, or once).
    """

    id: int
    device: str
    kind: FaultKind
    params: dict[str, Any]
    started_s: float
    for_s: float | None = None
    wall_s: float | None = None
    active: bool = True
    _wall_timer: asyncio.TimerHandle | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        """Return the fault as JSON-able data (what the control channel reports)."""
        return {
            "id": self.id,
            "device": self.device,
            "kind": str(self.kind),
            "params": dict(self.params),
            "started_s": self.started_s,
            "for_s": self.for_s,
            "wall_s": self.wall_s,
            "active": self.active,
        }


class FaultTarget(Protocol):
    """What a twin implements to take faults.

    :meth:`apply` validates and acts (raise :class:`FaultRefusedError` with nothing changed);
    :meth:`clear` undoes a fault that lasts (a repaired sensor, a link that answers again).
    """

    @property
    def kinds(self) -> frozenset[FaultKind]:
        """Return the kinds this twin can do."""
        ...

    def apply(self, fault: Fault) -> None:
        """Start ``fault``."""
        ...

    def clear(self, fault: Fault) -> None:
        """End ``fault`` (called once, also for faults that acted once)."""
        ...


def _duration(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise FaultRefusedError("", f"{name} must be a number of seconds, got {value!r}") from None
    if not (math.isfinite(seconds) and 0 < seconds <= MAX_DURATION_S):
        raise FaultRefusedError(
            "", f"{name} = {value!r} s is outside the allowed range (0, {MAX_DURATION_S:g}] s"
        )
    return seconds


class FaultBoard:
    """The faults of one world's twins: who takes which kinds, and what is active now.

    Use it on the twins' thread (or event loop) only, like every other part of the world.
    """

    def __init__(self, world: World) -> None:
        self.world = world
        self._targets: dict[str, FaultTarget] = {}
        self._active: list[Fault] = []
        self._ids = itertools.count(1)
        self.injected = 0
        """How many faults were injected on this board."""

    # -- twins -------------------------------------------------------------------------------
    def register(self, device: str, target: FaultTarget) -> None:
        """Let ``device``'s twin take faults through ``target`` (replaces an earlier one)."""
        self._targets[device] = target

    def unregister(self, device: str) -> None:
        """Forget ``device`` and its active faults (a twin that stopped)."""
        self._targets.pop(device, None)
        for fault in [f for f in self._active if f.device == device]:
            self._end(fault, undo=False)

    def devices(self) -> dict[str, list[str]]:
        """Return device name -> the fault kinds its twin can do (sorted)."""
        return {n: sorted(str(k) for k in t.kinds) for n, t in sorted(self._targets.items())}

    # -- faults ------------------------------------------------------------------------------
    def inject(
        self,
        device: str,
        kind: FaultKind | str,
        *,
        for_s: float | None = None,
        wall_s: float | None = None,
        **params: Any,
    ) -> Fault:
        """Inject a fault into ``device``'s twin now; return it.

        Parameters
        ----------
        device
            Device name of a running twin.
        kind
            A :class:`FaultKind` or its name.
        for_s
            Duration in virtual seconds of the world (0 < for_s <= 1e9).
        wall_s
            Duration in wall seconds (0 < wall_s <= 1e9); not with ``for_s``.
        **params
            Kind-specific parameters (docs/howto/inject-faults.md).

        Raises
        ------
        FaultRefusedError
            Unknown device or kind, a kind this twin cannot do, two durations, bad parameters.
        """
        target = self._targets.get(device)
        if target is None:
            raise FaultRefusedError(
                device, f"no twin takes faults under this name; have {sorted(self._targets)}"
            )
        try:
            fault_kind = FaultKind(kind)
        except ValueError:
            raise FaultRefusedError(
                device, f"unknown fault kind {kind!r}; allowed {[str(k) for k in FaultKind]}"
            ) from None
        if fault_kind not in target.kinds:
            raise FaultRefusedError(
                device,
                f"its twin cannot do {str(fault_kind)!r}; "
                f"it can do {sorted(map(str, target.kinds))}",
            )
        try:
            virtual, wall = _duration("for_s", for_s), _duration("wall_s", wall_s)
        except FaultRefusedError as exc:
            raise FaultRefusedError(device, exc.message) from None
        if virtual is not None and wall is not None:
            raise FaultRefusedError(device, "give for_s (virtual) or wall_s (wall), not both")
        fault = Fault(next(self._ids), device, fault_kind, dict(params), self.world.now)
        fault.for_s, fault.wall_s = virtual, wall
        try:
            target.apply(fault)
        except FaultRefusedError as exc:
            raise FaultRefusedError(device, exc.message) from None
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            message = str(exc.args[0]) if exc.args else type(exc).__name__
            raise FaultRefusedError(device, f"{fault_kind}: {message}") from None
        self.injected += 1
        self._active.append(fault)
        if virtual is not None:
            self.world.env.process(self._end_after(fault, virtual))
        elif wall is not None:
            loop = asyncio.get_running_loop()
            fault._wall_timer = loop.call_later(wall, self._end, fault)
        elif fault_kind in ONCE_KINDS:
            self._end(fault)
        return fault

    def _end_after(self, fault: Fault, seconds: float) -> Any:
        yield self.world.env.timeout(seconds)
        if fault.active:
            self._end(fault)

    def _end(self, fault: Fault, *, undo: bool = True) -> None:
        if not fault.active:
            return
        fault.active = False
        if fault._wall_timer is not None:
            fault._wall_timer.cancel()
            fault._wall_timer = None
        self._active.remove(fault)
        target = self._targets.get(fault.device)
        if undo and target is not None:
            target.clear(fault)

    def clear(self, device: str | None = None, kind: FaultKind | str | None = None) -> list[Fault]:
        """End the active faults of ``device`` (all devices when None) of ``kind`` (all kinds
        when None); return them."""
        wanted = None if kind is None else FaultKind(kind)
        ended = [
            f
            for f in list(self._active)
            if (device is None or f.device == device) and (wanted is None or f.kind == wanted)
        ]
        for fault in ended:
            self._end(fault)
        return ended

    def active(self, device: str | None = None) -> list[Fault]:
        """Return the faults active now (of ``device`` only, when given)."""
        return [f for f in self._active if device is None or f.device == device]


def int_param(
    params: Mapping[str, Any], key: str, low: int, high: int, default: int | None = None
) -> int:
    """Return the integer parameter ``key`` in ``low..high``; raise :class:`FaultRefusedError`."""
    raw = params.get(key, default)
    if raw is None:
        raise FaultRefusedError("", f"missing parameter {key!r} ({low}..{high})")
    try:
        value = int(raw)
        if value != float(raw):
            raise ValueError
    except (TypeError, ValueError):
        raise FaultRefusedError("", f"{key} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise FaultRefusedError("", f"{key} = {value} is outside the allowed range {low}..{high}")
    return value


def float_param(
    params: Mapping[str, Any], key: str, low: float, high: float, default: float | None = None
) -> float:
    """Return the number ``key`` in ``[low, high]``; raise :class:`FaultRefusedError`."""
    raw = params.get(key, default)
    if raw is None:
        raise FaultRefusedError("", f"missing parameter {key!r} ([{low:g}, {high:g}])")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise FaultRefusedError("", f"{key} must be a number, got {raw!r}") from None
    if not (math.isfinite(value) and low <= value <= high):
        raise FaultRefusedError(
            "", f"{key} = {raw!r} is outside the allowed range [{low:g}, {high:g}]"
        )
    return value


__all__ = [
    "LINK_KINDS",
    "ONCE_KINDS",
    "Fault",
    "FaultBoard",
    "FaultKind",
    "FaultRefusedError",
    "FaultTarget",
    "float_param",
    "int_param",
]
