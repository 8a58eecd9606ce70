"""Frame benchmarks: the bulk data path at 5 kHz and the cost of one query.

1. A tensile test sampled at 5 kHz that lasts more than 10 minutes of (virtual) test time
   runs through the ``tensile_test`` plan under a RunEngine; every sample the twin produced
   must be referenced by the documents and present in the HDF5 file, evenly spaced.
2. One ``MEAS:FORC?`` query through the device (``frame.force.get_value()``) against the
   same query with raw pyvisa on the same twin, interleaved in rounds; prints medians and
   the ratio (target <= 1.25).

Usage: ``python bench/frame_bench.py [--speedup 10] [--queries 3000]``
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import bluesky.plan_stubs as bps
import h5py
import numpy as np
import pyvisa
from bluesky import RunEngine

from couponlab.drivers.frame import ScpiTestFrame
from couponlab.interfaces.frame import TestSettings
from couponlab.plans.tensile_test import tensile_test
from couponlab.testing.frame import frame_lab
from couponlab.twins import BackgroundTwins


def bulk(speedup: float) -> None:
    """Run a > 10 min test at 5 kHz and check the counts end to end."""
    with BackgroundTwins(frame_lab(speedup=speedup)) as twins, tempfile.TemporaryDirectory() as d:
        entry = twins.lab.device("frame1").model_copy(
            update={"settings": {"specimen_thickness": "2 mm", "data_dir": d}}
        )
        frame = ScpiTestFrame.from_lab_entry(entry)
        loop = asyncio.new_event_loop()
        engine = RunEngine({}, call_returns_result=True, loop=loop)
        docs: list[tuple[str, dict[str, Any]]] = []
        engine.subscribe(lambda n, doc: docs.append((n, doc)))
        engine(bps.wait_for([lambda: frame.connect()]))
        settings = TestSettings(crosshead_rate="0.95 mm/min", sample_rate="5 kHz")
        t0 = time.perf_counter()
        ret = engine(tensile_test(frame, "generic:bench", 10.0, settings=settings))
        wall = time.perf_counter() - t0
        model: Any = twins.world.instruments["frame1"]
        produced = twins.call(lambda: model.produced)
        resources = {doc["uid"]: doc for n, doc in docs if n == "stream_resource"}
        force_uid = next(u for u, r in resources.items() if r["data_key"] == "frame1-force")
        datums = [doc["indices"] for n, doc in docs if n == "stream_datum"
                  and doc["stream_resource"] == force_uid]  # fmt: skip
        referenced = sum(i["stop"] - i["start"] for i in datums)
        contiguous = all(a["stop"] == b["start"] for a, b in itertools.pairwise(datums))
        path = Path(resources[force_uid]["uri"].removeprefix("file://"))
        with h5py.File(path) as f:
            in_file = f["force"].shape[0]
            t = f["time"][()]
        spacing = np.diff(t)
        result = ret.plan_result
        test_s = float(t[-1])
        print("== bulk data path: tensile_test at 5 kHz through the RunEngine ==")
        print(f"world speed-up            {speedup:g}x")
        print(f"test time (virtual)       {test_s:.1f} s ({test_s / 60:.2f} min)")
        print(f"wall time                 {wall:.1f} s")
        print(f"samples produced by twin  {produced}")
        print(f"rows in stream datums     {referenced} in {len(datums)} StreamDatum "
              f"(contiguous: {contiguous})")  # fmt: skip
        print(f"rows in HDF5 file         {in_file}")
        print(f"sample spacing            min {spacing.min() * 1e6:.3f} us, max "
              f"{spacing.max() * 1e6:.3f} us (nominal 200 us)")  # fmt: skip
        print(f"sustained sample rate     {produced / test_s:.1f} Hz virtual; "
              f"{produced / wall:.0f} samples/s wall")  # fmt: skip
        print(f"documents                 {len(docs)} in all")
        print(f"end / UTS / elongation    {ret.exit_status}, {result.uts:.1f} MPa, "
              f"{result.total_elongation:.2f} %")  # fmt: skip
        lost = produced - referenced
        print(f"LOST SAMPLES              {lost}  (file {produced - in_file})")
        ok = lost == 0 and in_file == produced and contiguous and test_s >= 600
        print("RESULT                    " + ("PASS" if ok else "FAIL"))
        engine(bps.wait_for([lambda: frame.disconnect()]))
        loop.call_soon_threadsafe(loop.stop)
        engine._th.join(10)
        loop.close()


async def _query_cost(address: str, queries: int) -> None:
    frame = ScpiTestFrame(address, name="frame1")
    await frame.connect()
    rm = pyvisa.ResourceManager("@py")
    raw: Any = rm.open_resource(address, read_termination="\n", write_termination="\n")
    raw.timeout = 2000
    t_dev: list[float] = []
    t_raw: list[float] = []
    per_round = 100
    for _ in range(queries // per_round):
        for _ in range(per_round):
            t = time.perf_counter()
            raw.query("MEAS:FORC?")
            t_raw.append(time.perf_counter() - t)
        for _ in range(per_round):
            t = time.perf_counter()
            await frame.force.get_value()
            t_dev.append(time.perf_counter() - t)
    raw.close()
    rm.close()
    await frame.disconnect()
    warm = len(t_raw) // 10
    m_raw = statistics.median(t_raw[warm:])
    m_dev = statistics.median(t_dev[warm:])
    print("== one query: MEAS:FORC? ==")
    print(f"raw pyvisa query          median {m_raw * 1e6:.1f} us ({len(t_raw)} queries)")
    print(f"device force.get_value()  median {m_dev * 1e6:.1f} us ({len(t_dev)} queries)")
    print(f"ratio device / raw        {m_dev / m_raw:.3f}  (target <= 1.25: "
          f"{'PASS' if m_dev / m_raw <= 1.25 else 'FAIL'})")  # fmt: skip


def query_cost(queries: int) -> None:
    """Compare one query through the device with raw pyvisa on the same twin."""
    with BackgroundTwins(frame_lab(speedup=1.0)) as twins:
        asyncio.run(_query_cost(twins.lab.device("frame1").address, queries))


def main() -> None:
    """Run both benchmarks and print their figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--speedup", type=float, default=10.0)
    parser.add_argument("--queries", type=int, default=3000)
    args = parser.parse_args()
    query_cost(args.queries)
    bulk(args.speedup)


if __name__ == "__main__":
    main()
