"""How long a twin's reply waits on simulation work, at several speed-ups, idle or loaded.

The bundled lab's twins run in their own process (``TwinProcess``), as in Session and the
demo. At each speed-up the feeder feeds (``GAS 1,4;RATE 1,5``: the most expensive model of
the lab, about 800 virtual s per wall s) while the furnace runs and a client asks the stage
and the feeder short queries back to back. Printed per speed-up, side by side in one run:

- **work**: the wall time of each world sync's simulation work inside the twin process
  (``work_stats`` of the control channel): the longest a reply can wait on the simulation,
  p50 / p99 / max in ms. Target: p99 under 20 ms.
- **rtt**: the client's round-trip of the queries, p50 / p99 / max in ms, and the same
  against a paused world (no simulation work at all) as the baseline; their ratio.
- the requested and the achieved speed-up, and the virtual seconds dropped because the
  simulation could not keep up (virtual time slowed down instead of a backlog).

Usage::

    python bench/reply_wait.py [--seconds 5] [--speedups 1000 5000 20000]
    # loaded: ../shared/tools/cpu_hogs.sh 2 120; python bench/reply_wait.py
"""

from __future__ import annotations

import argparse
import os
import socket
import time

import numpy as np

from couponlab.cli import sample_lab_path
from couponlab.labfile import LabFile, load_lab
from couponlab.twins import TwinProcess


def _connect(address: str) -> socket.socket:
    if address.startswith("socket://"):
        host, port = address.removeprefix("socket://").rsplit(":", 1)
    else:
        _, host, port, _ = address.split("::")
    sock = socket.create_connection((host, int(port)), timeout=10.0)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _ask(sock: socket.socket, file: object, line: bytes) -> bytes:
    sock.sendall(line)
    reply: bytes = file.readline()  # type: ignore[attr-defined]
    return reply


def _round_trips(lab: LabFile, seconds: float) -> np.ndarray:
    """Ask the stage and the feeder short queries back to back; return round trips, s."""
    stage, feeder = _connect(lab.device("stage1").address), _connect(lab.device("feeder1").address)
    files = [s.makefile("rb") for s in (stage, feeder)]
    queries = [(stage, files[0], b"POS?\n"), (feeder, files[1], b"FLOW? 1\n")]
    out: list[float] = []
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            for sock, f, q in queries:
                t0 = time.perf_counter()
                _ask(sock, f, q)
                out.append(time.perf_counter() - t0)
    finally:
        for f in files:
            f.close()
        stage.close()
        feeder.close()
    return np.asarray(out)


def _pct(values: np.ndarray) -> str:
    p50, p99 = np.percentile(values, [50, 99])
    return f"{p50:7.3f} {p99:7.3f} {values.max():8.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="wall s per speed-up")
    parser.add_argument("--speedups", type=float, nargs="+", default=[1000.0, 5000.0, 20000.0])
    args = parser.parse_args()
    lab = load_lab(sample_lab_path())
    print(f"load average {os.getloadavg()[0]:.2f}; {args.seconds:g} s per speed-up")
    with TwinProcess(lab) as twins:
        control = twins.control
        feeder = _connect(twins.lab.device("feeder1").address)
        with feeder.makefile("rb") as f:
            _ask(feeder, f, b"GAS 1,4;RATE 1,5;SYST:ERR?\n")
        feeder.close()
        control.pause()
        base = _round_trips(twins.lab, min(args.seconds, 2.0)) * 1e3
        control.resume()
        print(
            f"{'speed-up':>9} {'achieved':>9} {'dropped s':>10} | "
            f"{'work ms p50':>11} {'p99':>7} {'max':>8} | {'rtt ms p50':>10} {'p99':>7} "
            f"{'max':>8} | {'rtt p50 / paused':>16}"
        )
        print(f"{'paused':>9} {'':>9} {'':>10} | {'':>11} {'':>7} {'':>8} | {_pct(base):>27} |")
        for speedup in args.speedups:
            control.set_speedup(speedup)
            control.work_stats(reset=True)
            dropped0 = control.status()["slowed_s"]
            rtt = _round_trips(twins.lab, args.seconds) * 1e3
            status, work = control.status(), control.work_stats(reset=True)
            print(
                f"{speedup:9.0f} {status['achieved_speedup']:9.0f} "
                f"{status['slowed_s'] - dropped0:10.0f} | "
                f"{work['p50_ms']:11.3f} {work['p99_ms']:7.3f} {work['max_ms']:8.3f} | "
                f"{_pct(rtt):>27} | {np.median(rtt) / np.median(base):16.2f}"
            )


if __name__ == "__main__":
    main()
