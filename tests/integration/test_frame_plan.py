"""The tensile test plan under a real RunEngine against the frame twin (twin on its own
thread, driver on the RunEngine's loop): documents, recovered properties, faults, and the
conformance suite on the test's own loop."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bluesky.plan_stubs as bps
import h5py
import numpy as np
import pytest
from bluesky import RunEngine

from couponlab.drivers.frame import ScpiTestFrame
from couponlab.errors import OutOfLimitsError, ProtocolError
from couponlab.interfaces import frame as iframe
from couponlab.plans.tensile_test import tensile_test
from couponlab.simulators.frame import FrameModel
from couponlab.simulators.frame.material import MechanicsModel, Scatter
from couponlab.simulators.world import Coupon
from couponlab.specimens import SS_J3
from couponlab.testing.frame import FRAME_CHECKS, FrameConformance, frame_lab
from couponlab.twins import BackgroundTwins

FAST = iframe.TestSettings(crosshead_rate="5 mm/min", sample_rate="500 Hz")


@pytest.fixture(scope="module")
def twins() -> Iterator[BackgroundTwins]:
    with BackgroundTwins(frame_lab(speedup=400.0, seed=11)) as running:
        running.call(_add_coupons, running)
        yield running


def _add_coupons(twins: BackgroundTwins) -> None:
    c = twins.world.add_coupon(Coupon("grad1", length_mm=60.0))
    x = c.x_mm / 60.0  # Fe-rich (316L-like) at x=0 to Ni-rich (IN625-like) at x=60
    c.set_composition(
        {"Fe": 0.70 - 0.65 * x, "Cr": 0.18 + 0.04 * x, "Ni": 0.12 + 0.56 * x, "Al": 0.05 * x}
    )

    y = twins.world.add_coupon(Coupon("ygrad1", length_mm=60.0, width_mm=10.0))
    t = np.broadcast_to((y.y_mm / 10.0)[:, None], y.shape)  # the same grade, across y
    y.set_composition(
        {"Fe": 0.70 - 0.65 * t, "Cr": 0.18 + 0.04 * t, "Ni": 0.12 + 0.56 * t, "Al": 0.05 * t}
    )


def _model(twins: BackgroundTwins) -> FrameModel:
    model = twins.world.instruments["frame1"]
    assert isinstance(model, FrameModel)
    return model


@pytest.fixture
def env(
    twins: BackgroundTwins, tmp_path: Path
) -> Iterator[tuple[RunEngine, ScpiTestFrame, list[tuple[str, dict[str, Any]]]]]:
    entry = twins.lab.device("frame1").model_copy(
        update={"settings": {"specimen_thickness": "2 mm", "data_dir": str(tmp_path)}}
    )
    frame = ScpiTestFrame.from_lab_entry(entry)
    loop = asyncio.new_event_loop()
    engine = RunEngine({}, call_returns_result=True, loop=loop)
    docs: list[tuple[str, dict[str, Any]]] = []
    engine.subscribe(lambda name, doc: docs.append((name, doc)))
    engine(bps.wait_for([lambda: frame.connect()]))
    try:
        yield engine, frame, docs
    finally:
        engine(bps.wait_for([lambda: _tidy(frame)]))
        engine(bps.wait_for([lambda: frame.disconnect()]))
        pending = asyncio.run_coroutine_threadsafe(_pending_tasks(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        engine._th.join(10)
        loop.close()
        assert not pending, f"tasks left on the RunEngine's loop: {pending}"


async def _pending_tasks() -> list[str]:
    await asyncio.sleep(0.05)
    me = asyncio.current_task()
    return [t.get_name() for t in asyncio.all_tasks() if t is not me and not t.done()]


async def _tidy(frame: ScpiTestFrame) -> None:
    """Unload, clear a fault the test left (an operator's decision, not the plan's), dismount."""
    await frame.safe_state()
    if await frame.state() == "fault":
        await frame.reset_fault()
    await frame.dismount()


def _truth(twins: BackgroundTwins) -> dict[str, float]:
    spec = _model(twins).specimen
    assert spec is not None
    return spec.curve.truth.as_dict()


def test_plan_recovers_the_specimen_properties_and_loses_no_sample(
    twins: BackgroundTwins, env: tuple[RunEngine, ScpiTestFrame, list[tuple[str, dict[str, Any]]]]
) -> None:
    engine, frame, docs = env
    ret = engine(tensile_test(frame, "grad1", 20.0, settings=FAST, md={"operator": "ci"}))
    truth = _truth(twins)
    result = ret.plan_result
    assert ret.exit_status == "success"
    assert result.modulus == pytest.approx(truth["modulus_mpa"] / 1000, rel=0.01)
    assert result.yield_strength == pytest.approx(truth["yield_strength_mpa"], rel=0.005)
    assert result.uts == pytest.approx(truth["uts_mpa"], rel=0.002)
    assert result.uniform_elongation == pytest.approx(100 * truth["uniform_elongation"], abs=1.0)
    assert result.total_elongation == pytest.approx(100 * truth["fracture_strain"], abs=0.05)
    assert result.elongation_after_fracture == pytest.approx(
        100 * truth["elongation_after_fracture"], abs=0.05
    )
    start = next(d for n, d in docs if n == "start")
    assert start["plan_name"] == "tensile_test" and start["operator"] == "ci"
    assert start["coupon_id"] == "grad1"
    assert start["sample"] == {"position": {"value": 20.0, "units": "mm"}, "across": None}
    assert start["specimen"]["gauge_length"] == {"value": 25.0, "units": "mm"}
    descriptors = {d["name"]: d for n, d in docs if n == "descriptor"}
    curve_keys = descriptors["curve"]["data_keys"]
    assert curve_keys["frame1-force"]["units"] == "N"
    assert curve_keys["frame1-strain"]["external"] == "STREAM:"
    assert descriptors["results"]["data_keys"]["frame1_tensile-uts"]["units"] == "MPa"
    config = descriptors["curve"]["configuration"]["frame1"]  # geometry: numbers in mm
    dims = ("gauge_length", "width", "thickness", "reduced_length")
    assert [config["data"][f"frame1-specimen_{k}"] for k in dims] == [25.0, 6.0, 2.0, 32.0]
    assert {config["data_keys"][f"frame1-specimen_{k}"]["units"] for k in dims} == {"mm"}
    # none lost: the frame's count == rows referenced by the documents == rows in the file
    produced = twins.call(lambda: _model(twins).produced)
    datums = [d for n, d in docs if n == "stream_datum"]
    resources = {d["uid"]: d for n, d in docs if n == "stream_resource"}
    force_rid = next(u for u, r in resources.items() if r["data_key"] == "frame1-force")
    rows = [d["indices"] for d in datums if d["stream_resource"] == force_rid]
    assert rows[0]["start"] == 0
    assert all(a["stop"] == b["start"] for a, b in itertools.pairwise(rows))
    assert rows[-1]["stop"] == produced
    path = Path(resources[force_rid]["uri"].removeprefix("file://"))
    with h5py.File(path) as f:
        assert f["force"].shape == (produced,)
    event = next(d for n, d in docs if n == "event")
    assert event["data"]["frame1_tensile-end_reason"] == "BREAK"
    assert event["data"]["frame1_tensile-samples"] == produced
    # the plan ended with the crosshead back home
    assert twins.call(lambda: _model(twins).position) == pytest.approx(0.0, abs=1e-6)


def test_composition_along_the_coupon_changes_the_properties(
    twins: BackgroundTwins, env: tuple[RunEngine, ScpiTestFrame, list[tuple[str, dict[str, Any]]]]
) -> None:
    engine, frame, _ = env
    # SS-J3: a 5 mm reduced section fits near the ends (a 32 mm one would lie partly off)
    fe_rich = engine(tensile_test(frame, "grad1", 13.0, geometry=SS_J3, settings=FAST)).plan_result
    engine(bps.wait_for([lambda: frame.dismount()]))
    ni_rich = engine(tensile_test(frame, "grad1", 47.0, geometry=SS_J3, settings=FAST)).plan_result
    assert ni_rich.uts > fe_rich.uts + 40.0


@pytest.fixture
def no_scatter(twins: BackgroundTwins) -> Iterator[None]:
    """The twin's specimens without specimen-to-specimen scatter while the test runs."""
    model = _model(twins)
    saved = model.mechanics
    none = Scatter(modulus=0.0, yield_stress=0.0, hardening=0.0, ductility=0.0)
    twins.call(setattr, model, "mechanics", MechanicsModel(scatter=none))
    try:
        yield
    finally:
        twins.call(setattr, model, "mechanics", saved)


