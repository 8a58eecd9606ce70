"""A lab session for IPython: twins (if the lab has any), a RunEngine whose documents are
logged durably, and every device connected.

    >>> from couponlab.session import Session
    >>> s = Session.open("sim")                # the bundled lab, all twins
    >>> furnace = s.devices["furnace1"]
    >>> result = s.RE(some_plan(furnace, ...))   # result.plan_result, result.run_start_uids
    >>> s.close()                              # safe state, stop twins

Every run's start document carries the lab's name and its lab file (addresses, limits), and
every document is appended to ``<out_dir>/<uid>.jsonl`` as it is emitted
(:class:`couponlab.data.DocumentLog`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from pathlib import Path
from typing import Any, TypeVar

import bluesky.plan_stubs as bps
from bluesky import RunEngine
from bluesky.run_engine import RunEngineResult
from bluesky.utils import Msg
from ophyd_async.core import Device
from ophyd_async.plan_stubs import ensure_connected

from couponlab.data import DocumentLog
from couponlab.lab import make_device
from couponlab.labfile import LabFile, load_lab

T = TypeVar("T")


def _bundled_lab() -> Path:
    from couponlab.cli import sample_lab_path

    return sample_lab_path()


class Session:
    """Twins, RunEngine, document log and connected devices for one lab.

    Parameters
    ----------
    lab
        The lab file (devices with ``twin: true`` are started on a background thread).
    out_dir
        Folder for the run documents (created if missing).
    connect_timeout
        Connection timeout per device, s.
    """

    def __init__(
        self, lab: LabFile, out_dir: str | Path = "runs", connect_timeout: float = 10.0
    ) -> None:
        self.twins: Any = None
        if any(d.twin for d in lab.devices):
            from couponlab.twins import BackgroundTwins

            self.twins = BackgroundTwins(lab)
            lab = self.twins.lab
        self.lab = lab
        try:
            self.RE = RunEngine(
                {"lab": lab.name, "lab_file": lab.model_dump()}, call_returns_result=True
            )
            self.log = DocumentLog(out_dir)
            self.RE.subscribe(self.log)
            self.devices: dict[str, Device] = {e.name: make_device(e) for e in lab.devices}
            self.RE(ensure_connected(*self.devices.values(), timeout=connect_timeout))
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
        """Run ``plan`` on the RunEngine; return its result (``.plan_result``, run uids)."""
        result = self.RE(plan)
        assert isinstance(result, RunEngineResult)
        return result

    def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Await ``fn()`` on the RunEngine's loop (where the devices live) and return it.

        For example ``s.call(furnace.identify)`` or ``s.call(furnace.read_profile)``.
        """
        out: list[T] = []

        async def wrapped() -> None:
            out.append(await fn())

        self.run(bps.wait_for([wrapped]))
        return out[0]

    def safe_state(self) -> None:
        """Put every device in its safe state (on the RunEngine's loop)."""

        def plan() -> Generator[Msg, Any, None]:
            for dev in self.devices.values():
                yield from bps.wait_for([getattr(dev, "safe_state")])  # noqa: B009

        self.RE(plan())

    def disconnect(self) -> None:
        """Close every device's link (on the RunEngine's loop)."""

        def plan() -> Generator[Msg, Any, None]:
            for dev in self.devices.values():
                yield from bps.wait_for([getattr(dev, "disconnect")])  # noqa: B009

        self.RE(plan())

    def close(self) -> None:
        """Make every device safe, disconnect, close the log and stop the twins (idempotent)."""
        try:
            if self.devices:
                try:
                    self.safe_state()
                finally:
                    self.disconnect()
        finally:
            self.devices = {}
            self.log.close()
            if self.twins is not None:
                self.twins.stop()
                self.twins = None

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["Session"]
