"""Sustained write bandwidth of the camera path against ``dd``, side by side in one run.

The camera path is the whole chain a run uses: a RunEngine plan prepares the
``StandardDetector`` for N frames (1024 x 1024 uint16, 2 MiB each), kicks it off, waits for
completion and collects the StreamResource/StreamDatum documents, while the camera twin
synthesises each frame and writes it to its HDF5 file (in the directory the driver names).
``dd`` writes the same number of bytes in 2 MiB blocks to the same directory. Both are
measured twice: into the page cache (dd without sync; the camera file closed) and durable
(``dd conv=fdatasync``; the camera file closed and fsync'ed), interleaved over repeats.
Usage::

    python bench/camera_write.py [--frames 200] [--repeats 3] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
from bluesky import RunEngine
from bluesky.run_engine import call_in_bluesky_event_loop
from bluesky.utils import MsgGenerator
from ophyd_async.core import TriggerInfo

from couponlab.lab import make_device
from couponlab.labfile import LabFile
from couponlab.twins import BackgroundTwins

FRAME_BYTES = 1024 * 1024 * 2


def lab(data_dir: Path) -> LabFile:
    """Return the bench lab: one camera twin writing into ``data_dir``."""
    return LabFile.model_validate(
        {
            "name": "camera-bench",
            "world": {"speedup": 1e5, "seed": 1},
            "devices": [
                {
                    "name": "cam",
                    "family": "camera",
                    "driver": "couponlab.drivers.detectors:ScpiCamera",
                    "address": "TCPIP::127.0.0.1::0::SOCKET",
                    "twin": True,
                    "settings": {"data_dir": str(data_dir)},
                }
            ],
        }
    )


def dd(path: Path, frames: int, sync: bool) -> float:
    """Return dd's bytes per second writing ``frames`` 2 MiB blocks to ``path``."""
    cmd = ["dd", "if=/dev/zero", f"of={path}", "bs=2M", f"count={frames}"]
    if sync:
        cmd.append("conv=fdatasync")
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    m = re.search(r"copied, ([\d.]+) s", out.stderr)
    seconds = float(m.group(1)) if m else wall
    path.unlink()
    return frames * FRAME_BYTES / seconds


def acquire(cam: Any, frames: int) -> MsgGenerator[None]:
    """Take ``frames`` frames as one fly acquisition and collect their documents."""

    @bpp.stage_decorator([cam])
    @bpp.run_decorator()
    def inner() -> MsgGenerator[None]:
        yield from bps.prepare(cam, TriggerInfo(number_of_events=frames, livetime=1e-4), wait=True)
        yield from bps.declare_stream(cam, name="frames", collect=True)
        yield from bps.kickoff(cam, wait=True)
        yield from bps.complete(cam, wait=True)
        yield from bps.collect(cam, name="frames")

    yield from inner()


def camera(engine: RunEngine, cam: Any, folder: Path, frames: int, sync: bool) -> float:
    """Return the camera path's bytes per second for ``frames`` frames."""
    before = set(folder.glob("*.h5"))
    t0 = time.perf_counter()
    engine(acquire(cam, frames))  # unstage closes the file
    (new,) = set(folder.glob("*.h5")) - before
    if sync:
        fd = os.open(new, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    seconds = time.perf_counter() - t0
    size = new.stat().st_size
    if size < frames * FRAME_BYTES:
        raise SystemExit(f"camera file holds {size} bytes, expected >= {frames * FRAME_BYTES}")
    new.unlink()
    return frames * FRAME_BYTES / seconds


def main() -> int:
    """Run the bench and print bandwidths and ratios."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=None)
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="camera-bench-", dir=args.dir))
    twins = BackgroundTwins(lab(folder))
    engine = RunEngine({})
    pages: list[int] = []
    engine.subscribe(lambda name, doc: pages.append(1) if name == "stream_datum" else None)
    cam: Any = make_device(twins.lab.device("cam"))
    try:
        call_in_bluesky_event_loop(cam.connect(timeout=10.0))
        camera(engine, cam, folder, 20, sync=False)  # warm-up
        results: dict[str, list[float]] = {k: [] for k in ("dd", "cam", "dd_sync", "cam_sync")}
        for _ in range(args.repeats):
            results["dd"].append(dd(folder / "dd.bin", args.frames, sync=False))
            results["cam"].append(camera(engine, cam, folder, args.frames, sync=False))
            results["dd_sync"].append(dd(folder / "dd.bin", args.frames, sync=True))
            results["cam_sync"].append(camera(engine, cam, folder, args.frames, sync=True))
        med = {k: statistics.median(v) for k, v in results.items()}
        mb = 1e6
        print(
            f"camera path vs dd: {args.frames} frames of 1024x1024 uint16 "
            f"({args.frames * FRAME_BYTES / 2**20:.0f} MiB), {args.repeats} interleaved "
            f"repeats (median), folder {folder.parent}"
        )
        for label, key in (
            ("dd (page cache)", "dd"),
            ("camera path (page cache)", "cam"),
            ("dd conv=fdatasync", "dd_sync"),
            ("camera path + fsync", "cam_sync"),
        ):
            runs = ", ".join(f"{v / mb:.0f}" for v in results[key])
            print(f"  {label:<26}: {med[key] / mb:8.0f} MB/s  (runs: {runs})")
        print(f"  ratio camera/dd, page cache : {med['cam'] / med['dd']:.2f}  (target >= 0.5)")
        durable = med["cam_sync"] / med["dd_sync"]
        print(f"  ratio camera/dd, durable    : {durable:.2f}  (target >= 0.5)")
        print(f"  frames per second (page cache): {med['cam'] / FRAME_BYTES:.0f}")
        call_in_bluesky_event_loop(cam.disconnect())
    finally:
        twins.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
