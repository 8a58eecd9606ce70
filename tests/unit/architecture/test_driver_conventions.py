"""Conventions of every driver class, enforced by a test rather than by review.

Every class in couponlab.drivers with a ``from_lab_entry`` classmethod must: have a real
docstring, document every public method, offer the LabDevice methods as coroutines
(``identify``, ``state``, ``safe_state``, ``disconnect``), be used by the bundled sim lab
(so it has a twin), and be constructible from a lab entry without touching the network.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from typing import Any

import pytest

import couponlab.drivers
from couponlab.cli import sample_lab_path
from couponlab.labfile import load_lab


def _driver_classes() -> list[type[Any]]:
    found: dict[str, type[Any]] = {}
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
def test_driver_is_in_the_sim_lab_and_builds_offline(cls: type[Any]) -> None:
    """Every driver has a twin in the bundled lab, and construction opens no connection."""
    path = f"{cls.__module__.rsplit('.', 1)[0]}:{cls.__name__}"
    lab = load_lab(sample_lab_path())
    entries = [e for e in lab.devices if e.driver in (path, f"{cls.__module__}:{cls.__name__}")]
    assert entries, f"{cls.__qualname__} is not used by any device of the bundled sim lab"
    address = re.sub(r"(:|::)0(?=$|::|/)", r"\g<1>5999", entries[0].address)  # a real port
    entry = entries[0].model_copy(update={"name": "dut", "address": address})
    device = cls.from_lab_entry(entry)
    assert device.name == "dut"
