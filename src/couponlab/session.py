"""A lab session for IPython: twins (if the lab has any, in a process of their own), a
RunEngine whose documents are logged durably, and every device connected.

    >>> from couponlab.session import Session
    >>> s = Session.open("sim")                # the bundled lab, all twins
    >>> furnace = s.devices["furnace1"]
    >>> result = s.RE(some_plan(furnace, ...))   # result.plan_result, result.run_start_uids
    >>> s.close()                              # safe state, stop twins

Every run's start document carries the lab's name and its lab file (addresses, limits), and
every document is appended to ``<out_dir>/<uid>.jsonl`` as it is emitted
(:class:`couponlab.data.DocumentLog`): nothing else runs on the RunEngine's path. A process
of its own copies the log into the store (:class:`couponlab.ingest.IngestProcess`: Tiled,
embedded in ``<out_dir>/store`` unless the lab file names a server) when the session opens,
if the log holds runs the store lacks (an earlier session was killed, or its close ran out
of time), and again when the session closes; read it back with
:func:`couponlab.store.open_store`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine, Generator
from pathlib import Path
from typing import Any, TypeVar, cast

from bluesky import RunEngine
from bluesky.preprocessors import SupplementalData
from bluesky.run_engine import RunEngineResult
from bluesky.utils import Msg, RunEngineInterrupted
from ophyd_async.core import Device
from ophyd_async.plan_stubs import ensure_connected

from couponlab.data import DocumentLog
from couponlab.errors import (
    CouponlabError,
    InstrumentRestartedError,
    InstrumentTimeoutError,
    SafeStateError,
    describe_error,
)
from couponlab.failure import lab_state as recorded_lab_state
from couponlab.failure import lab_summary, root_cause, set_lab_state
from couponlab.ingest import IngestProcess, pending
from couponlab.lab import make_device, with_data_dir
from couponlab.labfile import LabFile, load_lab
from couponlab.run_engine import LabRunEngine
from couponlab.store import StoreLocation, api_key_from
from couponlab.suspenders import LabSuspenders, SuspenderSettings
from couponlab.twins import TwinClock, TwinProcess

T = TypeVar("T")
log = logging.getLogger(__name__)


def _bundled_lab() -> Path:
    from couponlab.cli import sample_lab_path

    return sample_lab_path()


class Session:
    """Twins, RunEngine, document log and connected devices for one lab.

    Parameters
    ----------
    lab
        The lab file. Its ``twin: true`` devices are served by a twin process of their own
        (:class:`couponlab.twins.TwinProcess`), started here and stopped by :meth:`close`,
        unless the lab file names a running one (``twin_control``, a resolved lab file).
        ``twins.control`` then gives the simulation-only controls, and every run's baseline
        stream records the twins' clock (virtual time, requested and achieved speed-up).
    out_dir
        Folder for the run documents (created if missing). A twin process started here
        keeps its lab files and log in a folder of ``out_dir/twins/`` (``couponlab.log``).
    connect_timeout
        Connection timeout per device, s.
    store
        Copy the log into the store (True, default): at the start, what the log holds and
        the store lacks (before the twins start and anything runs), and at :meth:`close`
        this session's runs; or keep only the log (False: ``couponlab data recover`` fills
        the store later).
    store_timeout
        Longest wait, at the start and at :meth:`close`, for the store to take the runs, s of
        wall time; what is left then is written at the next session's start or close, or by
        ``couponlab data recover``.
    suspenders
        Install the lab's suspenders in the RunEngine (True, default: a furnace's
        over-temperature alarm, a feeder's shielding gas low and any device's lost link
        pause the run until they clear, :mod:`couponlab.suspenders`), with these settings
        (a :class:`~couponlab.suspenders.SuspenderSettings`), or not (False).
    """

    lab_state: str = "open"
    """What safe_state() or close() last found: ``"safe (...)"`` or ``"NOT SAFE: ..."``."""
    _safe_state_error: SafeStateError | None = None

    def __init__(
        self,
        lab: LabFile,
        out_dir: str | Path = "runs",
        connect_timeout: float = 10.0,
        *,
        store: bool = True,
        store_timeout: float = 120.0,
        suspenders: bool | SuspenderSettings = True,
    ) -> None:
        self.twins: TwinProcess | None = None
        self.suspenders: LabSuspenders | None = None
        """The installed suspenders (None: switched off)."""
        self.ingest: IngestProcess | None = None
        """The process copying the log into the store while :meth:`close` waits for it."""
        self.store_timeout = store_timeout
        self._store = store_location(lab, out_dir) if store else None
        # whatever an earlier session logged and the store lacks, before anything starts:
        # nothing else competes with the ingest process for the machine then
        self._fill_store()
        if lab.twin_control is not None:
            self.twins = TwinProcess.attach(lab)
        elif any(d.twin for d in lab.devices):
            # the twins' folder (lab files, log) sits beside the runs and is kept after close;
            # one per session, so two sessions on one out_dir do not share a resolved lab file
            twins_root = Path(out_dir) / "twins"
            twins_root.mkdir(parents=True, exist_ok=True)
            workdir = tempfile.mkdtemp(prefix=time.strftime("%Y%m%d-%H%M%S-"), dir=twins_root)
            # twins that write files (the camera) write only under the runs' folder
            writing = [with_data_dir(e, out_dir) if e.twin else e for e in lab.devices]
            lab = lab.model_copy(update={"devices": writing})
            self.twins = TwinProcess(lab, workdir=workdir)
            lab = self.twins.lab
        self.lab = lab
        try:
            self.RE: RunEngine = cast(  # (typed as bluesky's: its methods are exempt from
                RunEngine,  # mypy's untyped-call check, the subclass's are not)
                LabRunEngine(
                    {"lab": lab.name, "lab_file": lab.model_dump()}, call_returns_result=True
                ),
            )
            if self.twins is not None:  # every run records the twins' clock at start and end
                self.RE.preprocessors.append(
                    SupplementalData(baseline=[TwinClock(self.twins.control)])
                )
            self.log = DocumentLog(out_dir)  # marks the runs a killed process left open
            self.RE.subscribe(self.log)
            self.devices: dict[str, Device] = {
                e.name: make_device(e, out_dir=out_dir) for e in lab.devices
            }
            self.RE(ensure_connected(*self.devices.values(), timeout=connect_timeout))
            if suspenders is not False:
                settings = suspenders if suspenders is not True else SuspenderSettings()
                self.suspenders = LabSuspenders(lab, self.devices, settings)
                self.RE(self.suspenders.install_plan())
        except BaseException:
            if self.twins is not None:
                self.twins.stop()
            raise

    @classmethod
    def open(cls, lab: str | Path | LabFile = "sim", **kwargs: Any) -> Session:
        """Open a session on a lab file path, a :class:`LabFile`, or ``"sim"`` (bundled)."""
        if isinstance(lab, LabFile):
            return cls(lab, **kwargs)
        return cls(load_lab(_bundled_lab() if str(lab) == "sim" else lab), **kwargs)

    def run(self, plan: Generator[Msg, Any, Any]) -> RunEngineResult:
        """Run ``plan`` on the RunEngine; return its result (``.plan_result``, run uids).

        A fault that ends the run (one the suspenders do not pause for: a restarted
        instrument, a tripped interlock, a jam, an error that does not clear) aborts to the
        safe state of *every* device of the lab (:meth:`abort_to_safe`), and the error is
        raised as it was, the lab's state (each device's, read back) attached: ``couponlab``
        prints it on the first line (:func:`couponlab.failure.one_line`), and a device that
        did not reach its safe state is listed with why (a
        :class:`~couponlab.errors.SafeStateError`, :func:`couponlab.failure.cleanup_failures`).
        A condition that kept the run suspended longer than the suspenders' bound ends it
        so too: the error raised is then its :class:`~couponlab.errors.ConditionPersistsError`.
        A pause (Ctrl-C) is left to the user, as in bluesky.
        """
        try:
            result = self.RE(plan)
        except RunEngineInterrupted:
            raise
        except Exception as exc:
            ended = self.suspenders.take_ended() if self.suspenders is not None else None
            if ended is not None:  # a suspension outlasted its bound: that is the cause
                self.abort_to_safe(ended)
                raise ended from exc
            self.abort_to_safe(exc)
            raise
        assert isinstance(result, RunEngineResult)
        return result

    def abort_to_safe(self, cause: BaseException | None = None, timeout: float = 10.0) -> str:
        """Put every device of the lab in its safe state, read back each one's state, and
        return (and keep in :attr:`lab_state`) a line saying where each was left.

        With ``cause`` (the fault that ended a run), that line and the clean-up's failure
        are recorded on it (:func:`couponlab.failure.set_lab_state`) and added as a note.
        Does not raise: a device that did not reach its safe state is named in the line
        (``NOT SAFE``) and listed, with why, in the recorded :class:`SafeStateError`.
        """
        cleanup: SafeStateError | None = None
        try:
            self.safe_state(timeout)
        except SafeStateError as exc:
            cleanup = exc
        states = self.read_states(timeout)
        self.lab_state = lab_summary(states, cleanup)
        if cause is not None:
            set_lab_state(cause, self.lab_state, cleanup)
            cause.add_note(f"lab after the abort: {self.lab_state}")
            log.error("%s; lab: %s", describe_error(root_cause(cause)), self.lab_state)
        return self.lab_state

    def read_states(self, timeout: float = 5.0) -> dict[str, str]:
        """Return each device's state as the device reports it now (``state()``, read back),
        or ``"unknown (<why>)"`` where it cannot be read (tried once more on its own, as in
        :meth:`safe_state`)."""
        results = self._gather("state", timeout)
        for name in [n for n, (_, e) in results.items() if e is not None]:
            results.update(self._gather("state", timeout, only=name))
        return {
            name: str(value) if error is None else f"unknown ({describe_error(error)})"
            for name, (value, error) in results.items()
        }

    def call(self, fn: Callable[[], Awaitable[T]], timeout: float | None = None) -> T:
        """Await ``fn()`` on the RunEngine's loop (where the devices live) and return it.

        For example ``s.call(furnace.identify)`` or ``s.call(furnace.read_profile)``. The
        device's own error is raised as is (an :class:`~couponlab.errors.InstrumentError`,
        an :class:`~couponlab.errors.InputError` ...). Works while the RunEngine is idle or
        paused. Ctrl-C cancels the call.

        Parameters
        ----------
        fn
            A function of no arguments returning an awaitable.
        timeout
            Longest wait, s of wall time (None: the device's own timeouts bound it).

        Raises
        ------
        InstrumentTimeoutError
            ``fn()`` did not finish within ``timeout`` (it is cancelled).
        """
        return self._on_loop(_awaited(fn), timeout, getattr(fn, "__qualname__", repr(fn)))

    def _on_loop(self, coro: Coroutine[Any, Any, T], timeout: float | None, what: str) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self.RE.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            if future.done():  # the device's own timeout (InstrumentTimeoutError), as is
                raise
            future.cancel()
            message = f"{what} did not finish within {timeout:g} s"
            raise InstrumentTimeoutError("", message) from None
        except BaseException:  # Ctrl-C (KeyboardInterrupt) included: do not leave it running
            future.cancel()
            raise

    def _each_device(
        self, method: str, timeout: float, only: str | None = None
    ) -> dict[str, BaseException | None]:
        """Call ``method()`` of every device (or ``only`` that one) at once, each bounded by
        ``timeout`` s.

        Returns device name -> None (done) or the error it raised.
        """
        results = self._gather(method, timeout, only)
        return {name: error for name, (_, error) in results.items()}

    def _gather(
        self, method: str, timeout: float, only: str | None = None
    ) -> dict[str, tuple[Any, BaseException | None]]:
        """Call ``method()`` of every device (or ``only`` that one) at once, each bounded by
        ``timeout`` s.

        Returns device name -> (its result, None) or (None, the error it raised). An
        instrument found restarted is asked once more (it has said so, once; its link is up).
        """
        devices = {n: d for n, d in self.devices.items() if only is None or n == only}

        async def one(name: str, device: Device) -> tuple[Any, BaseException | None]:
            for attempt in (1, 2):
                try:
                    return await asyncio.wait_for(getattr(device, method)(), timeout), None
                except InstrumentRestartedError as exc:
                    if attempt == 1:
                        log.warning("%s: %s; %s() asked again", name, exc.message, method)
                        continue
                    return None, exc
                except CouponlabError as exc:  # the device's own (typed) error
                    return None, exc
                except TimeoutError as exc:  # wait_for's, or ophyd-async's wrapping a typed one
                    cause = exc.__cause__ if isinstance(exc.__cause__, CouponlabError) else None
                    return None, cause or InstrumentTimeoutError(
                        name, f"{method}() did not finish within {timeout:g} s"
                    )
                except Exception as exc:
                    return None, exc
            raise AssertionError("unreachable")  # pragma: no cover

        async def every() -> dict[str, tuple[Any, BaseException | None]]:
            results = await asyncio.gather(*(one(n, d) for n, d in devices.items()))
            return dict(zip(devices, results, strict=True))

        return self._on_loop(every(), timeout + 5.0, f"{method} of every device")

    def safe_state(self, timeout: float = 10.0) -> None:
        """Put every device in its safe state, all at once, each within ``timeout`` s.

        A device that failed is tried once more on its own: serial and VISA links block the
        loop while they wait (decision 0004), so one silent instrument can make the others
        miss their timeouts. Sets :attr:`lab_state` to ``"safe"`` or to the devices that
        failed.

        Raises
        ------
        SafeStateError
            One or more devices did not reach their safe state; it lists each with why.
            (Every other device was still sent to its safe state.)
        """
        try:
            results = self._each_device("safe_state", timeout)
        except InstrumentTimeoutError as exc:  # the loop itself did not answer in time
            results = dict.fromkeys(self.devices, exc)
        for name in [n for n, e in results.items() if e is not None]:
            results.update(self._each_device("safe_state", timeout, only=name))
        failures = {n: e for n, e in results.items() if e is not None}
        if failures:
            error = SafeStateError(failures, [n for n, e in results.items() if e is None])
            self.lab_state = f"NOT SAFE ({', '.join(failures)} not in their safe state)"
            raise error
        self.lab_state = f"safe (all {len(results)} device(s) in their safe state)"

    def disconnect(self, timeout: float = 5.0) -> dict[str, BaseException]:
        """Close every device's link, all at once, each within ``timeout`` s.

        Returns device name -> error for the links that did not close cleanly (also logged
        as warnings); closing a link leaves no device less safe, so this does not raise.
        """
        results = self._each_device("disconnect", timeout)
        failures = {n: e for n, e in results.items() if e is not None}
        for name, exc in failures.items():
            log.warning("%s: disconnect failed: %s", name, describe_error(exc))
        return failures

    def close(self) -> None:
        """End a paused run (abort), make every device safe, disconnect, close the log and
        stop the twins.

        Raises
        ------
        SafeStateError
            A device did not reach its safe state (raised again by every later ``close``):
            everything else is still closed and stopped.
        """
        try:
            if self.RE.state == "paused":  # end the run: its clean-up runs, it is marked
                with contextlib.suppress(Exception):  # (a clean-up error is logged by bluesky)
                    self.RE.abort(reason="session closed while the run was paused")
            if self.suspenders is not None:  # whatever state an interrupted run left
                try:  # unsubscribed on the loop, where the signals' polls live (not by a
                    # plan: the RunEngine holds a plan back while a suspender is tripped)
                    self._on_loop(self._remove_suspenders(), 10.0, "removing the suspenders")
                except Exception as exc:
                    log.warning("removing the suspenders failed: %s", describe_error(exc))
            if self.devices:
                try:
                    self.safe_state()
                except SafeStateError as exc:
                    self._safe_state_error = exc
                finally:
                    self.disconnect()
        finally:
            self.devices = {}
            self.log.close()
            self._fill_store()
            if self.twins is not None:
                self.twins.stop()
                self.twins = None
        if self._safe_state_error is not None:
            raise self._safe_state_error

    async def _remove_suspenders(self) -> None:
        if self.suspenders is not None:
            for suspender in self.suspenders.suspenders:
                self.RE.remove_suspender(suspender)
            self.suspenders.suspenders = []

    def _fill_store(self) -> None:
        """Copy into the store what the log holds and it lacks (this session's runs, and any
        an earlier one left), from a process of its own, waiting up to ``store_timeout``.
        Nothing to do (no process started) when every run file is listed as whole in the
        store (:func:`couponlab.ingest.pending`)."""
        if self._store is None or not pending(self._store.out_dir):
            return
        self.ingest = IngestProcess(self._store)
        try:
            self.ingest.finish(self.store_timeout)
        finally:
            self.ingest = None

    def __enter__(self) -> Session:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        """Close; if an error is already on its way, it stays the error raised (the cause),
        and the clean-up's outcome is attached to it (:func:`couponlab.failure.lab_state`)."""
        if exc is None:
            self.close()
            return
        cleanup: Exception | None = None
        try:
            self.close()
        except Exception as error:  # the clean-up's failure is secondary: never the cause
            cleanup = error
            exc.add_note(f"clean-up: {describe_error(error)}")
            log.info("clean-up after %s failed", describe_error(exc), exc_info=error)
        if cleanup is not None or recorded_lab_state(exc) is None:  # else run()'s read-back
            set_lab_state(exc, self.lab_state, cleanup)


def store_location(lab: LabFile, out_dir: str | Path) -> StoreLocation:
    """Return where a session on ``lab`` stores its runs: the lab file's Tiled server (its API
    key read from the environment or file the lab file names), else the embedded store in
    ``out_dir``, which may also read the folders the lab's devices write files to."""
    readable = tuple(
        Path(str(e.settings["data_dir"])) for e in lab.devices if "data_dir" in e.settings
    )
    settings = lab.store
    if settings is None:
        return StoreLocation(Path(out_dir).absolute(), readable=readable)
    key = api_key_from(settings.api_key_env, settings.api_key_file)
    return StoreLocation(Path(out_dir).absolute(), settings.uri, key)


async def _awaited(fn: Callable[[], Awaitable[T]]) -> T:
    return await fn()


__all__ = ["Session", "store_location"]
