"""Cost of a feeder read through the ophyd-async device against a raw pyserial
write-and-readline round trip of the same command on the same twin, measured side by side.

Compared, in alternating blocks (so machine noise hits both alike):

- raw:    ``ser.write(b"STAT?\\n"); ser.readline()`` on a pyserial ``socket://`` port;
- device: ``await feeder.read()`` (one ``STAT?`` exchange, every hopper's readings);
- raw short query ``FLOW? 1`` against ``await hopper.measured_rate.get_value()`` (one
  ``FLOW? 1`` exchange through the signal) for a single value.

and, to show where the single-value cost goes (same run, same twin):

- transport: ``await transport.query("FLOW? 1")`` (our serial transport alone);
- default soft signal: ``soft_signal_r_and_setter(float, getter=...)`` over the same getter,
  i.e. ophyd-async's default construction (10 s signal timeout: ``asyncio.wait_for`` per get),
  which the driver used before;
- ophyd-async's own per-get overhead without I/O: ``signal.get_value()`` over a getter that
  returns a constant, minus awaiting that getter directly.

Blocks are short and many (300 x 60 by default): on the shared 2-core machines the loopback
round trip switches between about 40 us and over 100 us as other work comes and goes, and
short alternating blocks let both modes hit every path alike. A run during a busy spell
shows higher absolute figures and lower ratios (a fixed overhead in a longer round trip);
compare runs made at quiet times.

Usage::

    python bench/feeder_read.py [--n 300] [--blocks 60] [--uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import serial
from ophyd_async.core import SignalR, SoftSignalBackend, soft_signal_r_and_setter

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


async def ophyd_overhead(n: int) -> float:
    """Return ophyd-async's own cost (s) of one ``get_value`` without I/O: the signal over a
    getter returning a constant, minus awaiting the getter directly."""

    async def const() -> float:
        return 1.5

    sig = SignalR(SoftSignalBackend(float, 0.0, "g/min", getter=const), timeout=None)
    await sig.connect()
    return await timed_async(sig.get_value, n) - await timed_async(const, n)


async def bench(url: str, feeder: Any, n: int, blocks: int) -> dict[str, float]:
    """Measure every path in ``blocks`` alternating blocks of ``n``; return medians (s)."""
    await feeder.connect()
    ser = serial.serial_for_url(url, timeout=2.0)
    try:
        raw_stat = raw_round_trip(ser, b"STAT?\n")
        raw_flow = raw_round_trip(ser, b"FLOW? 1\n")
        hopper = feeder.hoppers[1]
        signal = hopper.measured_rate
        transport = feeder.transport

        async def getter() -> float:  # the driver's FLOW? 1 exchange, parsed as it does
            return float(await feeder.client.query("FLOW? 1"))

        default_signal = soft_signal_r_and_setter(float, 0.0, units="g/min", getter=getter)[0]
        await default_signal.connect()
        for _ in range(200):  # warm up
            raw_stat()
            await feeder.read()
            await signal.get_value()
        res: dict[str, list[float]] = {
            k: [] for k in ("raw", "device", "raw_flow", "signal", "transport", "default", "ophyd")
        }
        for _ in range(blocks):
            res["raw"].append(await timed_sync(raw_stat, n))
            res["device"].append(await timed_async(feeder.read, n))
            res["raw_flow"].append(await timed_sync(raw_flow, n))
            res["signal"].append(await timed_async(signal.get_value, n))
            res["transport"].append(await timed_async(lambda: transport.query("FLOW? 1"), n))
            res["default"].append(await timed_async(default_signal.get_value, n))
            res["ophyd"].append(await ophyd_overhead(n))
        return {k: statistics.median(v) for k, v in res.items()}
    finally:
        ser.close()
        await feeder.close()


def main() -> None:
    """Run the bench and print medians and ratios."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--blocks", type=int, default=60)
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
    ratio = r["signal"] / r["raw_flow"]
    print(f"  ratio signal / raw FLOW?          : {ratio:8.3f}  (target <= 1.25)")
    print("where the single-value cost goes (FLOW? 1):")
    print(
        f"  transport.query() alone           : {us['transport']:8.1f} us"
        f"  ({r['transport'] / r['raw_flow']:.3f} x raw)"
    )
    print(
        f"  default soft signal (10 s timeout): {us['default']:8.1f} us"
        f"  ({r['default'] / r['raw_flow']:.3f} x raw; the driver's signals before)"
    )
    print(
        f"  ophyd-async get_value, no I/O     : {us['ophyd']:8.1f} us"
        f"  ({r['ophyd'] / r['raw_flow']:.3f} x raw; SignalR's own per-get cost)"
    )


if __name__ == "__main__":
    main()
