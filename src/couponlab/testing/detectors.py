"""Conformance suites of the detector families and the x-y stage, reusable by any new driver.

Each check is an ``async`` function taking a connected device and raising
:class:`ConformanceError` (an ``AssertionError``) naming what does not conform. The checks
use only the interfaces of :mod:`couponlab.interfaces.detectors`, so they run against a twin
and against hardware (``hil/test_detectors.py``). A stage check moves the stage by at most
1 mm inside its soft limits; a camera check takes one frame.

``CHECKS[family]`` maps each family to its checks::

    @pytest.mark.parametrize("check", sorted(CHECKS["oxide_profiler"]))
    async def test_conformance(profiler, check):
        await CHECKS["oxide_profiler"][check](profiler)
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
from bluesky.utils import maybe_await

from couponlab.errors import InputError, OutOfLimitsError
from couponlab.interfaces import LabDevice
from couponlab.interfaces.detectors import (
    Camera,
    CompositionProbe,
    DwellDetector,
    LineSampler,
    LineSpec,
    OxideProfiler,
    Stage,
    ThermocoupleScanner,
)
from couponlab.testing.conformance import ConformanceError
from couponlab.testing.conformance import require as _require

Check = Callable[[Any], Awaitable[None]]


async def _describe(device: Any) -> dict[str, Any]:
    desc: dict[str, Any] = await maybe_await(device.describe())
    return desc


async def _read(device: Any) -> dict[str, Any]:
    reading: dict[str, Any] = await maybe_await(device.read())
    return reading


# -- every device ------------------------------------------------------------------------------
async def check_lab_device(device: Any) -> None:
    """Identity, a state, and a safe state that can be reached."""
    _require(isinstance(device, LabDevice), device.name, "does not implement LabDevice")
    _require(bool((await device.identify()).strip()), device.name, "empty identity")
    _require(bool((await device.state()).strip()), device.name, "empty state")
    await device.safe_state()


async def check_units_in_descriptors(device: Any) -> None:
    """Every numeric reading (and configuration value) carries units."""
    desc = {**(await _describe(device)), **(await maybe_await(device.describe_configuration()))}
    for key, dk in desc.items():
        if dk["dtype"] in ("number", "integer", "array") and dk.get("external") is None:
            _require(bool(dk.get("units")), device.name, f"{key} has no units")


# -- stage ------------------------------------------------------------------------------------
async def check_stage_moves_in_mm(stage: Any) -> None:
    """An axis moves by up to 1 mm inside its limits, reads back in mm, and the move is undone."""
    _require(isinstance(stage, Stage), stage.name, "does not implement Stage")
    for axis in (stage.x, stage.y):
        lo, hi = axis.limits()
        _require(lo < hi, stage.name, f"empty soft limits ({lo}, {hi}) for {axis.name}")
        start = (await _read(axis))[axis.name]["value"]
        target = start + 1.0 if start + 1.0 <= hi else start - 1.0
        target = min(max(target, lo), hi)
        await axis.set(target)
        got = (await _read(axis))[axis.name]["value"]
        _require(abs(got - target) < 0.01, stage.name, f"{axis.name} at {got} mm, not {target}")
        _require(
            (await _describe(axis))[axis.name].get("units") == "mm",
            stage.name,
            f"{axis.name} is not read in mm",
        )
        await axis.set(start)


async def check_stage_refuses_out_of_limits(stage: Any) -> None:
    """A target beyond a soft limit raises OutOfLimitsError and nothing moves."""
    for axis in (stage.x, stage.y):
        _, hi = axis.limits()
        before = (await _read(axis))[axis.name]["value"]
        try:
            await axis.set(hi + 1.0)
        except OutOfLimitsError:
            pass
        else:
            raise ConformanceError(f"{stage.name}: {axis.name} accepted {hi + 1.0} > limit {hi}")
        after = (await _read(axis))[axis.name]["value"]
        _require(after == before, stage.name, f"{axis.name} moved after a refusal")
    try:
        stage.check_velocity(math.inf)
    except InputError:
        pass
    else:
        raise ConformanceError(f"{stage.name}: an infinite velocity was accepted")


# -- spot heads -------------------------------------------------------------------------------
async def check_dwell(det: Any) -> None:
    """Dwell limits are positive; a dwell outside them is refused; dwell is set in s."""
    _require(isinstance(det, DwellDetector), det.name, "does not implement DwellDetector")
    lo, hi = det.dwell_limits()
    _require(0 < lo < hi, det.name, f"dwell limits ({lo}, {hi}) s")
    for bad in (hi * 2, lo / 2):
        try:
            det.check_dwell(bad)
        except OutOfLimitsError:
            continue
        raise ConformanceError(f"{det.name}: dwell {bad} s accepted outside [{lo}, {hi}]")
    previous = await det.dwell.get_value()
    await det.dwell.set(lo)
    _require(
        math.isclose(await det.dwell.get_value(), lo, rel_tol=1e-6), det.name, "dwell not set"
    )
    await det.dwell.set(previous)


async def check_trigger_and_read(det: Any) -> None:
    """A trigger completes and the reading has the described keys."""
    status = det.trigger()
    await status
    reading = await _read(det)
    desc = await _describe(det)
    _require(set(reading) == set(desc), det.name, f"read {set(reading)} != describe {set(desc)}")


async def check_line_refuses_bad_period(det: Any) -> None:
    """A line whose period is outside the dwell limits is refused before it is configured."""
    _require(isinstance(det, LineSampler), det.name, "does not implement LineSampler")
    lo, _ = det.dwell_limits()
    try:
        det.check_line(LineSpec(10, lo / 10))
    except OutOfLimitsError:
        return
    raise ConformanceError(f"{det.name}: a line period of {lo / 10} s was accepted")


async def check_profiler_reading(det: Any) -> None:
    """Thickness in nm (NaN only with an out-of-range flag); a sane measurable range."""
    _require(isinstance(det, OxideProfiler), det.name, "does not implement OxideProfiler")
    lo, hi = det.thickness_range_nm()
    _require(0 < lo < hi, det.name, f"thickness range ({lo}, {hi}) nm")
    await det.trigger()
    t = await det.thickness.get_value()
    flag = await det.range_flag.get_value()
    _require(flag in ("ok", "under", "over"), det.name, f"range flag {flag!r}")
    _require(math.isnan(t) == (flag != "ok"), det.name, f"thickness {t} with flag {flag!r}")


async def check_probe_reading(det: Any) -> None:
    """Fractions in 0..1 (or NaN off the coupon), one signal per element."""
    _require(isinstance(det, CompositionProbe), det.name, "does not implement CompositionProbe")
    _require(len(det.elements) >= 1, det.name, "no elements")
    await det.stage()
    try:
        await det.trigger()
        for el in det.elements:
            f = await det.fraction(el).get_value()
            _require(math.isnan(f) or 0 <= f <= 1, det.name, f"fraction of {el} = {f}")
    finally:
        await det.unstage()


# -- thermocouple scanner -----------------------------------------------------------------------
async def check_scanner_reading(det: Any) -> None:
    """One temperature per thermocouple, in degC, finite or NaN (open)."""
    _require(isinstance(det, ThermocoupleScanner), det.name, "not a ThermocoupleScanner")
    positions = det.positions_mm()
    await det.trigger()
    temps = np.asarray(await det.temperatures.get_value(), float)
    _require(temps.shape == (len(positions),), det.name, f"{temps.shape} for {len(positions)}")
    ok = temps[~np.isnan(temps)]
    _require(bool(np.all((ok > -273.15) & (ok < 2000))), det.name, f"temperatures {ok} degC")
    desc = await _describe(det)
    units = {dk.get("units") for dk in desc.values()}
    _require(units == {"degC"}, det.name, f"temperature units {units}")


# -- camera ---------------------------------------------------------------------------------------
async def check_camera_frame_to_file(det: Any) -> None:
    """One triggered frame is written to a file and referenced by stream documents."""
    _require(isinstance(det, Camera), det.name, "does not implement Camera")
    h, w = det.frame_shape()
    _require(h > 0 and w > 0, det.name, f"frame shape {(h, w)}")
    try:
        det.check_exposure(1e6)
    except OutOfLimitsError:
        pass
    else:
        raise ConformanceError(f"{det.name}: an exposure of 1e6 s was accepted")
    await det.stage()
    try:
        await det.trigger()
        desc = await _describe(det)
        _require(desc[det.name]["shape"][-2:] == [h, w], det.name, f"frame key {desc[det.name]}")
        kinds = [kind async for kind, _ in det.collect_asset_docs()]
        _require("stream_resource" in kinds, det.name, "no stream_resource for the frame")
        _require("stream_datum" in kinds, det.name, "no stream_datum for the frame")
    finally:
        await det.unstage()


COMMON: dict[str, Check] = {
    "lab_device": check_lab_device,
    "units_in_descriptors": check_units_in_descriptors,
}
CHECKS: dict[str, dict[str, Check]] = {
    "xy_stage": {
        **COMMON,
        "stage_moves_in_mm": check_stage_moves_in_mm,
        "stage_refuses_out_of_limits": check_stage_refuses_out_of_limits,
    },
    "oxide_profiler": {
        **COMMON,
        "dwell": check_dwell,
        "trigger_and_read": check_trigger_and_read,
        "line_refuses_bad_period": check_line_refuses_bad_period,
        "profiler_reading": check_profiler_reading,
    },
    "xrf_probe": {
        **COMMON,
        "dwell": check_dwell,
        "line_refuses_bad_period": check_line_refuses_bad_period,
        "probe_reading": check_probe_reading,
    },
    "thermocouple_scanner": {
        **COMMON,
        "trigger_and_read": check_trigger_and_read,
        "scanner_reading": check_scanner_reading,
    },
    "camera": {"lab_device": check_lab_device, "camera_frame_to_file": check_camera_frame_to_file},
}
"""Family -> check name -> check."""


async def run_conformance(device: Any, family: str) -> None:
    """Run every check of ``family`` against ``device``; raise on the first failure."""
    for check in CHECKS[family].values():
        await check(device)


__all__ = ["CHECKS", "ConformanceError", "run_conformance"]
