"""raster_map and fly_line_scan under a real RunEngine against the twins: documents, coupon
identity in the metadata, readings that follow the world, refusals before anything moves."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from bluesky import RunEngine
from bluesky.run_engine import call_in_bluesky_event_loop
from detectors_lab import COUPON, BackgroundTwins, detector_lab, grow_coupon

from couponlab.errors import InputError, OutOfLimitsError, UnitError
from couponlab.interfaces.detectors import LineSampler, Stage
from couponlab.lab import make_device
from couponlab.plans.fly_line_scan import fly_line_scan
from couponlab.plans.raster_map import raster_map


class Rig:
    def __init__(self, twins: BackgroundTwins, engine: RunEngine, devices: dict[str, Any]) -> None:
        self.twins = twins
        self.RE = engine
        self.dev = devices
        self.docs: list[tuple[str, dict[str, Any]]] = []
        engine.subscribe(lambda name, doc: self.docs.append((name, doc)))

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [d for n, d in self.docs if n == kind]

    def stage_position(self) -> tuple[float, float]:
        pos: tuple[float, float] = self.twins.call(
            lambda: self.twins.world.instrument("stage").position()
        )
        return pos


@pytest.fixture
def rig() -> Iterator[Rig]:
    twins = BackgroundTwins(detector_lab(speedup=1e4))
    engine = RunEngine({}, call_returns_result=True)
    devices: dict[str, Any] = {}
    try:
        twins.call(grow_coupon, twins.world)
        for name in ("stage", "profiler", "xrf", "tcs"):
            dev: Any = make_device(twins.lab.device(name))
            call_in_bluesky_event_loop(dev.connect(timeout=5.0))
            devices[name] = dev
        call_in_bluesky_event_loop(devices["stage"].load_coupon(COUPON, 60, 10))
        yield Rig(twins, engine, devices)
    finally:
        for dev in devices.values():
            call_in_bluesky_event_loop(dev.disconnect())
        twins.stop()


def test_raster_map_records_every_point_with_the_coupon_identity(rig: Rig) -> None:
    stage: Stage = rig.dev["stage"]
    prof, xrf, tcs = rig.dev["profiler"], rig.dev["xrf"], rig.dev["tcs"]
    rig.RE(
        raster_map(
            [prof, xrf, tcs], stage, (10, 50, 5), (2, 8, 3), dwell=0.5, md={"operator": "t"}
        )
    )
    (start,) = rig.of("start")
    assert start["coupon_id"] == COUPON
    assert start["coupon"] == {"coupon_id": COUPON, "length_mm": 60.0, "width_mm": 10.0}
    assert start["plan_name"] == "raster_map"
    assert start["operator"] == "t"
    events = rig.of("event")
    assert len(events) == 15
    xs = sorted({round(e["data"]["stage-x"], 6) for e in events})
    assert xs == [10.0, 20.0, 30.0, 40.0, 50.0]
    desc = rig.of("descriptor")[0]["data_keys"]
    assert desc["profiler-thickness"]["units"] == "nm"
    assert desc["tcs-temperatures"]["units"] == "degC"
    assert desc["stage-x"]["units"] == "mm"
    # dwell was applied to both spot heads (configuration of the descriptor)
    conf = rig.of("descriptor")[0]["configuration"]
    assert conf["profiler"]["data"]["profiler-dwell"] == pytest.approx(0.5)
    assert conf["xrf"]["data"]["xrf-dwell"] == pytest.approx(0.5)
    # the map follows the world: Cr rises along x
    cr = {round(e["data"]["stage-x"]): e["data"]["xrf-fraction_cr"] for e in events}
    assert cr[50] > cr[10] + 0.15
    # the XRF source is off again (unstaged)
    assert not call_in_bluesky_event_loop(xrf.source_on())


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"x_range": (10, 61, 3)}, OutOfLimitsError, r"x stop on coupon C-001 = 61 mm"),
        ({"y_range": (-1, 5, 3)}, OutOfLimitsError, r"y start on coupon C-001 = -1 mm"),
        ({"dwell": 100.0}, OutOfLimitsError, r"profiler: dwell = 100 s"),
        ({"dwell": "2 mm"}, UnitError, "dwell"),
        ({"x_range": (10, 20, 0)}, OutOfLimitsError, "number of x points"),
    ],
)
def test_raster_map_refuses_bad_input_before_anything_moves(
    rig: Rig, kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    args: dict[str, Any] = {"x_range": (10, 20, 2), "y_range": (1, 2, 2), **kwargs}
    with pytest.raises(error, match=match):
        raster_map([rig.dev["profiler"]], rig.dev["stage"], **args)
    assert rig.docs == []
    assert rig.stage_position() == (0.0, 0.0)


def test_raster_map_needs_a_mounted_coupon(rig: Rig) -> None:
    call_in_bluesky_event_loop(rig.dev["stage"].unload_coupon())
    with pytest.raises(InputError, match="no coupon is mounted"):
        raster_map([rig.dev["profiler"]], rig.dev["stage"], (1, 2, 2), (1, 2, 2))


def test_fly_line_scan_samples_while_the_stage_moves(rig: Rig) -> None:
    stage: Stage = rig.dev["stage"]
    prof, xrf = rig.dev["profiler"], rig.dev["xrf"]
    assert isinstance(prof, LineSampler)
    v_before = call_in_bluesky_event_loop(stage.velocity.get_value())
    rig.RE(fly_line_scan([prof, xrf], stage, start=5, stop=55, at=5, points=50, velocity=5))
    (start,) = rig.of("start")
    assert start["coupon_id"] == COUPON
    assert start["plan_name"] == "fly_line_scan"
    assert start["sample_period_s"] == pytest.approx(0.2)
    pages = {d["descriptor"]: d for d in rig.of("event_page")}
    descs = {d["uid"]: d for d in rig.of("descriptor")}
    by_stream = {descs[k]["name"]: p for k, p in pages.items()}
    assert set(by_stream) == {"profiler_line", "xrf_line"}
    prof_page = by_stream["profiler_line"]["data"]
    x = np.asarray(prof_page["profiler-x"])
    assert x.size == 50
    # samples at the middle of each 1 mm window of a uniform 5 mm/s motion
    assert np.allclose(x, 5.5 + 1.0 * np.arange(50), atol=1e-6)
    thick = np.asarray(prof_page["profiler-thickness"])
    truth = (
        np.asarray(rig.twins.call(lambda: rig.twins.world.coupon(COUPON).oxide_thickness_at(x)))
        * 1e9
    )
    ok = np.asarray(prof_page["profiler-range_flag"]) == "ok"
    assert ok.sum() > 25
    sigma = np.hypot(2.0, 0.01 * truth[ok]) * math.sqrt(0.1 / 0.2)
    assert np.all(np.abs(thick[ok] - truth[ok]) < 6 * sigma)
    units = descs[by_stream["profiler_line"]["descriptor"]]["data_keys"]["profiler-thickness"]
    assert units["units"] == "nm"
    assert len(by_stream["xrf_line"]["data"]["xrf-fraction_cr"]) == 50
    assert call_in_bluesky_event_loop(stage.velocity.get_value()) == v_before
    assert rig.stage_position() == pytest.approx((55.0, 5.0))


def test_fly_line_scan_refuses_bad_input(rig: Rig) -> None:
    stage, prof = rig.dev["stage"], rig.dev["profiler"]
    with pytest.raises(OutOfLimitsError, match="velocity"):
        fly_line_scan([prof], stage, start=5, stop=55, at=5, points=10, velocity=100)
    with pytest.raises(OutOfLimitsError, match="line period"):
        # 50 mm at 40 mm/s in 10000 points: 0.125 ms per sample, below the 10 ms dwell
        fly_line_scan([prof], stage, start=5, stop=55, at=5, points=10_000, velocity=40)
    with pytest.raises(InputError, match="LineSampler"):
        fly_line_scan([rig.dev["tcs"]], stage, start=5, stop=55, at=5, points=10, velocity=10)
    with pytest.raises(OutOfLimitsError, match="on coupon"):
        fly_line_scan([prof], stage, start=5, stop=55, at=11, points=10, velocity=10)
    assert rig.docs == []
