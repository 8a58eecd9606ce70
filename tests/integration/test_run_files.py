"""Every file a run writes lives under the run's output folder: a Session's tensile curve and
camera frames go to its ``out_dir`` (beside the run documents), nowhere else."""

from __future__ import annotations

import tempfile
from pathlib import Path

import bluesky.plans as bp
import h5py
import pytest

from couponlab.cli import sample_lab_path
from couponlab.data import read_run
from couponlab.interfaces import frame as iframe
from couponlab.lab import with_data_dir
from couponlab.labfile import DeviceEntry, load_lab
from couponlab.plans.tensile_test import tensile_test
from couponlab.session import Session

FAST = iframe.TestSettings(crosshead_rate="5 mm/min", sample_rate="200 Hz")


def _files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()} if folder.is_dir() else set()


def test_curve_and_frame_files_go_to_the_output_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cwd, out = tmp_path / "cwd", tmp_path / "out"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    old_default = Path(tempfile.gettempdir()) / "couponlab-frame"
    before = _files(old_default)
    lab = load_lab(sample_lab_path())
    lab = lab.model_copy(
        update={
            "devices": [d for d in lab.devices if d.name in ("frame1", "camera1", "stage1")],
            "world": {**lab.world, "speedup": 200},
        }
    )
    assert "data_dir" not in lab.device("camera1").settings
    with Session(lab, out_dir=out) as s:
        s.run(tensile_test(s.devices["frame1"], "generic:grad-x", 10.0, settings=FAST))  # type: ignore[arg-type]
        s.run(bp.count([s.devices["camera1"]]))
    uris = [
        doc["uri"]
        for path in sorted(out.glob("*.jsonl"))
        for name, doc in read_run(path)
        if name == "stream_resource"
    ]
    files = {Path(u.removeprefix("file://localhost").removeprefix("file://")) for u in uris}
    assert len(files) == 2  # one curve file (4 datasets), one camera file
    for path in files:
        assert path.parent == out.absolute()
        with h5py.File(path, "r") as f:
            assert len(f.keys()) > 0
    assert _files(cwd) == set()  # nothing in the working directory
    assert _files(old_default) == before  # nothing in the old temporary folder
    twins = out / "twins"  # the session's twin process: its lab files and log
    store = out / "store"  # the Tiled store the session filled when it closed (decision 0067)
    assert any(p.suffix == ".duckdb" for p in _files(store))
    assert {p.suffix for p in _files(out) - _files(twins) - _files(store)} <= {".jsonl", ".h5"}
    (folder,) = twins.iterdir()
    assert {p.name for p in _files(folder)} >= {"lab.yaml", "resolved.yaml", "twin-serve.log"}


def test_a_lab_files_data_dir_wins_and_only_file_writers_get_one(tmp_path: Path) -> None:
    frame = DeviceEntry(
        name="frame1",
        family="test_frame",
        driver="couponlab.drivers.frame:ScpiTestFrame",
        address="TCPIP::127.0.0.1::5025::SOCKET",
    )
    assert with_data_dir(frame, tmp_path).settings["data_dir"] == str(tmp_path.absolute())
    assert with_data_dir(frame).settings["data_dir"] == str(Path("runs").absolute())
    share = frame.model_copy(update={"settings": {"data_dir": "/mnt/share"}})
    assert with_data_dir(share, tmp_path).settings["data_dir"] == "/mnt/share"
    furnace = DeviceEntry(
        name="furnace1",
        family="gradient_furnace",
        driver="couponlab.drivers.furnace:OpcUaGradientFurnace",
        address="opc.tcp://127.0.0.1:4840",
    )
    assert with_data_dir(furnace, tmp_path) is furnace
