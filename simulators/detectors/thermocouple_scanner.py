"""Twin of the thermocouple scanner (Keithley 2700 class): type-K thermocouples placed along
the coupon carrier in the furnace, read through a multiplexer over SCPI
(protocol: docs/protocols/thermocouple-scanner-scpi.md).

Each channel reads the furnace's true local temperature at its position plus three errors
(sources: docs/science/oxidation-world.md):

- the thermocouple's tolerance (IEC 60584-1 type K, class 1: +/-1.5 K or +/-0.004 |t|,
  class 2: +/-2.5 K or +/-0.0075 |t|, whichever is larger): each wire is a fixed fraction
  ``u`` of that band, drawn uniformly in [-1, 1] once per channel;
- drift with use: each channel drifts at its own rate (normal, mean 0, sigma
  ``drift_sigma_k_per_h`` at 1000 degC, scaling linearly from 0 at ``drift_onset_c``),
  accumulated in virtual time while hot;
- the scanner's own channel error (sigma ``offset_error_sigma_k``) and noise per reading.

It is independent of the furnace's own zone thermocouples: it asks the furnace
twin (found by name in the world) for ``temperature_along(x_mm)`` at the carrier's position.

Where the carrier sits along the tube: the furnace model's ``carrier_offset_mm`` (or
``offset_mm``, as the gradient-furnace twin names it) if it has one, else the offset of a
coupon the furnace holds, else ``carrier_offset_mm`` of this config.
Without the furnace in the world the thermocouples read the ambient temperature.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Annotated

import numpy as np
import simpy
from pydantic import BaseModel, ConfigDict, Field

from couponlab.lab_settings import DeviceRef
from couponlab.labfile import DeviceEntry
from couponlab.registry import TwinSpec
from couponlab.simulators.detectors._scpi_twin import ScpiTwin, load_config
from couponlab.simulators.line_faults import FamilyFaults, channel_faults
from couponlab.simulators.scpi import ILLEGAL_PARAMETER, ScpiDispatcher, ScpiError
from couponlab.simulators.world import FloatArray, World

OVERFLOW = 9.9e37
"""What an open (broken) thermocouple reads, as on Keithley scanners."""
FIRST_CHANNEL = 101


class ScannerConfig(BaseModel):
    """Parameters of the scanner twin (``twin_config``); defaults are *typical*."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    furnace: Annotated[str, DeviceRef("gradient_furnace")] = ""
    """Device name of the furnace whose carrier carries the thermocouples."""
    positions_mm: tuple[float, ...] = tuple(float(x) for x in np.linspace(0.0, 60.0, 12))
    """Thermocouple positions along the carrier, mm from the coupon's start (>= 1)."""
    idn: str = "couponlab,TCS-2700,SIM0004,1.0"
    tolerance_class: int = Field(default=1, ge=1, le=2)
    """IEC 60584-1 tolerance class of the type-K thermocouples (1 or 2)."""
    drift_sigma_k_per_h: float = Field(default=0.02, ge=0)
    """Spread of the drift rates at 1000 degC, K/h (*typical*: several K after long use)."""
    drift_onset_c: float = 800.0
    """Below this a thermocouple does not drift, degC."""
    offset_error_sigma_k: float = Field(default=0.5, ge=0)
    """The scanner's own error per channel (reference junction, gain), K."""
    noise_sigma_k: float = Field(default=0.1, ge=0)
    age_step_s: float = Field(default=600.0, gt=0)
    """Virtual-time step of the drift integration, s."""
    carrier_offset_mm: float = 0.0
    """Carrier position along the tube when the furnace tells none, mm."""


