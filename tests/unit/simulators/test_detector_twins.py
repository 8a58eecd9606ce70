"""Detector and stage twins at the command level (no sockets): kinematics, the waiting
*OPC?, acquisitions in instrument time, physics against the world's ground truth."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import h5py
import numpy as np
import pytest

from couponlab.labfile import DeviceEntry
from couponlab.simulators.detectors import oxide_profiler, thermocouple_scanner, xrf_probe
from couponlab.simulators.detectors.camera import CameraConfig, CameraModel, default_data_root
from couponlab.simulators.detectors.camera import make_dispatcher as make_camera_dispatcher
from couponlab.simulators.stage.xy_stage import StageConfig, StageDispatcher, StageModel
from couponlab.simulators.world import Coupon, World, WorldConfig


def world_with_coupon(thickness_m: float = 1e-6) -> World:
    w = World(WorldConfig(speedup=1.0, seed=5))
    w.pause()
    c = w.add_coupon(Coupon("C1", length_mm=60.0, width_mm=10.0))
    cr = np.linspace(0.1, 0.4, c.x_mm.size)
    c.set_composition({"Cr": cr, "Ni": 1 - cr})
    c.oxide_x2_m2[:] = thickness_m**2
    return w


def stage_on(w: World) -> StageDispatcher:
    model = StageModel(w, StageConfig())
    w.register_instrument("stage", model)
    d = StageDispatcher(model)
    assert d.handle('SAMP:LOAD "C1",60,10;:SYST:ERR?') == '0,"No error"'
    return d


def test_stage_moves_at_its_velocity_in_virtual_time() -> None:
    w = world_with_coupon()
    d = stage_on(w)
    assert d.handle("VEL 10;:MOV:X 20;:SYST:ERR?;:STAT?") == '0,"No error";1,0,0.0000,0.0000,2,0'
    w.advance(1.0)
    assert d.handle("POS?") == "10.0000,0.0000"
    w.advance(1.5)
    assert d.handle("STAT?") == "0,0,20.0000,0.0000,0,0"
    assert len(d.model.move_starts) == 1


def test_stage_refuses_targets_outside_its_travel_and_bad_coupons() -> None:
    w = world_with_coupon()
    d = stage_on(w)
    assert d.handle("MOV:Y 81;:SYST:ERR?") == '-222,"Data out of range; Y 81 not in [-20,80]"'
    assert d.handle("POS?") == "0.0000,0.0000"
    assert d.handle("VEL 60;:SYST:ERR?").startswith("-222")
    assert d.handle('SAMP:LOAD "C1",60,12;:SYST:ERR?').startswith(
        '-200,"Execution error; coupon C1'
    )
    assert d.handle("SAMP?") == '"C1",60,10'


def test_opc_waits_for_the_move_then_answers_the_rest_of_the_line() -> None:
    w = world_with_coupon()  # paused: only the test moves virtual time
    w.set_speedup(1e4)  # the wait's wall sleeps are then below 1 ms: it only yields
    d = stage_on(w)

    async def run() -> str:
        reply = d.handle("VEL 50;:MOV:X 50;:SYST:ERR?;:*OPC?;:STAT?")
        assert asyncio.iscoroutine(reply)  # 1 s of motion: the reply must wait
        waiting = asyncio.ensure_future(reply)
        for _ in range(20):
            await asyncio.sleep(0)
        assert not waiting.done()  # the move has not ended in virtual time
        w.advance(0.9)
        for _ in range(20):
            await asyncio.sleep(0)
        assert not waiting.done()  # 0.1 s of motion left
        w.advance(0.2)
        return str(await waiting)

    assert asyncio.run(run()) == '0,"No error";1;0,0,50.0000,0.0000,0,0'
    assert d.handle("*OPC?") == "1"  # nothing pending: answers at once


def profiler_on(w: World) -> tuple[StageDispatcher, object]:
    s = stage_on(w)
    p = oxide_profiler.make_dispatcher(w, oxide_profiler.ProfilerConfig(stage="stage"))
    return s, p


def test_profiler_measurement_takes_its_dwell_and_reads_the_oxide() -> None:
    w = world_with_coupon(2e-6)
    s, p = profiler_on(w)
    assert p.handle("ACQ?") == "IDLE,0,nan,nan"  # type: ignore[attr-defined]
    s.handle("MOV:X 30")
    w.advance(5.0)
    assert p.handle("CONF:DWEL 1;:INIT;:SYST:ERR?;:ACQ?") == '0,"No error";BUSY,1,nan,nan'  # type: ignore[attr-defined]
    w.advance(1.0)
    state, left, t, flag = p.handle("ACQ?").split(",")  # type: ignore[attr-defined]
    assert (state, float(left), float(flag)) == ("DONE", 0.0, 0.0)
    sigma = math.hypot(2e-9, 0.01 * 2e-6) * math.sqrt(0.1 / 1.0)
    assert float(t) == pytest.approx(2e-6, abs=6 * sigma)


@pytest.mark.parametrize(
    ("thickness", "x", "flag"), [(25e-6, 30, 2.0), (10e-9, 30, 1.0), (1e-6, -5, 1.0)]
)
def test_profiler_flags_out_of_range(thickness: float, x: float, flag: float) -> None:
    w = world_with_coupon(thickness)
    cfg = oxide_profiler.ProfilerConfig(stage="stage")
    stage_on(w).handle(f"MOV:X {x}")
    w.advance(10.0)
    head = oxide_profiler.ProfilerHead(w, cfg, "stage")
    t, f = head.sample(w.now, x, 5.0, 0.1)
    assert math.isnan(t)
    assert f == flag


def test_profiler_noise_grows_with_thickness_and_falls_with_dwell() -> None:
    w = world_with_coupon(5e-6)
    cfg = oxide_profiler.ProfilerConfig(stage="stage")
    stage_on(w)
    head = oxide_profiler.ProfilerHead(w, cfg, "stage")
    short = np.std([head.sample(0.0, 30.0, 5.0, 0.01)[0] for _ in range(400)])
    long = np.std([head.sample(0.0, 30.0, 5.0, 1.0)[0] for _ in range(400)])
    expected_long = math.hypot(2e-9, 0.01 * 5e-6) * math.sqrt(0.1)
    assert long == pytest.approx(expected_long, rel=0.15)
    assert short / long == pytest.approx(10.0, rel=0.2)


def test_line_starts_with_the_stage_and_records_its_positions() -> None:
    w = world_with_coupon(1e-6)
    s, p = profiler_on(w)
    assert (
        p.handle("LINE:CONF 10,0.1;:LINE:ARM;:SYST:ERR?;:LINE:STAT?") == '0,"No error";ARMED,0,10'
    )  # type: ignore[attr-defined]
    t0 = w.now
    w.advance(3.0)  # armed, stage still: nothing yet
    assert p.handle("LINE:STAT?") == "ARMED,0,10"  # type: ignore[attr-defined]
    s.handle("VEL 10;:MOV:X 20")
    w.advance(0.55)
    assert p.handle("LINE:STAT?") == "RUNNING,5,10"  # type: ignore[attr-defined]
    w.advance(1.0)
    raw = p.handle("LINE:DATA?")  # type: ignore[attr-defined]
    assert isinstance(raw, bytes)
    header = int(raw[1:2])
    rows = np.frombuffer(raw[2 + header : -1], dtype="<f8").reshape(-1, 5)
    np.testing.assert_allclose(rows[:, 1], 0.5 + np.arange(10))  # 10 mm/s, mid-sample
    np.testing.assert_allclose(rows[:, 0] - t0, 3.05 + 0.1 * np.arange(10))
    assert p.handle("LINE:STAT?") == "DONE,10,10"  # type: ignore[attr-defined]


def test_xrf_needs_its_source_and_counts_scale_with_dwell() -> None:
    w = world_with_coupon()
    stage_on(w)
    d, head = xrf_probe.make_dispatcher(w, xrf_probe.XrfConfig(stage="stage"))
    assert d.handle("INIT;:SYST:ERR?") == '-221,"Settings conflict; X-ray source is off"'
    head.source_on = True
    counts, cr, ni, fe, al = head.sample(0.0, 60.0, 5.0, 10.0)
    assert counts == pytest.approx(2e5, rel=0.02)
    assert cr == pytest.approx(0.4, abs=4 * math.sqrt(0.24 / counts))
    assert (fe, al) == (0.0, 0.0)
    assert cr + ni == pytest.approx(1.0)


class Ramp:
    def temperature_along(self, x_mm: np.ndarray) -> np.ndarray:
        return 1300.0 - 1.0 * np.asarray(x_mm, float)


def test_scanner_reads_the_furnace_in_c_or_k() -> None:
    w = World(WorldConfig(seed=2))
    w.register_instrument("oven", Ramp())
    cfg = thermocouple_scanner.ScannerConfig(
        furnace="oven", positions_mm=tuple(range(0, 60, 5)), carrier_offset_mm=20.0
    )
    model = thermocouple_scanner.ScannerModel(w, cfg)
    d = thermocouple_scanner.make_dispatcher(model)
    celsius = np.asarray([float(v) for v in str(d.handle("READ?")).split(",")])
    d.handle("UNIT:TEMP K")
    kelvin = np.asarray([float(v) for v in str(d.handle("READ?")).split(",")])
    true_k = 1300.0 - (20.0 + np.arange(0, 60, 5))
    np.testing.assert_allclose(kelvin - model.error_k(true_k), true_k, atol=0.6)
    np.testing.assert_allclose(kelvin - celsius, 273.15, atol=0.8)
    model.break_channel(2)
    assert str(d.handle("READ?")).split(",")[2] == "+9.9000E+37"
    assert d.handle("ROUT:COUN?") == "12"


def test_scanner_thermocouples_sit_in_their_iec_tolerance_and_drift_when_hot() -> None:
    """Type K class 1: +/-1.5 K or +/-0.004 |t|; drift accumulates only above the onset."""
    w = World(WorldConfig(seed=3), paused=True)
    w.register_instrument("oven", Ramp())  # 1300 K - x: 1007..952 degC over the carrier
    cfg = thermocouple_scanner.ScannerConfig(
        furnace="oven",
        positions_mm=tuple(float(x) for x in range(0, 60, 5)),
        offset_error_sigma_k=0.0,
        drift_sigma_k_per_h=0.0,
    )
    model = thermocouple_scanner.ScannerModel(w, cfg)
    true_k = model.true_temperature_k()
    tol = np.maximum(1.5, 0.004 * (true_k - 273.15))
    err = model.error_k(true_k)
    assert np.all(np.abs(err) <= tol) and np.abs(err).max() > 0.5 * tol.max()
    assert len(set(np.sign(err))) == 2  # each wire has its own error, not one common offset
    class2 = thermocouple_scanner.ScannerModel(w, cfg.model_copy(update={"tolerance_class": 2}))
    assert class2.tolerance_k(np.array([1000.0]))[0] == pytest.approx(7.5)
    drifting = thermocouple_scanner.ScannerModel(
        w, cfg.model_copy(update={"drift_sigma_k_per_h": 0.05})
    )
    w.advance(100 * 3600 + 1)  # 600 drift steps of 600 s
    hot = (true_k - 273.15 - 800.0) / 200.0  # the drift rate scales from 0 at 800 degC
    np.testing.assert_allclose(
        drifting.drift_k, drifting.drift_rate_k_per_h * hot * 100, rtol=1e-6
    )
    assert model.drift_k.max() == 0.0


def test_camera_writes_frames_with_positions(tmp_path: Path) -> None:
    w = world_with_coupon(1e-6)
    stage_on(w)
    m = CameraModel(w, CameraConfig(stage="stage", height=32, width=48, data_root=str(tmp_path)))
    m.directory, m.name = str(tmp_path), "f"
    m.open_file()
    for k in range(3):
        frame, x, y = m.frame(0.0)
        assert frame.dtype == np.uint16
        assert frame.shape == (32, 48)
        m._write(frame, float(k), x, y)
    assert m.written == 0  # not flushed: not counted
    m._flush()
    assert m.written == 3
    m.close_file()
    with h5py.File(tmp_path / "f.h5", "r") as f:
        assert f["/entry/data/data"].shape == (3, 32, 48)
        np.testing.assert_allclose(f["/entry/instrument/time"][:], [0.0, 1.0, 2.0])


def test_heads_read_the_coupon_across_its_width_too() -> None:
    """A coupon graded across y reads differently at two y on the same x (2-D maps)."""
    from couponlab.simulators.detectors.oxide_profiler import ProfilerConfig, ProfilerHead
    from couponlab.simulators.detectors.xrf_probe import XrfConfig, XrfHead
    from couponlab.simulators.world import Coupon, World

    world = World()
    coupon = world.add_coupon(Coupon("G1", length_mm=60, width_mm=10))
    cr = (coupon.y_mm / 10.0)[:, None] * np.ones(coupon.x_mm.size) * 0.5
    coupon.set_composition({"Cr": cr, "Ni": 1 - cr})
    coupon.oxide_x2_m2[:] = (np.linspace(1e-6, 5e-6, coupon.y_mm.size) ** 2)[:, None]

    class Stage:
        def coupon(self) -> Coupon:
            return coupon

        def position_at(self, t: float) -> tuple[float, float]:
            return (0.0, 0.0)

    world.register_instrument("stage1", Stage())
    prof = ProfilerHead(world, ProfilerConfig(stage="stage1"), "stage1")
    xrf = XrfHead(world, XrfConfig(stage="stage1"))
    thin, thick = (prof.sample(0.0, 30.0, y, 10.0)[0] for y in (1.0, 9.0))
    assert thick > 3 * thin
    lo = xrf.sample(0.0, 30.0, 1.0, 10.0)
    hi = xrf.sample(0.0, 30.0, 9.0, 10.0)
    i_cr = 1 + list(XrfConfig(stage="stage1").elements).index("Cr")
    assert hi[i_cr] > lo[i_cr] + 0.2


def test_camera_writes_only_under_its_data_root(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "run").mkdir(parents=True)
    outside.mkdir()
    (root / "link").symlink_to(outside)
    world = World(WorldConfig(), paused=True)
    model = CameraModel(world, CameraConfig(height=8, width=8, data_root=str(root)), "cam")
    d = make_camera_dispatcher(model)
    for bad in (str(outside), f"{root}/run/../../outside", str(root / "link"), "run", "/"):
        d.handle(f'FILE:PATH "{bad}"')
        code, message = d.handle("SYST:ERR?").split(",", 1)
        assert code == "-222", (bad, code, message)
        assert "outside the data root" in message
    assert model.directory == ""
    d.handle(f'FILE:PATH "{root / "run"}"')
    d.handle('FILE:NAME "f"')
    d.handle("FILE:OPEN")
    assert d.handle("SYST:ERR?").startswith("0,")
    d.handle("FILE:CLOS")
    assert (root / "run" / "f.h5").exists()
    assert not list(outside.iterdir())
    with pytest.raises(ValueError, match="absolute"):
        CameraConfig(data_root="relative/folder")


def test_a_camera_without_a_named_root_writes_only_under_its_default(tmp_path: Path) -> None:
    """No data root in twin_config: the lab entry's data_dir, else runs/ here; never "/"."""
    entry = DeviceEntry(
        name="cam",
        family="camera",
        driver="couponlab.drivers.detectors:ScpiCamera",
        address="TCPIP::127.0.0.1::0::SOCKET",
        twin=True,
        settings={"data_dir": str(tmp_path / "runs")},
    )
    assert default_data_root(entry) == str(tmp_path / "runs")
    assert default_data_root() == str(Path("runs").absolute())
    (tmp_path / "runs" / "r1").mkdir(parents=True)
    world = World(WorldConfig(), paused=True)
    config = CameraConfig(height=8, width=8, data_root=default_data_root(entry))
    d = make_camera_dispatcher(CameraModel(world, config, "cam"))
    for bad in (str(tmp_path), "/tmp", "/"):
        d.handle(f'FILE:PATH "{bad}"')
        assert d.handle("SYST:ERR?").startswith("-222,"), bad
    d.handle(f'FILE:PATH "{tmp_path / "runs" / "r1"}"')
    assert d.handle("SYST:ERR?").startswith("0,")
    bare = CameraModel(world, CameraConfig(height=8, width=8), "cam2")
    assert bare.data_root == default_data_root()
