"""Nothing lost: every run's documents go to an append-only JSON Lines file as they come.

:class:`DocumentLog` is a RunEngine subscriber that writes each event-model document as one
line (``{"name": ..., "doc": ...}``) and flushes it to the operating system at once, so a
crash of the process loses nothing already emitted; the file is fsync'ed at each run's stop
document (and every ``fsync_every`` documents) against a crash of the machine. numpy arrays
and scalars are written as JSON lists and numbers, so any JSON client can read a run back;
:func:`read_run` does so. See docs/decisions/0007-run-documents-as-json-lines.md.

A run cut short (the process killed: no stop document) is marked when the next
:class:`DocumentLog` opens the folder: a stop document with ``exit_status`` ``"abort"`` and
``reason`` :data:`INTERRUPTED_REASON` is appended to its file, whose bytes stay as they were
(:func:`mark_interrupted_runs`). A run still being written by a live process is never
marked: the writer holds an advisory lock on its file. See
docs/decisions/0036-interrupted-runs-are-marked.md.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

if sys.platform != "win32":
    import fcntl

DEFAULT_OUT_DIR = "runs"
"""Output folder of runs when none is given (a Session's default ``out_dir``), relative to the
working directory. Every file a run writes lives under its output folder."""
INTERRUPTED_REASON = "interrupted: no stop document (process ended)"
"""``reason`` of the stop document appended to a run that a killed process left open."""
ORPHANS = "orphans.jsonl"
"""File of documents that arrived outside a run (never marked)."""
_TAIL_BYTES = 4096


def _default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if hasattr(obj, "model_dump"):
        return obj.model_dump()
    if hasattr(obj, "value") and hasattr(obj, "name"):  # enums
        return obj.value
    raise TypeError(f"cannot write {type(obj).__name__} into a run document")


def _lock(file: IO[Any]) -> bool:
    """Take an exclusive advisory lock on an open file without waiting; False if held."""
    if sys.platform == "win32":  # no advisory locks: a live run cannot be told apart
        return True
    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


_RUN_KEY = {
    "descriptor": "run_start",
    "stop": "run_start",
    "resource": "run_start",
    "stream_resource": "run_start",
}
"""Document name -> the field naming its run's start uid."""
_VIA_DESCRIPTOR = {"event": "descriptor", "event_page": "descriptor"}
_VIA_RESOURCE = {"datum": "resource", "datum_page": "resource", "stream_datum": "stream_resource"}


class DocumentLog:
    """Append every document of every run to ``<folder>/<start uid>.jsonl``.

    Several runs may be open at once (bluesky run keys: a furnace exposure recording while
    other runs open and close): each document goes to its own run's file, found from its
    ``run_start``, ``descriptor`` or ``resource`` uid.

    On opening, marks the runs of ``folder`` that a killed process left without a stop
    document (:func:`mark_interrupted_runs`; the files marked are in :attr:`interrupted`).
    While a run is written its file is locked (advisory, released when the file is closed or
    the process ends), so another process's log never marks a live run.

    Parameters
    ----------
    folder
        Where run files go (created if missing).
    fsync_every
        fsync a file after this many documents (>= 1); always at a stop document.
    """

    def __init__(self, folder: str | Path, fsync_every: int = 100) -> None:
        if fsync_every < 1:
            raise ValueError(f"fsync_every must be >= 1, got {fsync_every}")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.fsync_every = fsync_every
        self._files: dict[str, IO[str]] = {}
        """Open run files by start uid (ORPHANS by its name)."""
        self._run_of: dict[str, str] = {}
        """Descriptor and resource uid -> start uid of the open runs."""
        self._count = 0
        self.paths: list[Path] = []
        """The run files written so far, in the order their runs started."""
        self.interrupted: list[Path] = mark_interrupted_runs(self.folder)
        """The run files found interrupted (and marked) when this log opened its folder."""

    def path(self, uid: str) -> Path:
        """Return the file of the run whose start document has ``uid`` (for example
        ``log.path(result.run_start_uids[0])``), whether or not it exists."""
        return self.folder / f"{uid}.jsonl"

    def _run(self, name: str, doc: Any) -> str | None:
        """Return the start uid of the run a document belongs to (None: not known)."""
        if not isinstance(doc, dict):
            return None
        if name == "start":
            return str(doc["uid"])
        if name in _RUN_KEY:
            return doc.get(_RUN_KEY[name])
        if name in _VIA_DESCRIPTOR:
            return self._run_of.get(doc.get(_VIA_DESCRIPTOR[name], ""))
        if name in _VIA_RESOURCE:
            return self._run_of.get(doc.get(_VIA_RESOURCE[name], ""))
        return None

    def __call__(self, name: str, doc: Any) -> None:
        """Write one document (RunEngine subscriber signature)."""
        run = self._run(name, doc)
        if name == "start":
            path = self.path(str(run))
            opened: IO[str] = path.open("a", encoding="utf-8")
            _lock(opened)
            self._files[str(run)] = opened
            self.paths.append(path)
        elif run is not None and name in ("descriptor", "resource", "stream_resource"):
            self._run_of[doc["uid"]] = run
        key = run if run is not None and run in self._files else ORPHANS
        file = self._files.get(key)
        if file is None:  # a document outside any open run: keep it anyway
            file = self._files[ORPHANS] = (self.folder / ORPHANS).open("a", encoding="utf-8")
        file.write(json.dumps({"name": name, "doc": doc}, default=_default) + "\n")
        file.flush()
        self._count += 1
        if name == "stop" or self._count % self.fsync_every == 0:
            os.fsync(file.fileno())
        if name == "stop" and key != ORPHANS:
            self._close(key)
            self._run_of = {k: r for k, r in self._run_of.items() if r != key}

    def _close(self, key: str) -> None:
        file = self._files.pop(key, None)
        if file is not None:
            file.flush()
            os.fsync(file.fileno())
            file.close()

    def close(self) -> None:
        """Flush, fsync and close every open file (idempotent)."""
        for key in list(self._files):
            self._close(key)


def _last_line(path: Path) -> bytes:
    """Return the last non-empty line of a file, or its end if longer than 4 KiB (a stop
    document is shorter; anything else is found not to be one)."""
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - _TAIL_BYTES))
        tail = f.read()
    lines = [line for line in tail.split(b"\n") if line.strip()]
    return lines[-1] if lines else b""


