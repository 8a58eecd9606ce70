"""Stage, oxide profiler and XRF probe drivers against their twins over SCPI (pyvisa):
readings against the world's ground truth, noise against dwell, refusals before sending."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from detectors_lab import COUPON, BackgroundTwins, detector_lab, grow_coupon

from couponlab.drivers.detectors import ScpiOxideProfiler, ScpiXrfProbe
from couponlab.drivers.stage import ScpiXyStage
from couponlab.errors import InputError, OutOfLimitsError, ProtocolError, UnitError
from couponlab.lab import make_device
from couponlab.units import Q_


class Rig:
    def __init__(self, twins: BackgroundTwins, devices: dict[str, Any]) -> None:
        self.twins = twins
        self.stage: ScpiXyStage = devices["stage"]
        self.profiler: ScpiOxideProfiler = devices["profiler"]
        self.xrf: ScpiXrfProbe = devices["xrf"]

    def truth(self, fn: Any, *args: Any) -> Any:
        return self.twins.call(fn, *args)


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    twins = BackgroundTwins(detector_lab())
    devices: dict[str, Any] = {}
    try:
        twins.call(grow_coupon, twins.world)
        for name in ("stage", "profiler", "xrf"):
            dev: Any = make_device(twins.lab.device(name))
            await dev.connect(timeout=5.0)
            devices[name] = dev
        yield Rig(twins, devices)
    finally:
        for dev in devices.values():
            await dev.disconnect()
        twins.stop()


def thickness_nm(rig: Rig, x: float) -> float:
    return float(rig.truth(lambda: rig.twins.world.coupon(COUPON).oxide_thickness_at(x)[0])) * 1e9


async def test_stage_moves_in_coupon_coordinates_and_reports_the_mount(rig: Rig) -> None:
    st = rig.stage
    assert st.mounted() is None
    await st.load_coupon(COUPON, "60 mm", Q_(1.0, "cm"))
    assert st.mounted() is not None
    assert st.mounted().width_mm == pytest.approx(10.0)  # type: ignore[union-attr]
    await st.x.set(12.5)
    await st.y.set(Q_(5, "mm"))
    reading = await st.read()
    assert reading["stage-x"]["value"] == pytest.approx(12.5)
    assert reading["stage-y"]["value"] == pytest.approx(5.0)
    assert (await st.describe())["stage-x"]["units"] == "mm"
    pos = rig.truth(lambda: rig.twins.world.instrument("stage").position())
    assert pos == pytest.approx((12.5, 5.0))
    assert "with C-001" in await st.state()


async def test_a_stage_move_reports_its_remaining_instrument_time(rig: Rig) -> None:
    st = rig.stage
    await st.load_coupon(COUPON, "60 mm", Q_(1.0, "cm"))
    await st.x.set(0.0)
    move = st.x.set(40.0)
    seen: list[dict[str, Any]] = []
    move.watch(lambda **kw: seen.append(kw))  # type: ignore[attr-defined]
    await move
    assert seen and seen[-1]["unit"] == "s" and seen[-1]["name"] == "stage-x"
    assert seen[-1]["current"] == seen[-1]["target"] > 0  # all of the move's time has passed
    assert seen[-1]["time_remaining"] == 0.0


async def test_stage_refuses_out_of_limits_before_sending(rig: Rig) -> None:
    st = rig.stage
    assert st.x.limits() == (-10.0, 150.0)  # the lab file narrows the travel (-20..180)
    with pytest.raises(OutOfLimitsError, match=r"stage: x position = 151 mm .*\[-10, 150\]"):
        await st.x.set(151.0)
    with pytest.raises(UnitError):
        await st.y.set(Q_(2.0, "s"))
    with pytest.raises(OutOfLimitsError, match="velocity"):
        await st.velocity.set(45.0)  # lab max_velocity 40 mm/s
    with pytest.raises(InputError):
        await st.load_coupon("a,b", 60, 10)
    # nothing reached the instrument: no error queued, no motion
    assert await st.client.query("SYST:ERR?") == '0,"No error"'
    assert rig.truth(lambda: rig.twins.world.instrument("stage").position()) == (0.0, 0.0)


async def test_stage_relays_instrument_refusal(rig: Rig) -> None:
    with pytest.raises(ProtocolError, match=r"coupon C-001 is 60 x 10 mm, not 50 x 10"):
        await rig.stage.load_coupon(COUPON, 50, 10)


async def test_profiler_reads_the_grown_oxide(rig: Rig) -> None:
    await rig.stage.load_coupon(COUPON, 60, 10)
    await rig.profiler.dwell.set(1.0)
    checked = 0
    for x in (20.0, 30.0, 40.0, 50.0):
        await rig.stage.x.set(x)
        await rig.profiler.trigger()
        r = await rig.profiler.read()
        true = thickness_nm(rig, x)
        lo, hi = rig.profiler.thickness_range_nm()
        if lo < true < hi:
            sigma = math.hypot(2.0, 0.01 * true) * math.sqrt(0.1 / 1.0)
            assert r["profiler-thickness"]["value"] == pytest.approx(true, abs=6 * sigma)
            assert r["profiler-range_flag"]["value"] == "ok"
            checked += 1
    assert checked >= 3
    assert (await rig.profiler.describe())["profiler-thickness"]["units"] == "nm"


async def test_profiler_flags_out_of_range(rig: Rig) -> None:
    await rig.stage.load_coupon(COUPON, 60, 10)
    # hot end: Ni-rich oxide beyond 20 um
    assert thickness_nm(rig, 0.0) > 20_000
    await rig.stage.x.set(0.0)
    await rig.profiler.trigger()
    r = await rig.profiler.read()
    assert r["profiler-range_flag"]["value"] == "over"
    assert math.isnan(r["profiler-thickness"]["value"])
    # off the coupon: bare holder, under range
    await rig.stage.x.set(-5.0)
    await rig.profiler.trigger()
    assert (await rig.profiler.read())["profiler-range_flag"]["value"] == "under"


async def test_profiler_noise_falls_with_dwell(rig: Rig) -> None:
    await rig.stage.load_coupon(COUPON, 60, 10)
    await rig.stage.x.set(40.0)

    async def spread(dwell: float) -> float:
        await rig.profiler.dwell.set(dwell)
        vals = []
        for _ in range(40):
            await rig.profiler.trigger()
            vals.append(await rig.profiler.thickness.get_value())
        return float(np.std(vals, ddof=1))

    short, long = await spread(0.01), await spread(1.0)
    assert 4.0 < short / long < 25.0  # sqrt(100) = 10 expected


async def test_profiler_refuses_bad_dwell_before_sending(rig: Rig) -> None:
    with pytest.raises(OutOfLimitsError, match=r"profiler: dwell = 100 s .*\[0.01, 60\]"):
        rig.profiler.check_dwell(Q_(100, "s"))
    with pytest.raises(OutOfLimitsError):
        await rig.profiler.dwell.set(0.001)
    with pytest.raises(UnitError):
        rig.profiler.check_dwell("3 mm")
    assert await rig.profiler.dwell.get_value() == pytest.approx(0.1)
    assert await rig.profiler.client.query("SYST:ERR?") == '0,"No error"'


async def test_xrf_reads_composition_and_counting_noise_falls_with_dwell(rig: Rig) -> None:
    await rig.stage.load_coupon(COUPON, 60, 10)
    await rig.stage.x.set(30.0)
    true_cr = float(
        rig.truth(lambda: rig.twins.world.coupon(COUPON).composition_at(30.0)["Cr"][0])
    )
    await rig.xrf.stage()
    try:

        async def series(dwell: float) -> list[float]:
            await rig.xrf.dwell.set(dwell)
            out = []
            for _ in range(30):
                await rig.xrf.trigger()
                out.append(await rig.xrf.fraction("Cr").get_value())
            return out

        short, long = await series(0.1), await series(10.0)
        counts = await rig.xrf.counts.get_value()
        assert counts == pytest.approx(2e4 * 10.0, rel=0.02)
        sigma_long = math.sqrt(true_cr * (1 - true_cr) / counts)
        assert float(np.mean(long)) == pytest.approx(true_cr, abs=4 * sigma_long)
        assert 4.0 < float(np.std(short, ddof=1) / np.std(long, ddof=1)) < 25.0
        reading = await rig.xrf.read()
        assert set(reading) == {"xrf-fraction_cr", "xrf-fraction_ni", "xrf-counts"}
        assert reading["xrf-fraction_cr"]["value"] + reading["xrf-fraction_ni"]["value"] == (
            pytest.approx(1.0)
        )
    finally:
        await rig.xrf.unstage()
    assert not await rig.xrf.source_on()


async def test_xrf_with_source_off_is_refused_by_the_instrument(rig: Rig) -> None:
    with pytest.raises(ProtocolError, match="X-ray source is off"):
        await rig.xrf.trigger()
