"""The one entry point through which runtime code starts twins: everything here imports
:mod:`couponlab.simulators` lazily, so that drivers and plans never depend on it.

- :class:`TwinProcess`: the twins of a lab served by ``couponlab twin serve`` in a process of
  their own (as instruments are other machines); Session, the demo and end-to-end tests use it.
- :class:`TwinControl`: the client of the twin control channel (speed-up, pause and step,
  ground truth; docs/protocols/twin-control.md). Plans and drivers never use it.
- :class:`BackgroundTwins`: twins on a thread of this process, for component tests that
  reach into one twin's model.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from couponlab.errors import CouponlabError
from couponlab.labfile import LabFile, load_lab

if TYPE_CHECKING:
    from couponlab.simulators.background import BackgroundLoop
    from couponlab.simulators.lab_twins import TwinLab
    from couponlab.simulators.world import World

T = TypeVar("T")


class BackgroundTwins:
    """The twins of a lab running on their own event loop and thread.

    Use :attr:`lab` (addresses resolved, ``twin_control`` set) to build and connect drivers
    on your own loop; :meth:`call` runs a function on the twins' thread (ground truth, fault
    injection); :meth:`stop` stops every twin and the thread.
    """

    def __init__(self, lab: LabFile) -> None:
        from couponlab.simulators.background import BackgroundLoop
        from couponlab.simulators.lab_twins import start_lab_twins

        self._bg: BackgroundLoop = BackgroundLoop("couponlab-twins")
        try:
            self._running: TwinLab = self._bg.run(start_lab_twins(lab))
        except BaseException:
            self._bg.stop()
            raise
        self.lab: LabFile = self._running.lab

    @property
    def world(self) -> World:
        """Return the shared world (touch it only through :meth:`call`)."""
        return self._running.world

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Call ``fn(*args)`` on the twins' thread and return its result."""
        return self._bg.call(fn, *args)

    async def acall(self, fn: Callable[..., T], *args: Any) -> T:
        """Await ``fn(*args)`` run on the twins' thread."""
        return await self._bg.acall(fn, *args)

    def stop(self) -> None:
        """Stop every twin and the twins' thread (idempotent)."""
        if self._bg is not None:
            try:
                self._bg.run(self._running.stop())
            finally:
                self._bg.stop()

    def __enter__(self) -> BackgroundTwins:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def serve_twins(
    lab: LabFile,
    resolved_path: str | Path | None = None,
    *,
    on_ready: Callable[[LabFile], None] | None = None,
    stop: asyncio.Event | None = None,
    control_port: int = 0,
    parent_pid: int | None = None,
    hard_exit_after_s: float | None = None,
    bind: str = "127.0.0.1",
) -> None:
    """Serve the twins of ``lab`` and their control channel until stopped.

    Stops on SIGINT/SIGTERM (when run in the main thread), when ``stop`` is set, on the
    control channel's ``shutdown``, or when the process ``parent_pid`` has gone.

    Parameters
    ----------
    lab
        The lab file; only ``twin: true`` devices are started.
    resolved_path
        Where to write the lab file with the real addresses and ``twin_control``, atomically,
        once every twin listens (a reader that sees the file can connect at once).
    on_ready
        Called with the resolved lab file once every twin listens.
    stop
        An event that ends serving when set.
    control_port
        Port of the control channel (0: a free port).
    parent_pid
        Stop when this process is no longer this process's parent (it died).
    hard_exit_after_s
        After a stop signal, end the process with ``os._exit`` if a clean stop takes longer
        than this (wall s): a twin process answers SIGTERM within a second.
    bind
        Host every twin and the control channel listen on, whatever the lab file's addresses
        say (default 127.0.0.1: twins have no authentication).
    """
    from couponlab.simulators.lab_twins import start_lab_twins

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    restore = _install_stop_signals(loop, stop, hard_exit_after_s)
    watch: asyncio.Task[None] | None = None
    if parent_pid is not None:
        watch = asyncio.create_task(_watch_parent(parent_pid, stop), name="watch-parent")
    running = await start_lab_twins(lab, control_port=control_port, bind=bind)
    relay = asyncio.create_task(_relay(running.shutdown, stop), name="control-shutdown")
    try:
        if resolved_path is not None:
            _write_atomically(running.lab, Path(resolved_path))
        if on_ready is not None:
            on_ready(running.lab)
        await stop.wait()
    finally:
        for task in (watch, relay):
            if task is not None:
                task.cancel()
        await running.stop()
        restore()


