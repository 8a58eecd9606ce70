"""Cost per point of a 400-point raster map (20 x 20 grid_scan) with the twin-backed oxide
profiler and x-y stage, against the same grid scan over ophyd-async soft signals, measured
side by side (interleaved) in one run.

The baseline is the RunEngine's own cost per point: two soft-signal "motors" and a soft
"profiler" with the same readings (thickness, range flag) and configuration (dwell). The
twin-backed run drives the real drivers over SCPI (pyvisa-py) to the twins on their own
thread (the default test setup: twins on a BackgroundLoop in this process) or, with
``--twins process``, in a separate process (``couponlab twin serve``), as an instrument is
another machine. The instrument time of each point (a 10 ms dwell and a 2.5 mm move at
20 mm/s) runs on the twins' clock at the given speed-up, so the figure is the devices' cost.
Usage::

    python bench/raster_map.py [--repeats 5] [--grid 20] [--speedup 1e5] [--twins thread]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import bluesky.plans as bp
from bluesky import RunEngine
from bluesky.run_engine import call_in_bluesky_event_loop
from ophyd_async.core import (
    AsyncStatus,
    StandardReadable,
    StandardReadableFormat,
    soft_signal_r_and_setter,
    soft_signal_rw,
)

from couponlab.lab import make_device
from couponlab.labfile import LabFile, load_lab
from couponlab.plans.raster_map import raster_map
from couponlab.twins import BackgroundTwins

VISA = "TCPIP::127.0.0.1::0::SOCKET"


class SoftReadout(StandardReadable):
    """Soft signals with the profiler's readings and configuration (no trigger)."""

    def __init__(self, name: str = "") -> None:
        with self.add_children_as_readables(StandardReadableFormat.HINTED_SIGNAL):
            self.thickness, _ = soft_signal_r_and_setter(float, 100.0, units="nm")
        with self.add_children_as_readables():
            self.range_flag, _ = soft_signal_r_and_setter(str, "ok")
        with self.add_children_as_readables(StandardReadableFormat.CONFIG_SIGNAL):
            self.dwell = soft_signal_rw(float, 0.01, units="s")
        super().__init__(name=name)


class SoftProfiler(SoftReadout):
    """The baseline detector: the same soft signals and a trigger that completes at once, so
    that the RunEngine sends the same messages (trigger, wait, read) as for the profiler."""

    @AsyncStatus.wrap
    async def trigger(self) -> None:
        """Complete at once (a soft detector has nothing to measure)."""


def lab(speedup: float) -> LabFile:
    """Return the bench lab: a stage and a profiler twin."""
    return LabFile.model_validate(
        {
            "name": "raster-bench",
            "world": {"speedup": speedup, "seed": 1},
            "devices": [
                {
                    "name": "stage",
                    "family": "xy_stage",
                    "driver": "couponlab.drivers.stage:ScpiXyStage",
                    "address": VISA,
                    "twin": True,
                },
                {
                    "name": "profiler",
                    "family": "oxide_profiler",
                    "driver": "couponlab.drivers.detectors:ScpiOxideProfiler",
                    "address": VISA,
                    "twin": True,
                    "twin_config": {"stage": "stage"},
                },
            ],
        }
    )


def grow(world: Any) -> None:
    """Put an oxidised coupon in the world (twins' thread)."""
    import numpy as np

    from couponlab.simulators.world import Coupon

    c = Coupon("BENCH-1", length_mm=60.0, width_mm=10.0)
    cr = np.linspace(0.1, 0.4, c.x_mm.size)
    c.set_composition({"Cr": cr, "Ni": 1.0 - cr})
    world.add_coupon(c)
    c.oxide_x2_m2[:] = (np.linspace(5e-6, 0.1e-6, c.x_mm.size)) ** 2


def time_run(engine: RunEngine, plan: Any) -> float:
    """Return the wall time of one plan, s."""
    t0 = time.perf_counter()
    engine(plan)
    return time.perf_counter() - t0


