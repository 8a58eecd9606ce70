"""The lab's RunEngine: bluesky's, with pause, stop and abort as a lab needs them.

bluesky 1.15.1's RunEngine, on a pause, first calls ``stop()`` on every object the run has
``set`` and then ``pause()`` on every object the run has seen that has ``pause`` and
``resume`` (:class:`bluesky.protocols.Pausable`); ``RE.resume()`` calls ``resume()`` on
them. For a motor, stop-then-rewind is right. For a furnace, ``stop()`` is its standby: a
pause would end a 100 h hold. So :class:`LabRunEngine` changes these things (see
docs/decisions/0040-pause-stop-abort.md):

1. **Pause** (and a suspender's suspension, :mod:`couponlab.suspenders`): a device that can
   pause itself (it has ``pause`` and ``resume``) is paused, not stopped (the furnace holds
   its program); every other device the run moved is stopped, as in bluesky.
2. **Stop, abort, halt, or a pause that cannot resume**: after bluesky's clean-up, every
   device the run used that has a ``safe_state()`` is put in it (each within
   :data:`SAFE_STATE_TIMEOUT_S`; failures are logged and the rest still go safe).
3. **Clean-up is not cut short**: once a run is being stopped or aborted, the failures of
   the statuses that the clean-up itself ends (a held program, a clock wait) are not thrown
   into the clean-up (bluesky's "pardoned" failures, which it otherwise allows only after
   the plan has finished).
4. **Honest interruption**: when a pause could not be honoured (no checkpoint, so the run
   was aborted) bluesky raises ``RunEngineInterrupted`` with its "entering a paused state"
   message although it is idle; here that is :class:`RunAborted`, which says so.

5. **A checkpoint after a clear_checkpoint is one again**: in bluesky 1.15.1 a
   ``clear_checkpoint`` makes the rest of the *whole plan* unresumable (a later
   ``checkpoint`` does not re-open the message cache), so in a campaign (one plan of many
   runs) the first step that clears its checkpoint (a feeder calibration, a print) would leave
   no later pause or suspension anywhere to land. Here a ``checkpoint`` rewinds to itself
   again, as the plans that clear a checkpoint for their set-up and set one per slice later
   (:mod:`couponlab.plans.watch`) expect.

6. **Progress of watched waits**: a plan's slice of a wait on a long status
   (:class:`couponlab.progress.WatchedWait`) shows that status to the ``waiting_hook``, as
   bluesky does for a ``wait`` on a group, so progress bars follow holds, moves and prints.

Interruptions are recorded: every run has an ``interruptions`` stream with one event per
pause and resume (bluesky's ``record_interruptions``). Every start document's ``versions``
names couponlab's version beside bluesky's, ophyd-async's and event-model's.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

from bluesky import RunEngine
from bluesky.protocols import Pausable
from bluesky.utils import RunEngineInterrupted

from couponlab import __version__
from couponlab.errors import describe_error
from couponlab.progress import watched_statuses
from couponlab.units import numbers_with_units

log = logging.getLogger(__name__)

SAFE_STATE_TIMEOUT_S = 10.0
"""Longest wait for one device's ``safe_state()`` after a stop or abort, s of wall time."""

_ENDING_STATES = ("stopping", "aborting", "halting")


class RunAborted(RunEngineInterrupted):
    """A pause was requested where the plan could not be resumed, so the run was aborted.

    The RunEngine is idle (not paused): there is nothing to resume. The run's stop document
    says ``exit_status: "abort"``, and every device the run used was put in its safe state.
    """