def _site(twins: BackgroundTwins) -> tuple[float, float | None, float]:
    spec = _model(twins).specimen
    assert spec is not None
    return spec.x_mm, spec.y_mm, spec.composition["Ni"]


def test_composition_across_the_coupon_changes_the_properties(
    twins: BackgroundTwins,
    env: tuple[RunEngine, ScpiTestFrame, list[tuple[str, dict[str, Any]]]],
    no_scatter: None,
) -> None:
    engine, frame, docs = env
    fe_rich = engine(
        tensile_test(
            frame, "ygrad1", 30.0, across="2 mm", coupon_width="10 mm", geometry=SS_J3,
            settings=FAST,
        )
    ).plan_result  # fmt: skip
    x, y, ni_low = twins.call(_site, twins)
    assert (x, y) == (30.0, 2.0)
    engine(bps.wait_for([lambda: frame.dismount()]))
    ni_rich = engine(
        tensile_test(frame, "ygrad1", 30.0, across=8.0, geometry=SS_J3, settings=FAST)
    ).plan_result
    x, y, ni_high = twins.call(_site, twins)
    assert (x, y) == (30.0, 8.0)
    # the SS-J3 gauge's 1.2 mm width: y 7.4..8.6 against y 1.4..2.6
    assert ni_high == pytest.approx(0.12 + 0.56 * 0.8, abs=1e-3)
    assert ni_low == pytest.approx(0.12 + 0.56 * 0.2, abs=1e-3)
    assert ni_rich.uts > fe_rich.uts + 45.0
    starts = [d for n, d in docs if n == "start"]
    assert [s["coupon_id"] for s in starts] == ["ygrad1", "ygrad1"]
    assert [s["sample"] for s in starts] == [
        {"position": {"value": 30.0, "units": "mm"}, "across": {"value": 2.0, "units": "mm"}},
        {"position": {"value": 30.0, "units": "mm"}, "across": {"value": 8.0, "units": "mm"}},
    ]
    assert starts[0]["plan_args"]["across"] == "2 mm"
    assert starts[0]["plan_args"]["coupon_width"] == "10 mm"
    assert starts[1]["plan_args"]["coupon_width"] is None
    engine(bps.wait_for([lambda: frame.dismount()]))
    centre = engine(tensile_test(frame, "ygrad1", 30.0, geometry=SS_J3, settings=FAST)).plan_result
    x, y, ni_centre = twins.call(_site, twins)
    assert (x, y) == (30.0, 5.0)  # no across: the centre line, as before
    assert ni_low < ni_centre < ni_high
    assert fe_rich.uts < centre.uts < ni_rich.uts
    assert [d for n, d in docs if n == "start"][-1]["sample"]["across"] is None


