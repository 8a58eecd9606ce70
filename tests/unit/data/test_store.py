"""The store (couponlab.store) filled from the document log (couponlab.ingest): array columns,
device files read through Tiled, idempotent recovery of a half-written run, finding runs by
coupon and campaign, and ``couponlab data recover``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dask
import h5py
import numpy as np
import pytest
from event_model import compose_run

from couponlab.cli import main
from couponlab.data import DocumentLog
from couponlab.ingest import Ingester, StoreBusyError, missing, recover
from couponlab.store import open_store, runs

pytestmark = pytest.mark.slow  # opening a store imports Tiled's server (seconds)

CURVE_ROWS = 250


@pytest.fixture(autouse=True)
def dask_in_this_thread() -> Any:
    """Tiled's client reads tables through dask, whose default scheduler keeps a process-wide
    pool of threads alive: read in the calling thread, so the leak check sees no thread."""
    with dask.config.set(scheduler="synchronous"):
        yield


def write_run(
    folder: Path,
    *,
    coupon: Any = "C1",
    campaign: str = "K1",
    events: int = 5,
    stop: bool = True,
) -> str:
    """Write one run through a DocumentLog: a primary stream with a scalar and an array
    column, and a curve stream of CURVE_ROWS rows in an HDF5 file of its own. Return its uid."""
    log = DocumentLog(folder)
    run = compose_run(metadata={"coupon_id": coupon, "campaign_id": campaign, "plan_name": "p"})
    log("start", run.start_doc)
    primary = run.compose_descriptor(
        name="primary",
        data_keys={
            "x": {"source": "sim", "dtype": "number", "shape": [], "units": "mm"},
            "profile": {"source": "sim", "dtype": "array", "shape": [4], "units": "um"},
        },
    )
    log("descriptor", primary.descriptor_doc)
    for i in range(events):
        data = {"x": float(i), "profile": np.arange(4.0) + i}
        log("event", primary.compose_event(data=data, timestamps=dict.fromkeys(data, 0.0)))
    path = folder / f"curve-{run.start_doc['uid']}.h5"
    with h5py.File(path, "w") as f:
        f["force"] = np.linspace(0.0, 1.0, CURVE_ROWS)
    curve = run.compose_descriptor(
        name="curve",
        data_keys={
            "force": {
                "source": "hdf5",
                "dtype": "number",
                "dtype_numpy": "<f8",
                "shape": [],
                "units": "N",
                "external": "STREAM:",
            }
        },
    )
    log("descriptor", curve.descriptor_doc)
    resource = run.compose_stream_resource(
        mimetype="application/x-hdf5",
        uri=path.absolute().as_uri(),
        data_key="force",
        parameters={"dataset": "/force", "chunk_shape": [100]},
    )
    log("stream_resource", resource.stream_resource_doc)
    for start in range(0, CURVE_ROWS, 100):
        stop_row = min(start + 100, CURVE_ROWS)
        log(
            "stream_datum",
            resource.compose_stream_datum(
                indices={"start": start, "stop": stop_row},
                seq_nums={"start": start + 1, "stop": stop_row + 1},
                descriptor=curve.descriptor_doc,
            ),
        )
    if stop:
        log("stop", run.compose_stop())
    log.close()
    return str(run.start_doc["uid"])


def test_a_run_reads_back_with_arrays_units_and_the_devices_file(tmp_path: Path) -> None:
    uid = write_run(tmp_path, events=6)
    with open_store(tmp_path) as store:
        report = recover(tmp_path, store)
        assert report.completed == [uid]
        assert missing(tmp_path, store) == {}
        run = store[uid]
        profile = run["primary"]["profile"].read()
        assert profile.shape == (6, 4)
        np.testing.assert_array_equal(profile[5], np.arange(4.0) + 5)
        np.testing.assert_array_equal(run["primary"]["x"].read(), np.arange(6.0))
        assert run["primary"].metadata["data_keys"]["profile"]["units"] == "um"
        force = run["curve"]["force"].read()
        np.testing.assert_allclose(force, np.linspace(0.0, 1.0, CURVE_ROWS))
        assert run.metadata["stop"]["exit_status"] == "success"


def test_recovery_completes_a_half_written_run_without_duplicates(tmp_path: Path) -> None:
    uid = write_run(tmp_path, events=8, stop=False)  # a process killed mid-run
    with open_store(tmp_path) as store:
        with Ingester(tmp_path, store, batch_size=1) as ingester:
            first = ingester.poll()  # what was there, written as it came
        assert first.completed == []
        assert "stop" not in store[uid].metadata
        report = recover(tmp_path, store)  # marks the run interrupted, then writes it again
        assert report.redone == [uid]
        assert report.completed == [uid]
        run = store[uid]
        assert run.metadata["stop"]["exit_status"] == "abort"
        seq = run["primary"].base["internal"].read(["seq_num"])["seq_num"]
        assert sorted(seq) == list(range(1, 9))  # every event, once
        assert run["curve"]["force"].shape == (CURVE_ROWS,)
        assert missing(tmp_path, store) == {}
        assert recover(tmp_path, store).documents == 0  # nothing left to do
    assert Path(tmp_path / f"curve-{uid}.h5").exists()  # the device's file is not Tiled's


def test_missing_names_what_the_store_lacks(tmp_path: Path) -> None:
    uid = write_run(tmp_path)
    with open_store(tmp_path) as store:
        assert missing(tmp_path, store) == {uid: ["the whole run"]}


def test_one_ingester_per_folder(tmp_path: Path) -> None:
    with (
        open_store(tmp_path) as store,
        Ingester(tmp_path, store),
        pytest.raises(StoreBusyError, match="another process"),
    ):
        Ingester(tmp_path, store)


def test_runs_are_found_by_coupon_campaign_and_plan(tmp_path: Path) -> None:
    a = write_run(tmp_path, coupon="C1", campaign="K1")
    b = write_run(tmp_path, coupon=["C1", "C2"], campaign="K1")  # one exposure, two coupons
    c = write_run(tmp_path, coupon="C2", campaign="K2")
    with open_store(tmp_path) as store:
        recover(tmp_path, store)

        def uids(found: list[Any]) -> list[str]:
            return [r.metadata["start"]["uid"] for r in found]

        assert uids(runs(store, coupon_id="C1")) == [a, b]
        assert uids(runs(store, coupon_id="C2")) == [b, c]
        assert uids(runs(store, campaign_id="K2")) == [c]
        assert uids(runs(store, campaign_id="K1", coupon_id="C2")) == [b]
        assert runs(store, plan_name="tensile_test") == []


def test_data_recover_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_run(tmp_path, stop=False)
    assert main(["data", "recover", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "1 run(s) completed" in out
    assert main(["data", "recover", str(tmp_path)]) == 0
    assert "0 document(s) written" in capsys.readouterr().out
    lines = (tmp_path / next(tmp_path.glob("*.jsonl")).name).read_text().splitlines()
    assert json.loads(lines[-1])["doc"]["exit_status"] == "abort"
