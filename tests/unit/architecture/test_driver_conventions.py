"""Conventions of every driver class, enforced by a test rather than by review.

Every class in couponlab.drivers with a ``from_lab_entry`` classmethod, and every driver
registered in the ``couponlab.drivers`` entry points, must: have a real docstring, document
every public method, offer the LabDevice methods as coroutines (``identify``, ``state``,
``safe_state``, ``disconnect``), declare its family, lab-entry models and twin
(``lab_spec``), all registered, and be constructible from a lab entry (the bundled sim
lab's, or its spec's example) without touching the network.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path
from typing import Any

import pytest

import couponlab.drivers
from couponlab import registry
from couponlab.cli import sample_lab_path
from couponlab.lab import with_data_dir
from couponlab.labfile import DeviceEntry, load_lab


def _driver_classes() -> list[type[Any]]:
    found: dict[str, type[Any]] = {}
    for value in registry.drivers().values():
        cls = registry.driver_class(value)
        if not cls.__module__.startswith("couponlab.testing."):  # test fakes have no twin
            found[f"{cls.__module__}.{cls.__qualname__}"] = cls
    for info in pkgutil.walk_packages(couponlab.drivers.__path__, "couponlab.drivers."):
        module = importlib.import_module(info.name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if obj.__module__ == module.__name__ and "from_lab_entry" in vars(obj):
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return [found[k] for k in sorted(found)]


DRIVERS = _driver_classes()


def test_drivers_are_found() -> None:
    """The walk finds the drivers (so the checks below are not vacuous)."""
    assert DRIVERS, "no driver class with from_lab_entry found under couponlab.drivers"


@pytest.mark.parametrize("cls", DRIVERS, ids=lambda c: c.__qualname__)
def test_driver_is_documented(cls: type[Any]) -> None:
    doc = inspect.getdoc(cls) or ""
    assert len(doc.split()) >= 5, f"{cls.__qualname__} needs a docstring that says what it is"
    undocumented = [
        name
        for name, member in vars(cls).items()
        if not name.startswith("_") and callable(member) and not inspect.getdoc(member)
    ]
    assert not undocumented, f"{cls.__qualname__}: undocumented public methods {undocumented}"


@pytest.mark.parametrize("cls", DRIVERS, ids=lambda c: c.__qualname__)
def test_driver_has_lab_device_methods(cls: type[Any]) -> None:
    assert isinstance(inspect.getattr_static(cls, "from_lab_entry"), classmethod)
    for name in ("identify", "state", "safe_state", "disconnect"):
        method = getattr(cls, name, None)
        assert method is not None, f"{cls.__qualname__} has no {name}()"
        assert inspect.iscoroutinefunction(method), f"{cls.__qualname__}.{name} is not async"


@pytest.mark.parametrize("cls", DRIVERS, ids=lambda c: c.__qualname__)
def test_driver_is_registered_with_its_family_and_twin(cls: type[Any]) -> None:
    """A driver is found through the entry points, and so are its family and its twin."""
    registered = {registry.driver_class(v) for v in registry.drivers().values()}
    assert cls in registered, f"{cls.__qualname__} is not in the couponlab.drivers entry points"
    spec = registry.driver_spec(cls)
    assert spec.family in registry.families(), f"family {spec.family!r} is not registered"
    assert registry.family_interface(spec.family)
    assert spec.twin is not None, f"{cls.__qualname__} names no twin"
    twin = registry.twin_spec(spec.twin)
    assert twin.schemes, f"twin {spec.twin!r} declares no address notation"


@pytest.mark.parametrize("cls", DRIVERS, ids=lambda c: c.__qualname__)
def test_driver_builds_offline_from_a_lab_entry(cls: type[Any], tmp_path: Path) -> None:
    """Construction from the bundled lab's entry (or the spec's example) opens no connection."""
    spec = registry.driver_spec(cls)
    lab = load_lab(sample_lab_path())
    paths = {
        f"{cls.__module__.rsplit('.', 1)[0]}:{cls.__name__}",
        f"{cls.__module__}:{cls.__name__}",
    }
    paths |= {name for name, value in registry.drivers().items() if value in paths}
    entries = [e for e in lab.devices if e.driver in paths]
    if entries:
        address = re.sub(r"(:|::)0(?=$|::|/)", r"\g<1>5999", entries[0].address)  # a real port
        entry = entries[0].model_copy(update={"name": "dut", "address": address})
    else:
        assert "address" in spec.example, f"{cls.__qualname__}: no sim-lab entry and no example"
        entry = DeviceEntry(name="dut", family=spec.family, driver=min(paths), **spec.example)
    device = cls.from_lab_entry(with_data_dir(entry, tmp_path))  # as make_device does
    assert device.name == "dut"
