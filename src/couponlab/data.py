"""Nothing lost: every run's documents go to an append-only JSON Lines file as they come.

:class:`DocumentLog` is a RunEngine subscriber that writes each event-model document as one
line (``{"name": ..., "doc": ...}``) and flushes it to the operating system at once, so a
crash of the process loses nothing already emitted; the file is fsync'ed at each run's stop
document (and every ``fsync_every`` documents) against a crash of the machine. numpy arrays
and scalars are written as JSON lists and numbers, so any JSON client can read a run back;
:func:`read_run` does so. See docs/decisions/0007-run-documents-as-json-lines.md.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np


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


class DocumentLog:
    """Append every document of every run to ``<folder>/<start uid>.jsonl``.

    Parameters
    ----------
    folder
        Where run files go (created if missing).
    fsync_every
        fsync the file after this many documents (>= 1); always at a stop document.
    """

    def __init__(self, folder: str | Path, fsync_every: int = 100) -> None:
        if fsync_every < 1:
            raise ValueError(f"fsync_every must be >= 1, got {fsync_every}")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.fsync_every = fsync_every
        self._file: IO[str] | None = None
        self._count = 0
        self.paths: list[Path] = []
        """The run files written so far, in order."""

    def __call__(self, name: str, doc: Any) -> None:
        """Write one document (RunEngine subscriber signature)."""
        if name == "start":
            self.close()
            path = self.folder / f"{doc['uid']}.jsonl"
            self._file = path.open("a", encoding="utf-8")
            self.paths.append(path)
        if self._file is None:  # a document outside a run: keep it anyway
            path = self.folder / "orphans.jsonl"
            self._file = path.open("a", encoding="utf-8")
        self._file.write(json.dumps({"name": name, "doc": doc}, default=_default) + "\n")
        self._file.flush()
        self._count += 1
        if name == "stop" or self._count % self.fsync_every == 0:
            os.fsync(self._file.fileno())
        if name == "stop":
            self.close()

    def close(self) -> None:
        """Flush, fsync and close the current file (idempotent)."""
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None


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


__all__ = ["DocumentLog", "event_table", "read_run"]
