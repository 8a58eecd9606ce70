"""Fill the store from the document log: idempotent, resumable, off the RunEngine's path.

The JSON-lines log (:class:`couponlab.data.DocumentLog`) is the write-ahead record: every
document is in it as soon as it is emitted. An :class:`Ingester` reads each run file of a
log folder from where it last stopped and writes the new documents into Tiled through
bluesky's own :class:`~bluesky.callbacks.tiled_writer.TiledWriter`. So the store follows
the log, never the other way round:

- a run whose stop document is in the store is complete and left alone;
- a run in the store without its stop document (a process killed while it was written) is
  deleted there and written again from the first line of its file, so nothing is written
  twice and nothing is missed;
- a run not in the store is written from its file.

One process ingests a folder at a time (an advisory lock on ``<out>/store/ingest.lock``).
:func:`recover` marks the runs a killed process left open (:func:`couponlab.data.
mark_interrupted_runs`) and ingests everything; :func:`missing` compares log and store.
See docs/decisions/0067-tiled-as-the-store.md.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from couponlab.data import ORPHANS, mark_interrupted_runs, read_run
from couponlab.store import store_dir

if sys.platform != "win32":
    import fcntl

log = logging.getLogger(__name__)

LOCK_FILE = "ingest.lock"
"""Advisory lock (in the store's folder) held by the one process that ingests a folder."""
BATCH_SIZE = 1000
"""Event rows (and stream datum indices) the writer gathers before one write to Tiled."""


class StoreBusyError(RuntimeError):
    """Another process is ingesting this output folder (it holds the store's lock)."""


@dataclass
class IngestReport:
    """What one pass of ingestion did."""

    documents: int = 0
    """Documents written to the store in this pass."""
    completed: list[str] = field(default_factory=list)
    """Start uids of the runs whose stop document reached the store in this pass."""
    redone: list[str] = field(default_factory=list)
    """Start uids of runs found half-written in the store, deleted and written again."""
    failed: dict[str, str] = field(default_factory=dict)
    """Start uid -> why the store refused the run (it stays in the log)."""


@dataclass
class _RunFile:
    path: Path
    offset: int = 0
    writer: Any = None
    done: bool = False


def _status(store: Any, uid: str) -> str:
    """Return ``"absent"``, ``"partial"`` (no stop document) or ``"complete"``."""
    if uid not in store:
        return "absent"
    return "complete" if "stop" in store[uid].metadata else "partial"


def _new_lines(path: Path, offset: int) -> tuple[list[bytes], int]:
    """Return the whole lines of ``path`` after byte ``offset``, and the offset after them."""
    with path.open("rb") as f:
        f.seek(offset)
        data = f.read()
    end = data.rfind(b"\n")
    if end < 0:
        return [], offset
    return data[: end + 1].splitlines(), offset + end + 1


class Ingester:
    """Write the documents of a log folder into a store, run file by run file.

    Parameters
    ----------
    folder
        The log folder (a :class:`couponlab.data.DocumentLog`'s, the output folder).
    store
        The Tiled client's root container (:func:`couponlab.store.open_store`).
    batch_size
        Event rows gathered before one write (>= 1); a run's rest is written at its stop.

    Raises
    ------
    StoreBusyError
        Another process ingests this folder.
    """

    def __init__(self, folder: str | Path, store: Any, batch_size: int = BATCH_SIZE) -> None:
        self.folder = Path(folder)
        self.store = store
        self.batch_size = batch_size
        self._runs: dict[str, _RunFile] = {}
        self._lock = _take_lock(store_dir(self.folder) / LOCK_FILE)

    def close(self) -> None:
        """Release the folder (idempotent). Runs not yet complete are finished next time."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self) -> Ingester:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _files(self) -> Iterator[Path]:
        for path in sorted(self.folder.glob("*.jsonl")):
            if path.name != ORPHANS:
                yield path

    def _open_run(self, path: Path, report: IngestReport) -> _RunFile:
        from bluesky.callbacks.tiled_writer import TiledWriter

        uid = path.stem
        run = _RunFile(path)
        status = _status(self.store, uid)
        if status == "complete":
            run.done = True
        else:
            if status == "partial":  # half-written by a process that ended: write it again
                self.store.delete_contents(uid, recursive=True, external_only=False)
                report.redone.append(uid)
            run.writer = TiledWriter(self.store, batch_size=self.batch_size)
        self._runs[uid] = run
        return run

    def poll(self) -> IngestReport:
        """Write what the log holds and the store does not yet; return what was done.

        A run the store refuses is logged and reported in ``failed``; the others go on.
        """
        if self._lock is None:
            raise RuntimeError("the ingester is closed")
        report = IngestReport()
        for path in self._files():
            uid = path.stem
            run = self._runs.get(uid)
            try:
                if run is None:
                    run = self._open_run(path, report)
                if run.done:
                    continue
                lines, run.offset = _new_lines(path, run.offset)
                for line in lines:
                    try:
                        item = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # a torn line (the writer was killed mid-line)
                    run.writer(item["name"], item["doc"])
                    report.documents += 1
                    if item["name"] == "stop":
                        run.done = True
                        run.writer = None
                        report.completed.append(uid)
                        break
            except Exception as exc:
                log.error("run %s: not written to the store: %s", uid, exc, exc_info=exc)
                report.failed[uid] = f"{type(exc).__name__}: {exc}"
                self._runs[uid] = _RunFile(path, done=True)
        return report


def _take_lock(path: Path) -> IO[bytes] | None:
    path.parent.mkdir(parents=True, exist_ok=True)
    file = path.open("a+b")
    if sys.platform == "win32":
        return file
    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        file.close()
        raise StoreBusyError(f"another process is writing the store of {path.parent}") from None
    return file


def recover(folder: str | Path, store: Any) -> IngestReport:
    """Mark the runs a killed process left open and write everything missing into the store.

    Idempotent: a second call writes nothing. Runs still being written by a live process
    are not marked (their files are locked), and their documents so far are written.

    Raises
    ------
    StoreBusyError
        Another process ingests this folder.
    """
    mark_interrupted_runs(folder)
    with Ingester(folder, store) as ingester:
        return ingester.poll()


def _log_counts(path: Path) -> tuple[dict[str, Any], dict[str, set[int]], dict[str, int]]:
    """Return (start, stop) docs, event seq_nums per stream, stream-datum rows per data key."""
    docs: dict[str, Any] = {}
    streams: dict[str, str] = {}
    seq: dict[str, set[int]] = {}
    resources: dict[str, tuple[str, str]] = {}
    rows: dict[str, int] = {}
    for name, doc in read_run(path):
        if name in ("start", "stop"):
            docs[name] = doc
        elif name == "descriptor":
            streams[doc["uid"]] = doc["name"]
            seq.setdefault(doc["name"], set())
        elif name == "event":
            seq[streams[doc["descriptor"]]].add(int(doc["seq_num"]))
        elif name == "event_page":
            seq[streams[doc["descriptor"]]].update(int(s) for s in doc["seq_num"])
        elif name == "stream_resource":
            resources[doc["uid"]] = (doc["data_key"], doc["uid"])
        elif name == "stream_datum":
            key = f"{streams[doc['descriptor']]}/{resources[doc['stream_resource']][0]}"
            rows[key] = max(rows.get(key, 0), int(doc["indices"]["stop"]))
    return docs, seq, rows


def missing(folder: str | Path, store: Any) -> dict[str, list[str]]:
    """Compare a log folder with its store: start uid -> what the store lacks (empty: all in).

    Checked per run: the start document, the stop document (same uid), every stream, every
    event (by ``seq_num``: rows of the stream's table) and the rows of every external array
    the stream datums announce (the device's file read through Tiled).
    """
    lacking: dict[str, list[str]] = {}
    for path in sorted(Path(folder).glob("*.jsonl")):
        if path.name == ORPHANS:
            continue
        docs, seq, rows = _log_counts(path)
        if "start" not in docs:
            continue
        uid = docs["start"]["uid"]
        gaps: list[str] = []
        if uid not in store:
            lacking[uid] = ["the whole run"]
            continue
        run = store[uid]
        stop = run.metadata.get("stop")
        if "stop" in docs and (stop is None or stop.get("uid") != docs["stop"]["uid"]):
            gaps.append("stop document")
        for stream, numbers in seq.items():
            if stream not in run:
                gaps.append(f"stream {stream}")
                continue
            if numbers:
                table = run[stream].base["internal"].read(["seq_num"])
                stored = set(int(s) for s in table["seq_num"])
                gaps += [f"{stream} event {n}" for n in sorted(numbers - stored)]
        for key, count in rows.items():
            stream, data_key = key.split("/", 1)
            have = int(run[stream][data_key].shape[0]) if stream in run else 0
            if have < count:
                gaps.append(f"{key}: {have} of {count} rows")
        if gaps:
            lacking[uid] = gaps
    return lacking


__all__ = [
    "BATCH_SIZE",
    "LOCK_FILE",
    "IngestReport",
    "Ingester",
    "StoreBusyError",
    "missing",
    "recover",
]