class LabRunEngine(RunEngine):
    """bluesky's RunEngine, with the lab's pause, stop and abort (module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.record_interruptions = True
        self._suspending = False
        self.md["versions"]["couponlab"] = __version__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run a plan, as :meth:`bluesky.RunEngine.__call__`.

        Raises
        ------
        RunAborted
            A pause (Ctrl-C) came where the plan has no checkpoint: the run was aborted.
        """
        return self._honest(super().__call__, *args, **kwargs)

    def resume(self) -> Any:
        """Resume a paused plan, as :meth:`bluesky.RunEngine.resume` (``RunAborted`` too)."""
        return self._honest(super().resume)

    def _honest(self, call: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return call(*args, **kwargs)
        except RunAborted:
            raise
        except RunEngineInterrupted as exc:
            if self.state == "paused":
                raise
            raise RunAborted(
                "The run was aborted (exit_status 'abort'), not paused: the pause came where "
                "the plan cannot be resumed (no checkpoint). Every device it used was put in "
                "its safe state; the RunEngine is idle."
            ) from exc

    async def _open_run(self, msg: Any) -> Any:
        """bluesky's ``open_run``, with the plan's arguments and the lab file in the start
        document as numbers with units (:func:`couponlab.units.numbers_with_units`): both
        record what was given as text (``"50 h"``, ``"30 g/min"``)."""
        kwargs = dict(msg.kwargs)
        if isinstance(kwargs.get("plan_args"), dict):
            kwargs["plan_args"] = numbers_with_units(kwargs["plan_args"])
        lab_file = kwargs.get("lab_file", self.md.get("lab_file"))
        if isinstance(lab_file, dict):
            kwargs["lab_file"] = numbers_with_units(lab_file)
        return await super()._open_run(msg._replace(kwargs=kwargs))  # type: ignore[no-untyped-call]

    async def _checkpoint(self, msg: Any) -> Any:
        """bluesky's ``checkpoint``, which also ends an earlier ``clear_checkpoint`` (module
        docstring, 5): the plan may be rewound to here."""
        cache: deque[Any] | None = getattr(self, "_msg_cache", None)  # (typed deque by bluesky)
        if cache is None and not any(run.bundling for run in self._run_bundlers.values()):
            self._msg_cache = deque()
        return await super()._checkpoint(msg)  # type: ignore[no-untyped-call]

    async def _wait_for(self, msg: Any) -> Any:
        """bluesky's ``wait_for``; a slice of a watched wait (:class:`couponlab.progress.
        WatchedWait`) shows its status to the ``waiting_hook`` (progress bars) meanwhile."""
        statuses = watched_statuses(msg.args[0]) if msg.args else set()
        if not statuses:
            return await super()._wait_for(msg)  # type: ignore[no-untyped-call]
        self._call_waiting_hook(statuses)  # type: ignore[no-untyped-call]
        try:
            return await super()._wait_for(msg)  # type: ignore[no-untyped-call]
        finally:
            self._call_waiting_hook(None)  # type: ignore[no-untyped-call]

    # -- ending a run early: the statuses of what is being ended fail, expectedly ----------
    # bluesky throws a status's failure into the plan at its next message unless failures are
    # "pardoned" (which it does only once the plan has finished). When a run is stopped or
    # aborted, the plan's clean-up (e.g. the furnace to standby) fails the statuses of the
    # actions it ends (the held program, a clock wait); thrown into the clean-up, such a
    # failure would cut it short (the coupon left in) and turn an abort into a "fail". A
    # clean-up step that itself fails still raises (its own message awaits it).

    def _pardon(self) -> None:
        pardon: asyncio.Event | None = self._pardon_failures
        if pardon is not None:
            pardon.set()

    async def _abort_coro(self, reason: str) -> Any:
        self._pardon()
        return await super()._abort_coro(reason)  # type: ignore[no-untyped-call]

    async def _stop_coro(self) -> Any:
        self._pardon()
        return await super()._stop_coro()  # type: ignore[no-untyped-call]

    async def _halt_coro(self) -> Any:
        self._pardon()
        return await super()._halt_coro()  # type: ignore[no-untyped-call]

    async def _request_pause_coro(self, defer: bool = False) -> Any:
        if not defer and not self.resumable and self.state.can_pause:  # will abort
            self._pardon()
        return await super()._request_pause_coro(defer)  # type: ignore[no-untyped-call]

    async def _stop_movable_objects(self, *, success: bool = True) -> None:
        """Pause or suspend: stop only devices that cannot pause. Stop/abort/halt: stop,
        then make safe."""
        if self._state == "pausing" or self._suspending:
            for obj in list(self._movable_objs_touched):
                if isinstance(obj, Pausable):
                    continue  # RunEngine calls its pause() next
                await self._stop_one(obj, success)
            return
        await super()._stop_movable_objects(success=success)  # type: ignore[no-untyped-call]
        if self._state in _ENDING_STATES:
            await self._make_safe()

    async def _start_suspender(self, msg: Any) -> Any:
        """bluesky's suspension (a suspender tripped), pausing what can pause (see
        :meth:`_stop_movable_objects`): the RunEngine's state says "running" by then."""
        self._suspending = True
        try:
            return await super()._start_suspender(msg)  # type: ignore[no-untyped-call]
        finally:
            self._suspending = False

    async def _stop_one(self, obj: Any, success: bool) -> None:
        stop = getattr(obj, "stop", None)
        if not callable(stop):
            return
        try:
            result = stop(success=success)
            if hasattr(result, "__await__"):
                await result
        except Exception:
            self.log.exception("Failed to stop %r.", obj)

    async def _make_safe(self) -> None:
        devices = {id(o): o for o in self._objs_seen if callable(getattr(o, "safe_state", None))}

        async def one(obj: Any) -> None:
            try:
                await asyncio.wait_for(obj.safe_state(), SAFE_STATE_TIMEOUT_S)
            except Exception as exc:  # reported; every other device still goes safe
                log.error(
                    "%s did not reach its safe state after the run ended: %s",
                    getattr(obj, "name", repr(obj)),
                    describe_error(exc),
                )

        await asyncio.gather(*(one(o) for o in devices.values()))


__all__ = ["SAFE_STATE_TIMEOUT_S", "LabRunEngine", "RunAborted"]
