"""Build and connect the devices a lab file lists."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ophyd_async.core import Device

from couponlab import registry
from couponlab.data import DEFAULT_OUT_DIR
from couponlab.errors import InputError
from couponlab.labfile import DeviceEntry, LabFile


def driver_class(entry: DeviceEntry) -> type[Any]:
    """Return the driver class registered as ``entry.driver`` (``couponlab.drivers`` entry
    points: its name or its ``"module:Class"``).

    Raises
    ------
    InputError
        Naming the device: not registered, not importable, or without ``from_lab_entry``.
    """
    try:
        cls = registry.driver_class(entry.driver)
    except registry.RegistryError as exc:
        raise InputError(entry.name, str(exc)) from None
    except (ImportError, AttributeError) as exc:
        raise InputError(entry.name, f"cannot import driver {entry.driver!r}: {exc}") from exc
    if not hasattr(cls, "from_lab_entry"):
        raise InputError(entry.name, f"{entry.driver} has no from_lab_entry() classmethod")
    return cls


def with_data_dir(entry: DeviceEntry, out_dir: str | Path | None = None) -> DeviceEntry:
    """Return ``entry`` with ``settings.data_dir`` set to ``out_dir`` (absolute) if its driver
    writes files (class attribute ``writes_files``) and the lab file names no folder.

    A folder in the lab file wins: a real camera writes where it can reach (a share).
    """
    if not getattr(driver_class(entry), "writes_files", False) or "data_dir" in entry.settings:
        return entry
    folder = Path(out_dir if out_dir is not None else DEFAULT_OUT_DIR).absolute()
    return entry.model_copy(update={"settings": {**entry.settings, "data_dir": str(folder)}})


def make_device(entry: DeviceEntry, *, out_dir: str | Path | None = None) -> Device:
    """Build (but do not connect) the ophyd-async device for ``entry``.

    Parameters
    ----------
    out_dir
        The runs' output folder (a Session's ``out_dir``; ``runs`` in the working directory
        when None): a device that writes files (curves, frames) writes them there, unless
        the lab entry's ``settings.data_dir`` names another folder.
    """
    device: Device = driver_class(entry).from_lab_entry(with_data_dir(entry, out_dir))
    return device


async def connect_lab(
    lab: LabFile, names: list[str] | None = None, *, mock: bool = False, timeout: float = 10.0
) -> dict[str, Device]:
    """Build and connect the devices of ``lab`` (all, or those in ``names``).

    Parameters
    ----------
    mock
        Connect in ophyd-async mock mode (no instrument needed).
    timeout
        Connection timeout per device, s.
    """
    entries = [lab.device(n) for n in names] if names else list(lab.devices)
    devices = {e.name: make_device(e) for e in entries}
    for dev in devices.values():
        await dev.connect(mock=mock, timeout=timeout)
    return devices


__all__ = ["connect_lab", "driver_class", "make_device", "with_data_dir"]
