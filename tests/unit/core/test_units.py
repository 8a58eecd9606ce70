"""Units at the boundary: conversions, the degC/K trap, NaN, wrong units, limits."""

from __future__ import annotations

import math
from typing import Any

import pint
import pytest
from hypothesis import given
from hypothesis import strategies as st

from couponlab import units
from couponlab.errors import InputError, OutOfLimitsError, UnitError
from couponlab.units import Q_, numbers_with_units, to_magnitude, to_temperature


def test_kelvin_converts_to_degc() -> None:
    assert to_temperature(Q_(1073.15, "K")) == pytest.approx(800.0)


def test_bare_number_is_in_documented_unit() -> None:
    assert to_temperature(800) == 800.0
    assert to_temperature(800, "K") == 800.0


def test_string_quantities_are_parsed() -> None:
    assert to_temperature("1100 K", "degC") == pytest.approx(826.85)
    assert to_magnitude("2 L/min", "L/min") == 2.0


@pytest.mark.parametrize(
    "value",
    [Q_(10, "delta_degC"), Q_(3, "m"), float("nan"), float("inf"), True, "hot", None, [1.0]],
)
def test_bad_temperatures_are_refused(value: object) -> None:
    with pytest.raises(UnitError, match="furnace1"):
        to_temperature(value, device="furnace1")


@pytest.mark.parametrize(
    "text", ["ya]?{?", "ya", "s", "a", "1 s]", "2 s?", "{3} s", "nan s", "1 s # x"]
)
def test_text_that_is_not_a_number_then_a_unit_is_refused(text: str) -> None:
    """pint's tokenizer drops some trailing text: ``"ya]?{?"`` would read as 1 yocto-year."""
    with pytest.raises(UnitError, match=r"furnace1.*number, then a unit"):
        to_magnitude(text, "s", device="furnace1", low=0.0, high=1e7)


@pytest.mark.parametrize(
    ("text", "unit", "value"),
    [
        ("2 s", "s", 2.0),
        (" 1.5e3 ms ", "s", 1.5),
        ("-.5 min", "s", -30.0),
        ("1 h", "s", 3600.0),
        ("2 (s)", "s", 2.0),
        ("0.015 / min", "1/min", 0.015),
        ("6 1/min", "1/s", 0.1),
        ("5 mm**2", "mm^2", 5.0),
        ("10 K/min", "K/min", 10.0),
    ],
)
def test_a_number_then_a_unit_is_parsed(text: str, unit: str, value: float) -> None:
    assert to_magnitude(text, unit) == pytest.approx(value)


def test_offset_unit_in_a_rate_is_refused() -> None:
    with pytest.raises(UnitError):
        to_magnitude("5 degC/min", "K/min", device="f")


def test_rate_in_delta_degc_is_fine() -> None:
    assert to_magnitude(Q_(5, "delta_degC/min"), "K/min") == pytest.approx(5.0)
    assert to_magnitude(Q_(0.5, "K/s"), "K/min") == pytest.approx(30.0)


def test_out_of_limits_names_device_value_and_range() -> None:
    with pytest.raises(OutOfLimitsError) as info:
        to_temperature(Q_(1600, "K"), device="furnace1", what="zone 2 setpoint", high=1200)
    msg = str(info.value)
    assert "furnace1" in msg and "zone 2 setpoint" in msg and "1326.85" in msg and "1200" in msg
    assert isinstance(info.value, InputError) and isinstance(info.value, ValueError)


def test_quantity_from_another_registry_is_refused() -> None:
    other = pint.UnitRegistry()
    with pytest.raises(UnitError, match="another unit registry"):
        to_temperature(other.Quantity(800, "degC"))


@given(st.floats(min_value=-200, max_value=2000, allow_nan=False))
def test_kelvin_round_trip(t_c: float) -> None:
    k = to_temperature(Q_(t_c, "degC"), "K")
    assert math.isclose(k - 273.15, t_c, abs_tol=1e-9)
    assert to_temperature(Q_(k, "K"), "degC") == pytest.approx(t_c, abs=1e-9)


def test_the_registry_parses_its_definitions_when_its_disk_cache_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = pint.UnitRegistry
    asked: list[object] = []

    def cache_broken(*args: Any, cache_folder: object = None, **kwargs: Any) -> Any:
        asked.append(cache_folder)
        if cache_folder is not None:
            raise EOFError("a cache file another process is still writing")
        return real(*args, **kwargs)

    monkeypatch.setattr(pint, "UnitRegistry", cache_broken)
    reg = units._registry()
    assert asked == [":auto:", None]  # the cache first, then the definitions parsed
    assert reg.Quantity(0, "degC").to("K").magnitude == pytest.approx(273.15)


@pytest.mark.parametrize(
    ("text", "metadata"),
    [
        ("50.0 h", {"value": 50.0, "units": "h"}),
        ("100 degC", {"value": 100.0, "units": "degC"}),
        ("-10 mm", {"value": -10.0, "units": "mm"}),
        ("0.015 / min", {"value": 0.015, "units": "1/min"}),
        ("0.015 1/min", {"value": 0.015, "units": "1/min"}),
        ("1e-3 m", {"value": 0.001, "units": "m"}),
        ("2.0", 2.0),
        # not a quantity: kept as text
        ("25,6,2,32", "25,6,2,32"),
        ("3 xyz", "3 xyz"),
        ("1.15.1", "1.15.1"),
        ("0f0ae5e3-faea-49af", "0f0ae5e3-faea-49af"),
        ("per_track", "per_track"),
    ],
)
def test_metadata_quantities_become_numbers_with_units(text: str, metadata: object) -> None:
    assert numbers_with_units({"a": [text]}) == {"a": [metadata]}


@pytest.mark.parametrize("text", ["0.015 / min", "0.015 1/min", "0.015 /min"])
def test_a_reciprocal_unit_is_a_quantity(text: str) -> None:
    # pint writes 1/min as "/ min"; the frame's default strain rate is "0.015 / min"
    assert to_magnitude(text, "1/min") == pytest.approx(0.015)
