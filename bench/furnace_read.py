"""Read cost of the OPC UA furnace driver against a raw asyncua client, side by side.

One furnace twin (speed-up 1) runs in a separate process (``couponlab twin serve``, as an
instrument is another machine) or, with ``--thread``, on a thread of this process. In one
run, interleaved in blocks so that drift on a shared machine hits every path alike, the
script times:

- ``raw``: a plain asyncua ``Client``'s ``node.read_value()`` of ``Zone1.ProcessValue``;
- ``zone get_value``: ``furnace.zones[1].process_value.get_value()`` through the device;
- ``zone read``: ``furnace.zones[1].process_value.read()`` (a bluesky reading);
- ``profile get_value``: ``furnace.profile.get_value()``, the whole 8-zone profile;
- ``profile read``: ``furnace.profile.read()``, the same as a bluesky reading;
- ``raw profile``: the raw client's ``read_value()`` of ``Furnace.Profile``.

and prints medians (and 90th percentiles) in microseconds and the ratios the project
targets: zone read through the device <= 1.25x raw, whole profile <= 1.5x one zone.

With ``--secure`` a second furnace twin in the same process serves Basic256Sha256
SignAndEncrypt with an operator login (decision 0069), and the same run also times
``secure zone get_value``, ``secure zone read`` and ``secure profile read`` through a
driver connected to it, interleaved with the rest, so NoSecurity and SignAndEncrypt are
compared side by side (certificates and passwords in a temporary state folder). Usage::

    python bench/furnace_read.py [--reads 3000] [--block 100] [--thread] [--uvloop] [--secure]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from asyncua import ua
from asyncua.client.client import Client

from couponlab.drivers.furnace import NAMESPACE_URI, OpcUaGradientFurnace
from couponlab.labfile import LabFile, load_lab
from couponlab.testing.furnace import furnace_lab

NAME = "furnace1"
SECURE_NAME = "furnace2"


def secure_lab(lab: LabFile) -> LabFile:
    """Return ``lab`` with a second furnace twin that serves SignAndEncrypt and users."""
    plain = lab.device(NAME)
    secret = "bench/operator.secret"  # under COUPONLAB_STATE_DIR (a temporary folder)
    secure = plain.model_copy(
        update={
            "name": SECURE_NAME,
            "settings": {
                **plain.settings,
                "security": {
                    "policy": "Basic256Sha256_SignAndEncrypt",
                    "user": "operator",
                    "password_file": secret,
                },
            },
            "twin_config": {
                **plain.twin_config,
                "users": {"operator": {"role": "operator", "password_file": secret}},
            },
        }
    )
    return lab.model_copy(update={"devices": [plain, secure]})


def _serve_in_process(lab: LabFile, folder: Path) -> tuple[subprocess.Popen[bytes], LabFile]:
    declared, resolved = folder / "lab.yaml", folder / "resolved.yaml"
    lab.dump(declared)
    cmd = [sys.executable, "-m", "couponlab.cli", "twin", "serve", str(declared)]
    proc = subprocess.Popen(
        [*cmd, "--resolved", str(resolved)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + 60.0
    while not resolved.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("couponlab twin serve did not start")
        time.sleep(0.05)
    time.sleep(0.2)  # the file is written before the last byte: let it land
    return proc, load_lab(resolved)


async def _time_block(fn: Callable[[], Awaitable[Any]], n: int, out: list[float]) -> None:
    perf = time.perf_counter
    for _ in range(n):
        t0 = perf()
        await fn()
        out.append(perf() - t0)


async def measure(lab: LabFile, reads: int, block: int) -> dict[str, list[float]]:
    """Time every path ``reads`` times, interleaved in blocks of ``block``."""
    entry = lab.device(NAME)
    furnace = OpcUaGradientFurnace.from_lab_entry(entry)
    await furnace.connect()
    secure = None
    if SECURE_NAME in lab.names():
        secure = OpcUaGradientFurnace.from_lab_entry(lab.device(SECURE_NAME))
        await secure.connect()
    raw = Client(entry.address, timeout=2.0)
    await raw.connect()
    try:
        ns = await raw.get_namespace_index(NAMESPACE_URI)
        pv_node = raw.get_node(ua.NodeId("Furnace.Zones.Zone1.ProcessValue", ns))
        profile_node = raw.get_node(ua.NodeId("Furnace.Profile", ns))
        zone = furnace.zones[1].process_value
        paths: dict[str, Callable[[], Awaitable[Any]]] = {
            "raw": pv_node.read_value,
            "zone get_value": zone.get_value,
            "zone read": zone.read,
            "profile get_value": furnace.profile.get_value,
            "profile read": furnace.profile.read,
            "raw profile": profile_node.read_value,
        }
        if secure is not None:
            paths["secure zone get_value"] = secure.zones[1].process_value.get_value
            paths["secure zone read"] = secure.zones[1].process_value.read
            paths["secure profile read"] = secure.profile.read
        times: dict[str, list[float]] = {k: [] for k in paths}
        for fn in paths.values():  # warm-up
            await _time_block(fn, 200, [])
        done = 0
        while done < reads:
            n = min(block, reads - done)
            for name, fn in paths.items():
                await _time_block(fn, n, times[name])
            done += n
        # sanity: the device reads what the raw client reads
        assert len(await furnace.profile.get_value()) == len(await profile_node.read_value())
        return times
    finally:
        await raw.disconnect()
        await furnace.disconnect()
        if secure is not None:
            await secure.disconnect()


def report(times: dict[str, list[float]]) -> None:
    """Print medians, 90th percentiles and the target ratios."""
    med = {k: statistics.median(v) * 1e6 for k, v in times.items()}
    p90 = {k: statistics.quantiles(v, n=10)[-1] * 1e6 for k, v in times.items()}
    n = len(next(iter(times.values())))
    print(f"{n} reads per path, interleaved; microseconds")
    print(f"{'path':<20} {'median':>9} {'p90':>9}")
    for k in times:
        print(f"{k:<20} {med[k]:9.0f} {p90[k]:9.0f}")
    zone_ratio = med["zone get_value"] / med["raw"]
    read_ratio = med["zone read"] / med["raw"]
    profile_ratio = med["profile get_value"] / med["zone get_value"]
    profile_read_ratio = med["profile read"] / med["zone read"]
    print()
    print(f"zone get_value    / raw read_value = {zone_ratio:.3f}  (target <= 1.25)")
    print(f"zone read()       / raw read_value = {read_ratio:.3f}  (target <= 1.25)")
    print(f"profile get_value / zone get_value = {profile_ratio:.3f}  (target <= 1.5)")
    print(f"profile read()    / zone read()    = {profile_read_ratio:.3f}  (target <= 1.5)")
    print(f"raw profile       / raw zone       = {med['raw profile'] / med['raw']:.3f}")
    if "secure zone get_value" in med:
        print()
        for path in ("zone get_value", "zone read", "profile read"):
            ratio = med[f"secure {path}"] / med[path]
            print(f"SignAndEncrypt / NoSecurity, {path:<14} = {ratio:.3f}")


def main() -> int:
    """Run the benchmark; print figures and ratios."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reads", type=int, default=3000, help="reads per path (default 3000)")
    ap.add_argument("--block", type=int, default=100, help="interleaving block (default 100)")
    ap.add_argument("--thread", action="store_true", help="host the twin on a thread instead")
    ap.add_argument("--uvloop", action="store_true", help="run the client on uvloop")
    ap.add_argument("--secure", action="store_true", help="also time a SignAndEncrypt twin")
    args = ap.parse_args()
    lab = furnace_lab(speedup=1.0, name=NAME)
    state = tempfile.TemporaryDirectory(prefix="couponlab-bench-state-")
    if args.secure:
        os.environ["COUPONLAB_STATE_DIR"] = state.name  # the twin process inherits it
        lab = secure_lab(lab)
    runner: Callable[[Any], Any] = asyncio.run
    if args.uvloop:
        import uvloop

        runner = uvloop.run
    print(
        f"twin in a {'thread' if args.thread else 'separate process'}, "
        f"client on {'uvloop' if args.uvloop else 'the default asyncio loop'}"
    )
    if args.thread:
        from couponlab.twins import BackgroundTwins

        with BackgroundTwins(lab) as twins:
            times = runner(measure(twins.lab, args.reads, args.block))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            proc, resolved = _serve_in_process(lab, Path(tmp))
            try:
                times = runner(measure(resolved, args.reads, args.block))
            finally:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
    state.cleanup()
    report(times)
    return 0


if __name__ == "__main__":
    sys.exit(main())
