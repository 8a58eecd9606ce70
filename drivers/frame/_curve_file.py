"""The HDF5 file a test's samples are written to, and the stream documents that reference it.

One file per test, four 1-D datasets (``/time`` s, ``/force`` N, ``/position`` mm,
``/strain`` mm/mm), appended block by block. The file is open only while a block is written
(opened, extended, written and closed per block), so a process killed during a test leaves a
file that opens with h5py and holds every block before the one in flight; rows of a block cut
short read NaN (the datasets' fill value). Each dataset is announced by one StreamResource; each
``collect`` emits one StreamDatum per dataset covering the rows written since the last one
(docs/decisions/0020-frame-bulk-data-path.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
from bluesky.protocols import StreamAsset
from event_model import ComposeStreamResource, DataKey, StreamRange
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

FIELDS: tuple[tuple[str, str], ...] = (
    ("time", "s"),
    ("force", "N"),
    ("position", "mm"),
    ("strain", "mm/mm"),
)
"""Column order of a buffered sample and the unit of each column."""
CHUNK = 16384


class CurveFile:
    """Append-only HDF5 file of one test's samples.

    Parameters
    ----------
    path
        Where to write (the directory must exist).
    data_key_prefix
        Prefix of the data keys (the device name): keys are ``<prefix>-time`` etc.
    """

    def __init__(self, path: Path, data_key_prefix: str) -> None:
        self.path = path
        self.prefix = data_key_prefix
        self.written = 0
        self._emitted = 0
        with h5py.File(path, "w") as f:
            for name, unit in FIELDS:
                ds = f.create_dataset(
                    name,
                    shape=(0,),
                    maxshape=(None,),
                    dtype="<f8",
                    chunks=(CHUNK,),
                    fillvalue=np.nan,
                )
                ds.attrs["units"] = unit
        composer = ComposeStreamResource()
        self._bundles = [
            composer(
                mimetype="application/x-hdf5",
                uri=path.absolute().as_uri(),
                data_key=self.key(name),
                parameters={"dataset": f"/{name}", "chunk_shape": (CHUNK,)},
            )
            for name, _ in FIELDS
        ]

    def key(self, name: str) -> str:
        """Return the data key of one column."""
        return f"{self.prefix}-{name}"

    def describe(self) -> dict[str, DataKey]:
        """Return the data keys of the stream (external, one number per row, with units)."""
        return {
            self.key(name): DataKey(
                source=self.path.absolute().as_uri(),
                shape=[],
                dtype="number",
                dtype_numpy="<f8",
                external="STREAM:",
                units=unit,
            )
            for name, unit in FIELDS
        }

    def append(self, rows: FloatArray) -> None:
        """Append ``rows`` (n x 4: time, force, position, strain): open the file, extend and
        write every dataset, close it (so the file is complete on disk between blocks)."""
        n = len(rows)
        if n == 0:
            return
        new = self.written + n
        with h5py.File(self.path, "r+") as f:
            for i, (name, _) in enumerate(FIELDS):
                ds = f[name]
                ds.resize((new,))
                ds[self.written : new] = rows[:, i]
        self.written = new

    def stream_docs(self, upto: int | None = None) -> Iterator[StreamAsset]:
        """Yield StreamResource (first time) and StreamDatum documents for new rows."""
        stop = self.written if upto is None else min(upto, self.written)
        if stop <= self._emitted:
            return
        if self._emitted == 0:
            for bundle in self._bundles:
                yield "stream_resource", bundle.stream_resource_doc
        indices: StreamRange = {"start": self._emitted, "stop": stop}
        for bundle in self._bundles:
            yield "stream_datum", bundle.compose_stream_datum(indices)
        self._emitted = stop

    @property
    def emitted(self) -> int:
        """Return how many rows have been referenced by StreamDatum documents."""
        return self._emitted

    def close(self) -> None:
        """Nothing to do: the file is closed after every block (kept for callers that end a
        file explicitly)."""


def read_curve_file(path: Path) -> dict[str, FloatArray]:
    """Return the four columns of a curve file as arrays."""
    with h5py.File(path, "r") as f:
        return {name: np.asarray(f[name][()], dtype=np.float64) for name, _ in FIELDS}


__all__ = ["CHUNK", "FIELDS", "CurveFile", "read_curve_file"]
