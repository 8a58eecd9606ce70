"""A small twin lab for the detector tests: stage, profiler, XRF probe, thermocouple scanner
(and camera), twins on their own thread, drivers on the test's loop."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from couponlab.labfile import DeviceEntry, LabFile
from couponlab.twins import BackgroundTwins

VISA = "TCPIP::127.0.0.1::0::SOCKET"
POSITIONS = [float(x) for x in np.linspace(0.0, 60.0, 12)]


def detector_lab(
    *, speedup: float = 1e4, seed: int = 3, camera_dir: Path | None = None, furnace: str = "hot"
) -> LabFile:
    """Return a lab file with the detector twins (camera only when ``camera_dir`` is set)."""
    devices: list[dict[str, Any]] = [
        {
            "name": "stage",
            "family": "xy_stage",
            "driver": "couponlab.drivers.stage:ScpiXyStage",
            "address": VISA,
            "twin": True,
            "limits": {"x": ["-10 mm", "150 mm"], "max_velocity": "40 mm/s"},
        },
        {
            "name": "profiler",
            "family": "oxide_profiler",
            "driver": "couponlab.drivers.detectors:ScpiOxideProfiler",
            "address": VISA,
            "twin": True,
            "twin_config": {"stage": "stage"},
        },
        {
            "name": "xrf",
            "family": "xrf_probe",
            "driver": "couponlab.drivers.detectors:ScpiXrfProbe",
            "address": VISA,
            "twin": True,
            "settings": {"elements": ["Cr", "Ni"]},
            "twin_config": {"stage": "stage", "elements": ["Cr", "Ni", "Fe", "Al"]},
        },
        {
            "name": "tcs",
            "family": "thermocouple_scanner",
            "driver": "couponlab.drivers.detectors:ScpiThermocoupleScanner",
            "address": VISA,
            "twin": True,
            "settings": {"positions_mm": POSITIONS},
            "twin_config": {"furnace": furnace},
        },
    ]
    if camera_dir is not None:
        devices.append(
            {
                "name": "cam",
                "family": "camera",
                "driver": "couponlab.drivers.detectors:ScpiCamera",
                "address": VISA,
                "twin": True,
                "settings": {"data_dir": str(camera_dir)},
                "twin_config": {"stage": "stage"},
            }
        )
    # the mixing law (plain parabolic growth): these tests check the instruments, and their
    # expectations (e.g. NiO beyond the profiler's range over the hot third) were set with it
    world = {"speedup": speedup, "seed": seed, "oxidation": {"law": "mixing"}}
    return LabFile.model_validate({"name": "detectors", "world": world, "devices": devices})


class LinearFurnace:
    """A stand-in furnace model: T(x) = hot_k - slope * x along the tube."""

    def __init__(self, hot_k: float = 1373.15, slope_k_per_mm: float = 2.0) -> None:
        self.hot_k = hot_k
        self.slope = slope_k_per_mm
        self.carrier_offset_mm = 10.0

    def temperature_along(self, x_mm: Any) -> Any:
        """Return the temperature (K) at ``x_mm`` along the tube."""
        return self.hot_k - self.slope * np.asarray(x_mm, float)


def entry(lab: LabFile, name: str) -> DeviceEntry:
    """Return the resolved entry of ``name``."""
    return lab.device(name)


COUPON = "C-001"


def grow_coupon(world: Any, coupon_id: str = COUPON, hours: float = 100.0) -> None:
    """Print a graded Cr-Ni coupon (60 x 10 mm) and oxidise it in a 1100 -> 620 degC
    gradient for ``hours`` (run on the twins' thread)."""
    from couponlab.simulators.world import Coupon

    c = Coupon(coupon_id, length_mm=60.0, width_mm=10.0)
    cr = np.linspace(0.1, 0.4, c.x_mm.size)
    c.set_composition({"Cr": cr, "Ni": 1.0 - cr})
    world.add_coupon(c)
    world.place(coupon_id, LinearFurnace(1373.15, 8.0), "oven", 0.0)
    world.advance(hours * 3600.0)
    world.place(coupon_id, None)


__all__ = [
    "COUPON",
    "POSITIONS",
    "BackgroundTwins",
    "LinearFurnace",
    "detector_lab",
    "entry",
    "grow_coupon",
]
