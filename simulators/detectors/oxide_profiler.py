"""Twin of the oxide-thickness profiler: an optical reflectometer head on the x-y stage
that reads the oxide the world grew on the mounted coupon
(protocol: docs/protocols/oxide-profiler-scpi.md).

Noise depends on thickness: sigma(t) = sqrt(floor**2 + (rel * t)**2) * sqrt(ref_dwell / dwell),
so it falls with dwell. Readings outside [min_thickness, max_thickness] (about 30 nm to 20 um,
*typical* of a reflectometer) come back as NaN with an out-of-range flag: 1 below, 2 above.
Off the coupon (or with no coupon mounted) the head sees bare holder: flag 1.
"""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from couponlab.lab_settings import DeviceRef
from couponlab.labfile import DeviceEntry
from couponlab.registry import TwinSpec
from couponlab.simulators.detectors._acquisition import find_stage
from couponlab.simulators.detectors._scpi_twin import ScpiTwin, load_config
from couponlab.simulators.detectors._spot_head import SpotHeadDispatcher
from couponlab.simulators.world import World

FLAG_OK, FLAG_UNDER, FLAG_OVER = 0.0, 1.0, 2.0


class ProfilerConfig(BaseModel):
    """Parameters of the profiler twin (``twin_config``); defaults are *typical*."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stage: Annotated[str, DeviceRef("xy_stage")]
    """Device name of the stage the head rides on."""
    idn: str = "couponlab,OXR-20,SIM0002,1.0"
    head_offset_mm: tuple[float, float] = (0.0, 0.0)
    """Where the spot is relative to the stage position, mm."""
    min_thickness_m: float = Field(default=30e-9, gt=0)
    max_thickness_m: float = Field(default=20e-6, gt=0)
    noise_floor_m: float = Field(default=2e-9, ge=0)
    noise_relative: float = Field(default=0.01, ge=0)
    reference_dwell_s: float = Field(default=0.1, gt=0)
    dwell_range_s: tuple[float, float] = (0.01, 60.0)
    default_dwell_s: float = Field(default=0.1, gt=0)


class ProfilerHead:
    """The measurement physics (runs on the twins' thread)."""

    def __init__(
        self, world: World, config: ProfilerConfig, dispatcher_stage: str, name: str = "profiler"
    ) -> None:
        self.world = world
        self.config = config
        self.rng = world.rng_for(name)
        self.stage_name = dispatcher_stage

    def sample(self, t: float, x: float, y: float, dwell: float) -> tuple[float, ...]:
        """Return ``(thickness_m, flag)`` of the spot at work position (x, y)."""
        cfg = self.config
        coupon = find_stage(self.world, self.stage_name).coupon()
        u, v = x + cfg.head_offset_mm[0], y + cfg.head_offset_mm[1]
        if coupon is None or not (0 <= u <= coupon.length_mm and 0 <= v <= coupon.width_mm):
            return (math.nan, FLAG_UNDER)
        true = float(coupon.oxide_thickness_at(u, v)[0])
        sigma = math.hypot(cfg.noise_floor_m, cfg.noise_relative * true) * math.sqrt(
            cfg.reference_dwell_s / dwell
        )
        measured = true + sigma * float(self.rng.standard_normal())
        if measured < cfg.min_thickness_m:
            return (math.nan, FLAG_UNDER)
        if measured > cfg.max_thickness_m:
            return (math.nan, FLAG_OVER)
        return (measured, FLAG_OK)


def make_dispatcher(
    world: World, config: ProfilerConfig, name: str = "profiler"
) -> SpotHeadDispatcher:
    """Build the profiler's command set."""
    head = ProfilerHead(world, config, config.stage, name)
    d = SpotHeadDispatcher(
        world,
        config.idn,
        stage=config.stage,
        dwell_range=config.dwell_range_s,
        default_dwell=config.default_dwell_s,
        n_values=2,
        sample=head.sample,
    )
    d.register("CONF:RANG?", lambda a: f"{config.min_thickness_m:g},{config.max_thickness_m:g}")
    return d


async def start_twin(world: World, entry: DeviceEntry) -> ScpiTwin:
    """Start the profiler twin of ``entry`` (``twin_config.stage`` names its stage)."""
    config = load_config(ProfilerConfig, entry)
    twin = ScpiTwin(world, entry, make_dispatcher(world, config, entry.name))
    await twin.start()
    return twin


TWIN = TwinSpec(start_twin, ProfilerConfig, ("TCPIP", "socket"))
"""The profiler twin, as the ``couponlab.twins`` entry point names it."""


__all__ = ["TWIN", "ProfilerConfig", "ProfilerHead", "make_dispatcher", "start_twin"]
