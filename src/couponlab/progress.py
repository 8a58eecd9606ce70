"""Progress of long instrument actions, as statuses bluesky's progress bars can watch.

A furnace hold, a stage move, a print or a robot transfer returns a :class:`ProgressStatus`
(an ophyd-async ``AsyncStatus`` with ``watch``, as ``WatchableAsyncStatus``; it stays an
``AsyncStatus`` so the typed interfaces keep their return types). The action itself
calls :func:`report_progress` wherever it polls the instrument (a furnace's clock, a move's
remaining time): the call reaches the status of the action it runs in (a context variable),
and is a no-op outside one. Progress is in the instrument's own terms: instrument (virtual,
on a twin) seconds for holds and moves, degC for a ramp, a fraction for a print; never wall
time where the instrument keeps its own clock.

:class:`ProgressBars` is the RunEngine's ``waiting_hook``: bluesky's terminal progress bars
(``ProgressBarManager``), kept across the slices of one watched wait (a plan waits on a long
status in slices with a checkpoint before each, :class:`WatchedWait`), so a 20 h hold shows
one bar, not a new one every half second. See docs/howto/watch-a-run-live.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import math
import time
from collections.abc import Callable, Collection, Coroutine, Iterable
from dataclasses import asdict, dataclass, replace
from typing import Any, TypeVar

from bluesky.protocols import Status
from bluesky.utils import ProgressBarBase, default_progress_bar
from ophyd_async.core import AsyncStatus, WatcherUpdate

log = logging.getLogger(__name__)
T = TypeVar("T")

__all__ = [
    "Countdown",
    "ProgressBars",
    "ProgressStatus",
    "WatchedWait",
    "progress_watched",
    "report_progress",
]


Report = Callable[[WatcherUpdate[float]], None]

_CURRENT: contextvars.ContextVar[Report | None] = contextvars.ContextVar(
    "couponlab_progress", default=None
)


class ProgressStatus(AsyncStatus[T]):
    """An :class:`~ophyd_async.core.AsyncStatus` of one instrument action that watchers
    (bluesky's progress bars) can follow, as ophyd-async's ``WatchableAsyncStatus``: each
    :func:`report_progress` of the action reaches every watcher as ophyd-async's
    :class:`~ophyd_async.core.WatcherUpdate` fields. Made on the event loop; it fails with
    the action's own error, and cancelling it cancels the action.

    Parameters
    ----------
    action
        The coroutine of the instrument action.
    name
        The device's name, shown beside the bar.
    """

    def __init__(self, action: Coroutine[Any, Any, T], name: str | None = None) -> None:
        self.device_name = name
        self._watchers: list[Callable[..., Any]] = []
        self._last: WatcherUpdate[float] | None = None
        self._start = time.monotonic()
        context = contextvars.copy_context()
        context.run(_CURRENT.set, self._report)
        task = asyncio.get_running_loop().create_task(action, context=context)
        super().__init__(task, name=name)

    def _report(self, update: WatcherUpdate[float]) -> None:
        if update.time_elapsed is None:
            update = replace(update, time_elapsed=time.monotonic() - self._start)
        self._last = replace(update, name=self.device_name)
        for watcher in list(self._watchers):
            _deliver(watcher, self._last)

    @property
    def last_update(self) -> WatcherUpdate[float] | None:
        """The newest progress reported (None: none yet)."""
        return self._last

    def watch(self, watcher: Callable[..., Any]) -> None:
        """Call ``watcher(**update)`` now (if there was progress) and on every update."""
        self._watchers.append(watcher)
        if self._last is not None:
            _deliver(watcher, self._last)


def _deliver(watcher: Callable[..., Any], update: WatcherUpdate[float]) -> None:
    fields = {k: v for k, v in asdict(update).items() if v is not None}
    try:
        watcher(**fields)
    except Exception:  # a broken progress bar never fails the instrument action
        log.exception("progress watcher %r failed", watcher)


def report_progress(
    current: float,
    initial: float,
    target: float,
    *,
    unit: str,
    elapsed_s: float | None = None,
    remaining_s: float | None = None,
    precision: int | None = None,
) -> None:
    """Tell the status of the running action how far it is (outside a
    :class:`ProgressStatus`, nothing happens).

    Parameters
    ----------
    current, initial, target
        Where the action is, where it started and where it ends, in ``unit``.
    unit
        The unit of the three values (``"s"`` of instrument time, ``"degC"`` ...).
    elapsed_s, remaining_s
        Instrument time since the start and until the end, s (None: unknown; the status
        then fills in the wall time elapsed).
    precision
        Decimal places to show.
    """
    report = _CURRENT.get()
    if report is None:
        return
    span = target - initial
    fraction = 1.0 if span == 0 else min(max((current - initial) / span, 0.0), 1.0)
    report(
        WatcherUpdate(
            current=float(current),
            initial=float(initial),
            target=float(target),
            unit=unit,
            precision=precision,
            fraction=fraction,
            time_elapsed=elapsed_s,
            time_remaining=remaining_s,
        )
    )


def progress_watched() -> bool:
    """Return whether the running action has a :class:`ProgressStatus` to report to (an
    action may skip the queries it makes only for progress when not)."""
    return _CURRENT.get() is not None


class Countdown:
    """Progress of an action whose instrument reports its remaining time (a move, a
    transfer): call it with each remaining time, s of instrument time (>= 0; inf or NaN:
    unknown, not reported). The longest remaining time seen is the action's total."""

    def __init__(self) -> None:
        self.total_s: float | None = None

    def __call__(self, remaining_s: float) -> None:
        """Report ``total - remaining`` of ``total`` instrument seconds."""
        if not math.isfinite(remaining_s) or remaining_s < 0:
            return
        if self.total_s is None or remaining_s > self.total_s:
            self.total_s = remaining_s
        done = self.total_s - remaining_s
        report_progress(done, 0.0, self.total_s, unit="s", elapsed_s=done, remaining_s=remaining_s)


@dataclass(frozen=True, eq=False)
class WatchedWait:
    """One slice of a plan's wait on a long status: an awaitable factory for bluesky's
    ``wait_for`` message, done when ``status`` is done or after ``seconds`` of wall time.
    :class:`couponlab.run_engine.LabRunEngine` shows ``status`` to its ``waiting_hook``
    while it waits (progress bars); any other RunEngine just waits."""

    status: Status
    seconds: float

    def __call__(self) -> Coroutine[Any, Any, None]:
        """Return the coroutine of one slice."""
        return _done_or_after(self.status, self.seconds)


async def _done_or_after(status: Status, seconds: float) -> None:
    task: Any = getattr(status, "task", None)  # an ophyd-async AsyncStatus
    if isinstance(task, asyncio.Future):
        await asyncio.wait([task], timeout=seconds)
        return
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def settle() -> None:
        if not done.done():
            done.set_result(None)

    def finished(_: Any) -> None:  # may be called from another thread (ophyd v1 statuses)
        loop.call_soon_threadsafe(settle)

    status.add_callback(finished)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done, seconds)


