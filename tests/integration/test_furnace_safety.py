"""Every write path of the furnace driver is checked against the lab limits, in the right
unit, before a byte is sent; nothing hangs on a huge value (furnace twin on 127.0.0.1, lab
limit 1150 degC; wire writes counted below the driver by :class:`WireSpy`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import numpy as np
import pytest
from furnace_twin import furnace_model, restore

from couponlab.drivers.furnace import OpcUaGradientFurnace
from couponlab.errors import InputError, OutOfLimitsError, UnitError
from couponlab.interfaces.furnace import ProgramSegment
from couponlab.simulators.furnace import FurnaceModel
from couponlab.testing.furnace import WireSpy, furnace_lab
from couponlab.twins import BackgroundTwins
from couponlab.units import Q_

NAME = "furnace1"


@pytest.fixture(scope="module")
def twins() -> Iterator[BackgroundTwins]:
    with BackgroundTwins(furnace_lab(speedup=100.0, name=NAME)) as running:
        yield running


@pytest.fixture
async def furnace(twins: BackgroundTwins) -> AsyncIterator[OpcUaGradientFurnace]:
    device = OpcUaGradientFurnace.from_lab_entry(twins.lab.device(NAME))
    await device.connect(timeout=10.0)
    try:
        yield device
    finally:
        await device.disconnect()
        twins.call(restore, furnace_model(twins))


@pytest.fixture
def spy(furnace: OpcUaGradientFurnace) -> WireSpy:
    return WireSpy().attach(furnace)


async def _snapshot(twins: BackgroundTwins) -> tuple[Any, ...]:
    def snap(m: FurnaceModel) -> tuple[Any, ...]:
        return (list(m.target_c), m.ramp_rate_k_per_min, m.interlock_limit_c, len(m.segments))

    return await twins.acall(snap, furnace_model(twins))


# -- lab limits cannot be bypassed through a signal --------------------------------------------


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("setpoint_profile", [1180.0] * 8),
        ("setpoint_profile", np.full(8, 1151.0)),
        ("setpoint_profile", Q_(np.full(8, 1500.0), "K")),
        ("zones.1.setpoint", 1180.0),
        ("zones.8.setpoint", "1151 degC"),
        ("zones.2.setpoint", Q_(1430, "K")),
        ("interlock.limit", 1240.0),
        ("interlock.limit", "1151 degC"),
    ],
)
async def test_signals_refuse_values_above_the_lab_limit(
    furnace: OpcUaGradientFurnace, twins: BackgroundTwins, spy: WireSpy, path: str, value: Any
) -> None:
    signal: Any = furnace
    for part in path.split("."):
        signal = signal[int(part)] if part.isdigit() else getattr(signal, part)
    before = await _snapshot(twins)
    with pytest.raises(OutOfLimitsError, match=r"1150"):
        await signal.set(value)
    assert spy.count() == 0
    assert await _snapshot(twins) == before


async def test_setpoint_profile_in_kelvin_is_converted(
    furnace: OpcUaGradientFurnace, twins: BackgroundTwins
) -> None:
    await furnace.setpoint_profile.set(Q_(np.full(8, 873.15), "K"))
    targets = (await _snapshot(twins))[0]
    assert targets == pytest.approx([600.0] * 8)
    await furnace.zones[3].setpoint.set("900 K")
    assert (await _snapshot(twins))[0][2] == pytest.approx(626.85)
    await furnace.setpoint_profile.set([Q_(500, "degC")] * 4 + ["773.15 K"] * 4)
    assert (await _snapshot(twins))[0] == pytest.approx([500.0] * 8)
    assert await furnace.setpoint_profile.get_value() == pytest.approx([500.0] * 8)


async def test_documented_forms_are_accepted(
    furnace: OpcUaGradientFurnace, twins: BackgroundTwins
) -> None:
    await furnace.ramp_rate.set("1 K/s")  # 60 K/min; 120 K/min is over 100: refused
    with pytest.raises(OutOfLimitsError):
        await furnace.ramp_rate.set("2 K/s")
    await furnace.ramp_rate.set(Q_(30, "K/min"))
    assert (await _snapshot(twins))[1] == pytest.approx(30.0)
    await furnace.carrier.offset.set("1 cm")
    assert await furnace.carrier.offset.get_value() == pytest.approx(10.0)
    now = await furnace.clock.now()
    await asyncio.wait_for(furnace.clock.set(Q_(now + 0.2, "s")), 10)
    await asyncio.wait_for(furnace.clock.set(f"{now + 0.4} s"), 10)
    await asyncio.wait_for(furnace.wait_until(Q_(0.2, "s")), 10)


async def test_ramp_rate_zero_is_not_unlimited(
    furnace: OpcUaGradientFurnace, spy: WireSpy
) -> None:
    with pytest.raises(OutOfLimitsError, match=r"(?i)ramp"):
        await furnace.ramp_rate.set(0)
    with pytest.raises(OutOfLimitsError, match="ramp rate"):
        await furnace.set_gradient(600, 500, ramp_rate=0)
    assert spy.count() == 0


async def test_wait_for_a_huge_time_is_refused(furnace: OpcUaGradientFurnace) -> None:
    with pytest.raises(OutOfLimitsError, match="instrument time"):
        await asyncio.wait_for(furnace.wait_until("1e12 s"), 10)
    with pytest.raises(OutOfLimitsError, match="instrument time"):
        await asyncio.wait_for(furnace.clock.set(1e300), 10)


async def test_a_program_longer_than_the_instrument_takes_is_refused_early(
    furnace: OpcUaGradientFurnace, spy: WireSpy
) -> None:
    segment = ProgramSegment([500.0] * 8, "10 K/min", "1 min")
    with pytest.raises(InputError, match="at most 64"):
        await furnace.run_program([segment] * 100_000)
    with pytest.raises(InputError, match="at most 64"):
        await furnace.run_program([segment] * 65)
    assert spy.count() == 0


@pytest.mark.parametrize(
    ("path", "value", "error"),
    [
        ("setpoint_profile", None, InputError),
        ("setpoint_profile", "hot", InputError),
        ("setpoint_profile", [600.0] * 7, InputError),
        ("setpoint_profile", [[600.0] * 8], InputError),
        ("setpoint_profile", [float("nan")] * 8, UnitError),
        ("setpoint_profile", Q_(np.full(8, 600.0), "mm"), UnitError),
        ("setpoint_profile", Q_(np.full(8, 600.0), "delta_degC"), UnitError),
        ("zones.1.setpoint", None, InputError),
        ("zones.1.setpoint", [600.0, 500.0], InputError),
        ("zones.1.setpoint", Q_(np.array([600.0, 500.0]), "degC"), InputError),
        ("zones.1.setpoint", 10**400, InputError),
        ("zones.1.setpoint", True, InputError),
        ("zones.1.setpoint", "600 delta_degC", UnitError),
        ("ramp_rate", "10 mm/min", UnitError),
        ("ramp_rate", float("inf"), UnitError),
        ("interlock.limit", "-5 degC", OutOfLimitsError),
        ("carrier.offset", "1 m", OutOfLimitsError),
        ("carrier.coupon_id", 12, InputError),
        ("carrier.coupon_id", "x" * 1000, InputError),
        ("carrier.coupon_id", "C-1\n", InputError),
    ],
)
async def test_bad_signal_values_raise_typed_errors_before_a_write(
    furnace: OpcUaGradientFurnace, spy: WireSpy, path: str, value: Any, error: type[Exception]
) -> None:
    signal: Any = furnace
    for part in path.split("."):
        signal = signal[int(part)] if part.isdigit() else getattr(signal, part)
    with pytest.raises(error) as info:
        await signal.set(value)
    assert NAME in str(info.value)
    assert spy.count() == 0