def test_across_off_the_coupon_is_refused_before_the_run_opens(
    twins: BackgroundTwins, env: tuple[RunEngine, ScpiTestFrame, list[tuple[str, dict[str, Any]]]]
) -> None:
    engine, frame, docs = env
    with pytest.raises(OutOfLimitsError, match="across"):
        engine(tensile_test(frame, "ygrad1", 30.0, across="11 mm", coupon_width="1 cm"))
    assert twins.call(lambda: _model(twins).specimen) is None
    with pytest.raises(ProtocolError, match=r"y=11.*\(-222\)"):  # no width known: the frame says
        engine(tensile_test(frame, "ygrad1", 30.0, across="11 mm"))
    assert twins.call(lambda: _model(twins).specimen) is None
    assert not [d for n, d in docs if n == "start"]


def test_overforce_ends_the_run_failed_with_the_frame_unloaded(
    twins: BackgroundTwins, env: tuple[RunEngine, ScpiTestFrame, list[tuple[str, dict[str, Any]]]]
) -> None:
    engine, frame, docs = env
    settings = iframe.TestSettings(crosshead_rate="5 mm/min", sample_rate="500 Hz",
                                   force_limit="3 kN")  # fmt: skip
    with pytest.raises(iframe.TestAbortedError, match="OVERFORCE"):
        engine(tensile_test(frame, "grad1", 30.0, settings=settings))
    stop = next(d for n, d in docs if n == "stop")
    assert stop["exit_status"] == "fail"
    event = next(d for n, d in docs if n == "event")
    assert event["data"]["frame1_tensile-end_reason"] == "FAULT"
    model = _model(twins)
    assert twins.call(lambda: abs(model.last[1])) <= model.cfg.unload_threshold_n + 10
    assert twins.call(lambda: model.position) == pytest.approx(0.0, abs=1e-6)


