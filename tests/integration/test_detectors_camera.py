"""The camera (StandardDetector) against its twin: frames in HDF5 files referenced by
StreamResource/StreamDatum documents, never in events; images that follow the world."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.plans as bp
import bluesky.preprocessors as bpp
import h5py
import numpy as np
import pytest
from bluesky import RunEngine
from bluesky.run_engine import call_in_bluesky_event_loop
from bluesky.utils import MsgGenerator
from detectors_lab import COUPON, BackgroundTwins, detector_lab, grow_coupon
from ophyd_async.core import TriggerInfo

from couponlab.errors import OutOfLimitsError, ProtocolError
from couponlab.interfaces.detectors import Camera
from couponlab.lab import make_device


class Rig:
    def __init__(self, twins: BackgroundTwins, engine: RunEngine, folder: Path) -> None:
        self.twins = twins
        self.RE = engine
        self.folder = folder
        self.docs: list[tuple[str, dict[str, Any]]] = []
        engine.subscribe(lambda name, doc: self.docs.append((name, doc)))
        self.cam: Any = make_device(twins.lab.device("cam"))
        self.stage: Any = make_device(twins.lab.device("stage"))

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [d for n, d in self.docs if n == kind]


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    twins = BackgroundTwins(detector_lab(camera_dir=tmp_path))
    r = Rig(twins, RunEngine({}), tmp_path)
    connected: list[Any] = []
    try:
        twins.call(grow_coupon, twins.world)
        for dev in (r.cam, r.stage):
            call_in_bluesky_event_loop(dev.connect(timeout=5.0))
            connected.append(dev)
        call_in_bluesky_event_loop(r.stage.load_coupon(COUPON, 60, 10))
        yield r
    finally:
        for dev in connected:
            call_in_bluesky_event_loop(dev.disconnect())
        twins.stop()


def test_camera_conforms_to_the_interface(rig: Rig) -> None:
    assert isinstance(rig.cam, Camera)
    assert rig.cam.frame_shape() == (1024, 1024)


def test_step_scan_frames_go_to_hdf5_referenced_by_stream_documents(rig: Rig) -> None:
    rig.RE(bp.list_scan([rig.cam], rig.stage.x, [-3.0, 12.0, 32.0, 52.0]))
    (resource,) = [r for r in rig.of("stream_resource") if r["data_key"] == "cam"]
    assert resource["mimetype"] == "application/x-hdf5"
    assert resource["parameters"]["dataset"] == "/entry/data/data"
    events = rig.of("event")
    assert len(events) == 4
    assert all("cam" not in e["data"] for e in events)  # pixels are not in the events
    datums = [d for d in rig.of("stream_datum") if d["stream_resource"] == resource["uid"]]
    assert [d["indices"] for d in datums] == [{"start": i, "stop": i + 1} for i in range(4)]
    desc = rig.of("descriptor")[0]["data_keys"]["cam"]
    assert desc["shape"] == [1, 1024, 1024]
    assert desc["dtype_numpy"] == "<u2"
    assert desc["external"] == "STREAM:"
    path = Path(resource["uri"].removeprefix("file://localhost"))
    assert path.parent == rig.folder
    with h5py.File(path, "r") as f:
        frames = f["/entry/data/data"]
        assert frames.shape == (4, 1024, 1024)
        assert frames.dtype == np.uint16
        np.testing.assert_allclose(f["/entry/instrument/x"][:], [-3.0, 12.0, 32.0, 52.0])
        off, on = frames[0], frames[1]
    # the view is 10.24 mm wide: at x = -3 mm it is mostly the dark holder, with the
    # coupon's start in its right fifth (the lower half of the rows: y = 0 is its edge)
    assert on[600:].mean() > 3 * off.mean()
    assert off[600:, -100:].mean() > 3 * off[600:, :100].mean()
    assert off[:400, -100:].mean() < 1.5 * off[:400, :100].mean()


def test_fly_acquisition_streams_many_frames(rig: Rig) -> None:
    cam = rig.cam

    @bpp.stage_decorator([cam])
    @bpp.run_decorator(md={"coupon_id": COUPON})
    def fly() -> MsgGenerator[None]:
        yield from bps.prepare(cam, TriggerInfo(number_of_events=12, livetime=0.001), wait=True)
        yield from bps.declare_stream(cam, name="frames", collect=True)
        yield from bps.kickoff(cam, wait=True)
        yield from bps.complete(cam, wait=True)
        yield from bps.collect(cam, name="frames")

    rig.RE(fly())
    datums = rig.of("stream_datum")
    stop = max(d["indices"]["stop"] for d in datums)
    assert stop == 12
    conf = rig.of("descriptor")[0]["configuration"]["cam"]["data"]
    assert conf["cam-exposure"] == pytest.approx(0.001)
    (path,) = rig.folder.glob("*.h5")
    with h5py.File(path, "r") as f:
        assert f["/entry/data/data"].shape[0] == 12


def test_bad_exposure_is_refused_before_sending(rig: Rig) -> None:
    with pytest.raises(OutOfLimitsError, match=r"cam: exposure = 100 s"):
        rig.cam.check_exposure("100 s")
    with pytest.raises(OutOfLimitsError, match="exposure"):
        call_in_bluesky_event_loop(_prepare(rig.cam, TriggerInfo(livetime=20.0)))
    assert call_in_bluesky_event_loop(rig.cam.client.query("SYST:ERR?")) == '0,"No error"'


def test_a_directory_the_camera_cannot_reach_is_reported(rig: Rig) -> None:
    missing = rig.folder / "nonexistent" / "dir"  # under the camera's data root

    async def open_missing() -> None:
        await rig.cam.client.command(f'FILE:PATH "{missing}";:FILE:NAME "x"')
        await rig.cam.client.command("FILE:OPEN")

    with pytest.raises(ProtocolError, match="no directory"):
        call_in_bluesky_event_loop(open_missing())


def test_a_directory_outside_the_data_root_is_refused(rig: Rig) -> None:
    """The lab entry names no data_root: the camera twin's root is its data_dir."""

    async def path_outside() -> None:
        await rig.cam.client.command('FILE:PATH "/tmp"')

    with pytest.raises(ProtocolError, match="outside the data root"):
        call_in_bluesky_event_loop(path_outside())


