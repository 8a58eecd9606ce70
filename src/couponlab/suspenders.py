"""Recoverable conditions pause the plan and resume it when they clear (bluesky suspenders).

A :class:`~couponlab.session.Session` installs these in its RunEngine by default
(``Session(suspenders=False)`` switches them off; docs/decisions/0071-fault-policy.md):

- **furnace over-temperature alarm** (every ``gradient_furnace``): the hottest zone of the
  furnace's ``profile`` (its own OPC UA signal, a subscription) at or above the alarm level,
  :attr:`SuspenderSettings.furnace_alarm_margin_c` below the furnace's interlock limit; it
  clears :attr:`SuspenderSettings.hysteresis_c` below the level;
- **shielding gas low** (every ``powder_feeder``): a hopper's own ``alarm`` signal reports
  ``gas_loss``; it clears when the feeder's alarm does (gas back and the latch reset);
- **link lost** (every device): the transport's :class:`~couponlab.transports.LinkState`
  is down (the instrument does not accept a connection); while it is, a probe re-opens the
  link every :attr:`SuspenderSettings.link_probe_s` s, and the run resumes once it is up.
  A restart found then is raised by the plan's next exchange
  (:class:`~couponlab.errors.InstrumentRestartedError`): not recoverable.

Each watches a real signal of the device or of its transport; none uses the twins' control
channel. Suspending is bluesky's: the run rewinds to its last checkpoint and waits; devices
that can pause (the furnace) are paused, not stopped (:class:`~couponlab.run_engine.
LabRunEngine`); a plan with no checkpoint is aborted instead (to the safe state). A
condition that does not clear within :attr:`SuspenderSettings.max_suspension_s` (wall
time) ends the run with :class:`~couponlab.errors.ConditionPersistsError`
(:class:`BoundedSuspension`).

Install and remove them with the plans :meth:`LabSuspenders.install_plan` and
:meth:`LabSuspenders.remove_plan` (signals are subscribed on the RunEngine's loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import bluesky.plan_stubs as bps
import numpy as np
from bluesky.suspenders import SuspendBoolLow, SuspenderBase
from bluesky.utils import Msg

from couponlab.errors import (
    ConditionPersistsError,
    ConnectionLostError,
    InputError,
    InstrumentError,
    describe_error,
)
from couponlab.labfile import LabFile
from couponlab.transports import LinkState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SuspenderSettings:
    """What the lab's suspenders watch for.

    Attributes
    ----------
    furnace_alarm_margin_c
        The over-temperature alarm sits this far below each furnace's interlock limit, K
        (0 .. 500).
    hysteresis_c
        The alarm clears this far below its level, K (0 .. 100).
    link_probe_s
        Wall time between two attempts to re-open a lost link, and between two reads of a
        tripped condition's signal, s (0.05 .. 60).
    resume_sleep_s
        Wall time a cleared condition waits before the run resumes, s (0 .. 600).
    max_suspension_s
        Longest a condition may keep the run suspended, s of *wall* time (1 .. 604800,
        default 1800): then the run ends with :class:`~couponlab.errors.
        ConditionPersistsError` naming the device, the condition and the wait, and a
        session puts the lab in its safe state. Wall time, because the suspension is the
        control computer's waiting (the RunEngine, an operator changing a gas bottle or
        a cable), a lost link may leave no instrument clock to read, and a real lab has no
        virtual time; one bound for every suspender, because what it bounds is how long
        the lab may sit half-way through a step.
    """

    furnace_alarm_margin_c: float = 25.0
    hysteresis_c: float = 10.0
    link_probe_s: float = 1.0
    resume_sleep_s: float = 0.0
    max_suspension_s: float = 1800.0

    def __post_init__(self) -> None:
        ranges = {
            "furnace_alarm_margin_c": (0.0, 500.0),
            "hysteresis_c": (0.0, 100.0),
            "link_probe_s": (0.05, 60.0),
            "resume_sleep_s": (0.0, 600.0),
            "max_suspension_s": (1.0, 604800.0),
        }
        for what, (low, high) in ranges.items():
            value = getattr(self, what)
            if not (isinstance(value, int | float) and low <= value <= high):
                raise InputError("suspenders", f"{what} = {value!r} is outside [{low}, {high}]")


class Subscribable(Protocol):
    """An ophyd-async signal as far as a suspender needs it."""

    @property
    def name(self) -> str: ...

    def subscribe_reading(self, function: Callable[[dict[str, Any]], None]) -> None: ...

    async def get_value(self, cached: bool | None = None) -> Any: ...

    def clear_sub(self, function: Callable[..., Any]) -> None: ...


class Link(Protocol):
    """A transport with a link state that can be re-opened (line transports, OPC UA)."""

    link_state: LinkState

    async def reconnect(self) -> None: ...


class WatchedSignal:
    """An ophyd-async signal in the shape bluesky's suspenders call (ophyd's
    ``subscribe(callback, event_type, run)`` / ``clear_sub``, ``callback(value=...)``).

    Subscribe and clear only on the RunEngine's loop (the signal's polls or monitors live
    there): install suspenders with :meth:`LabSuspenders.install_plan`.
    """

    def __init__(self, signal: Subscribable) -> None:
        self.signal = signal
        self._delivering: dict[int, Callable[[dict[str, Any]], None]] = {}

    @property
    def name(self) -> str:
        """Return the signal's name."""
        return self.signal.name

    def subscribe(
        self, callback: Callable[..., Any], event_type: Any = None, run: bool = True
    ) -> None:
        """Call ``callback(value=...)`` with every reading of the signal."""

        def deliver(readings: dict[str, Any]) -> None:
            for reading in readings.values():
                callback(value=reading["value"], timestamp=reading.get("timestamp"))

        self._delivering[id(callback)] = deliver
        self.signal.subscribe_reading(deliver)

    def clear_sub(self, callback: Callable[..., Any], event_type: Any = None) -> None:
        """Stop delivering to ``callback``."""
        deliver = self._delivering.pop(id(callback), None)
        if deliver is not None:
            self.signal.clear_sub(deliver)

    def __repr__(self) -> str:
        return f"WatchedSignal({self.name})"


