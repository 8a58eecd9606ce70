"""Instrument families, drivers and twins, registered through entry points.

A package (couponlab itself, or a vendor's own) registers in its ``pyproject.toml``::

    [project.entry-points."couponlab.families"]
    pyrometer = "mypkg.pyrometer:Pyrometer"            # the family's typed interface

    [project.entry-points."couponlab.drivers"]
    acme_pyrometer = "mypkg.pyrometer:AcmePyrometer"   # a driver class with a ``lab_spec``

    [project.entry-points."couponlab.twins"]
    acme_pyrometer = "mypkg.pyrometer_twin:TWIN"       # a :class:`TwinSpec`

A driver class names its family, its settings and limits models and its twin in a
:class:`DriverSpec` (``lab_spec`` class attribute), so a second vendor in a family, speaking
another protocol with its own twin, is one more driver and one more twin: core is not edited.
A lab file's ``driver:`` is a registered name or its ``"module:Class"`` value. Entry points
are read from the installed metadata: after adding one, re-run ``pip install -e .``.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from pydantic import BaseModel

from couponlab.lab_settings import DeviceLimits, DeviceSettings

FAMILIES_GROUP = "couponlab.families"
DRIVERS_GROUP = "couponlab.drivers"
TWINS_GROUP = "couponlab.twins"
WORLD_GROUP = "couponlab.world"


@dataclass(frozen=True)
class DriverSpec:
    """What a driver class tells the lab-file loader about itself (its ``lab_spec``).

    Attributes
    ----------
    family
        The instrument family it implements (a name registered in ``couponlab.families``).
    settings, limits
        Its models of the lab entry's ``settings`` and ``limits`` (unknown keys refused).
    twin
        Name of its twin in ``couponlab.twins`` (None: no twin; ``twin: true`` is refused).
    example
        Lab-entry fields (``address``, ``settings``, ``limits``) of a valid entry, used to
        build the driver offline in the conventions test when the bundled lab lacks it.
    """

    family: str
    settings: type[DeviceSettings] = DeviceSettings
    limits: type[DeviceLimits] = DeviceLimits
    twin: str | None = None
    example: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TwinSpec:
    """A twin, as its entry point in ``couponlab.twins`` names it.

    Attributes
    ----------
    start
        ``async def start(world, entry) -> RunningTwin`` (serves until its ``stop()``).
    config
        Model of the entry's ``twin_config`` (unknown keys refused; fields typed with
        :func:`~couponlab.lab_settings.device_ref` name other devices, which must be twins
        of the same lab).
    schemes
        Address notations it serves, e.g. ``("TCPIP", "socket")`` or ``("opc.tcp",)``.
    check
        ``check(entry, config) -> [(key, problem), ...]``: what the lab-file check finds
        wrong between the entry and its validated ``twin_config`` (e.g. a login the twin has
        no account for), reported like any other problem of the file. None: nothing.
    """

    start: Callable[[Any, Any], Awaitable[Any]]
    config: type[BaseModel] | None = None
    schemes: tuple[str, ...] = ()
    check: Callable[[Any, Any], list[tuple[str, str]]] | None = None


class RegistryError(LookupError):
    """A name that no installed package registered (the message lists the known ones)."""


@cache
def _group(group: str) -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=group)}


def _load(value: str) -> Any:
    module, _, attr = value.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def families() -> dict[str, str]:
    """Return the registered families: name -> ``"module:Interface"``."""
    return dict(_group(FAMILIES_GROUP))


def drivers() -> dict[str, str]:
    """Return the registered drivers: name -> ``"module:Class"``."""
    return dict(_group(DRIVERS_GROUP))


def twins() -> dict[str, str]:
    """Return the registered twins: name -> ``"module:SPEC"``."""
    return dict(_group(TWINS_GROUP))


def family_interface(name: str) -> type[Any]:
    """Return the typed interface of family ``name``."""
    known = _group(FAMILIES_GROUP)
    if name not in known:
        raise RegistryError(f"unknown family {name!r}; registered: {', '.join(sorted(known))}")
    interface: type[Any] = _load(known[name])
    return interface


def driver_class(ref: str) -> type[Any]:
    """Return the driver class registered as ``ref`` (its name or its ``"module:Class"``).

    Raises
    ------
    RegistryError
        Nothing registered under that name or value.
    ImportError, AttributeError
        The registered class cannot be imported.
    """
    known = _group(DRIVERS_GROUP)
    value = known.get(ref)
    if value is None and ref in known.values():
        value = ref
    if value is None:
        value = _registered_alias(ref, known)
    if value is None:
        raise RegistryError(
            f"unknown driver {ref!r}: not registered in {DRIVERS_GROUP!r} "
            "(a new entry point needs `pip install -e .` again)"
        )
    cls: type[Any] = _load(value)
    return cls


def _registered_alias(ref: str, known: dict[str, str]) -> str | None:
    """Return the registered value that ``ref`` (another import path of it) points at."""
    module, sep, attr = ref.partition(":")
    if not sep or not module.startswith(tuple(v.partition(":")[0] for v in known.values())):
        return None
    try:
        target = _load(ref)
    except (ImportError, AttributeError):
        return None
    for value in known.values():
        if value.partition(":")[2] == attr and _load(value) is target:
            return value
    return None


def drivers_of(family: str) -> list[str]:
    """Return the names of the registered drivers of ``family`` (imports every driver)."""
    found = []
    for name, value in sorted(_group(DRIVERS_GROUP).items()):
        try:
            spec = getattr(_load(value), "lab_spec", None)
        except (ImportError, AttributeError):
            continue
        if isinstance(spec, DriverSpec) and spec.family == family:
            found.append(name)
    return found


def driver_spec(cls: type[Any]) -> DriverSpec:
    """Return the :class:`DriverSpec` of a driver class (its ``lab_spec``)."""
    spec = getattr(cls, "lab_spec", None)
    if not isinstance(spec, DriverSpec):
        raise RegistryError(f"{cls.__module__}:{cls.__qualname__} has no lab_spec (DriverSpec)")
    return spec


def twin_spec(name: str) -> TwinSpec:
    """Return the :class:`TwinSpec` registered as ``name``."""
    known = _group(TWINS_GROUP)
    if name not in known:
        raise RegistryError(f"no twin {name!r} registered; registered: {', '.join(sorted(known))}")
    spec = _load(known[name])
    if not isinstance(spec, TwinSpec):
        raise RegistryError(f"twin entry point {name!r} = {known[name]} is not a TwinSpec")
    return spec


def world_config() -> type[BaseModel]:
    """Return the model of a lab file's ``world:`` section (the simulated world's)."""
    known = _group(WORLD_GROUP)
    if "config" not in known:
        raise RegistryError(f"no world config registered in {WORLD_GROUP!r}")
    model: type[BaseModel] = _load(known["config"])
    return model


__all__ = [
    "DRIVERS_GROUP",
    "FAMILIES_GROUP",
    "TWINS_GROUP",
    "WORLD_GROUP",
    "DriverSpec",
    "RegistryError",
    "TwinSpec",
    "driver_class",
    "driver_spec",
    "drivers",
    "drivers_of",
    "families",
    "family_interface",
    "twin_spec",
    "twins",
    "world_config",
]
