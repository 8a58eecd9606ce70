"""A tensile test's curve file opens with h5py after the writing process is SIGKILLed, and
holds every block the process had written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from couponlab.drivers.frame._curve_file import FIELDS, CurveFile, read_curve_file

WRITER = """
import sys
from pathlib import Path
import numpy as np
from couponlab.drivers.frame._curve_file import CurveFile
f = CurveFile(Path(sys.argv[1]), "frame1")
block = 0
while True:
    rows = np.empty((int(sys.argv[2]), 4))
    rows[:, 0] = f.written + np.arange(len(rows))   # time column: the row index
    rows[:, 1:] = block
    f.append(rows)
    block += 1
    print(f.written, flush=True)
"""


def _write_then_kill(path: Path, block_rows: int, blocks: int) -> int:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(block_rows)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    written = 0
    try:
        deadline = time.monotonic() + 60
        for _ in range(blocks):
            line = proc.stdout.readline()
            assert line and time.monotonic() < deadline, "the writer stopped early"
            written = int(line)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    return written


@pytest.mark.parametrize(("block_rows", "blocks"), [(500, 5), (20_000, 3)])
def test_a_killed_writer_leaves_a_file_that_opens(
    tmp_path: Path, block_rows: int, blocks: int
) -> None:
    path = tmp_path / "curve.h5"
    written = _write_then_kill(path, block_rows, blocks)
    with h5py.File(path, "r") as f:
        lengths = {name: f[name].shape[0] for name, _ in FIELDS}
        assert {f[name].attrs["units"] for name, _ in FIELDS} == {"s", "N", "mm", "mm/mm"}
    assert len(set(lengths.values())) == 1
    cols = read_curve_file(path)
    n = len(cols["time"])
    assert n >= written  # every block reported written is in the file
    complete = ~np.isnan(cols["force"])
    assert complete[:written].all()
    assert np.array_equal(cols["time"][:written], np.arange(written, dtype=float))


def test_rows_reach_the_file_block_by_block(tmp_path: Path) -> None:
    path = tmp_path / "c.h5"
    f = CurveFile(path, "frame1")
    f.append(np.ones((3, 4)))
    assert read_curve_file(path)["force"].tolist() == [1.0, 1.0, 1.0]  # readable mid-test
    f.append(np.full((2, 4), 2.0))
    f.close()
    assert read_curve_file(path)["strain"].tolist() == [1.0, 1.0, 1.0, 2.0, 2.0]
