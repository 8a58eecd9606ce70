"""The lab file: one YAML document that lists a lab's devices, validated by a pydantic schema.

Example::

    name: sim-lab
    world:                 # the simulated world's configuration (twins only)
      speedup: 1000
    devices:
      - name: furnace1
        family: gradient_furnace
        driver: couponlab.drivers.furnace:OpcUaGradientFurnace
        address: opc.tcp://127.0.0.1:0    # port 0: the twin picks a free port
        twin: true
        limits: {max_temperature: 1200 degC}
        settings: {zones: 8}
        twin_config: {length_mm: 300}

``couponlab twin serve`` starts the twins of the devices marked ``twin: true`` and writes
the *resolved* lab file (the real ports) for drivers and the HIL suite to use.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from couponlab.errors import InputError

FAMILIES = frozenset(
    {
        "gradient_furnace",
        "powder_feeder",
        "deposition_cell",
        "test_frame",
        "thermocouple_scanner",
        "oxide_profiler",
        "xrf_probe",
        "camera",
        "xy_stage",
    }
)
"""Instrument families known to couponlab; each has a typed interface in
:mod:`couponlab.interfaces` and a twin in :mod:`couponlab.simulators`."""

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class DeviceEntry(BaseModel):
    """One device of the lab.

    Attributes
    ----------
    name
        Python identifier-like name (lower case), unique in the lab; used as the ophyd name.
    family
        One of :data:`FAMILIES`.
    driver
        ``"module:Class"`` of the ophyd-async device class; the class provides
        ``from_lab_entry(entry)``.
    address
        Where the instrument is: ``opc.tcp://host:port``, ``socket://host:port``,
        ``/dev/ttyUSB0``, ``TCPIP::host::port::SOCKET`` ... as the driver documents.
    twin
        True when the address is served by a couponlab twin.
    limits
        Lab limits, tighter than or equal to the instrument's own, e.g.
        ``max_temperature: 1200 degC``; strings are parsed as pint quantities by the driver.
    settings
        Driver settings (number of zones, baud rate, framing ...).
    twin_config
        Parameters of the twin (ignored for real instruments).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    family: str
    driver: str
    address: str
    twin: bool = False
    limits: dict[str, Any] = Field(default_factory=dict)
    settings: dict[str, Any] = Field(default_factory=dict)
    twin_config: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(f"device name {v!r} must match {_NAME.pattern}")
        return v

    @field_validator("family")
    @classmethod
    def _family_known(cls, v: str) -> str:
        if v not in FAMILIES:
            raise ValueError(f"unknown family {v!r}; known: {', '.join(sorted(FAMILIES))}")
        return v

    @field_validator("driver")
    @classmethod
    def _driver_path(cls, v: str) -> str:
        if not _IMPORT_PATH.match(v):
            raise ValueError(f"driver {v!r} must be 'package.module:ClassName'")
        return v


class LabFile(BaseModel):
    """A whole lab: its name, the simulated world's configuration and its devices."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    world: dict[str, Any] = Field(default_factory=dict)
    devices: list[DeviceEntry]

    @model_validator(mode="after")
    def _unique_names(self) -> LabFile:
        seen: set[str] = set()
        for d in self.devices:
            if d.name in seen:
                raise ValueError(f"device name {d.name!r} appears twice")
            seen.add(d.name)
        return self

    def device(self, name: str) -> DeviceEntry:
        """Return the entry called ``name``; raise ``KeyError`` naming the known devices."""
        for d in self.devices:
            if d.name == name:
                return d
        raise KeyError(f"no device {name!r} in lab {self.name!r}; have {self.names()}")

    def by_family(self, family: str) -> list[DeviceEntry]:
        """Return the entries of one family, in file order."""
        return [d for d in self.devices if d.family == family]

    def names(self) -> list[str]:
        """Return the device names in file order."""
        return [d.name for d in self.devices]

    def with_addresses(self, addresses: dict[str, str]) -> LabFile:
        """Return a copy with some devices' addresses replaced (used for resolved twins)."""
        devices = [
            d.model_copy(update={"address": addresses[d.name]}) if d.name in addresses else d
            for d in self.devices
        ]
        return self.model_copy(update={"devices": devices})

    def dump(self, path: str | Path) -> None:
        """Write the lab file as YAML."""
        Path(path).write_text(yaml.safe_dump(self.model_dump(), sort_keys=False))


def parse_lab(text: str, source: str = "<string>") -> LabFile:
    """Parse and validate lab-file YAML; raise :class:`InputError` with every problem."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError("", f"{source} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise InputError("", f"{source}: a lab file is a mapping with 'name' and 'devices'")
    try:
        return LabFile.model_validate(data)
    except ValidationError as exc:
        raise InputError("", f"{source} is not a valid lab file:\n{exc}") from exc


def load_lab(path: str | Path) -> LabFile:
    """Read and validate the lab file at ``path``."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise InputError("", f"cannot read lab file {p}: {exc}") from exc
    return parse_lab(text, str(p))


__all__ = ["FAMILIES", "DeviceEntry", "LabFile", "load_lab", "parse_lab"]