def main() -> int:
    """Run the bench and print per-point costs and their ratio."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--grid", type=int, default=20)
    ap.add_argument("--speedup", type=float, default=1e5)
    ap.add_argument("--twins", choices=["thread", "process"], default="thread")
    args = ap.parse_args()
    n = args.grid
    points = n * n

    engine = RunEngine({})
    proc: subprocess.Popen[bytes] | None = None
    twins: BackgroundTwins | None = None
    tmp = Path(tempfile.mkdtemp(prefix="raster-bench-"))
    try:
        if args.twins == "thread":
            twins = BackgroundTwins(lab(args.speedup))
            twins.call(grow, twins.world)
            resolved = twins.lab
            coupon = "BENCH-1"
        else:
            lab(args.speedup).dump(tmp / "lab.yaml")
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "couponlab.cli",
                    "twin",
                    "serve",
                    str(tmp / "lab.yaml"),
                    "--resolved",
                    str(tmp / "resolved.yaml"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
            deadline = time.monotonic() + 60
            while not (tmp / "resolved.yaml").exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("twin serve did not start")
                time.sleep(0.05)
            resolved = load_lab(tmp / "resolved.yaml")
            coupon = "BENCH-UNKNOWN"  # the world of the other process has no coupons
        stage: Any = make_device(resolved.device("stage"))
        prof: Any = make_device(resolved.device("profiler"))
        for dev in (stage, prof):
            call_in_bluesky_event_loop(dev.connect(timeout=10.0))
        call_in_bluesky_event_loop(stage.load_coupon(coupon, 60, 10))

        soft_x = soft_signal_rw(float, 0.0, name="soft-x", units="mm")
        soft_y = soft_signal_rw(float, 0.0, name="soft-y", units="mm")
        soft_prof = SoftProfiler(name="soft_profiler")
        soft_read = SoftReadout(name="soft_readout")
        for dev in (soft_x, soft_y, soft_prof, soft_read):
            call_in_bluesky_event_loop(dev.connect())

        def baseline() -> Any:
            return bp.grid_scan(
                [soft_prof], soft_y, 1.0, 9.0, n, soft_x, 5.0, 55.0, n, snake_axes=True
            )

        def untriggered() -> Any:
            return bp.grid_scan(
                [soft_read], soft_y, 1.0, 9.0, n, soft_x, 5.0, 55.0, n, snake_axes=True
            )

        def devices() -> Any:
            return raster_map([prof], stage, (5.0, 55.0, n), (1.0, 9.0, n), dwell=0.01)

        time_run(engine, baseline())  # warm-up
        time_run(engine, devices())
        base_t, dev_t, plain_t = [], [], []
        for _ in range(args.repeats):
            base_t.append(time_run(engine, baseline()))
            dev_t.append(time_run(engine, devices()))
            plain_t.append(time_run(engine, untriggered()))
        b, d = statistics.median(base_t), statistics.median(dev_t)
        p = statistics.median(plain_t)

        def row(label: str, total: float, runs: list[float]) -> None:
            print(
                f"  {label:<26}: {total:7.3f} s  {1e3 * total / points:6.3f} ms/point  "
                f"(runs: {', '.join(f'{t:.3f}' for t in runs)})"
            )

        print(
            f"raster map {n} x {n} = {points} points, twins in a {args.twins}, speedup "
            f"{args.speedup:g}, {args.repeats} interleaved repeats (median)"
        )
        row("soft signals, no trigger", p, plain_t)
        row("soft signals + trigger", b, base_t)
        row("twin-backed raster_map", d, dev_t)
        print(f"  ratio twin / (soft + trigger): {d / b:.3f}  (target <= 1.3; same messages)")
        print(f"  ratio twin / (soft, no trigger): {d / p:.3f}")
        for dev in (stage, prof):
            call_in_bluesky_event_loop(dev.disconnect())
    finally:
        if twins is not None:
            twins.stop()
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
