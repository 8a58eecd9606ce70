"""CPU cost of one controller period of the furnace twin's model (``FurnaceModel.step``, the
world's most frequent event while a furnace program runs): a two-segment program (ramp to
1100..800 degC at 25 K/min, hold 1 h, ramp to 1150..900 degC at 10 K/min, hold 1 h) on a
paused world advanced in 15 min slices; prints the steps run and the CPU per step, and with
``--save FILE`` writes the trajectory (temperatures, readings, outputs every 15 min) so two
versions of the model can be compared for identical results.

Usage::

    python bench/furnace_step.py [--repeats 3] [--save trajectory.npy]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from couponlab.simulators.furnace.model import FurnaceModel
from couponlab.simulators.world import World


def run() -> tuple[int, float, np.ndarray]:
    """Run the program once; return (steps, CPU s, trajectory rows)."""
    world = World()
    world.pause()
    model = FurnaceModel(world, None, "furnace1")
    model.start()
    z = model.zones
    targets = [*np.linspace(1100, 800, z), *np.linspace(1150, 900, z)]
    model.load_program(targets, [25.0, 10.0], [3600.0, 3600.0])
    model.start_program()
    rows = []
    c0 = time.process_time()
    for _ in range(40):
        world.advance(900.0)
        rows.append(np.concatenate([model.temperature_c, model.pv_c, model.output]))
    cpu = time.process_time() - c0
    return model.ticks, cpu, np.array(rows)


def main() -> None:
    """Print the CPU per step of each repeat."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--save", help="write the last repeat's trajectory here (.npy)")
    args = ap.parse_args()
    for _ in range(args.repeats):
        steps, cpu, rows = run()
        print(f"{steps} steps, {1e6 * cpu / steps:.1f} us CPU per step")
    if args.save:
        np.save(args.save, rows)


if __name__ == "__main__":
    main()
