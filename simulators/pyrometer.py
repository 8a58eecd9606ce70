"""Twin of a two-colour (ratio) optical pyrometer that sights the coupon in the furnace
(protocol: docs/protocols/pyrometer-scpi.md).

Physics
-------
The pyrometer images a round spot of the coupon (``spot_mm`` across, centred
``position_mm`` from the coupon's start) onto two detectors at ``wavelengths_um``
(λ1 < λ2). Each detector sees the spectral radiance of the spot, by Planck's law,

    L(λ) = τ ε(λ) c1L λ^-5 / (exp(c2 / (λ T)) - 1),

summed over the spot (a hotter part of a graded spot weighs more, as on a real instrument),
times the window's transmission τ and with the detector's own relative noise. The target is
not grey: ``emissivity`` is ε(λ2) and ``emissivity_ratio`` is ε(λ1) / ε(λ2).

Like a real ratio pyrometer the instrument inverts the ratio R = L1 / L2 with Wien's
approximation and the emissivity slope S it is set to (``CONF:SLOP``):

    T = c2 (1/λ1 - 1/λ2) / (ln S + 5 ln(λ2/λ1) - ln R),

so it reads the true temperature when S equals the target's ε(λ1)/ε(λ2), and a mismatch
shifts 1/T by ln(S / S_true) / (c2 (1/λ1 - 1/λ2)) whatever the absolute emissivity or the
window (what makes two-colour pyrometry worth having): a non-grey target read as grey
(S = 1 < S_true) reads too hot. The single-colour (brightness)
temperature at λ1 inverts Planck's law with the set emissivity ``CONF:EMIS`` and does depend
on ε and τ. The signal strength is the λ2 signal as a percentage of a black body's at the
ratio temperature (τ ε(λ2) for a uniform spot).

The spot's temperatures come from the furnace twin (found by name in the world) through
``temperature_along(x_mm)``, at the carrier's offset along the tube: independent of the
furnace's zone thermocouples and of the thermocouple scanner. Without the furnace the spot
is at the ambient temperature (below range).
"""

from __future__ import annotations

import math
from typing import Annotated

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from couponlab.lab_settings import DeviceRef
from couponlab.labfile import DeviceEntry
from couponlab.registry import TwinSpec
from couponlab.simulators.detectors._scpi_twin import ScpiTwin, load_config
from couponlab.simulators.scpi import (
    DATA_OUT_OF_RANGE,
    ILLEGAL_PARAMETER,
    ScpiDispatcher,
    ScpiError,
    parse_float,
)
from couponlab.simulators.world import FloatArray, World

C1L = 1.191042972e-16
"""First radiation constant for spectral radiance, 2 h c^2, W m^2 / sr."""
C2 = 1.438776877e-2
"""Second radiation constant, h c / k, m K."""
OVERFLOW = 9.9e37
"""What the instrument reads when it has no valid temperature (see the status flag)."""
SLOPE_RANGE = (0.8, 1.2)
"""Emissivity slopes the instrument accepts."""
EMISSIVITY_RANGE = (0.05, 1.0)
"""Single-colour emissivities the instrument accepts."""
OK, UNDER, OVER, LOW_SIGNAL = 0, 1, 2, 3
"""Status flags of ``MEAS:ALL?``."""
SPOT_SAMPLES = 9
"""Points across the spot at which the furnace's field is sampled."""


class PyrometerConfig(BaseModel):
    """Parameters of the pyrometer twin (``twin_config``); defaults are *typical* of a
    silicon two-colour instrument looking at an oxidised Ni-Cr coupon."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    furnace: Annotated[str, DeviceRef("gradient_furnace")] = ""
    """Device name of the furnace whose coupon the pyrometer sights ("" = none)."""
    position_mm: float = Field(default=30.0, allow_inf_nan=False)
    """Centre of the sighted spot along the coupon, mm from the coupon's start."""
    spot_mm: float = Field(default=4.0, gt=0, le=50)
    """Diameter of the sighted spot, mm."""
    wavelengths_um: tuple[float, float] = (0.90, 1.05)
    """The two wavelengths λ1 < λ2, um."""
    emissivity: float = Field(default=0.35, gt=0, le=1)
    """True emissivity of the coupon at λ2."""
    emissivity_ratio: float = Field(default=1.04, gt=0.5, lt=2.0)
    """True ε(λ1) / ε(λ2) of the coupon (1 = grey)."""
    window_transmission: float = Field(default=0.92, gt=0, le=1)
    """Transmission of the furnace's sight window (and the optics)."""
    noise_rel: float = Field(default=1e-3, ge=0, le=0.1)
    """Relative noise of each detector's signal per reading."""
    range_c: tuple[float, float] = (600.0, 1600.0)
    """Measuring range, degC."""
    min_signal_percent: float = Field(default=2.0, ge=0, le=100)
    """Below this signal strength the instrument reports LOW SIGNAL."""
    carrier_offset_mm: float = Field(default=0.0, allow_inf_nan=False)
    """Where the coupon's start sits along the tube when the furnace tells none, mm."""
    idn: str = "couponlab,RP-2C ratio pyrometer,SIM0006,1.0"

    @model_validator(mode="after")
    def _ordered(self) -> PyrometerConfig:
        lam1, lam2 = self.wavelengths_um
        if not 0.3 <= lam1 < lam2 <= 20.0:
            raise ValueError("wavelengths_um must be 0.3 <= λ1 < λ2 <= 20")
        if not -273.15 < self.range_c[0] < self.range_c[1]:
            raise ValueError("range_c must be [low, high] with low < high, above -273.15")
        return self


