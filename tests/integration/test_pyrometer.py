"""The two-colour pyrometer: the twin's physics against a known temperature field, and the
driver against the twin over SCPI, sighting a coupon in the furnace twin (one world, stepped
by the test: no wall-clock timing).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import yaml

from couponlab.drivers.pyrometer import Pyrometer, ScpiRatioPyrometer
from couponlab.errors import InputError, OutOfLimitsError, UnitError
from couponlab.lab import make_device
from couponlab.labfile import LabFile, LabFileError, load_lab, parse_lab
from couponlab.simulators.furnace import FurnaceModel
from couponlab.simulators.lab_twins import TwinLab, start_lab_twins
from couponlab.simulators.pyrometer import (
    C2,
    LOW_SIGNAL,
    OK,
    OVERFLOW,
    UNDER,
    PyrometerConfig,
    PyrometerModel,
    make_dispatcher,
)
from couponlab.simulators.world import FloatArray, World

LAB = """
name: pyrometer-lab
world: {seed: 3}
devices:
  - name: furnace1
    family: gradient_furnace
    driver: opcua_gradient_furnace
    address: opc.tcp://127.0.0.1:0
    twin: true
  - name: pyro1
    family: pyrometer
    driver: scpi_ratio_pyrometer
    address: socket://127.0.0.1:0          # asyncio TCP: driver and twin share the loop
    twin: true
    settings: {emissivity_slope: 1.04}
    twin_config: {furnace: furnace1, position_mm: 150, emissivity_ratio: 1.04}