async def _relay(source: asyncio.Event, target: asyncio.Event) -> None:
    await source.wait()
    target.set()


def _install_stop_signals(
    loop: asyncio.AbstractEventLoop, stop: asyncio.Event, hard_exit_after_s: float | None
) -> Callable[[], None]:
    """Make SIGINT/SIGTERM set ``stop`` (main thread only); return a function that undoes it."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def on_signal(signum: int, frame: object) -> None:
        # a Python-level handler runs between bytecodes even if the loop were busy
        loop.call_soon_threadsafe(stop.set)
        if hard_exit_after_s is not None:
            timer = threading.Timer(hard_exit_after_s, os._exit, (128 + signum,))
            timer.daemon = True
            timer.start()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore


async def _watch_parent(parent_pid: int, stop: asyncio.Event) -> None:
    while True:
        if os.getppid() != parent_pid:  # the parent died: nobody will stop us
            stop.set()
            return
        await asyncio.sleep(0.5)


def _write_atomically(lab: LabFile, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".yaml.tmp")
    os.close(fd)
    lab.dump(tmp)
    os.replace(tmp, path)


class TwinControlError(CouponlabError):
    """The twin control channel refused a request, or cannot be reached."""


class TwinControlRefusedError(TwinControlError):
    """The twin control channel answered, and refused the request (nothing changed)."""


class TwinControl:
    """Client of the twin control channel of a twin process (blocking, thread-safe).

    Parameters
    ----------
    address
        ``tcp://127.0.0.1:PORT`` (a resolved lab file's ``twin_control``).
    timeout_s
        Longest wait for a reply, wall s (``advance`` of long spans may pass its own).
    """

    def __init__(self, address: str, timeout_s: float = 30.0) -> None:
        host, _, port = address.removeprefix("tcp://").rpartition(":")
        if not host or not port.isdigit():
            raise TwinControlError("", f"twin control address {address!r} is not tcp://HOST:PORT")
        self.address = address
        self._where = (host, int(port))
        self.timeout_s = timeout_s
        self._sock: socket.socket | None = None
        self._file: Any = None
        self._lock = threading.Lock()
        self._next_id = 0

    def _connect(self) -> None:
        try:
            self._sock = socket.create_connection(self._where, timeout=self.timeout_s)
        except OSError as exc:
            raise TwinControlError(
                "", f"cannot reach the twin control channel at {self.address}: {exc}"
            ) from exc
        self._file = self._sock.makefile("rwb")

    def call(self, method: str, timeout_s: float | None = None, **params: Any) -> Any:
        """Send one request and return its result; raise :class:`TwinControlError`."""
        with self._lock:
            if self._sock is None:
                self._connect()
            assert self._sock is not None
            self._next_id += 1
            request = {"id": self._next_id, "method": method, "params": _jsonable(params)}
            self._sock.settimeout(self.timeout_s if timeout_s is None else timeout_s)
            try:
                self._file.write((json.dumps(request) + "\n").encode())
                self._file.flush()
                line = self._file.readline()
            except OSError as exc:
                self._close()
                raise TwinControlError(
                    "", f"twin control channel at {self.address}: {method} failed: {exc}"
                ) from exc
            if not line:
                self._close()
                raise TwinControlError("", f"twin control channel at {self.address} closed")
        reply = json.loads(line)
        if "error" in reply:
            err = reply["error"]
            raise TwinControlRefusedError("", f"twin control {method}: {err['message']}")
        return reply["result"]

    def status(self) -> dict[str, Any]:
        """Return virtual time (s), requested and achieved speed-up, paused, twin addresses."""
        result: dict[str, Any] = self.call("status")
        return result

    def set_speedup(self, speedup: float) -> float:
        """Set virtual s per wall s (1e-6..1e6) from now on; return it."""
        return float(self.call("set_speedup", speedup=speedup))

    def pause(self) -> float:
        """Stop virtual time; return it (s)."""
        return float(self.call("pause"))

    def resume(self) -> float:
        """Let virtual time follow the wall clock again; return it (s)."""
        return float(self.call("resume"))

    def advance(self, seconds: float, timeout_s: float | None = None) -> float:
        """Step virtual time by ``seconds`` (0..1e9) at once; return the new time (s)."""
        return float(self.call("advance", timeout_s=timeout_s, seconds=seconds))

    def work_stats(self, reset: bool = False) -> dict[str, float]:
        """Return the recent syncs' simulation work: count, p50/p99/max in ms."""
        result: dict[str, float] = self.call("work_stats", reset=reset)
        return result

    def truth(self, name: str, **params: Any) -> Any:
        """Return a ground-truth query of the world (simulation only), e.g.
        ``truth("activation_energy", coupon_id="C1", x_mm=[...], y_mm=[...])``."""
        return self.call("truth", name=name, **params)

    def fault(
        self,
        device: str,
        kind: str,
        *,
        for_s: float | None = None,
        wall_s: float | None = None,
        **params: Any,
    ) -> dict[str, Any]:
        """Inject a fault into ``device``'s twin (simulation only); return it as data.

        ``kind`` is one of ``drop``, ``stall``, ``garble``, ``truncate``, ``error``,
        ``sensor_loss``, ``jam``, ``power_loss``; ``for_s`` (virtual s) or ``wall_s`` (wall s)
        bound it, otherwise it lasts until :meth:`clear_faults` (or acts once:
        docs/howto/inject-faults.md). Raises :class:`TwinControlError` if refused.
        """
        result: dict[str, Any] = self.call(
            "fault", device=device, kind=kind, for_s=for_s, wall_s=wall_s, **params
        )
        return result

    def clear_faults(self, device: str | None = None, kind: str | None = None) -> list[Any]:
        """End the active faults (of ``device`` and ``kind`` when given); return them."""
        result: list[Any] = self.call("clear_faults", device=device, kind=kind)
        return result

    def faults(self) -> dict[str, Any]:
        """Return ``{"active": [...], "devices": {name: [kinds]}, "injected": n}``."""
        result: dict[str, Any] = self.call("faults")
        return result

    def shutdown(self) -> None:
        """Ask the twin process to stop serving."""
        self.call("shutdown")

    def _close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._file.close()
                self._sock.close()
        self._sock, self._file = None, None

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            self._close()


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