def planck(wavelength_m: float, temperature_k: FloatArray) -> FloatArray:
    """Return a black body's spectral radiance at ``wavelength_m``, W / (m^2 sr m)."""
    t = np.asarray(temperature_k, float)
    x = np.minimum(C2 / (wavelength_m * t), 700.0)  # exp overflows past 709
    out: FloatArray = C1L * wavelength_m**-5 / np.expm1(x)
    return out


def ratio_temperature(ratio: float, slope: float, lam1_m: float, lam2_m: float) -> float:
    """Return the ratio temperature (K) of a radiance ratio L1/L2 with emissivity slope
    ``slope`` = ε(λ1)/ε(λ2), by Wien's approximation (what the instrument computes)."""
    denominator = math.log(slope) + 5.0 * math.log(lam2_m / lam1_m) - math.log(ratio)
    if denominator <= 0:
        return math.inf
    return C2 * (1.0 / lam1_m - 1.0 / lam2_m) / denominator


def brightness_temperature(radiance: float, emissivity: float, lam_m: float) -> float:
    """Return the temperature (K) of a body of ``emissivity`` with spectral radiance
    ``radiance`` at ``lam_m``, by Planck's law."""
    if radiance <= 0:
        return 0.0
    return C2 / (lam_m * math.log1p(emissivity * C1L * lam_m**-5 / radiance))


class PyrometerModel:
    """The sighted spot, the optics and the instrument's settings (twins' thread only)."""

    def __init__(self, world: World, config: PyrometerConfig, name: str = "pyrometer") -> None:
        self.world = world
        self.config = config
        self.rng = world.rng_for(name)
        self.lam1 = config.wavelengths_um[0] * 1e-6
        self.lam2 = config.wavelengths_um[1] * 1e-6
        self.slope = 1.0
        """Emissivity slope set on the instrument (``CONF:SLOP``)."""
        self.emissivity = 1.0
        """Single-colour emissivity set on the instrument (``CONF:EMIS``)."""
        self.unit = "C"
        self.transmission = config.window_transmission
        """Window transmission now (fault injection: a dirty window lowers it)."""

    def reset(self) -> None:
        """``*RST``: slope 1, emissivity 1, degC."""
        self.slope, self.emissivity, self.unit = 1.0, 1.0, "C"

    def _furnace(self) -> object | None:
        name = self.config.furnace
        return self.world.instruments.get(name) if name else None

    def carrier_offset_mm(self) -> float:
        """Return where the coupon's start sits along the furnace tube, mm."""
        furnace = self._furnace()
        if furnace is None:
            return self.config.carrier_offset_mm
        for attr in ("carrier_offset_mm", "offset_mm"):
            own = getattr(furnace, attr, None)
            if isinstance(own, int | float) and not isinstance(own, bool):
                return float(own)
        return self.config.carrier_offset_mm

    def spot_temperatures_k(self) -> FloatArray:
        """Return the true temperature at points across the sighted spot, K."""
        c = self.config
        x = c.position_mm + np.linspace(-c.spot_mm / 2, c.spot_mm / 2, SPOT_SAMPLES)
        furnace = self._furnace()
        if furnace is None or not hasattr(furnace, "temperature_along"):
            return np.full(x.shape, self.world.config.ambient_temperature_c + 273.15)
        t: FloatArray = np.asarray(furnace.temperature_along(self.carrier_offset_mm() + x), float)
        return t

    def radiances(self) -> tuple[float, float]:
        """Return the two detectors' signals as spectral radiances, W / (m^2 sr m)."""
        c = self.config
        t = self.spot_temperatures_k()
        eps2 = c.emissivity
        eps1 = min(1.0, c.emissivity * c.emissivity_ratio)
        l1 = self.transmission * eps1 * float(np.mean(planck(self.lam1, t)))
        l2 = self.transmission * eps2 * float(np.mean(planck(self.lam2, t)))
        if c.noise_rel > 0:
            n1, n2 = self.rng.normal(0.0, c.noise_rel, 2)
            l1, l2 = l1 * (1.0 + n1), l2 * (1.0 + n2)
        return max(l1, 0.0), max(l2, 0.0)

    def measure(self) -> tuple[float, float, float, int]:
        """Return (ratio T, brightness T, signal %, flag), temperatures in the set unit
        (:data:`OVERFLOW` when there is no valid temperature)."""
        l1, l2 = self.radiances()
        lo, hi = self.config.range_c
        if l1 <= 0 or l2 <= 0:
            return OVERFLOW, OVERFLOW, 0.0, LOW_SIGNAL
        t_ratio = ratio_temperature(l1 / l2, self.slope, self.lam1, self.lam2)
        t_bright = brightness_temperature(l1, self.emissivity, self.lam1)
        if math.isfinite(t_ratio) and t_ratio > 0:
            signal = 100.0 * l2 / float(planck(self.lam2, np.asarray(t_ratio)))
        else:
            signal = 0.0
        flag = OK
        if signal < self.config.min_signal_percent:
            flag = LOW_SIGNAL
        elif not t_ratio - 273.15 >= lo:
            flag = UNDER
        elif t_ratio - 273.15 > hi:
            flag = OVER
        if flag != OK:
            return OVERFLOW, OVERFLOW, signal, flag
        offset = 273.15 if self.unit == "C" else 0.0
        bright = t_bright - offset if lo <= t_bright - 273.15 <= hi else OVERFLOW
        return t_ratio - offset, bright, signal, flag