"""


class Field:
    """A furnace stand-in for the physics tests: T(x) = t0 + gradient * x (K, mm)."""

    def __init__(self, t0_k: float, gradient_k_per_mm: float = 0.0) -> None:
        self.t0 = t0_k
        self.gradient = gradient_k_per_mm
        self.offset_mm = 0.0

    def temperature_along(self, x_mm: FloatArray) -> FloatArray:
        out: FloatArray = self.t0 + self.gradient * np.asarray(x_mm, float)
        return out


def _model(field: Field | None, **config: object) -> PyrometerModel:
    world = World(paused=True)
    if field is not None:
        world.register_instrument("furnace1", field)
    cfg = PyrometerConfig.model_validate({"furnace": "furnace1", "noise_rel": 0.0, **config})
    return PyrometerModel(world, cfg)


def _lam(cfg: PyrometerConfig) -> tuple[float, float]:
    return cfg.wavelengths_um[0] * 1e-6, cfg.wavelengths_um[1] * 1e-6


# -- the twin's physics -------------------------------------------------------------------
@pytest.mark.parametrize("t_c", [700.0, 1000.0, 1400.0])
def test_matched_slope_reads_the_true_temperature_whatever_the_emissivity(t_c: float) -> None:
    for emissivity, window in [(0.9, 1.0), (0.35, 0.92), (0.1, 0.3)]:
        m = _model(Field(t_c + 273.15), emissivity=emissivity, window_transmission=window)
        m.slope = m.config.emissivity_ratio
        t, _, signal, flag = m.measure()
        assert flag == OK
        assert t == pytest.approx(t_c, abs=0.5)  # Wien's approximation: 0.25 K at 1400 degC
        assert signal == pytest.approx(100 * emissivity * window, rel=3e-3)


def test_a_slope_mismatch_shifts_one_over_t_by_the_log_of_the_slopes() -> None:
    m = _model(Field(1273.15), emissivity_ratio=1.06)
    lam1, lam2 = _lam(m.config)
    m.slope = 1.0
    t_grey = m.measure()[0] + 273.15
    expected = 1 / (1 / 1273.15 + math.log(1.0 / 1.06) / (C2 * (1 / lam1 - 1 / lam2)))
    assert t_grey == pytest.approx(expected, abs=0.1)
    assert t_grey > 1273.15 + 40  # a non-grey target read as grey reads far too hot


def test_the_brightness_temperature_depends_on_emissivity_the_ratio_does_not() -> None:
    clean = _model(Field(1173.15), emissivity=0.35, emissivity_ratio=1.0)
    dirty = _model(Field(1173.15), emissivity=0.35, emissivity_ratio=1.0, window_transmission=0.3)
    for m in (clean, dirty):
        m.emissivity = 0.35
    t_clean, b_clean, s_clean, _ = clean.measure()
    t_dirty, b_dirty, s_dirty, _ = dirty.measure()
    assert t_clean == pytest.approx(900.0, abs=0.05) and t_dirty == pytest.approx(900.0, abs=0.05)
    assert b_clean == pytest.approx(900.0 - 0.0, abs=8.0)  # window 0.92 only
    assert b_dirty < b_clean - 50.0  # a dirty window fools a single-colour reading
    assert s_dirty == pytest.approx(s_clean * 0.3 / 0.92, rel=1e-3)


def test_a_graded_spot_reads_radiance_weighted_above_its_mean() -> None:
    m = _model(Field(1173.15, gradient_k_per_mm=4.0), spot_mm=20.0, position_mm=30.0)
    m.slope = m.config.emissivity_ratio
    mean_c = 1173.15 + 4.0 * 30.0 - 273.15
    t = m.measure()[0]
    assert mean_c < t < mean_c + 10.0


def test_out_of_range_and_no_furnace_read_overflow_with_a_reason() -> None:
    cold = _model(Field(500.0 + 273.15))
    t, b, _, flag = cold.measure()
    assert (t, b, flag) == (OVERFLOW, OVERFLOW, UNDER)
    nothing = _model(None)
    assert nothing.measure()[3] in (UNDER, LOW_SIGNAL)
    dark = _model(Field(1273.15), window_transmission=0.01)
    assert dark.measure()[3] == LOW_SIGNAL


def test_noise_is_the_instruments_own_and_propagates_as_a_ratio_does() -> None:
    m = _model(Field(1273.15), noise_rel=1e-3)
    m.slope = m.config.emissivity_ratio
    readings = np.array([m.measure()[0] for _ in range(400)])
    lam1, lam2 = _lam(m.config)
    lam_eff = 1 / (1 / lam1 - 1 / lam2)
    expected_sd = 1273.15**2 * lam_eff / C2 * math.sqrt(2) * 1e-3  # dT = T^2 lam/c2 dR/R
    assert readings.std() == pytest.approx(expected_sd, rel=0.15)
    assert readings.mean() == pytest.approx(1000.0, abs=4 * expected_sd / 20)


@pytest.mark.parametrize("line", ["CONF:SLOP inf", "CONF:SLOP nan", "CONF:SLOP 1e400",
                                  "CONF:SLOP 1.3", "CONF:EMIS 0", "CONF:EMIS -1", "UNIT:TEMP F",
                                  "CONF:SLOP 1,1"])  # fmt: skip
def test_the_twin_refuses_bad_settings_with_an_error(line: str) -> None:
    d = make_dispatcher(_model(Field(1273.15)))
    reply = d.handle(f"{line};:SYST:ERR?")
    assert isinstance(reply, str) and not reply.startswith("0,")
    assert d.handle("CONF:SLOP?") == "1.0000" and d.handle("CONF:EMIS?") == "1.0000"


# -- driver against the twin -------------------------------------------------------------
@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[TwinLab]:
    """The furnace and the pyrometer twins in a paused world the tests step (the pyrometer
    on ``socket://``, the asyncio transport, so driver and twin share the test's loop)."""
    declared = parse_lab(LAB)
    world = World(paused=True)
    running = await start_lab_twins(declared, world=world, run_clock=False)
    try:
        yield running
    finally:
        await running.stop()
        await asyncio.get_running_loop().shutdown_default_executor()  # asyncua's thread


@pytest.fixture
async def pyro(lab: TwinLab) -> AsyncIterator[ScpiRatioPyrometer]:
    device = make_device(lab.lab.device("pyro1"))
    assert isinstance(device, ScpiRatioPyrometer)
    await device.connect(timeout=10.0)
    try:
        yield device
    finally:
        await device.disconnect()


def _heat(lab: TwinLab, setpoint_c: float, hours: float) -> FurnaceModel:
    furnace = lab.world.instruments["furnace1"]
    assert isinstance(furnace, FurnaceModel)
    furnace.set_setpoints(np.full(furnace.zones, setpoint_c))
    lab.world.advance(hours * 3600.0)
    return furnace


async def test_reads_nothing_cold_then_the_sighted_coupon_in_the_hot_furnace(
    lab: TwinLab, pyro: ScpiRatioPyrometer
) -> None:
    assert isinstance(pyro, Pyrometer)
    assert await pyro.emissivity_slope.get_value() == pytest.approx(1.04)
    assert pyro.range_c() == (600.0, 1600.0)
    await pyro.trigger()
    assert math.isnan(await pyro.temperature.get_value())
    assert await pyro.status.get_value() == "under range"
    furnace = _heat(lab, 1000.0, 1.5)
    truth_c = float(furnace.temperature_along(np.array([150.0]))[0]) - 273.15
    assert truth_c == pytest.approx(1000.0, abs=5.0)
    await pyro.trigger()
    reading = await pyro.read()
    t = reading["pyro1-temperature"]["value"]
    assert t == pytest.approx(truth_c, abs=3.0)  # noise about 1 K
    assert reading["pyro1-status"]["value"] == "ok"
    described = await pyro.describe()
    assert described["pyro1-temperature"]["units"] == "degC"
    assert "emissivity" in await pyro.state()


async def test_the_slope_setting_moves_the_reading_as_the_physics_says(
    lab: TwinLab, pyro: ScpiRatioPyrometer
) -> None:
    _heat(lab, 1000.0, 1.5)
    await pyro.trigger()
    matched = await pyro.temperature.get_value()
    await pyro.emissivity_slope.set(1.0)
    assert await pyro.emissivity_slope.get_value() == pytest.approx(1.0)
    await pyro.trigger()
    grey = await pyro.temperature.get_value()
    lam1, lam2 = 0.90e-6, 1.05e-6
    expected_k = 1 / (1 / (matched + 273.15) - math.log(1.04) / (C2 * (1 / lam1 - 1 / lam2)))
    assert grey + 273.15 == pytest.approx(expected_k, abs=4.0)  # two readings' noise
    assert grey > matched + 20.0  # a non-grey coupon read as grey reads too hot


BAD_SLOPES: list[tuple[object, type[Exception]]] = [
    (1.3, OutOfLimitsError), (0.5, OutOfLimitsError), (math.inf, UnitError),
    (math.nan, UnitError), ("1.0 mm", UnitError), (None, InputError), ("grey", InputError),
]  # fmt: skip


async def test_bad_slopes_are_refused_before_a_byte_is_sent(pyro: ScpiRatioPyrometer) -> None:
    sent = pyro.client.bytes_written
    for value, error in BAD_SLOPES:
        with pytest.raises(error, match="pyro1"):
            await pyro.set_emissivity_slope(value)
        with pytest.raises(error, match="pyro1"):  # the signal: the same check
            await pyro.emissivity_slope.set(value)
        with pytest.raises(error, match="pyro1"):  # the same range rule, its own limits
            await pyro.emissivity.set(value if value != 0.5 else 1.5)
    assert pyro.client.bytes_written == sent


# -- lab file -----------------------------------------------------------------------------
def test_the_lab_file_checks_the_pyrometers_settings_and_its_furnace(tmp_path: Path) -> None:
    data = yaml.safe_load(LAB)
    assert isinstance(parse_lab(LAB), LabFile)
    data["devices"][1]["settings"] = {"emissivity_slope": 1.5}
    p = tmp_path / "lab.yaml"
    p.write_text(yaml.safe_dump(data))
    with pytest.raises(LabFileError, match=r"device 'pyro1': settings.emissivity_slope"):
        load_lab(p)
    data["devices"][1]["settings"] = {}
    data["devices"][1]["twin_config"]["furnace"] = "furnace9"
    p.write_text(yaml.safe_dump(data))
    with pytest.raises(LabFileError, match=r"twin_config.furnace: no device 'furnace9'"):
        load_lab(p)
