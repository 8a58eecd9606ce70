"""Watch a long instrument action in slices, with a checkpoint before each slice.

Time lives in the instruments: a 20 h hold is a furnace program, a tensile pull is the
frame's, a print job is the cell's. A plan that waited on such an action's status in one
``bps.wait`` would hold a Ctrl-C (a deferred pause, which lands at the next checkpoint) for
the whole action. :func:`watch` waits in slices of :data:`WATCH_SLICE_S` of wall time with a
``checkpoint`` before each: a pause lands within one slice, the instruments are put in their
paused state by the RunEngine (see docs/decisions/0040-pause-stop-abort.md), and after
``RE.resume()`` the plan watches the same status again. The action is never restarted by the
watching: replaying a slice after a resume only waits again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import bluesky.plan_stubs as bps
from bluesky.protocols import Status
from bluesky.utils import FailedStatus, MsgGenerator
from ophyd_async.core import AsyncStatus

from couponlab.progress import ProgressStatus, WatchedWait

T = TypeVar("T")

WATCH_SLICE_S = 0.5
"""Longest wall time between two checkpoints while watching, s (a pause waits at most this)."""


def watch(status: Status | None, *, slice_s: float = WATCH_SLICE_S) -> MsgGenerator[None]:
    """Wait until ``status`` is done, in slices of ``slice_s`` s with a checkpoint before each.

    Parameters
    ----------
    status
        The status of an instrument action (as returned by ``bps.abs_set``, ``bps.trigger``,
        ``bps.complete``). None (a message-level simulator's reply) counts as done.
    slice_s
        Wall time watched between checkpoints, s (> 0).

    Yields
    ------
    Msg
        ``checkpoint`` and ``wait_for`` messages, at least one ``checkpoint``.

    Raises
    ------
    Exception
        The action failed: its own error (a status the plan got from a ``set``/``trigger``/
        ``complete`` message is usually thrown into the plan first by the RunEngine, as a
        ``FailedStatus`` whose ``__cause__`` is that error).
    """
    if not slice_s > 0:
        raise ValueError(f"slice_s = {slice_s} s must be > 0")
    while True:
        yield from bps.checkpoint()
        if status is None or status.done:
            break
        yield from watch_slice(status, slice_s)
    if status is not None and not status.success:
        error = status.exception()
        if isinstance(error, Exception):
            raise error  # the device's own error
        raise FailedStatus(status)


def watch_slice(status: Status, seconds: float) -> MsgGenerator[None]:
    """Wait until ``status`` is done or ``seconds`` (wall time) have passed (one ``wait_for``
    message; no checkpoint: put one before it). The lab's RunEngine shows ``status`` to its
    progress bars meanwhile (:class:`couponlab.progress.WatchedWait`)."""
    yield from bps.wait_for([WatchedWait(status, seconds)])


def watch_call(
    fn: Callable[[], Awaitable[T]], *, slice_s: float = WATCH_SLICE_S
) -> MsgGenerator[T | None]:
    """Start ``fn()`` once on the RunEngine's loop and :func:`watch` it; return its result.

    For an instrument's job that a driver waits on with a coroutine (a print job, for
    example); what ``fn`` reports (:func:`couponlab.progress.report_progress`) reaches the
    progress bars. Replaying the start after a resume does not start it again.

    Returns
    -------
    T or None
        ``fn()``'s result (None under a message-level simulator, which runs nothing).
    """
    started: list[AsyncStatus[T]] = []

    async def start() -> None:
        if not started:
            started.append(ProgressStatus(_awaited(fn)))

    yield from bps.wait_for([start])
    if not started:
        yield from watch(None, slice_s=slice_s)
        return None
    status = started[0]
    yield from watch(status, slice_s=slice_s)
    return status.task.result()


async def _awaited(fn: Callable[[], Awaitable[T]]) -> T:
    return await fn()


__all__ = ["WATCH_SLICE_S", "watch", "watch_call", "watch_slice"]