def _ends_with_stop(path: Path) -> bool:
    try:
        item = json.loads(_last_line(path))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return isinstance(item, dict) and item.get("name") == "stop"


def interrupted_stop(path: str | Path) -> dict[str, Any] | None:
    """Return the stop document a run file lacks, or None if it has one (or no start).

    ``time`` is that of the run's last document (the last moment it was known alive),
    ``num_events`` counts the events and event-page rows per stream that reached the file,
    and ``marked_at`` is when the run was found interrupted (Unix epoch, s).
    """
    start: dict[str, Any] | None = None
    last_time = 0.0
    streams: dict[str, str] = {}
    counts: dict[str, int] = {}
    for name, doc in read_run(path):
        if name == "stop":
            return None
        if name == "start":
            start = doc
        if isinstance(doc, dict) and isinstance(doc.get("time"), int | float):
            last_time = max(last_time, float(doc["time"]))
        if name == "descriptor":
            streams[doc["uid"]] = doc.get("name", "primary")
            counts.setdefault(streams[doc["uid"]], 0)
        elif name == "event" and doc.get("descriptor") in streams:
            counts[streams[doc["descriptor"]]] += 1
        elif name == "event_page" and doc.get("descriptor") in streams:
            counts[streams[doc["descriptor"]]] += len(doc.get("seq_num", []))
    if start is None:
        return None
    return {
        "uid": str(uuid.uuid4()),
        "run_start": start["uid"],
        "time": last_time or float(start.get("time", 0.0)),
        "exit_status": "abort",
        "reason": INTERRUPTED_REASON,
        "num_events": counts,
        "marked_at": time.time(),
    }


def mark_interrupted_runs(folder: str | Path) -> list[Path]:
    """Append a stop document to every run file of ``folder`` that has a start but no stop
    and that no live process is writing; return the files marked.

    The file's bytes are kept: the stop document is appended as one more line (after a line
    break if the file ends in a torn line, which :func:`read_run` then skips). A file locked
    by a live :class:`DocumentLog` (in this process or another) is left alone.
    """
    marked: list[Path] = []
    for path in sorted(Path(folder).glob("*.jsonl")):
        if path.name == ORPHANS or _ends_with_stop(path):
            continue
        with path.open("a+b") as f:
            if not _lock(f):
                continue  # a live run
            stop = interrupted_stop(path)
            if stop is None:
                continue
            size = f.seek(0, os.SEEK_END)
            torn = False
            if size:
                f.seek(size - 1)
                torn = f.read(1) != b"\n"
            line = json.dumps({"name": "stop", "doc": stop}) + "\n"
            f.write((("\n" if torn else "") + line).encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
        marked.append(path)
    return marked


def read_run(path: str | Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(name, doc)`` of a run file; a torn last line (crash mid-write) is skipped."""
    with Path(path).open(encoding="utf-8") as f:
        for line in f:
            try:
                item = json.loads(line)
            except json.JSONDecodeError:
                continue
            yield item["name"], item["doc"]


def event_table(path: str | Path, stream: str = "primary") -> dict[str, list[Any]]:
    """Return the data of one stream of a run file as columns (events and event pages)."""
    descriptors: set[str] = set()
    columns: dict[str, list[Any]] = {}
    for name, doc in read_run(path):
        if name == "descriptor" and doc.get("name") == stream:
            descriptors.add(doc["uid"])
        elif name == "event" and doc["descriptor"] in descriptors:
            for k, v in doc["data"].items():
                columns.setdefault(k, []).append(v)
        elif name == "event_page" and doc["descriptor"] in descriptors:
            for k, v in doc["data"].items():
                columns.setdefault(k, []).extend(v)
    return columns


__all__ = [
    "DEFAULT_OUT_DIR",
    "INTERRUPTED_REASON",
    "DocumentLog",
    "event_table",
    "interrupted_stop",
    "mark_interrupted_runs",
    "read_run",
]
