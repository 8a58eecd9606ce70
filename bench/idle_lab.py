"""Cost of the bundled lab's world while its instruments idle: the twins of
``src/couponlab/labs/sim_lab.yaml`` on a background loop (as in the tests), each speed-up held
for a few wall seconds; prints the achieved speed-up (virtual s per wall s) and the CPU the
process used, in % of a core. A world that cannot keep up slows its virtual time instead of
building a backlog (``World.run_clock``: at most about half a core), so a cheaper idle world
shows as a higher achieved speed-up at high settings and less CPU at low ones.

Usage::

    python bench/idle_lab.py [--speedups 1000 5000 20000] [--seconds 5]
"""

from __future__ import annotations

import argparse
import os
import time

from couponlab.cli import sample_lab_path
from couponlab.labfile import load_lab
from couponlab.twins import BackgroundTwins


def main() -> None:
    """Print one line per speed-up: set, achieved, CPU."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--speedups", type=float, nargs="+", default=[1000.0, 5000.0, 20000.0])
    ap.add_argument("--seconds", type=float, default=5.0, help="wall s per speed-up")
    args = ap.parse_args()
    print(f"bundled lab idle, twins on a background loop, load {os.getloadavg()[0]:.1f}")
    with BackgroundTwins(load_lab(sample_lab_path())) as twins:
        world = twins.world
        for speedup in args.speedups:
            twins.call(world.set_speedup, speedup)
            time.sleep(1.0)  # settle
            v0, c0, t0 = twins.call(lambda: world.now), time.process_time(), time.perf_counter()
            time.sleep(args.seconds)
            v1, c1, t1 = twins.call(lambda: world.now), time.process_time(), time.perf_counter()
            wall = t1 - t0
            print(
                f"speed-up {speedup:>8g}: achieved {(v1 - v0) / wall:>8.0f}x, "
                f"CPU {100 * (c1 - c0) / wall:4.0f}% of a core"
            )


if __name__ == "__main__":
    main()
