"""How fast the gradient-furnace twin runs, and what its OPC UA server costs.

Prints, side by side in one run:

1. Model throughput: virtual seconds simulated per wall second by the 8-zone model stepped
   at its 1 s controller period (``World.advance``), against a raw SimPy baseline (a process
   that only waits 1 s per tick) in the same world.
2. The twin served at a speed-up (default 1000x) with the world clock running, while a client
   reads ``Profile`` + ``SimTime`` in one request every 50 ms: the speed-up achieved, whether
   the model kept up (controller periods run per virtual second), the freshness of reads, and
   the projected wall time of a 24 h hold. ``--full-day`` runs the whole 24 h instead.
3. Read latency of the furnace (sync + publish on every read) against a plain asyncua server
   variable read in the same run, and the cost of one full publish of every furnace node.

Usage::

    python bench/furnace_twin_speed.py [--speedup 1000] [--seconds 10] [--full-day]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time
from collections.abc import Generator

import numpy as np
import simpy
from asyncua import Client, ua
from asyncua.server.server import Server

from couponlab.labfile import DeviceEntry
from couponlab.simulators.background import BackgroundLoop
from couponlab.simulators.furnace import NAMESPACE_URI, FurnaceModel, FurnaceTwin, start_twin
from couponlab.simulators.world import World

DAY_S = 86400.0
GRADIENT = [float(x) for x in np.linspace(1000.0, 800.0, 8)]


def model_throughput(virtual_s: float) -> tuple[float, float]:
    """Return (furnace model, raw SimPy baseline) virtual s per wall s over ``virtual_s``."""
    world = World()
    model = FurnaceModel(world)
    model.start()
    model.set_setpoints(GRADIENT)
    t0 = time.perf_counter()
    world.advance(virtual_s)
    furnace = virtual_s / (time.perf_counter() - t0)
    assert model.ticks >= virtual_s - 1  # every controller period ran

    base = World()

    def idle() -> Generator[simpy.Event, None, None]:
        while True:
            yield base.env.timeout(1.0)

    base.env.process(idle())
    t0 = time.perf_counter()
    base.advance(virtual_s)
    raw = virtual_s / (time.perf_counter() - t0)
    return furnace, raw


def entry() -> DeviceEntry:
    return DeviceEntry(
        name="furnace1",
        family="gradient_furnace",
        driver="couponlab.drivers.furnace:OpcUaGradientFurnace",
        address="opc.tcp://127.0.0.1:0",
        twin=True,
    )


async def served_run(
    bg: BackgroundLoop, speedup: float, wall_s: float, full_day: bool
) -> dict[str, float | str]:
    """Serve the twin at ``speedup`` while a client polls at 20 Hz.

    The furnace runs a 24 h program: ramp to a 1000 -> 800 degC gradient at 20 K/min, then
    dwell so that the program ends 24 h of virtual time after it started. With ``full_day``
    the client polls until the program reads ``complete``; otherwise for ``wall_s`` s.
    """
    world = bg.call(World)
    twin: FurnaceTwin = await bg.arun(start_twin(world, entry()))
    clock = None
    rate = 20.0
    ramp_s = (max(GRADIENT) - 25.0) * 60.0 / rate
    try:
        bg.call(twin.model.load_program, GRADIENT, [rate], [DAY_S - ramp_s])
        bg.call(world.set_speedup, speedup)

        async def start_clock() -> asyncio.Task[None]:
            return asyncio.create_task(world.run_clock(0.01))

        clock = await bg.arun(start_clock())
        async with Client(twin.address, timeout=10) as client:
            ns = await client.get_namespace_index(NAMESPACE_URI)
            nodes = [
                client.get_node(ua.NodeId(p, ns))
                for p in ("Furnace.Profile", "Furnace.Clock.SimTime", "Furnace.Program.State")
            ]
            start = client.get_node(ua.NodeId("Furnace.Program", ns))
            await start.call_method(ua.NodeId("Furnace.Program.Start", ns))
            v0 = bg.call(lambda: world.now)
            ticks0 = bg.call(lambda: twin.model.ticks)
            t0 = time.monotonic()
            lags: list[float] = []
            reads = 0
            state = ""
            limit = DAY_S / speedup * 1.5 + 10 if full_day else wall_s
            while time.monotonic() - t0 < limit:
                before = bg.call(world.target_time)
                _, sim_time, state = await client.read_values(nodes)
                lags.append(max(0.0, before - float(sim_time)))  # > 0: a stale read
                reads += 1
                if full_day and state == "complete":
                    break
                await asyncio.sleep(0.05)
            wall = time.monotonic() - t0
            v1 = bg.call(lambda: world.now)
            ticks1 = bg.call(lambda: twin.model.ticks)
            profile = await nodes[0].read_value()
    finally:
        if clock is not None:
            clock_task = clock

            async def stop_clock() -> None:
                clock_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await clock_task

            await bg.arun(stop_clock())
        await bg.arun(twin.stop())
    virtual = v1 - v0
    return {
        "wall_s": wall,
        "virtual_s": virtual,
        "achieved_speedup": virtual / wall,
        "ticks_per_virtual_s": (ticks1 - ticks0) / (int(v1) - int(v0)),
        "max_stale_s": max(lags),
        "reads": reads,
        "zone1_c": float(profile[0]),
        "zone8_c": float(profile[-1]),
        "program": str(state),
    }


async def read_latency(bg: BackgroundLoop, n: int) -> dict[str, float]:
    """Median read latency: furnace node (1000x, clock running) vs a plain asyncua variable."""

    async def plain_server() -> tuple[Server, int]:
        server = Server()
        await server.init()
        server.set_endpoint("opc.tcp://127.0.0.1:0/")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        idx = await server.register_namespace("urn:bench")
        await server.nodes.objects.add_variable(ua.NodeId("Plain", idx), "Plain", 1.5)
        await server.start()
        assert server.bserver is not None
        return server, server.bserver.port

    plain, port = await bg.arun(plain_server())
    world = bg.call(World)
    twin: FurnaceTwin = await bg.arun(start_twin(world, entry()))
    bg.call(world.set_speedup, 1000.0)
    out: dict[str, float] = {}
    try:
        for label, url, path, uri in (
            ("plain asyncua variable", f"opc.tcp://127.0.0.1:{port}", "Plain", "urn:bench"),
            ("furnace ProcessValue", twin.address, "Furnace.Zones.Zone1.ProcessValue", None),
        ):
            async with Client(url, timeout=10) as client:
                ns = await client.get_namespace_index(uri or NAMESPACE_URI)
                node = client.get_node(ua.NodeId(path, ns))
                for _ in range(50):
                    await node.read_value()
                times = []
                for _ in range(n):
                    t0 = time.perf_counter()
                    await node.read_value()
                    times.append(time.perf_counter() - t0)
                out[label] = statistics.median(times)

        async def publish_cost() -> dict[str, float]:
            server, n = twin.server, 200
            world.pause()
            t0 = time.perf_counter()
            for _ in range(n):
                await server.publish(force=True)
            forced = (time.perf_counter() - t0) / n
            t0 = time.perf_counter()
            for _ in range(n):
                world.advance(1.0)
            tick = (time.perf_counter() - t0) / n
            t0 = time.perf_counter()
            for _ in range(n):
                world.advance(1.0)
                await server.publish()
            after_tick = (time.perf_counter() - t0) / n - tick
            t0 = time.perf_counter()
            for _ in range(n):
                await server.publish()
            between = (time.perf_counter() - t0) / n
            world.resume()
            return {
                "one controller period (model)": tick,
                "publish, every node forced": forced,
                "publish after a period": after_tick,
                "publish between periods": between,
            }

        out.update(await bg.arun(publish_cost()))
    finally:
        await bg.arun(twin.stop())
        await bg.arun(plain.stop())
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--speedup", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=10.0, help="wall seconds served")
    parser.add_argument("--full-day", action="store_true", help="serve a whole 24 h hold")
    parser.add_argument("--reads", type=int, default=500)
    args = parser.parse_args()

    furnace, raw = model_throughput(DAY_S)
    print("1. model throughput over 24 h of virtual time (8 zones, 1 s controller period)")
    print(
        f"   furnace model : {furnace:12,.0f} virtual s/wall s (24 h in {DAY_S / furnace:.2f} s)"
    )
    print(f"   raw SimPy tick: {raw:12,.0f} virtual s/wall s (baseline)")
    print(f"   ratio furnace/raw: {furnace / raw:.3f}")

    bg = BackgroundLoop("furnace-bench")
    try:
        r = await served_run(bg, args.speedup, args.seconds, args.full_day)
        what = "a 24 h program to its end" if args.full_day else f"{r['wall_s']:.1f} s wall"
        print(f"2. served at {args.speedup:g}x, {what}, client polling 20 Hz")
        print(f"   wall time: {r['wall_s']:.1f} s; virtual time advanced: {r['virtual_s']:,.0f} s")
        print(
            f"   achieved speed-up     : {r['achieved_speedup']:,.1f}x "
            f"(ratio to requested {float(r['achieved_speedup']) / args.speedup:.3f})"
        )
        print(f"   controller periods / virtual s: {r['ticks_per_virtual_s']:.3f} (1 = kept up)")
        print(f"   stalest read: {r['max_stale_s']:.3f} virtual s late ({r['reads']} reads)")
        print(f"   program state at the end: {r['program']}")
        print(f"   zone 1 / zone 8 at the end: {r['zone1_c']:.1f} / {r['zone8_c']:.1f} degC")
        print(
            f"   projected wall time of a 24 h hold: {DAY_S / float(r['achieved_speedup']):.1f} s"
        )

        lat = await read_latency(bg, args.reads)
        base = lat["plain asyncua variable"]
        print(f"3. read latency (median of {args.reads}) and per-period costs")
        for label, value in lat.items():
            print(f"   {label:30s}: {value * 1e6:8.0f} us  (x{value / base:.2f} of a plain read)")
    finally:
        bg.stop()


if __name__ == "__main__":
    asyncio.run(main())
