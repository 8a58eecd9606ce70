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

from couponlab import registry
from couponlab.credentials import secret_keys_in
from couponlab.errors import InputError
from couponlab.lab_settings import problems, references

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class DeviceEntry(BaseModel):
    """One device of the lab.

    Attributes
    ----------
    name
        Python identifier-like name (lower case), unique in the lab; used as the ophyd name.
    family
        An instrument family registered in the ``couponlab.families`` entry points.
    driver
        A driver registered in the ``couponlab.drivers`` entry points: its name
        (``opcua_gradient_furnace``) or its ``"module:Class"``; the class provides
        ``from_lab_entry(entry)`` and a ``lab_spec`` whose models check ``settings``,
        ``limits`` and (with ``twin: true``) ``twin_config``.
    address
        Where the instrument is: ``opc.tcp://host:port``, ``socket://host:port``,
        ``/dev/ttyUSB0``, ``TCPIP::host::port::SOCKET`` ... as the driver documents.
    twin
        True when the address is served by a couponlab twin.
    limits
        Lab limits, tighter than or equal to the instrument's own, e.g.
        ``max_temperature: 1200 degC`` (pint strings or numbers in the documented unit),
        checked by the driver's limits model (dimension, sign, ordering).
    settings
        Driver settings (number of zones, ``timeout_s``, framing ...), checked by the
        driver's settings model.
    twin_config
        Parameters of the twin, checked by the twin's model (ignored for real instruments).
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


class StoreSettings(BaseModel):
    """Where a lab's runs are stored when not in the output folder: a Tiled server.

    Without a ``store`` section every session keeps an embedded store in its output folder
    (:mod:`couponlab.store`). The API key never stands in the lab file (which is written into
    every run's start document): name the environment variable or the file that holds it.

    Example::

        store:
          uri: http://tiled.lab.example:8000/api
          api_key_env: TILED_API_KEY        # or api_key_file: ~/.config/tiled/key

    Attributes
    ----------
    uri
        The Tiled server's URI (``http://`` or ``https://``).
    api_key_env
        The environment variable holding the server's API key.
    api_key_file
        A file whose first line is the server's API key.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    uri: str
    api_key_env: str | None = None
    api_key_file: str | None = None

    @field_validator("uri")
    @classmethod
    def _uri_ok(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"store uri {v!r} must start with http:// or https://")
        return v

    @model_validator(mode="after")
    def _one_key_source(self) -> StoreSettings:
        if self.api_key_env is not None and self.api_key_file is not None:
            raise ValueError("give api_key_env or api_key_file, not both")
        return self


class LabFile(BaseModel):
    """A whole lab: its name, the simulated world's configuration and its devices."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    world: dict[str, Any] = Field(default_factory=dict)
    devices: list[DeviceEntry]
    store: StoreSettings | None = None
    """A Tiled server for the runs (None: an embedded store in each output folder)."""
    twin_control: str | None = None
    """Control channel (``tcp://127.0.0.1:PORT``) of the twin process that already serves
    this lab's ``twin: true`` devices; set in the resolved lab file that ``couponlab twin
    serve --resolved`` writes. A lab with it is opened without starting twins."""

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


class LabFileError(InputError):
    """A lab file that cannot be used: one line naming the file, the device and the key.

    Attributes
    ----------
    source
        The file (or ``"<string>"``).
    device
        The device concerned ("" for the file as a whole).
    key
        The key concerned, dotted (``limits.max_temperature``, ``twin_config.stage``).
    problem
        What is wrong, in words a user can act on.
    more
        How many further problems the file has (reported after the first one is fixed).
    """

    def __init__(self, source: str, device: str, key: str, problem: str, *, more: int = 0) -> None:
        where = f"device {device!r}: " if device else ""
        what = f"{key}: " if key else ""
        tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        super().__init__("", f"{source}: {where}{what}{problem}{tail}")
        self.source = source
        self.device = device
        self.key = key
        self.problem = problem
        self.more = more


Problem = tuple[str, str, str]
"""(device, key, problem) of a lab file."""


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _raise_first(source: str, found: list[Problem]) -> None:
    if found:
        device, key, problem = found[0]
        raise LabFileError(source, device, key, _one_line(problem), more=len(found) - 1)


def _schema_problems(data: dict[str, Any]) -> list[Problem]:
    devices = data.get("devices")
    if isinstance(devices, list):
        names = [d.get("name") for d in devices if isinstance(d, dict)]
        twice = [n for i, n in enumerate(names) if n is not None and n in names[:i]]
        if twice:
            return [(str(twice[0]), "name", "this device name appears twice")]
    try:
        LabFile.model_validate(data)
    except ValidationError as exc:
        found: list[Problem] = []
        for key, problem in problems(exc, LabFile):
            parts = key.split(".")
            device = ""
            if parts[0] == "devices" and len(parts) > 1 and parts[1].isdigit():
                i = int(parts[1])
                raw = devices[i] if isinstance(devices, list) and i < len(devices) else None
                name = raw.get("name") if isinstance(raw, dict) else None
                device = str(name) if name is not None else f"#{i + 1}"
                parts = parts[2:]
                if not parts:
                    parts = ["devices"]
                elif parts == ["name"] and problem == "missing (required)":
                    device = f"#{i + 1}"
            found.append((device, ".".join(parts), problem))
        return found
    return []


INLINE_SECRET = (
    "a lab file never holds a credential: name an environment variable (password_env) "
    "or a file outside the repository (password_file) instead"
)
"""The problem reported for a password (or secret, token ...) written in a lab file."""


def check_lab(lab: LabFile) -> list[Problem]:
    """Return every problem of ``lab`` beyond its schema: credentials written in it,
    families and drivers that no package registered, each driver's ``settings`` and
    ``limits`` (its own models), each
    twin's ``twin_config``, address and the devices it references, and the ``world``.

    Imports the drivers a lab names, and (only for ``twin: true`` devices) their twins'
    specs through the ``couponlab.twins`` entry points.
    """
    found: list[Problem] = []
    families = registry.families()
    by_name = {d.name: d for d in lab.devices}
    for entry in lab.devices:
        sections = {"limits": entry.limits, "settings": entry.settings}
        sections["twin_config"] = entry.twin_config
        for key in secret_keys_in(sections):
            found.append((entry.name, key, INLINE_SECRET))
        if entry.family not in families:
            found.append(
                (
                    entry.name,
                    "family",
                    f"unknown family {entry.family!r}; registered: {', '.join(sorted(families))}",
                )
            )
        try:
            spec = registry.driver_spec(registry.driver_class(entry.driver))
        except registry.RegistryError as exc:
            same = registry.drivers_of(entry.family)
            known = f"; {entry.family} drivers: {', '.join(same)}" if same else ""
            found.append((entry.name, "driver", f"{exc}{known}"))
            continue
        except (ImportError, AttributeError) as exc:
            found.append((entry.name, "driver", f"cannot import {entry.driver!r}: {exc}"))
            continue
        if spec.family != entry.family:
            found.append(
                (
                    entry.name,
                    "driver",
                    f"{entry.driver} is a {spec.family} driver, not a {entry.family}",
                )
            )
        for section in (spec.settings, spec.limits):
            _, errs = section.validate_section(getattr(entry, section.lab_section))
            found += [(entry.name, key, problem) for key, problem in errs]
        if entry.twin:
            found += _twin_problems(entry, spec, by_name)
    if any(d.twin for d in lab.devices):
        found += _world_problems(lab)
    return found


def _twin_problems(
    entry: DeviceEntry, spec: registry.DriverSpec, by_name: dict[str, DeviceEntry]
) -> list[Problem]:
    if spec.twin is None:
        return [(entry.name, "twin", f"{entry.driver} has no twin; set twin: false")]
    try:
        twin = registry.twin_spec(spec.twin)
    except (registry.RegistryError, ImportError, AttributeError) as exc:
        return [(entry.name, "twin", str(exc))]
    found: list[Problem] = []
    address = _twin_address_problem(entry.address, twin.schemes)
    if address:
        found.append((entry.name, "address", address))
    if twin.config is None:
        if entry.twin_config:
            found.append((entry.name, "twin_config", "this twin takes no twin_config"))
        return found
    try:
        config = twin.config.model_validate(entry.twin_config)
    except ValidationError as exc:
        return found + [(entry.name, f"twin_config.{k}", p) for k, p in problems(exc, twin.config)]
    if twin.check is not None:
        found += [(entry.name, key, problem) for key, problem in twin.check(entry, config)]
    for key, name, ref in references(config):
        target = by_name.get(name)
        if target is None:
            problem = f"no device {name!r} in this lab; have {', '.join(by_name)}"
        elif ref.families and target.family not in ref.families:
            wanted = " or ".join(ref.families)
            problem = f"{name!r} is a {target.family}; expected a {wanted} device"
        elif not target.twin:
            problem = f"{name!r} is not a twin (twin: true) of this lab"
        else:
            continue
        found.append((entry.name, f"twin_config.{key}", problem))
    return found


_TWIN_ADDRESS = {
    "TCPIP": re.compile(r"^TCPIP0?::(?P<host>[^:]+)::(?P<port>\d+)::SOCKET$", re.IGNORECASE),
    "socket": re.compile(r"^socket://(?P<host>[^:/]+):(?P<port>\d+)/?$"),
    "opc.tcp": re.compile(r"^opc\.tcp://(?P<host>[^:/]+):(?P<port>\d+)/?$"),
}
_EXAMPLE = {
    "TCPIP": "TCPIP::127.0.0.1::0::SOCKET",
    "socket": "socket://127.0.0.1:0",
    "opc.tcp": "opc.tcp://127.0.0.1:0",
}


def _twin_address_problem(address: str, schemes: tuple[str, ...]) -> str:
    """Return why a twin cannot serve ``address`` ("" when it can)."""
    if not schemes:
        return ""
    for scheme in schemes:
        m = _TWIN_ADDRESS[scheme].match(address)
        if m is None:
            continue
        if m["host"] not in ("127.0.0.1", "localhost"):
            return (
                f"{address!r}: write 127.0.0.1; twins listen on 127.0.0.1 whatever the lab "
                "file says (couponlab twin serve --bind HOST for another interface)"
            )
        if int(m["port"]) > 65535:
            return f"{address!r}: port {m['port']} is above 65535"
        return ""
    forms = " or ".join(_EXAMPLE[s] for s in schemes)
    return f"{address!r} is not an address this twin serves ({forms}; port 0 = a free port)"


def _world_problems(lab: LabFile) -> list[Problem]:
    try:
        model = registry.world_config()
    except (registry.RegistryError, ImportError, AttributeError) as exc:
        return [("", "world", str(exc))]
    try:
        model.model_validate(lab.world)
    except ValidationError as exc:
        return [("", f"world.{k}", p) for k, p in problems(exc, model)]
    return []


def parse_lab(text: str, source: str = "<string>") -> LabFile:
    """Parse and validate lab-file YAML.

    Raises
    ------
    LabFileError
        The first problem, on one line naming ``source``, the device and the key (with the
        number of further problems).
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        raise LabFileError(
            source, "", where, f"not valid YAML: {_one_line(str(getattr(exc, 'problem', exc)))}"
        ) from None
    if not isinstance(data, dict):
        raise LabFileError(source, "", "", "a lab file is a mapping with 'name' and 'devices'")
    _raise_first(source, _schema_problems(data))
    lab = LabFile.model_validate(data)
    _raise_first(source, check_lab(lab))
    return lab


def load_lab(path: str | Path) -> LabFile:
    """Read and validate the lab file at ``path`` (see :func:`parse_lab`)."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise LabFileError(
            str(p), "", "", f"cannot read lab file: {exc.strerror or exc}"
        ) from None
    return parse_lab(text, str(p))


__all__ = [
    "DeviceEntry",
    "LabFile",
    "LabFileError",
    "StoreSettings",
    "check_lab",
    "load_lab",
    "parse_lab",
]