def _fmt(v: float) -> str:
    return f"{v:+.4E}" if v >= OVERFLOW else f"{v:.3f}"


def make_dispatcher(model: PyrometerModel) -> ScpiDispatcher:
    """Build the pyrometer's command set."""
    c = model.config
    d = ScpiDispatcher(c.idn)

    def bounded(args: list[str], name: str, low: float, high: float) -> float:
        if len(args) != 1:
            raise ScpiError(ILLEGAL_PARAMETER, f"Illegal parameter value; {name} takes 1 value")
        value = parse_float(args, name=name)
        if not low <= value <= high:
            raise ScpiError(DATA_OUT_OF_RANGE, f"Data out of range; {name}={value:g}")
        return value

    def set_slope(args: list[str]) -> None:
        model.slope = bounded(args, "slope", *SLOPE_RANGE)

    def set_emissivity(args: list[str]) -> None:
        model.emissivity = bounded(args, "emissivity", *EMISSIVITY_RANGE)

    def set_unit(args: list[str]) -> None:
        if len(args) != 1 or args[0].upper() not in ("C", "CEL", "K"):
            raise ScpiError(ILLEGAL_PARAMETER, "Illegal parameter value; UNIT:TEMP C|K")
        model.unit = "K" if args[0].upper() == "K" else "C"

    def measure_all(args: list[str]) -> str:
        t, b, s, flag = model.measure()
        return f"{_fmt(t)},{_fmt(b)},{s:.2f},{flag}"

    d.register("SENS:WAV?", lambda a: ",".join(f"{w:.3f}" for w in c.wavelengths_um))
    d.register("SENS:RANG?", lambda a: f"{c.range_c[0]:.1f},{c.range_c[1]:.1f}")
    d.register("CONF:SLOP", set_slope)
    d.register("CONF:SLOP?", lambda a: f"{model.slope:.4f}")
    d.register("CONF:SLOP:LIM?", lambda a: f"{SLOPE_RANGE[0]:.3f},{SLOPE_RANGE[1]:.3f}")
    d.register("CONF:EMIS", set_emissivity)
    d.register("CONF:EMIS?", lambda a: f"{model.emissivity:.4f}")
    d.register("CONF:EMIS:LIM?", lambda a: f"{EMISSIVITY_RANGE[0]:.3f},{EMISSIVITY_RANGE[1]:.3f}")
    d.register("UNIT:TEMP", set_unit)
    d.register("UNIT:TEMP?", lambda a: model.unit)
    d.register("MEAS:TEMP?", lambda a: _fmt(model.measure()[0]))
    d.register("MEAS:ALL?", measure_all)
    d.reset = model.reset  # type: ignore[method-assign]
    return d


async def start_twin(world: World, entry: DeviceEntry) -> ScpiTwin:
    """Start the pyrometer twin of ``entry`` (``twin_config.furnace`` names what it sights)."""
    model = PyrometerModel(world, load_config(PyrometerConfig, entry), entry.name)
    twin = ScpiTwin(world, entry, make_dispatcher(model), model)
    await twin.start()
    return twin


TWIN = TwinSpec(start_twin, PyrometerConfig, ("TCPIP", "socket"))
"""The pyrometer twin, as the ``couponlab.twins`` entry point names it."""


__all__ = [
    "TWIN",
    "PyrometerConfig",
    "PyrometerModel",
    "brightness_temperature",
    "make_dispatcher",
    "planck",
    "ratio_temperature",
    "start_twin",
]
