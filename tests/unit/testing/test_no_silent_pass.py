"""No conformance or HIL check passes having checked nothing: a check whose capability is
absent skips with a reason (or fails where the capability is required)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from couponlab.errors import InputError
from couponlab.labfile import DeviceEntry, LabFile
from couponlab.testing import feeder as feeder_suite
from couponlab.testing.furnace import (
    FURNACE_DRIVER,
    FurnaceConformance,
    check_interlock_fails_status,
    run_conformance,
)

ROOT = Path(__file__).resolve().parents[3]


class _Untouchable:
    """Any use of this stand-in fails the test: the check must not reach the device."""

    name = "furnace9"

    def __getattr__(self, attr: str) -> Any:
        raise AssertionError(f"the check used the furnace ({attr}) although it must skip")


async def test_interlock_check_skips_without_a_way_to_trip() -> None:
    ctx = FurnaceConformance(furnace=_Untouchable())  # type: ignore[arg-type]
    with pytest.raises(pytest.skip.Exception, match=r"furnace9: no way to trip the interlock"):
        await check_interlock_fails_status(ctx)


async def test_run_conformance_reports_a_skipped_check_as_skipped() -> None:
    ctx = FurnaceConformance(furnace=_Untouchable())  # type: ignore[arg-type]
    results = await run_conformance(ctx, ["interlock"])
    assert results == {
        "interlock": "skipped: furnace9: no way to trip the interlock given "
        "(FurnaceConformance.trip)"
    }


class _NoByteCounter:
    name = "feeder9"

    async def refuse(self) -> None:
        raise InputError("feeder9", "refused")


async def test_refusal_check_fails_without_a_byte_counter() -> None:
    dev = _NoByteCounter()
    with pytest.raises(AssertionError, match=r"exposes no transport\.bytes_written"):
        await feeder_suite._refused(dev, dev.refuse, "a bad rate")


class _Counting:
    def __init__(self) -> None:
        self.bytes_written = 0


class _LeakyFeeder:
    name = "feeder8"

    def __init__(self) -> None:
        self.transport = _Counting()

    async def refuse_after_sending(self) -> None:
        self.transport.bytes_written += 7
        raise InputError("feeder8", "refused too late")


async def test_refusal_check_fails_when_bytes_went_out() -> None:
    dev = _LeakyFeeder()
    with pytest.raises(AssertionError, match="sent 7 bytes before refusing"):
        await feeder_suite._refused(dev, dev.refuse_after_sending, "a bad rate")


def _hil_module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"hil_{name}", ROOT / "hil" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_hil_interlock_check_on_a_real_furnace_skips_with_the_reason() -> None:
    """A real furnace's interlock is never tripped: the check says so instead of passing."""
    lab = LabFile(
        name="real",
        devices=[
            DeviceEntry(
                name="furnace1",
                family="gradient_furnace",
                driver=FURNACE_DRIVER,
                address="opc.tcp://127.0.0.1:9/never-connected",
                twin=False,
            )
        ],
    )
    hil = _hil_module("test_furnace")
    with pytest.raises(pytest.skip.Exception, match=r"furnace1 not checked \(real\)"):
        await hil.test_furnace_conformance(lab, "interlock")
