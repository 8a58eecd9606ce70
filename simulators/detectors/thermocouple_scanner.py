"""Twin of the thermocouple scanner (Keithley 2700 class): type-K thermocouples placed along
the coupon carrier in the furnace, read through a multiplexer over SCPI
(protocol: docs/protocols/thermocouple-scanner-scpi.md).

Each channel reads the furnace's true local temperature at its position, plus a fixed
thermocouple error (drawn once per channel, sigma about 1 K, *typical* of type K) and noise
per reading. It is independent of the furnace's own zone thermocouples: it asks the furnace
twin (found by name in the world) for ``temperature_along(x_mm)`` at the carrier's position.

Where the carrier sits along the tube: the furnace model's ``carrier_offset_mm`` (or
``offset_mm``, as the gradient-furnace twin names it) if it has one, else the offset of a
coupon the furnace holds, else ``carrier_offset_mm`` of this config.
Without the furnace in the world the thermocouples read the ambient temperature.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from couponlab.labfile import DeviceEntry
from couponlab.simulators.detectors._scpi_twin import ScpiTwin, load_config
from couponlab.simulators.scpi import ILLEGAL_PARAMETER, ScpiDispatcher, ScpiError
from couponlab.simulators.world import FloatArray, World

OVERFLOW = 9.9e37
"""What an open (broken) thermocouple reads, as on Keithley scanners."""
FIRST_CHANNEL = 101


class ScannerConfig(BaseModel):
    """Parameters of the scanner twin (``twin_config``); defaults are *typical*."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    furnace: str = ""
    """Device name of the furnace whose carrier carries the thermocouples."""
    positions_mm: tuple[float, ...] = tuple(float(x) for x in np.linspace(0.0, 60.0, 12))
    """Thermocouple positions along the carrier, mm from the coupon's start (>= 1)."""
    idn: str = "couponlab,TCS-2700,SIM0004,1.0"
    offset_error_sigma_k: float = Field(default=1.0, ge=0)
    noise_sigma_k: float = Field(default=0.1, ge=0)
    carrier_offset_mm: float = 0.0
    """Carrier position along the tube when the furnace tells none, mm."""


class ScannerModel:
    """Thermocouples, their errors and faults (touch only on the twins' thread)."""

    def __init__(self, world: World, config: ScannerConfig) -> None:
        if not config.positions_mm:
            raise ValueError("a scanner needs at least one thermocouple position")
        self.world = world
        self.config = config
        self.positions = np.asarray(config.positions_mm, float)
        self.offset_error_k = world.rng.normal(
            0.0, config.offset_error_sigma_k, self.positions.size
        )
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

    def read(self) -> list[float]:
        """Return one scan of every channel in the current unit (OVERFLOW if open)."""
        t = self.true_temperature_k() + self.offset_error_k
        t = t + self.world.rng.normal(0.0, self.config.noise_sigma_k, t.size)
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
    model = ScannerModel(world, config)
    twin = ScpiTwin(world, entry, make_dispatcher(model), model)
    await twin.start()
    return twin


__all__ = ["OVERFLOW", "ScannerConfig", "ScannerModel", "make_dispatcher", "start_twin"]