def watched_statuses(factories: Iterable[object]) -> set[Status]:
    """Return the statuses of the :class:`WatchedWait` slices among ``factories``."""
    return {f.status for f in factories if isinstance(f, WatchedWait)}


class ProgressBars:
    """A RunEngine ``waiting_hook`` drawing bluesky's progress bars (as its
    ``ProgressBarManager``), one bar per watchable status.

    Unlike bluesky's manager it keeps the bar when it is shown the same statuses again
    (the next slice of a watched wait) and clears it once they are all done or other
    statuses are waited for; it never warns about a bar not completed.

    Parameters
    ----------
    factory
        Makes a bar from the statuses (default: bluesky's terminal bar, drawn after 0.2 s).
    """

    def __init__(self, factory: Callable[[Any], ProgressBarBase] = default_progress_bar) -> None:
        self.factory = factory
        self.bar: ProgressBarBase | None = None
        self.statuses: frozenset[Any] = frozenset()

    def __call__(self, statuses: Collection[Any] | None) -> None:
        """Show ``statuses`` (a new wait) or, with None, say the wait has ended."""
        if statuses is None:
            if self.bar is not None and all(s.done for s in self.statuses):
                self.clear()
            return
        key = frozenset(statuses)
        if self.bar is not None and key == self.statuses:
            return
        self.clear()
        self.statuses = key
        self.bar = self.factory(list(statuses))
        for status in statuses:
            if hasattr(status, "add_callback"):
                status.add_callback(self._maybe_done)

    def _maybe_done(self, _: Any) -> None:
        if self.bar is not None and self.statuses and all(s.done for s in self.statuses):
            self.clear()

    def clear(self) -> None:
        """Take the current bar off the screen."""
        bar, self.bar, self.statuses = self.bar, None, frozenset()
        if bar is not None:
            bar.clear()
