"""Twin of the XRF composition probe: a spot on the x-y stage that counts the
characteristic X-rays of each element of the mounted coupon's as-built composition
(protocol: docs/protocols/xrf-probe-scpi.md).

Each element's counts are Poisson with mean ``count_rate * dwell * fraction``; the reported
fraction is that element's share of the counts, so its relative error falls as
1/sqrt(counts), i.e. as 1/sqrt(dwell). A measurement needs the X-ray source on.
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
from couponlab.simulators.scpi import ILLEGAL_PARAMETER, SETTINGS_CONFLICT, ScpiError
from couponlab.simulators.world import World


class XrfConfig(BaseModel):
    """Parameters of the XRF twin (``twin_config``); defaults are *typical*."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stage: Annotated[str, DeviceRef("xy_stage")]
    """Device name of the stage the probe rides on."""
    idn: str = "couponlab,XRF-5,SIM0003,1.0"
    elements: tuple[str, ...] = ("Cr", "Ni", "Fe", "Al")
    """Elements the probe quantifies."""
    count_rate_cps: float = Field(default=2.0e4, gt=0)
    """Total counts per second on a coupon."""
    head_offset_mm: tuple[float, float] = (0.0, 0.0)
    dwell_range_s: tuple[float, float] = (0.1, 600.0)
    default_dwell_s: float = Field(default=1.0, gt=0)


class XrfHead:
    """Source state and counting physics (runs on the twins' thread)."""

    def __init__(self, world: World, config: XrfConfig, name: str = "xrf") -> None:
        self.world = world
        self.config = config
        self.rng = world.rng_for(name)
        self.source_on = False

    def ready(self) -> None:
        """Refuse to measure with the source off."""
        if not self.source_on:
            raise ScpiError(SETTINGS_CONFLICT, "Settings conflict; X-ray source is off")

    def sample(self, t: float, x: float, y: float, dwell: float) -> tuple[float, ...]:
        """Return ``(total_counts, fraction_1, ..., fraction_n)`` at work position (x, y)."""
        cfg = self.config
        coupon = find_stage(self.world, cfg.stage).coupon()
        u, v = x + cfg.head_offset_mm[0], y + cfg.head_offset_mm[1]
        n = len(cfg.elements)
        if coupon is None or not (0 <= u <= coupon.length_mm and 0 <= v <= coupon.width_mm):
            return (0.0, *([math.nan] * n))
        comp = coupon.composition_at(u, v)
        means = [
            cfg.count_rate_cps * dwell * float(comp[e][0]) if e in comp else 0.0
            for e in cfg.elements
        ]
        counts = [float(c) for c in self.rng.poisson(means)]
        total = sum(counts)
        if total == 0:
            return (0.0, *([math.nan] * n))
        return (total, *(c / total for c in counts))


def make_dispatcher(
    world: World, config: XrfConfig, name: str = "xrf"
) -> tuple[SpotHeadDispatcher, XrfHead]:
    """Build the probe's command set and its head model."""
    head = XrfHead(world, config, name)
    d = SpotHeadDispatcher(
        world,
        config.idn,
        stage=config.stage,
        dwell_range=config.dwell_range_s,
        default_dwell=config.default_dwell_s,
        n_values=1 + len(config.elements),
        sample=head.sample,
        ready=head.ready,
    )

    def set_source(args: list[str]) -> None:
        if len(args) != 1 or args[0].upper() not in ("ON", "OFF", "1", "0"):
            raise ScpiError(ILLEGAL_PARAMETER, "Illegal parameter value; SOUR:STAT ON|OFF")
        head.source_on = args[0].upper() in ("ON", "1")
        if not head.source_on:
            d.abort()

    d.register("SOUR:STAT", set_source)
    d.register("SOUR:STAT?", lambda a: "1" if head.source_on else "0")
    d.register("CONF:ELEM?", lambda a: ",".join(config.elements))
    return d, head


async def start_twin(world: World, entry: DeviceEntry) -> ScpiTwin:
    """Start the XRF twin of ``entry`` (``twin_config.stage`` names its stage)."""
    config = load_config(XrfConfig, entry)
    dispatcher, head = make_dispatcher(world, config, entry.name)
    twin = ScpiTwin(world, entry, dispatcher, head)
    await twin.start()
    return twin


TWIN = TwinSpec(start_twin, XrfConfig, ("TCPIP", "socket"))
"""The XRF twin, as the ``couponlab.twins`` entry point names it."""


__all__ = ["TWIN", "XrfConfig", "XrfHead", "make_dispatcher", "start_twin"]