STARTUP_TIMEOUT_S = 60.0
"""Longest wait for a twin process to listen on every port, wall s."""
STOP_TIMEOUT_S = 5.0
"""Longest wait for a twin process to end after SIGTERM before it is killed, wall s."""


class TwinProcess:
    """The twins of a lab, served by ``couponlab twin serve`` in a process of their own.

    Use :attr:`lab` (addresses resolved, ``twin_control`` set) to build and connect drivers,
    :attr:`control` for simulation-only controls, :meth:`stop` to end the process. The
    process has its own session (a Ctrl-C at the terminal reaches the plans, not the
    instruments) and ends by itself if this process dies.

    Parameters
    ----------
    lab
        The lab file; its ``twin: true`` devices are served.
    workdir
        Folder for the process's lab file, resolved lab file and log ``twin-serve.log``
        (default: a temporary folder, removed on stop).
    """

    def __init__(self, lab: LabFile, workdir: str | Path | None = None) -> None:
        self._owned = True
        self._tmp = workdir is None
        self.workdir = Path(
            tempfile.mkdtemp(prefix="couponlab-twins-") if workdir is None else workdir
        )
        self.workdir.mkdir(parents=True, exist_ok=True)
        declared, resolved = self.workdir / "lab.yaml", self.workdir / "resolved.yaml"
        resolved.unlink(missing_ok=True)
        lab.model_copy(update={"twin_control": None}).dump(declared)
        self.log_path = self.workdir / "twin-serve.log"
        with self.log_path.open("wb") as log:
            self._proc: subprocess.Popen[bytes] | None = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "couponlab.cli",
                    "--log",
                    str(self.workdir / "couponlab.log"),
                    "twin",
                    "serve",
                    str(declared),
                    "--resolved",
                    str(resolved),
                    "--exit-with-parent",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                start_new_session=True,
            )
        try:
            self.lab: LabFile = self._wait_ready(resolved)
        except BaseException:
            self.stop()
            raise
        assert self.lab.twin_control is not None
        self.control = TwinControl(self.lab.twin_control)

    @classmethod
    def attach(cls, lab: LabFile) -> TwinProcess:
        """Use twins already served for ``lab`` (a resolved lab file with ``twin_control``);
        :meth:`stop` then leaves them running."""
        if lab.twin_control is None:
            raise TwinControlError("", f"lab {lab.name!r} names no twin_control to attach to")
        self = cls.__new__(cls)
        self._owned, self._tmp, self._proc = False, False, None
        self.lab, self.control = lab, TwinControl(lab.twin_control)
        return self

    @property
    def pid(self) -> int | None:
        """Return the twin process's id (None when attached or stopped)."""
        return None if self._proc is None else self._proc.pid

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _wait_ready(self, resolved: Path) -> LabFile:
        assert self._proc is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not resolved.exists():
            if self._proc.poll() is not None:
                raise TwinControlError(
                    "",
                    f"couponlab twin serve exited with code {self._proc.returncode} before "
                    f"its twins listened:\n{self._log_tail()}",
                )
            if time.monotonic() > deadline:
                raise TwinControlError(
                    "", f"twins not listening within {STARTUP_TIMEOUT_S:g} s:\n{self._log_tail()}"
                )
            time.sleep(0.02)
        return load_lab(resolved)

    def stop(self) -> int | None:
        """End the twin process (SIGTERM, then SIGKILL after a few s); return its exit code.

        Idempotent; an attached process is left running (only the control link closes).
        """
        if getattr(self, "control", None) is not None:
            self.control.close()
        proc, self._proc = self._proc, None
        code: int | None = None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
        if self._tmp:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self._tmp = False
        return code

    def __enter__(self) -> TwinProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class TwinClock:
    """A bluesky-readable view of the twins' clock, for a run's baseline stream.

    Reads virtual time (s), the requested and the achieved speed-up (virtual s per wall s)
    and the virtual seconds dropped because the simulation could not keep up.
    """

    def __init__(self, control: TwinControl, name: str = "twin_clock") -> None:
        self.control = control
        self.name = name
        self.parent = None

    def _keys(self) -> dict[str, str]:
        return {
            "virtual_time": "virtual_time_s",
            "speedup": "speedup",
            "achieved_speedup": "achieved_speedup",
            "slowed": "slowed_s",
        }

    def read(self) -> dict[str, dict[str, Any]]:
        """Return the clock's reading (bluesky ``Readable``)."""
        status = self.control.status()
        now = time.time()
        return {
            f"{self.name}-{k}": {"value": float(status[src]), "timestamp": now}
            for k, src in self._keys().items()
        }

    def describe(self) -> dict[str, dict[str, Any]]:
        """Return the data keys: numbers, with units."""
        units = {"virtual_time": "s", "speedup": "", "achieved_speedup": "", "slowed": "s"}
        return {
            f"{self.name}-{k}": {
                "source": f"twin-control:{k}",
                "dtype": "number",
                "shape": [],
                "units": units[k],
            }
            for k in self._keys()
        }


__all__ = [
    "BackgroundTwins",
    "TwinClock",
    "TwinControl",
    "TwinControlError",
    "TwinControlRefusedError",
    "TwinProcess",
    "serve_twins",
]
