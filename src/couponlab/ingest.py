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

:class:`IngestProcess` keeps the store up to date from a process of its own (``python -m
couponlab.ingest OUT``, at a lower priority: :data:`NICENESS`), so the RunEngine's process
does nothing but append to the log; a session starts it when it opens (what an earlier one
left) and when it closes. The process polls the log every :data:`POLL_PERIOD_S`, and when its
standard input closes (its session closed it, or the session's process ended, even by
SIGKILL) it marks the runs left open, writes the rest and exits. See
docs/decisions/0067-tiled-as-the-store.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from couponlab.data import ORPHANS, mark_interrupted_runs, read_run
from couponlab.store import StoreLocation, connected, store_dir

if sys.platform != "win32":
    import fcntl

log = logging.getLogger(__name__)

LOCK_FILE = "ingest.lock"
"""Advisory lock (in the store's folder) held by the one process that ingests a folder."""
BATCH_SIZE = 10_000
"""Event rows (and stream datum indices) the writer gathers before one write to Tiled
(bluesky's default): a run's rows are written at its stop, or every this many rows."""
POLL_PERIOD_S = 0.5
"""How often the ingest process looks for new lines in the log, s of wall time."""
INGEST_LOG = "ingest.log"
"""The ingest process's own log (in the store's folder)."""
COMPLETE_LIST = "complete.txt"
"""Start uids of the runs the store holds whole, one a line (in the store's folder): a hint
that lets a session skip starting the ingest process when nothing is pending
(:func:`pending`); the store itself is what the ingester checks."""
NICENESS = 10
"""How much lower than its session the ingest process runs (``os.nice`` increment)."""
EXIT_BUSY = 3
"""Exit code of the ingest process when another process ingests the folder."""


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
    held: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Stream datums not yet written, by stream resource uid (see :class:`Ingester`)."""


def _follows(first: dict[str, Any], then: dict[str, Any]) -> bool:
    """Return whether stream datum ``then`` continues ``first`` (same resource and stream,
    the next indices and sequence numbers)."""
    return bool(
        first["descriptor"] == then["descriptor"]
        and first["indices"]["stop"] == then["indices"]["start"]
        and first["seq_nums"]["stop"] == then["seq_nums"]["start"]
    )


def _write(run: _RunFile, name: str, doc: dict[str, Any]) -> None:
    """Hand one document to the run's writer; consecutive stream datums of a resource are
    merged into one (written before any other document of the run, in order)."""
    if name == "stream_datum":
        held = run.held.get(doc["stream_resource"])
        if held is not None and _follows(held, doc):
            held["indices"] = {"start": held["indices"]["start"], "stop": doc["indices"]["stop"]}
            held["seq_nums"] = {
                "start": held["seq_nums"]["start"],
                "stop": doc["seq_nums"]["stop"],
            }
            return
        if held is not None:
            run.writer("stream_datum", held)
        run.held[doc["stream_resource"]] = dict(doc)
        return
    _release(run)
    run.writer(name, doc)


def _release(run: _RunFile) -> None:
    """Write the stream datums held back."""
    held, run.held = run.held, {}
    for doc in held.values():
        run.writer("stream_datum", doc)


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

    A device that writes its own file (the frame's tensile curve) announces each block of
    rows by a stream datum; consecutive ones of a file are merged into one before they reach
    the writer, which registers what it is given in Tiled (it joins two blocks of about 5000
    rows per registration itself): a demo's 332 stream datums become 12 registrations
    instead of about 166, and its ingest took 23.6 s instead of 28.5 s (decision 0067).

    Parameters
    ----------
    folder
        The log folder (a :class:`couponlab.data.DocumentLog`'s, the output folder).
    store
        The Tiled client's root container (:func:`couponlab.store.open_store`).
    batch_size
        Event rows gathered before one write (>= 1); a run's rest is written at its stop.
    wait
        Longest wait for another process to finish ingesting this folder, s (0: none).
    lock
        The folder's lock, already taken by the caller (None: taken here).

    Raises
    ------
    StoreBusyError
        Another process ingests this folder.
    """

    def __init__(
        self,
        folder: str | Path,
        store: Any,
        batch_size: int = BATCH_SIZE,
        wait: float = 0.0,
        lock: IO[bytes] | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.store = store
        self.batch_size = batch_size
        self._runs: dict[str, _RunFile] = {}
        self._lock = lock or _take_lock(store_dir(self.folder) / LOCK_FILE, wait)
        self._complete = _complete(self.folder)

    def close(self) -> None:
        """Release the folder (idempotent). Runs not yet complete are finished next time."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self) -> Ingester:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _listed(self, uid: str) -> None:
        if uid not in self._complete:
            self._complete.add(uid)
            with (store_dir(self.folder) / COMPLETE_LIST).open("a", encoding="utf-8") as f:
                f.write(uid + "\n")

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
            self._listed(uid)
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
                    _write(run, item["name"], item["doc"])
                    report.documents += 1
                    if item["name"] == "stop":
                        run.done = True
                        run.writer = None
                        report.completed.append(uid)
                        self._listed(uid)
                        break
                if run.writer is not None:
                    _release(run)  # what this pass read is in the store when it ends
            except Exception as exc:
                log.error("run %s: not written to the store: %s", uid, exc, exc_info=exc)
                report.failed[uid] = f"{type(exc).__name__}: {exc}"
                self._runs[uid] = _RunFile(path, done=True)
        return report


def _complete(folder: Path) -> set[str]:
    try:
        text = (store_dir(folder) / COMPLETE_LIST).read_text(encoding="utf-8")
    except FileNotFoundError:
        return set()
    return set(text.split())


def pending(folder: str | Path) -> list[str]:
    """Return the start uids of the run files of ``folder`` not listed as whole in its store
    (:data:`COMPLETE_LIST`): what the next ingest would have to look at."""
    done = _complete(Path(folder))
    return [
        p.stem
        for p in sorted(Path(folder).glob("*.jsonl"))
        if p.name != ORPHANS and p.stem not in done
    ]


def _take_lock(path: Path, wait: float = 0.0) -> IO[bytes] | None:
    path.parent.mkdir(parents=True, exist_ok=True)
    file = path.open("a+b")
    if sys.platform == "win32":
        return file
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if time.monotonic() < deadline:
                time.sleep(0.2)
                continue
            file.close()
            raise StoreBusyError(
                f"another process is writing the store of {path.parent.parent}"
            ) from None
        return file


def recover(folder: str | Path, store: Any, wait: float = 0.0) -> IngestReport:
    """Mark the runs a killed process left open and write everything missing into the store.

    Idempotent: a second call writes nothing. Runs still being written by a live process
    are not marked (their files are locked), and their documents so far are written.

    Parameters
    ----------
    folder
        The log folder (output folder).
    store
        Its store's root container (:func:`couponlab.store.open_store`).
    wait
        Longest wait for another process (a session's ingest process finishing after its
        session ended) to release the folder, s.

    Raises
    ------
    StoreBusyError
        Another process still ingests this folder after ``wait`` s.
    """
    mark_interrupted_runs(folder)
    with Ingester(folder, store, wait=wait) as ingester:
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


def follow(
    folder: str | Path,
    location: StoreLocation,
    done: threading.Event,
    period: float = POLL_PERIOD_S,
) -> IngestReport:
    """Ingest ``folder`` into the store every ``period`` s until ``done`` is set; then mark
    the runs left open and ingest the rest. Return the total.

    Raises
    ------
    StoreBusyError
        Another process ingests this folder.
    """
    total = IngestReport()

    def add(report: IngestReport) -> None:
        total.documents += report.documents
        total.completed += report.completed
        total.redone += report.redone
        total.failed.update(report.failed)
        if report.documents or report.failed:
            log.info(
                "%d document(s), completed %s, failed %s",
                report.documents,
                report.completed,
                report.failed,
            )

    # the folder's lock is taken first and released only when this process exits, after the
    # store's files: whoever takes it next finds DuckDB's file free
    lock = _take_lock(store_dir(folder) / LOCK_FILE)
    with connected(location) as store:
        ingester = Ingester(folder, store, lock=lock)
        while not done.wait(period):
            add(ingester.poll())
        add(ingester.poll())
        mark_interrupted_runs(folder)  # the writer is gone: its open runs are over
        add(ingester.poll())
    return total


class IngestProcess:
    """The process that keeps a folder's store up to date while a session writes its log.

    Started at once; :meth:`finish` asks it to write the rest and waits. If this process
    ends without :meth:`finish` (even by SIGKILL), the ingest process sees its standard
    input close and finishes by itself. Its log is ``<out>/store/ingest.log``.

    Parameters
    ----------
    location
        The store (its ``out_dir`` is the log folder). A Tiled server's API key is passed on
        through the environment, never on the command line.
    """

    def __init__(self, location: StoreLocation) -> None:
        self.location = location
        folder = store_dir(location.out_dir)
        folder.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "couponlab.ingest", str(location.out_dir)]
        env = dict(os.environ)
        if location.uri is not None:
            cmd += ["--uri", location.uri]
            if location.api_key is not None:
                env[_KEY_VARIABLE] = location.api_key
        for path in location.readable:
            cmd += ["--readable", str(path)]
        with (folder / INGEST_LOG).open("ab") as out:
            self._proc: subprocess.Popen[bytes] | None = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT, env=env
            )

    def finish(self, timeout: float = 120.0) -> int | None:
        """Ask the process to write the rest and exit; wait up to ``timeout`` s.

        Returns its exit code (0: everything in the log is in the store), or None if it was
        still writing after ``timeout`` and was ended: the rest is written at the next
        start or by ``couponlab data recover``. Idempotent.
        """
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning(
                "the store of %s was still being written after %g s: the rest is written at "
                "the next start or by `couponlab data recover`",
                self.location.out_dir,
                timeout,
            )
            proc.terminate()
            proc.wait()
            return None
        if code != 0:
            log.warning(
                "the store of %s was not brought up to date (exit code %d; see %s): run "
                "`couponlab data recover`",
                self.location.out_dir,
                code,
                store_dir(self.location.out_dir) / INGEST_LOG,
            )
        return code


_KEY_VARIABLE = "COUPONLAB_TILED_API_KEY"
"""Environment variable through which the ingest process gets a Tiled server's API key."""


def _wait_for_eof(done: threading.Event) -> None:
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        done.set()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m couponlab.ingest OUT``: follow OUT's log into its store until stdin closes."""
    p = argparse.ArgumentParser(prog="python -m couponlab.ingest", description=__doc__)
    p.add_argument("out", help="output folder (the log folder)")
    p.add_argument("--uri", help="a Tiled server instead of the embedded store")
    p.add_argument("--readable", action="append", default=[], help="more readable folders")
    args = p.parse_args(argv)
    if hasattr(os, "nice"):
        # background work: the RunEngine and the twins (other processes) come first when the
        # cores are busy; the store catches up when they are not
        os.nice(NICENESS)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    warnings.filterwarnings("ignore", message="The order of arguments has changed")
    location = StoreLocation(
        Path(args.out).absolute(),
        args.uri,
        os.environ.get(_KEY_VARIABLE),
        tuple(Path(r) for r in args.readable),
    )
    done = threading.Event()
    threading.Thread(target=_wait_for_eof, args=(done,), daemon=True).start()
    started = time.monotonic()
    try:
        total = follow(location.out_dir, location, done)
    except StoreBusyError as exc:
        log.warning("%s", exc)
        return EXIT_BUSY
    log.info(
        "done after %.1f s: %d document(s), %d run(s) completed, %d redone, %d failed",
        time.monotonic() - started,
        total.documents,
        len(total.completed),
        len(total.redone),
        len(total.failed),
    )
    return 1 if total.failed else 0


__all__ = [
    "BATCH_SIZE",
    "EXIT_BUSY",
    "LOCK_FILE",
    "IngestProcess",
    "IngestReport",
    "Ingester",
    "StoreBusyError",
    "follow",
    "missing",
    "pending",
    "recover",
]


if __name__ == "__main__":
    sys.exit(main())