async def _prepare(cam: Any, info: TriggerInfo) -> None:
    await cam.prepare(info)


def test_fly_line_scan_takes_a_frame_per_stage_pulse(rig: Rig) -> None:
    from couponlab.plans.fly_line_scan import fly_line_scan

    rig.RE(
        fly_line_scan(
            [rig.cam], rig.stage, start=5, stop=45, at=5, points=8, velocity=20, exposure=0.01
        )
    )
    (start,) = rig.of("start")
    assert start["coupon_id"] == COUPON
    assert start["pulse_spacing_mm"] == pytest.approx(5.0)
    (resource,) = [r for r in rig.of("stream_resource") if r["data_key"] == "cam"]
    assert max(d["indices"]["stop"] for d in rig.of("stream_datum")) == 8
    path = Path(resource["uri"].removeprefix("file://localhost"))
    with h5py.File(path, "r") as f:
        x = f["/entry/instrument/x"][:]
        assert f["/entry/data/data"].shape == (8, 1024, 1024)
    # a pulse every 5 mm from the start; mid-exposure 0.1 mm further at 20 mm/s
    np.testing.assert_allclose(x, 5.0 + 5.0 * np.arange(8) + 0.1, atol=1e-6)
    assert call_in_bluesky_event_loop(rig.stage.pulse_spacing.get_value()) == 0.0


def test_fly_line_scan_refuses_frames_faster_than_the_camera(rig: Rig) -> None:
    from couponlab.plans.fly_line_scan import fly_line_scan

    with pytest.raises(OutOfLimitsError, match="exposure"):
        # a pulse every 0.5 mm at 40 mm/s: 12.5 ms apart, too short for a 20 ms exposure
        fly_line_scan(
            [rig.cam], rig.stage, start=5, stop=45, at=5, points=80, velocity=40, exposure=0.02
        )
    assert rig.docs == []
