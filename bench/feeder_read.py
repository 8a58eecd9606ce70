"""Cost of a feeder read through the ophyd-async device against a raw pyserial
write-and-readline round trip of the same command on the same twin, measured side by side.

Compared, in alternating blocks (so machine noise hits both alike):

- raw:    ``ser.write(b"STAT?\\n"); ser.readline()`` on a pyserial ``socket://`` port;
- device: ``await feeder.read()`` (one ``STAT?`` exchange, every hopper's readings);
- raw short query ``FLOW? 1`` against ``await hopper.measured_rate.get_value()`` (one
  ``FLOW? 1`` exchange through the signal) for a single value.

Usage::

    python bench/feeder_read.py [--n 3000] [--blocks 10] [--uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import serial

from couponlab.lab import make_device
from couponlab.testing.feeder import deposition_lab
from couponlab.twins import BackgroundTwins


def raw_round_trip(ser: Any, command: bytes) -> Callable[[], None]:
    """Return a function doing one raw write + readline of ``command``."""

    def once() -> None:
        ser.write(command)
        ser.readline()

    return once


async def timed_sync(fn: Callable[[], None], n: int) -> float:
    """Return the median cost (s) of ``fn()`` over ``n`` calls, timed per call."""
    costs = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        costs.append(time.perf_counter() - t)
    return statistics.median(costs)


async def timed_async(fn: Callable[[], Awaitable[Any]], n: int) -> float:
    """Return the median cost (s) of ``await fn()`` over ``n`` calls, timed per call."""
    costs = []
    for _ in range(n):
        t = time.perf_counter()
        await fn()
        costs.append(time.perf_counter() - t)
    return statistics.median(costs)


async def bench(url: str, feeder: Any, n: int, blocks: int) -> dict[str, float]:
    """Measure every path in ``blocks`` alternating blocks of ``n``; return medians (s)."""
    await feeder.connect()
    ser = serial.serial_for_url(url, timeout=2.0)
    try:
        raw_stat = raw_round_trip(ser, b"STAT?\n")
        raw_flow = raw_round_trip(ser, b"FLOW? 1\n")
        signal = feeder.hoppers[1].measured_rate
        for _ in range(200):  # warm up
            raw_stat()
            await feeder.read()
        res: dict[str, list[float]] = {"raw": [], "device": [], "raw_flow": [], "signal": []}
        for _ in range(blocks):
            res["raw"].append(await timed_sync(raw_stat, n))
            res["device"].append(await timed_async(feeder.read, n))
            res["raw_flow"].append(await timed_sync(raw_flow, n))
            res["signal"].append(await timed_async(signal.get_value, n))
        return {k: statistics.median(v) for k, v in res.items()}
    finally:
        ser.close()
        await feeder.close()


def main() -> None:
    """Run the bench and print medians and ratios."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--blocks", type=int, default=10)
    ap.add_argument("--uvloop", action="store_true", help="run the device on uvloop")
    args = ap.parse_args()
    twins = BackgroundTwins(deposition_lab(1, speedup=1.0))
    try:
        entry = twins.lab.device("feeder1")
        feeder = make_device(entry)
        coro = bench(entry.address, feeder, args.n, args.blocks)
        if args.uvloop:
            import uvloop

            r = uvloop.run(coro)
        else:
            r = asyncio.run(coro)
    finally:
        twins.stop()
    us = {k: v * 1e6 for k, v in r.items()}
    loop = "uvloop" if args.uvloop else "asyncio default loop"
    print(f"feeder read cost, 4 hoppers, {loop}, {args.blocks} x {args.n} per path (medians)")
    print(f"  raw pyserial STAT? write+readline : {us['raw']:8.1f} us")
    print(f"  device feeder.read() (STAT?)      : {us['device']:8.1f} us")
    print(f"  ratio device / raw                : {r['device'] / r['raw']:8.3f}  (target <= 1.25)")
    print(f"  raw pyserial FLOW? 1              : {us['raw_flow']:8.1f} us")
    print(f"  signal get_value() (FLOW? 1)      : {us['signal']:8.1f} us")
    print(f"  ratio signal / raw FLOW?          : {r['signal'] / r['raw_flow']:8.3f}")


if __name__ == "__main__":
    main()