def test_grip_slip_is_recorded_in_the_results(
    twins: BackgroundTwins, env: tuple[RunEngine, ScpiTestFrame, list[tuple[str, dict[str, Any]]]]
) -> None:
    engine, frame, docs = env
    model = _model(twins)

    def slip_if_loaded() -> bool:  # look and inject in one call on the twins' thread
        if model.mode.value == "TEST" and model.last[1] > 4000.0:
            model.inject_slip(0.01)
            return True
        return False

    async def slip_later() -> None:
        while True:
            if await twins.acall(slip_if_loaded):
                return
            await asyncio.sleep(0.002)

    fut: list[Any] = []

    def plan_with_slip() -> Any:
        fut.append(asyncio.run_coroutine_threadsafe(slip_later(), engine.loop))
        return (yield from tensile_test(frame, "grad1", 20.0, settings=FAST))

    engine(plan_with_slip())
    fut[0].result(5)
    event = next(d for n, d in docs if n == "event")
    assert event["data"]["frame1_tensile-slips"] == 1


@pytest.mark.parametrize("check", sorted(FRAME_CHECKS))
async def test_conformance(twins: BackgroundTwins, check: str, tmp_path: Path) -> None:
    entry = twins.lab.device("frame1").model_copy(
        update={"settings": {"specimen_thickness": "2 mm", "data_dir": str(tmp_path)}}
    )
    frame = ScpiTestFrame.from_lab_entry(entry)
    await frame.connect()
    try:
        await FRAME_CHECKS[check](FrameConformance(frame))
    finally:
        await frame.disconnect()


async def test_driver_reads_back_the_site_and_uses_the_lab_coupon_width(
    twins: BackgroundTwins, tmp_path: Path
) -> None:
    entry = twins.lab.device("frame1").model_copy(
        update={"settings": {"coupon_width": "10 mm", "data_dir": str(tmp_path)}}
    )
    frame = ScpiTestFrame.from_lab_entry(entry)
    await frame.connect()
    try:
        await frame.mount("ygrad1", "3 cm", SS_J3, across="0.8 cm")
        assert await frame.specimen_site.get_value() == "30,8"
        ni = dict(kv.split("=") for kv in (await frame.composition.get_value()).split(","))
        assert float(ni["Ni"]) == pytest.approx(0.12 + 0.56 * 0.8, abs=1e-3)
        await frame.dismount()
        with pytest.raises(OutOfLimitsError, match=r"across = 10\.5 .*\[0, 10\] mm"):
            await frame.mount("ygrad1", 30.0, across="10.5 mm")
        assert await frame.specimen_site.get_value() == "NAN,NAN"
        assert await frame.specimen.get_value() == '"",0,NONE'
    finally:
        await frame.dismount()
        await frame.disconnect()
