"""The lab file schema: valid files load, invalid ones fail with every problem named."""

from __future__ import annotations

from pathlib import Path

import pytest

from couponlab.errors import InputError
from couponlab.labfile import load_lab, parse_lab

GOOD = """
name: test-lab
world: {speedup: 100}
devices:
  - name: furnace1
    family: gradient_furnace
    driver: couponlab.drivers.furnace:OpcUaGradientFurnace
    address: opc.tcp://127.0.0.1:0
    twin: true
    limits: {max_temperature: 1200 degC}
"""


def test_good_lab_loads(tmp_path: Path) -> None:
    p = tmp_path / "lab.yaml"
    p.write_text(GOOD)
    lab = load_lab(p)
    assert lab.names() == ["furnace1"]
    assert lab.device("furnace1").twin
    assert lab.by_family("gradient_furnace")[0].limits["max_temperature"] == "1200 degC"


def test_dump_and_reload_round_trip(tmp_path: Path) -> None:
    lab = parse_lab(GOOD).with_addresses({"furnace1": "opc.tcp://127.0.0.1:4841"})
    lab.dump(tmp_path / "r.yaml")
    assert load_lab(tmp_path / "r.yaml") == lab


@pytest.mark.parametrize(
    ("patch", "match"),
    [
        (("family: gradient_furnace", "family: toaster"), "family: unknown family 'toaster'"),
        (("name: furnace1", "name: Furnace-1"), "must match"),
        (
            ("driver: couponlab.drivers.furnace:OpcUaGradientFurnace", "driver: nope"),
            "driver: unknown driver 'nope'",
        ),
        (("twin: true", "twin: true\n    colour: red"), "colour: unknown key"),
    ],
)
def test_bad_lab_is_refused(patch: tuple[str, str], match: str) -> None:
    with pytest.raises(InputError, match=match):
        parse_lab(GOOD.replace(*patch))


def test_duplicate_names_refused() -> None:
    dev = GOOD.split("devices:\n")[1]
    with pytest.raises(InputError, match="name appears twice"):
        parse_lab(GOOD + dev)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read lab file"):
        load_lab(tmp_path / "absent.yaml")


def test_unknown_device_lookup_names_known_ones() -> None:
    with pytest.raises(KeyError, match="furnace1"):
        parse_lab(GOOD).device("frame")


def test_a_driver_is_found_by_its_registered_name() -> None:
    lab = parse_lab(
        GOOD.replace(
            "driver: couponlab.drivers.furnace:OpcUaGradientFurnace",
            "driver: opcua_gradient_furnace",
        )
    )
    assert lab.device("furnace1").driver == "opcua_gradient_furnace"


def test_every_problem_is_counted() -> None:
    bad = GOOD.replace("limits: {max_temperature: 1200 degC}", "limits: {max_temperature: 5 mm}")
    bad = bad.replace("twin: true", "twin: true\n    settings: {zones: 0, timeout: 1}")
    with pytest.raises(InputError, match=r"settings.zones: .*\(and 2 more problems\)"):
        parse_lab(bad)