class ScannerModel:
    """Thermocouples, their errors and faults (touch only on the twins' thread)."""

    def __init__(self, world: World, config: ScannerConfig, name: str = "scanner") -> None:
        if not config.positions_mm:
            raise ValueError("a scanner needs at least one thermocouple position")
        self.world = world
        self.config = config
        self.positions = np.asarray(config.positions_mm, float)
        n = self.positions.size
        self.rng = world.rng_for(name)
        self.offset_error_k = self.rng.normal(0.0, config.offset_error_sigma_k, n)
        self.tolerance_fraction = self.rng.uniform(-1.0, 1.0, n)
        """Where each thermocouple sits in its tolerance band (-1..1)."""
        self.drift_rate_k_per_h = self.rng.normal(0.0, config.drift_sigma_k_per_h, n)
        """Drift rate of each thermocouple at 1000 degC, K/h."""
        self.drift_k = np.zeros(n)
        """Drift accumulated so far, K."""
        world.env.process(self._age())
        self.broken: set[int] = set()
        """Indices (0-based) of open thermocouples."""
        self.unit = "C"

    def break_channel(self, index: int, broken: bool = True) -> None:
        """Open (or repair) the thermocouple at ``index`` (0-based): fault injection."""
        if broken:
            self.broken.add(index)
        else:
            self.broken.discard(index)

    def carrier_offset_mm(self) -> float:
        """Return where the coupon's start sits along the furnace tube, mm."""
        furnace = self.world.instruments.get(self.config.furnace) if self.config.furnace else None
        if furnace is None:
            return self.config.carrier_offset_mm
        for attr in ("carrier_offset_mm", "offset_mm"):
            own = getattr(furnace, attr, None)
            if isinstance(own, int | float) and not isinstance(own, bool):
                return float(own)
        for c in self.world.coupons.values():
            if c.holder is furnace:
                return c.offset_mm
        return self.config.carrier_offset_mm

    def true_temperature_k(self) -> FloatArray:
        """Return the true temperature at every thermocouple, K."""
        furnace = self.world.instruments.get(self.config.furnace) if self.config.furnace else None
        if furnace is None or not hasattr(furnace, "temperature_along"):
            return np.full(self.positions.shape, self.world.config.ambient_temperature_c + 273.15)
        t: FloatArray = np.asarray(
            furnace.temperature_along(self.carrier_offset_mm() + self.positions), float
        )
        return t

    def tolerance_k(self, temperature_c: FloatArray) -> FloatArray:
        """Return the IEC 60584-1 type-K tolerance (K) of the configured class at degC."""
        fixed, rel = (1.5, 0.004) if self.config.tolerance_class == 1 else (2.5, 0.0075)
        out: FloatArray = np.maximum(fixed, rel * np.abs(temperature_c))
        return out

    def _age(self) -> Generator[simpy.Event, None, None]:
        """SimPy process: accumulate each thermocouple's drift while it is hot."""
        dt = self.config.age_step_s
        while True:
            yield self.world.env.timeout(dt)
            t_c = self.true_temperature_k() - 273.15
            scale = np.clip(
                (t_c - self.config.drift_onset_c) / (1000.0 - self.config.drift_onset_c), 0, None
            )
            self.drift_k += self.drift_rate_k_per_h * scale * dt / 3600.0

    def error_k(self, true_k: FloatArray) -> FloatArray:
        """Return every channel's error (K) at the true temperatures ``true_k`` (no noise)."""
        tolerance = self.tolerance_fraction * self.tolerance_k(true_k - 273.15)
        out: FloatArray = tolerance + self.drift_k + self.offset_error_k
        return out

    def read(self) -> list[float]:
        """Return one scan of every channel in the current unit (OVERFLOW if open)."""
        true = self.true_temperature_k()
        t = true + self.error_k(true)
        t = t + self.rng.normal(0.0, self.config.noise_sigma_k, t.size)
        if self.unit == "C":
            t = t - 273.15
        return [OVERFLOW if i in self.broken else float(v) for i, v in enumerate(t)]


def make_dispatcher(model: ScannerModel) -> ScpiDispatcher:
    """Build the scanner's command set."""
    d = ScpiDispatcher(model.config.idn)
    n = model.positions.size
    last = FIRST_CHANNEL + n - 1

    def set_unit(args: list[str]) -> None:
        if len(args) != 1 or args[0].upper() not in ("C", "CEL", "K"):
            raise ScpiError(ILLEGAL_PARAMETER, "Illegal parameter value; UNIT:TEMP C|K")
        model.unit = "K" if args[0].upper() == "K" else "C"

    def fmt(v: float) -> str:
        return f"{v:+.4E}" if v >= OVERFLOW else f"{v:.4f}"

    d.register("ROUT:SCAN?", lambda a: f"(@{FIRST_CHANNEL}:{last})")
    d.register("ROUT:COUN?", lambda a: str(n))
    d.register("SENS:TEMP:TC:TYPE?", lambda a: "K")
    d.register("UNIT:TEMP", set_unit)
    d.register("UNIT:TEMP?", lambda a: model.unit)
    d.register("READ?", lambda a: ",".join(fmt(v) for v in model.read()))

    def reset() -> None:
        model.unit = "C"

    d.reset = reset  # type: ignore[method-assign]
    return d


async def start_twin(world: World, entry: DeviceEntry) -> ScpiTwin:
    """Start the scanner twin; positions default to ``entry.settings.positions_mm``."""
    defaults: dict[str, object] = {}
    if "positions_mm" in entry.settings:
        defaults["positions_mm"] = entry.settings["positions_mm"]
    config = load_config(ScannerConfig, entry, **defaults)
    model = ScannerModel(world, config, entry.name)
    # an open thermocouple (``sensor_loss``, ``channel`` 1..N) reads OVERFLOW, as on the
    # real scanner with open-thermocouple detection on
    family = FamilyFaults(
        sensor_loss=channel_faults(model.positions.size, "channel", model.break_channel)
    )
    twin = ScpiTwin(world, entry, make_dispatcher(model), model, family)
    await twin.start()
    return twin


TWIN = TwinSpec(start_twin, ScannerConfig, ("TCPIP", "socket"))
"""The scanner twin, as the ``couponlab.twins`` entry point names it."""


__all__ = ["OVERFLOW", "TWIN", "ScannerConfig", "ScannerModel", "make_dispatcher", "start_twin"]
