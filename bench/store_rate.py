"""RunEngine rate with the store against no subscriber, measured side by side (interleaved).

The store is what a Session sets up: the document log (:class:`couponlab.data.DocumentLog`)
subscribed to the RunEngine, and the ingest process (:class:`couponlab.ingest.IngestProcess`)
copying the log into the embedded Tiled store of the output folder while the runs go on.
Each repeat times one ``count`` of ophyd-async soft signals (three scalars and an array of
``--width`` doubles) with no subscriber, then the same with the store. At the end the ingest
process is asked to finish; the time it took and a comparison of log and store
(:func:`couponlab.ingest.missing`) are printed. Target (issue 13): ratio >= 0.8.
Usage::

    python bench/store_rate.py [--events 1500] [--repeats 3] [--width 100]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from bluesky import RunEngine
from bluesky.plans import count
from ophyd_async.core import init_devices, soft_signal_rw

from couponlab.data import DocumentLog
from couponlab.ingest import IngestProcess, missing
from couponlab.store import StoreLocation, open_store, store_dir


def rate(engine: RunEngine, detectors: list[Any], events: int) -> float:
    """Return events per second of one ``count``."""
    start = time.perf_counter()
    engine(count(detectors, events))
    return events / (time.perf_counter() - start)


def main() -> None:
    """Measure and print both rates, their ratio, the ingest's finish time and the check."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=1500)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--width", type=int, default=100, help="doubles in the array signal")
    args = p.parse_args()

    engine = RunEngine({})
    with init_devices():
        a = soft_signal_rw(float, 1.0, name="a", units="mm")
        b = soft_signal_rw(float, 2.0, name="b", units="N")
        c = soft_signal_rw(int, 3, name="c")
        profile = soft_signal_rw(np.ndarray, np.linspace(0, 1, args.width), name="profile")
    detectors = [a, b, c, profile]

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        log = DocumentLog(out)
        ingest = IngestProcess(StoreLocation(out))
        while not (store_dir(out) / "catalog.db").exists():  # the ingest process is up
            time.sleep(0.2)
        time.sleep(2.0)
        rate(engine, detectors, 50)  # warm-up
        bare: list[float] = []
        stored: list[float] = []
        for _ in range(args.repeats):
            bare.append(rate(engine, detectors, args.events))
            token = engine.subscribe(log)
            stored.append(rate(engine, detectors, args.events))
            engine.unsubscribe(token)
        log.close()
        start = time.perf_counter()
        code = ingest.finish(timeout=600)
        drain = time.perf_counter() - start
        with open_store(out) as store:
            lacking = missing(out, store)
            n_runs = len(store)

    no_sub = statistics.median(bare)
    with_store = statistics.median(stored)
    print(f"{args.repeats} x {args.events} events, 3 scalars + {args.width} doubles each")
    print(
        f"{'no subscriber':>14}: {no_sub:8.1f} events/s   ({', '.join(f'{r:.0f}' for r in bare)})"
    )
    print(
        f"{'with store':>14}: {with_store:8.1f} events/s   "
        f"({', '.join(f'{r:.0f}' for r in stored)})"
    )
    print(f"{'ratio':>14}: {with_store / no_sub:8.2f}   (target >= 0.8)")
    print(
        f"ingest finished {drain:.1f} s after the last run (exit code {code}); "
        f"{n_runs} run(s) in the store, missing: {lacking or 'nothing'}"
    )


if __name__ == "__main__":
    main()
