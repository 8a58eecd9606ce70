"""docs/howto/read-back-data.md: its python blocks run verbatim against a folder shaped like
``couponlab demo``'s (a hold, a raster map and a tensile test of one coupon, with the demo's
stream and key names; the curve in an HDF5 file of its own), filled into the store by
``couponlab data recover``, and every claim holds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import dask
import h5py
import numpy as np
import pytest
from event_model import compose_run

from couponlab.cli import main
from couponlab.data import DocumentLog

ROOT = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).with_name("run_python_blocks.py")
PAGE = ROOT / "docs" / "howto" / "read-back-data.md"
COUPON = "C20261201-89527a47"


def _key(units: str, **more: Any) -> dict[str, Any]:
    return {"source": "sim", "dtype": "number", "shape": [], "units": units, **more}


def _run(log: DocumentLog, plan: str, md: dict[str, Any], data: dict[str, list[Any]]) -> Any:
    run = compose_run(
        metadata={"plan_name": plan, "coupon_id": COUPON, "campaign_id": "demo-01", **md}
    )
    log("start", run.start_doc)
    if data:
        keys = {k: _key("nm" if "thickness" in k else "mm") for k in data}
        primary = run.compose_descriptor(name="primary", data_keys=keys)
        log("descriptor", primary.descriptor_doc)
        for i in range(len(next(iter(data.values())))):
            row = {k: v[i] for k, v in data.items()}
            log("event", primary.compose_event(data=row, timestamps=dict.fromkeys(row, 0.0)))
    return run


def _demo_like(out: Path) -> None:
    log = DocumentLog(out)
    hold = _run(log, "gradient_oxidation_hold", {}, {"furnace1-clock-sim_time": [0.0, 1800.0]})
    log("stop", hold.compose_stop())
    xs, ys = np.meshgrid(np.linspace(5, 55, 4), np.linspace(2, 8, 3))
    scan = _run(
        log,
        "raster_map",
        {},
        {
            "stage1-x": xs.ravel().tolist(),
            "stage1-y": ys.ravel().tolist(),
            "profiler1-thickness": np.linspace(100, 900, 12).tolist(),
        },
    )
    log("stop", scan.compose_stop())
    geometry = {k: {"value": v, "units": "mm"} for k, v in [("width", 1.2), ("thickness", 0.5)]}
    tensile = _run(log, "tensile_test", {"specimen": geometry}, {})
    path = out / "frame1-curve.h5"
    with h5py.File(path, "w") as f:
        f["strain"] = np.linspace(0.0, 0.3, 200)
        f["force"] = 300.0 * np.sin(np.linspace(0.0, 2.5, 200))
    keys = {
        f"frame1-{n}": _key(u, source="hdf5", dtype_numpy="<f8", external="STREAM:")
        for n, u in [("strain", "mm/mm"), ("force", "N")]
    }
    curve = tensile.compose_descriptor(name="curve", data_keys=keys)
    log("descriptor", curve.descriptor_doc)
    for name in ("strain", "force"):
        resource = tensile.compose_stream_resource(
            mimetype="application/x-hdf5",
            uri=path.absolute().as_uri(),
            data_key=f"frame1-{name}",
            parameters={"dataset": f"/{name}", "chunk_shape": [200]},
        )
        log("stream_resource", resource.stream_resource_doc)
        log(
            "stream_datum",
            resource.compose_stream_datum(
                indices={"start": 0, "stop": 200},
                seq_nums={"start": 1, "stop": 201},
                descriptor=curve.descriptor_doc,
            ),
        )
    log("stop", tensile.compose_stop())
    log.close()


@pytest.mark.slow
def test_the_howto_runs_verbatim_on_a_demo_like_folder(tmp_path: Path) -> None:
    out = tmp_path / "runs" / "demo"
    _demo_like(out)
    with dask.config.set(scheduler="synchronous"):  # no pool of threads outlives the test
        assert main(["data", "recover", str(out)]) == 0
    result = subprocess.run(
        [sys.executable, str(RUNNER), str(PAGE)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=100,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "every claim held" in result.stdout