class BoundedSuspension:
    """A suspender's bound: once tripped for ``max_s`` wall s, the suspension ends and the
    run gets :class:`~couponlab.errors.ConditionPersistsError` (raised by the plan bluesky
    runs after a suspension, ``post_plan``), which ends it."""

    device: str
    tripped: bool
    _ev: asyncio.Event | None
    _post_plan: Any

    def _bound(self, max_s: float) -> None:
        self.max_s = max_s
        self._timer: asyncio.TimerHandle | None = None
        self._expired = False
        self._post_plan = self._after_suspension
        self.ended: ConditionPersistsError | None = None
        """The error that ended a run (None: none did since :meth:`LabSuspenders.take_ended`)."""

    def _follow_bound(self) -> None:
        """Arm the bound when tripped, disarm it when cleared (on the RunEngine's loop)."""
        if self.tripped and self._timer is None:
            with contextlib.suppress(RuntimeError):  # no running loop: nothing to time
                self._timer = asyncio.get_running_loop().call_later(self.max_s, self._expire)
        elif not self.tripped and self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._expired = False

    def _expire(self) -> None:
        self._timer = None
        if self.tripped and self._ev is not None:
            self._expired = True
            self._ev.set()  # the RunEngine stops waiting; _after_suspension ends the run

    def _after_suspension(self) -> Generator[Msg, Any, None]:
        if self._expired:
            self._expired = False
            # kept: the plan's own handlers may raise another error on top of this one
            # (a reading cut short by the suspension), and the session raises this one
            self.ended = ConditionPersistsError(
                self.device,
                f"{self._condition()} did not clear within {self.max_s:g} s (wall time) of "
                "suspension: the run is ended",
            )
            raise self.ended
        yield from ()

    def _condition(self) -> str:
        raise NotImplementedError

    def __repr__(self) -> str:  # (bluesky's shows post_plan, whose repr shows this one)
        return f"{type(self).__name__}({self.device}: {self._condition()})"

    def _cancel_bound(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class ConditionSuspender(BoundedSuspension, SuspenderBase):
    """Suspend while ``tripped(value)`` holds; resume once ``cleared(value)`` does.

    Parameters
    ----------
    signal
        The device's signal.
    device
        Device name, for the justification.
    condition
        What the condition is, in words ("over-temperature alarm: hottest zone >= 1200 degC").
    tripped, cleared
        Predicates on the signal's value (``cleared`` defaults to ``not tripped``).
    sleep
        Wall s to wait after the condition cleared, before resuming.
    poll_s
        While tripped, the signal is read every this many wall s.
    max_s
        Longest suspension, wall s; then the run ends (:class:`BoundedSuspension`).
    """

    def __init__(
        self,
        signal: Subscribable,
        device: str,
        condition: str,
        tripped: Callable[[Any], bool],
        cleared: Callable[[Any], bool] | None = None,
        *,
        sleep: float = 0.0,
        poll_s: float = 1.0,
        max_s: float = 1800.0,
    ) -> None:
        super().__init__(  # type: ignore[no-untyped-call]
            WatchedSignal(signal), sleep=sleep, tripped_message=condition
        )
        self._bound(max_s)
        self.device = device
        self.condition = condition
        self.signal = signal
        self.poll_s = poll_s
        self._tripped_when = tripped
        self._cleared_when = cleared or (lambda value: not tripped(value))
        self.last_value: Any = None
        self._poll: asyncio.Task[None] | None = None

    def __call__(self, value: Any, **kwargs: Any) -> None:
        """Follow the signal (bluesky's); while tripped, read it every ``poll_s`` s (a
        signal that is only pushed when someone reads it would not tell that it cleared)."""
        super().__call__(value, **kwargs)  # type: ignore[no-untyped-call]
        self._follow_bound()
        if self.tripped and self.RE is not None and (self._poll is None or self._poll.done()):
            with contextlib.suppress(RuntimeError):  # no running loop: nothing to poll from
                self._poll = asyncio.get_running_loop().create_task(self._read_while_tripped())

    async def _read_while_tripped(self) -> None:
        while self.tripped and self.RE is not None:
            await asyncio.sleep(self.poll_s)
            try:
                value = await self.signal.get_value(cached=False)
            except InstrumentError as exc:
                log.warning("%s: reading %s: %s", self.device, self.signal.name, exc)
                continue
            self(value=value)

    def remove(self) -> None:
        """Stop watching (bluesky's) and stop polling."""
        if self._poll is not None:
            self._poll.cancel()
            self._poll = None
        self._cancel_bound()
        super().remove()  # type: ignore[no-untyped-call]

    def _should_suspend(self, value: Any) -> bool:
        self.last_value = value
        return bool(self._tripped_when(value))

    def _should_resume(self, value: Any) -> bool:
        return bool(self._cleared_when(value))

    def _get_justification(self) -> str:
        if not self.tripped:
            return ""
        return f"{self.device}: {self.condition}"

    def _condition(self) -> str:
        return self.condition

    @property
    def justification(self) -> str:
        """Return why the run is suspended ("" while not tripped)."""
        return self._get_justification()


class LinkSuspender(BoundedSuspension, SuspendBoolLow):
    """Suspend while the device's link is down; meanwhile re-open it every ``probe_s`` s.

    Parameters
    ----------
    device
        Device name.
    link
        The device's transport.
    probe_s
        Wall time between two attempts to re-open the link, s.
    sleep
        Wall s to wait after the link came back, before resuming.
    max_s
        Longest suspension, wall s; then the run ends (:class:`BoundedSuspension`).
    """

    def __init__(
        self,
        device: str,
        link: Link,
        probe_s: float,
        *,
        sleep: float = 0.0,
        max_s: float = 1800.0,
    ) -> None:
        super().__init__(link.link_state, sleep=sleep)  # type: ignore[no-untyped-call]
        self._bound(max_s)
        self.device = device
        self.link = link
        self.probe_s = probe_s
        self._probe: asyncio.Task[None] | None = None

    def __call__(self, value: Any, **kwargs: Any) -> None:
        """Follow the link state (bluesky's), and probe the link while it is down."""
        super().__call__(value, **kwargs)  # type: ignore[no-untyped-call]
        self._follow_bound()
        if not value and self.RE is not None and (self._probe is None or self._probe.done()):
            with contextlib.suppress(RuntimeError):  # no running loop: nothing to probe from
                self._probe = asyncio.get_running_loop().create_task(self._reopen())

    async def _reopen(self) -> None:
        state = self.link.link_state
        while not state.up:
            await asyncio.sleep(self.probe_s)
            try:
                await self.link.reconnect()
            except ConnectionLostError:
                continue
            except InstrumentError as exc:  # a refusal: keep trying, say why
                log.warning("%s: re-opening the link: %s", self.device, describe_error(exc))

    def remove(self) -> None:
        """Stop watching (bluesky's) and stop probing."""
        if self._probe is not None:
            self._probe.cancel()
            self._probe = None
        self._cancel_bound()
        super().remove()  # type: ignore[no-untyped-call]

    def _get_justification(self) -> str:
        if not self.tripped:
            return ""
        return f"{self.device}: {self._condition()}"

    def _condition(self) -> str:
        return f"link lost ({self.link.link_state.reason or 'unreachable'})"

    @property
    def justification(self) -> str:
        """Return why the run is suspended ("" while not tripped)."""
        return self._get_justification()


def links_of(device: Any) -> list[Link]:
    """Return the transports of a device that have a link state: a line driver's
    ``client.transport``, an OPC UA driver's ``connection``."""
    found: list[Link] = []
    candidates: tuple[Any, ...] = (
        getattr(getattr(device, "client", None), "transport", None),
        getattr(device, "connection", None),
    )
    for candidate in candidates:
        if isinstance(getattr(candidate, "link_state", None), LinkState) and callable(
            getattr(candidate, "reconnect", None)
        ):
            found.append(candidate)
    return found


def furnace_over_temperature(
    furnace: Any, name: str, interlock_limit_c: float, settings: SuspenderSettings
) -> ConditionSuspender:
    """Return the over-temperature alarm of a gradient furnace: the hottest zone of its
    ``profile`` (degC) at or above ``interlock_limit_c - furnace_alarm_margin_c``."""
    level = interlock_limit_c - settings.furnace_alarm_margin_c
    clear = level - settings.hysteresis_c

    def hottest(value: Any) -> float:
        zones = np.asarray(value, dtype=float)
        zones = zones[np.isfinite(zones)]  # a broken thermocouple reads NaN
        return float(zones.max()) if zones.size else -math.inf

    return ConditionSuspender(
        furnace.profile,
        name,
        f"over-temperature alarm: hottest zone at or above {level:g} degC "
        f"(interlock {interlock_limit_c:g} degC); resumes below {clear:g} degC",
        lambda v: hottest(v) >= level,
        lambda v: hottest(v) < clear,
        sleep=settings.resume_sleep_s,
        poll_s=settings.link_probe_s,
        max_s=settings.max_suspension_s,
    )


def feeder_gas_low(
    hopper: Any, name: str, index: int, settings: SuspenderSettings
) -> ConditionSuspender:
    """Return the shielding-gas alarm of one feeder hopper: its ``alarm`` signal reports
    ``gas_loss`` (the feeder's own latched alarm)."""
    return ConditionSuspender(
        hopper.alarm,
        name,
        f"shielding gas low on hopper {index} (alarm gas_loss); resumes when the "
        "feeder's alarm clears",
        lambda v: "gas_loss" in str(v).split(),
        sleep=settings.resume_sleep_s,
        poll_s=settings.link_probe_s,
        max_s=settings.max_suspension_s,
    )


class LabSuspenders:
    """The suspenders of a lab's devices (module docstring), built by :func:`lab_suspenders`.

    Attributes
    ----------
    suspenders
        Every suspender, link suspenders included.
    """

    def __init__(
        self, lab: LabFile, devices: Mapping[str, Any], settings: SuspenderSettings
    ) -> None:
        self.lab = lab
        self.devices = dict(devices)
        self.settings = settings
        self.suspenders: list[ConditionSuspender | LinkSuspender] = []

    def install_plan(self) -> Generator[Msg, Any, list[ConditionSuspender | LinkSuspender]]:
        """Build and install every suspender in the RunEngine running this plan.

        Yields
        ------
        Msg
            ``read`` of each furnace's interlock limit, then ``install_suspender`` messages.
        """
        built: list[ConditionSuspender | LinkSuspender] = []
        s = self.settings
        for entry in self.lab.devices:
            device = self.devices.get(entry.name)
            if device is None:
                continue
            if entry.family == "gradient_furnace":
                limit = yield from bps.rd(device.interlock.limit)
                built.append(furnace_over_temperature(device, entry.name, float(limit), s))
            elif entry.family == "powder_feeder":
                hoppers = getattr(device, "hoppers", {})
                built += [feeder_gas_low(h, entry.name, i, s) for i, h in hoppers.items()]
            built += [
                LinkSuspender(
                    entry.name,
                    link,
                    s.link_probe_s,
                    sleep=s.resume_sleep_s,
                    max_s=s.max_suspension_s,
                )
                for link in links_of(device)
            ]
        for suspender in built:
            yield Msg("install_suspender", None, suspender)
        self.suspenders = built
        return built

    def remove_plan(self) -> Generator[Msg, Any, None]:
        """Remove every suspender this object installed (on the RunEngine's loop).

        Yields
        ------
        Msg
            ``remove_suspender`` messages.
        """
        for suspender in self.suspenders:
            yield Msg("remove_suspender", None, suspender)
        self.suspenders = []

    def take_ended(self) -> ConditionPersistsError | None:
        """Return (and forget) the error of a suspension that outlasted its bound, if one
        ended the last run."""
        for suspender in self.suspenders:
            if suspender.ended is not None:
                ended, suspender.ended = suspender.ended, None
                return ended
        return None

    def tripped(self) -> list[str]:
        """Return the justification of every suspender tripped now."""
        return [s.justification for s in self.suspenders if s.tripped]


__all__ = [
    "BoundedSuspension",
    "ConditionSuspender",
    "LabSuspenders",
    "LinkSuspender",
    "SuspenderSettings",
    "WatchedSignal",
    "feeder_gas_low",
    "furnace_over_temperature",
    "links_of",
]
