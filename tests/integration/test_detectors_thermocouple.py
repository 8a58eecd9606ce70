"""The thermocouple scanner against its twin: the carrier's true local temperature (in degC,
not K), independent of the furnace's zone thermocouples; open thermocouples read NaN."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from detectors_lab import POSITIONS, BackgroundTwins, LinearFurnace, detector_lab

from couponlab.drivers.detectors import ScpiThermocoupleScanner
from couponlab.errors import InputError, ProtocolError
from couponlab.interfaces.detectors import ThermocoupleScanner
from couponlab.lab import make_device
from couponlab.labfile import LabFile


@pytest.fixture
async def scanner() -> AsyncIterator[tuple[BackgroundTwins, Any]]:
    twins = BackgroundTwins(detector_lab(furnace="hot"))
    dev: Any = None
    try:
        twins.call(twins.world.register_instrument, "hot", LinearFurnace(1373.15, 2.0))
        dev = make_device(twins.lab.device("tcs"))
        await dev.connect(timeout=5.0)
        yield twins, dev
    finally:
        if dev is not None:
            await dev.disconnect()
        twins.stop()


async def test_reads_the_local_temperature_along_the_carrier_in_degc(
    scanner: tuple[BackgroundTwins, Any],
) -> None:
    _, tcs = scanner
    assert isinstance(tcs, ThermocoupleScanner)
    assert len(tcs.positions_mm()) >= 10
    await tcs.trigger()
    reading = await tcs.read()
    temps = np.asarray(reading["tcs-temperatures"]["value"])
    # furnace: 1373.15 K - 2 K/mm * (carrier offset 10 mm + position)
    true_c = 1373.15 - 2.0 * (10.0 + np.asarray(POSITIONS)) - 273.15
    # type K class 1 tolerance (0.4 % of t above 375 degC) + scanner 0.5 K sigma + noise
    assert np.all(np.abs(temps - true_c) < 0.004 * true_c + 2.0)
    assert np.polyfit(POSITIONS, temps, 1)[0] == pytest.approx(-2.0, abs=0.1)
    assert (await tcs.describe())["tcs-temperatures"]["units"] == "degC"
    conf = await tcs.read_configuration()
    assert list(conf["tcs-positions"]["value"]) == POSITIONS


async def test_each_thermocouple_has_its_own_fixed_error(
    scanner: tuple[BackgroundTwins, Any],
) -> None:
    _, tcs = scanner
    scans = []
    for _ in range(20):
        await tcs.trigger()
        scans.append(await tcs.temperatures.get_value())
    arr = np.asarray(scans)
    true_c = 1373.15 - 2.0 * (10.0 + np.asarray(POSITIONS)) - 273.15
    offsets = arr.mean(axis=0) - true_c
    assert float(np.std(arr, axis=0).max()) < 0.3  # noise per reading is small
    assert float(np.std(offsets)) > 0.2  # but the channels disagree by a fixed error


async def test_an_open_thermocouple_reads_nan(scanner: tuple[BackgroundTwins, Any]) -> None:
    twins, tcs = scanner
    twins.call(twins.world.instrument("tcs").break_channel, 3)
    await tcs.trigger()
    temps = await tcs.temperatures.get_value()
    assert np.isnan(temps[3])
    assert np.isfinite(np.delete(temps, 3)).all()
    assert "1 open" in await tcs.state()


async def test_without_the_furnace_it_reads_ambient(scanner: tuple[BackgroundTwins, Any]) -> None:
    twins, tcs = scanner
    twins.call(twins.world.unregister_instrument, "hot")
    await tcs.trigger()
    temps = await tcs.temperatures.get_value()
    assert np.all(np.abs(temps - 25.0) < 5.0)


async def test_channel_count_must_match_positions(scanner: tuple[BackgroundTwins, Any]) -> None:
    twins, _ = scanner
    entry = twins.lab.device("tcs")
    wrong = ScpiThermocoupleScanner(entry.address, positions_mm=[0.0, 10.0], name="tcs2")
    with pytest.raises(ProtocolError, match="12 channels but 2 positions"):
        await wrong.connect(timeout=5.0)
    await wrong.disconnect()
    with pytest.raises(InputError, match="positions_mm"):
        ScpiThermocoupleScanner(entry.address, positions_mm=[float("nan")])


def test_reads_the_gradient_furnace_twin_independently_of_its_zone_thermocouples() -> None:
    """With the real furnace twin: the scanner reads the tube's true temperature at the
    carrier, even where a zone thermocouple of the furnace is broken."""
    lab = detector_lab(furnace="furnace1").model_dump()
    lab["devices"].insert(
        0,
        {
            "name": "furnace1",
            "family": "gradient_furnace",
            "driver": "couponlab.drivers.furnace:OpcUaGradientFurnace",
            "address": "opc.tcp://127.0.0.1:0",
            "twin": True,
        },
    )
    lab["devices"] = [d for d in lab["devices"] if d["name"] in ("furnace1", "tcs")]
    twins = BackgroundTwins(LabFile.model_validate(lab))
    try:
        furnace = twins.world.instruments["furnace1"]

        def set_gradient() -> None:
            twins.world.pause()  # hold the field still while it is read
            n = furnace.temperature_c.size
            furnace.temperature_c[:] = np.linspace(1000.0, 600.0, n)
            furnace.tc_broken[2] = True  # the furnace's own thermocouple: not ours
            furnace.offset_mm = 80.0

        twins.call(set_gradient)
        truth_c = twins.call(
            lambda: furnace.temperature_along(80.0 + np.asarray(POSITIONS)) - 273.15
        )
        tcs = ScpiThermocoupleScanner.from_lab_entry(twins.lab.device("tcs"))

        async def scan() -> Any:
            await tcs.connect(timeout=5.0)
            try:
                await tcs.trigger()
                return await tcs.temperatures.get_value()
            finally:
                await tcs.disconnect()

        temps = asyncio.run(scan())
        assert np.all(np.isfinite(temps))
        assert np.all(np.abs(temps - truth_c) < 5.0)
        assert float(np.ptp(truth_c)) > 50.0  # a real gradient along the carrier
    finally:
        twins.stop()
