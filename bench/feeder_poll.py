"""Poll every hopper of 8 powder feeders at 10 Hz through the ophyd-async devices and count
missed deadlines (wall time; the twins run on their own thread at speedup 1).

Each cycle reads all 8 feeders (one ``STAT?`` exchange each, every hopper's setpoint, flow,
fill, gas and alarms); a deadline is missed when a cycle starts more than one period late or
takes longer than the period. Hopper 1 of every feeder feeds 5 g/min throughout, so the twins
integrate their physics while being polled. Usage::

    python bench/feeder_poll.py [--seconds 600] [--feeders 8] [--rate-hz 10]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from couponlab.lab import make_device
from couponlab.labfile import DeviceEntry, LabFile
from couponlab.twins import BackgroundTwins


def lab_of(feeders: int) -> LabFile:
    """Return a lab of ``feeders`` feeder twins (4 hoppers each) at speedup 1."""
    return LabFile(
        name="poll-bench",
        world={"speedup": 1.0, "seed": 3},
        devices=[
            DeviceEntry(
                name=f"feeder{i}",
                family="powder_feeder",
                driver="couponlab.drivers.deposition:AsciiPowderFeeder",
                address="socket://127.0.0.1:0",
                twin=True,
            )
            for i in range(1, feeders + 1)
        ],
    )


async def poll(lab: LabFile, seconds: float, rate_hz: float) -> dict[str, Any]:
    """Poll every feeder of ``lab`` at ``rate_hz`` for ``seconds``; return the figures."""
    devices: list[Any] = [make_device(e) for e in lab.devices]
    for d in devices:
        await d.connect()
        await d.set_gas(1, "4 L/min")
        await d.set_rate(1, "5 g/min")
    period = 1.0 / rate_hz
    cycles = missed = 0
    durations: list[float] = []
    max_lag = 0.0
    readings = 0
    t0 = time.monotonic()
    next_t = t0
    try:
        while next_t - t0 < seconds:
            now = time.monotonic()
            if now < next_t:
                await asyncio.sleep(next_t - now)
            start = time.monotonic()
            lag = start - next_t
            max_lag = max(max_lag, lag)
            for d in devices:
                readings += len(await d.read())
            took = time.monotonic() - start
            durations.append(took)
            cycles += 1
            if lag > period or took > period:
                missed += 1
            next_t += period
        elapsed = time.monotonic() - t0
    finally:
        for d in devices:
            await d.stop()
            await d.close()
    durations.sort()
    return {
        "cycles": cycles,
        "missed": missed,
        "readings": readings,
        "cycle_median_ms": 1e3 * statistics.median(durations),
        "cycle_p99_ms": 1e3 * durations[int(0.99 * (len(durations) - 1))],
        "cycle_max_ms": 1e3 * durations[-1],
        "max_start_lag_ms": 1e3 * max_lag,
        "wall_s": elapsed,
    }


def main() -> None:
    """Run the bench and print its figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=600.0)
    ap.add_argument("--feeders", type=int, default=8)
    ap.add_argument("--rate-hz", type=float, default=10.0)
    args = ap.parse_args()
    twins = BackgroundTwins(lab_of(args.feeders))
    try:
        r = asyncio.run(poll(twins.lab, args.seconds, args.rate_hz))
    finally:
        twins.stop()
    expected = int(args.seconds * args.rate_hz)
    print(f"feeders: {args.feeders} x 4 hoppers, {args.rate_hz:g} Hz for {r['wall_s']:.1f} s")
    print(f"cycles: {r['cycles']} (expected about {expected}), readings: {r['readings']}")
    print(f"missed deadlines: {r['missed']}")
    print(
        f"cycle time (8 device reads): median {r['cycle_median_ms']:.2f} ms, "
        f"p99 {r['cycle_p99_ms']:.2f} ms, max {r['cycle_max_ms']:.2f} ms; "
        f"period {1e3 / args.rate_hz:.0f} ms"
    )
    print(f"largest start lag: {r['max_start_lag_ms']:.2f} ms")


if __name__ == "__main__":
    main()
