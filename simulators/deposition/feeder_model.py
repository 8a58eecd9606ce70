"""Physics of the powder-feeder twin: hoppers, metering lag, transport delay, faults.

Each hopper is modelled after ../shared/DOMAIN.md ("L-DED powder feeding", Pan, Landers &
Liou 2006): the commanded rate passes a static low-flow nonlinearity, a first-order lag
(the metering disc, time constant ``tau_s``) and leaves the hopper (the loss-in-weight scale
sees it); it reaches the nozzle after a pure transport delay (``delay_s``) in the carrier
gas, with a few percent of correlated flow noise. A nozzle flow sensor reads it.

Faults: a hopper that runs empty stops feeding and raises EMPTY; a clog scales the flow that
reaches the nozzle down while the command stays (detected as CLOG when the nozzle flow stays
below ``clog_detect_fraction`` of the unclogged flow for ``clog_detect_s``); carrier gas below
``min_gas_l_min`` while feeding raises GAS and the powder stops reaching the nozzle, and so
does a failed supply while the carrier gas is on (a hopper that purges its line between
prints: the flow controller cannot reach its setpoint), so the alarm is up before the next
print starts.
Every default is *typical* (DOMAIN.md ranges), not from one source.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Generator
from dataclasses import dataclass, field

import simpy
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from couponlab.simulators.world import World

ALARM_EMPTY = 1
"""Alarm bit: the hopper is empty (feeding stopped)."""
ALARM_CLOG = 2
"""Alarm bit: nozzle flow far below what the command should give (latched)."""
ALARM_GAS = 4
"""Alarm bit: carrier gas below its minimum while feeding, or its supply failed while the gas
is on (latched; powder stops)."""
ALARM_NAMES = {ALARM_EMPTY: "empty", ALARM_CLOG: "clog", ALARM_GAS: "gas_loss"}


class HopperConfig(BaseModel):
    """One hopper of the twin: its powder and its delivery dynamics (all *typical*)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    powder: str = Field(min_length=1, max_length=24, pattern=r"^[A-Za-z0-9_.\-]+$")
    """Powder name, e.g. ``Ni-50Cr`` (letters, digits, ``_.-``)."""
    composition: dict[str, float]
    """Element mass fractions, summing to 1 (elements the world's oxidation model knows)."""
    fill_g: float = Field(default=2000.0, ge=0)
    """Powder in the hopper at start, g."""
    capacity_g: float = Field(default=5000.0, gt=0)
    """Hopper capacity, g."""
    delay_s: float = Field(default=2.5, ge=0.0, le=10.0)
    """Transport delay from the metering disc to the nozzle, s (typical 1-5)."""
    tau_s: float = Field(default=0.8, gt=0.0, le=5.0)
    """Time constant of the metering lag, s (typical 0.3-2)."""
    knee_g_min: float = Field(default=0.4, ge=0.0)
    """Low-flow nonlinearity: delivered = cmd * (1 - exp(-cmd / knee)), g/min (0: linear)."""

    @field_validator("composition")
    @classmethod
    def _sums_to_one(cls, v: dict[str, float]) -> dict[str, float]:
        if not v or any(f < 0 for f in v.values()) or abs(sum(v.values()) - 1.0) > 1e-6:
            raise ValueError(f"composition {v} must be non-negative fractions summing to 1")
        return v


def _default_hoppers() -> list[HopperConfig]:
    return [
        HopperConfig(powder="Ni", composition={"Ni": 1.0}, delay_s=2.0, tau_s=0.6),
        HopperConfig(powder="Ni-50Cr", composition={"Ni": 0.5, "Cr": 0.5}, delay_s=2.8, tau_s=1.1),
        HopperConfig(powder="Fe", composition={"Fe": 1.0}, delay_s=3.4, tau_s=0.9),
        HopperConfig(powder="Al", composition={"Al": 1.0}, delay_s=4.1, tau_s=1.6),
    ]


class FeederConfig(BaseModel):
    """Parameters of the powder-feeder twin (a lab entry's ``twin_config``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hoppers: list[HopperConfig] = Field(default_factory=_default_hoppers, min_length=1)
    """The hoppers, numbered 1..N on the wire (default: Ni, Ni-50Cr, Fe, Al)."""
    max_rate_g_min: float = Field(default=30.0, gt=0, le=200)
    """Largest accepted feed-rate setpoint, g/min (typical 1-30)."""
    max_gas_l_min: float = Field(default=10.0, gt=0, le=50)
    """Largest accepted carrier-gas setpoint, L/min (typical 2-8 in use)."""
    min_gas_l_min: float = Field(default=1.5, ge=0)
    """Carrier gas below this while feeding raises GAS, L/min."""
    noise_fraction: float = Field(default=0.03, ge=0, le=0.2)
    """Standard deviation of the relative flow noise (typical 2-5 %)."""
    noise_corr_s: float = Field(default=0.3, gt=0)
    """Correlation time of the flow noise, s."""
    sensor_noise_fraction: float = Field(default=0.01, ge=0, le=0.2)
    """Extra white noise of the nozzle flow sensor, relative."""
    scale_noise_g: float = Field(default=0.2, ge=0)
    """White noise of the loss-in-weight scale, g."""
    clog_detect_fraction: float = Field(default=0.5, gt=0, lt=1)
    """CLOG when nozzle flow < this fraction of the unclogged flow ..."""
    clog_detect_s: float = Field(default=1.5, gt=0)
    """... for this long, s."""
    dt_s: float = Field(default=0.02, gt=0, le=0.2)
    """Integration step while anything flows, s of virtual time."""
    watchdog_timeout_s: float = Field(default=0.0, ge=0, le=3600)
    """Communication watchdog at power-on, s of wall time (0 = off; ``SYST:WDOG`` sets it)."""
    log_capacity: int = Field(default=20000, ge=10)
    """Most samples the data logger keeps."""
    manufacturer: str = "couponlab"
    model: str = "PF-4 powder feeder (twin)"
    serial_number: str = "TWIN-PF-0001"
    firmware_version: str = "couponlab-twin 0.1"

    @model_validator(mode="after")
    def _check(self) -> FeederConfig:
        if len(self.hoppers) > 16:
            raise ValueError("at most 16 hoppers")
        return self


@dataclass
class HopperState:
    """Live state of one hopper."""

    config: HopperConfig
    fill_g: float
    setpoint: float = 0.0
    """Commanded feed rate, g/min."""
    gas_setpoint: float = 0.0
    """Carrier-gas setpoint, L/min."""
    metered: float = 0.0
    """Rate leaving the hopper after the metering lag, g/min."""
    nozzle: float = 0.0
    """True flow at the nozzle, g/min."""
    unclogged: float = 0.0
    """What the nozzle flow would be without a clog, g/min (for clog detection)."""
    sensor: float = 0.0
    """Last nozzle-flow sensor reading, g/min."""
    pipe: deque[float] = field(default_factory=deque)
    noise: float = 0.0
    clog_factor: float = 1.0
    """Fraction of the flow that passes (1: no clog); set by fault injection."""
    gas_supply_ok: bool = True
    """False after :meth:`FeederModel.inject_gas_loss`: measured gas falls to 0."""
    alarms: int = 0
    low_since: float | None = None

    @property
    def gas_flow(self) -> float:
        """Return the measured carrier-gas flow, L/min."""
        return self.gas_setpoint if self.gas_supply_ok else 0.0

    def delivered(self) -> float:
        """Return the rate the metering disc aims at (low-flow nonlinearity applied), g/min."""
        cmd = self.setpoint
        if cmd <= 0.0 or self.alarms & (ALARM_EMPTY | ALARM_GAS):
            return 0.0
        knee = self.config.knee_g_min
        return cmd if knee <= 0 else cmd * (1.0 - math.exp(-cmd / knee))


class FeederModel:
    """SimPy model of one powder feeder with several hoppers.

    Parameters
    ----------
    world
        The shared world (clock, random generator).
    config
        Twin parameters.
    name
        Device name; the model registers itself in the world under it.
    """

    def __init__(self, world: World, config: FeederConfig, name: str) -> None:
        self.world = world
        self.config = config
        self.name = name
        self.hoppers = [HopperState(h, h.fill_g) for h in config.hoppers]
        self._wake: simpy.Event = world.env.event()
        self.log_hopper = 0
        """Hopper being logged (1-based), 0 when the logger is off."""
        self.log_period = 0.0
        self._log_next = 0.0
        self.log: list[tuple[float, float, float]] = []
        """Logged samples: (virtual time s, setpoint g/min, nozzle sensor g/min)."""
        self._alpha = math.exp(-config.dt_s / config.noise_corr_s)
        for h in self.hoppers:
            self._resize_pipe(h)
        world.env.process(self._run())
        world.register_instrument(name, self)

    # -- commands ---------------------------------------------------------------------------
    def hopper(self, index: int) -> HopperState:
        """Return hopper ``index`` (1-based); raise ``IndexError`` outside 1..N."""
        if not 1 <= index <= len(self.hoppers):
            raise IndexError(f"hopper {index} is outside 1..{len(self.hoppers)}")
        return self.hoppers[index - 1]

    def set_rate(self, index: int, rate: float) -> None:
        """Command hopper ``index`` to ``rate`` g/min (0..max_rate_g_min)."""
        if not 0.0 <= rate <= self.config.max_rate_g_min:
            raise ValueError(f"rate {rate} g/min outside 0..{self.config.max_rate_g_min}")
        h = self.hopper(index)
        if rate > 0 and h.alarms & ALARM_EMPTY:
            raise RuntimeError(f"hopper {index} is empty")
        h.setpoint = rate
        self.wake()

    def set_gas(self, index: int, flow: float) -> None:
        """Set the carrier gas of hopper ``index`` to ``flow`` L/min (0..max_gas_l_min)."""
        if not 0.0 <= flow <= self.config.max_gas_l_min:
            raise ValueError(f"gas {flow} L/min outside 0..{self.config.max_gas_l_min}")
        self.hopper(index).gas_setpoint = flow
        self.wake()

    def stop(self) -> None:
        """Set every hopper's feed rate to 0 (the safe state; carrier gas keeps purging)."""
        for h in self.hoppers:
            h.setpoint = 0.0
        self.wake()

    @property
    def active(self) -> bool:
        """Return whether any hopper is commanded to feed (what a lost client must stop)."""
        return any(h.setpoint > 0 for h in self.hoppers)

    def clear_alarms(self) -> None:
        """Clear latched CLOG and GAS alarms; EMPTY stays until the hopper is refilled."""
        for h in self.hoppers:
            h.alarms &= ALARM_EMPTY
            h.low_since = None
        self.wake()

    def start_log(self, index: int, period_s: float) -> None:
        """Log hopper ``index``'s setpoint and nozzle flow every ``period_s`` s (clears)."""
        self.hopper(index)
        if not self.config.dt_s <= period_s <= 10.0:
            raise ValueError(f"log period {period_s} s outside {self.config.dt_s}..10")
        self.log_hopper, self.log_period = index, period_s
        self.log = []
        self._log_next = self.world.now
        self.wake()

    def stop_log(self) -> None:
        """Stop logging (the samples stay readable)."""
        self.log_hopper = 0

    def state(self) -> str:
        """Return ``ALARM`` (any alarm), ``FEEDING`` (any setpoint > 0) or ``IDLE``."""
        if any(h.alarms for h in self.hoppers):
            return "ALARM"
        if any(h.setpoint > 0 for h in self.hoppers):
            return "FEEDING"
        return "IDLE"

    def scale_reading(self, index: int) -> float:
        """Return the loss-in-weight scale reading of hopper ``index``, g."""
        h = self.hopper(index)
        noise = self.config.scale_noise_g * float(self.world.rng_for(self.name).standard_normal())
        return max(0.0, h.fill_g + noise)

    # -- fault injection (tests, demos) -----------------------------------------------------
    def inject_clog(self, index: int, passing_fraction: float) -> None:
        """Let only ``passing_fraction`` (0..1) of hopper ``index``'s powder through."""
        if not 0.0 <= passing_fraction <= 1.0:
            raise ValueError("passing_fraction must be in 0..1")
        self.hopper(index).clog_factor = passing_fraction

    def inject_gas_loss(self, index: int, lost: bool = True) -> None:
        """Cut (or restore) the carrier-gas supply of hopper ``index``."""
        self.hopper(index).gas_supply_ok = not lost
        self.wake()

    def set_fill(self, index: int, grams: float) -> None:
        """Set hopper ``index``'s powder mass (a refill, or a nearly empty hopper), g."""
        h = self.hopper(index)
        if not 0.0 <= grams <= h.config.capacity_g:
            raise ValueError(f"fill {grams} g outside 0..{h.config.capacity_g}")
        h.fill_g = grams
        if grams > 0:
            h.alarms &= ~ALARM_EMPTY
        self.wake()

    # -- simulation -------------------------------------------------------------------------
    def wake(self) -> None:
        """Wake the integration process if it sleeps (something may flow now)."""
        if not self._wake.triggered:
            self._wake.succeed()

    def _resize_pipe(self, h: HopperState) -> None:
        n = max(0, round(h.config.delay_s / self.config.dt_s))
        h.pipe = deque([0.0] * n, maxlen=n if n else None)

    def _quiet(self) -> bool:
        for h in self.hoppers:
            if h.setpoint > 0 or h.metered > 1e-9 or h.nozzle > 0 or any(h.pipe):
                return False
            if h.gas_setpoint > 0 and not h.gas_supply_ok:
                return False
        return self.log_hopper == 0

    def _run(self) -> Generator[simpy.Event, None, None]:
        env, dt = self.world.env, self.config.dt_s
        while True:
            if self._quiet():
                for h in self.hoppers:
                    h.metered = h.nozzle = h.unclogged = h.sensor = 0.0
                    h.noise = 0.0
                self._wake = env.event()
                yield self._wake
                continue
            yield env.timeout(dt)
            self.step(dt)

    def step(self, dt: float) -> None:
        """Advance every hopper by ``dt`` s."""
        cfg, rng, now = self.config, self.world.rng_for(self.name), self.world.now
        a = self._alpha
        sigma = cfg.noise_fraction * math.sqrt(1.0 - a * a)
        for i, h in enumerate(self.hoppers, start=1):
            # carrier gas: feeding without gas latches GAS and stops the powder; a supply
            # that fails while the gas is on (feeding or purging) latches it too
            if h.gas_flow < cfg.min_gas_l_min and (
                h.setpoint > 0 or (h.gas_setpoint > 0 and not h.gas_supply_ok)
            ):
                h.alarms |= ALARM_GAS
            target = h.delivered()
            h.metered += (target - h.metered) * (1.0 - math.exp(-dt / h.config.tau_s))
            if h.metered < 1e-6:
                h.metered = 0.0
            discharged = h.metered * dt / 60.0
            if discharged >= h.fill_g and h.metered > 0:
                discharged, h.metered = h.fill_g, 0.0
                h.alarms |= ALARM_EMPTY
            h.fill_g -= discharged
            if h.fill_g <= 0.0 and h.setpoint > 0:
                h.alarms |= ALARM_EMPTY
            if h.pipe.maxlen:
                leaving = h.pipe[0]
                h.pipe.append(discharged * 60.0 / dt)
            else:
                leaving = discharged * 60.0 / dt
            if h.gas_flow < cfg.min_gas_l_min:
                leaving = 0.0  # no carrier gas: the powder settles in the line
            h.noise = a * h.noise + sigma * float(rng.standard_normal())
            h.unclogged = max(0.0, leaving * (1.0 + h.noise))
            h.nozzle = h.unclogged * h.clog_factor
            h.sensor = max(
                0.0, h.nozzle * (1.0 + cfg.sensor_noise_fraction * float(rng.standard_normal()))
            )
            self._detect_clog(h, now)
            if self.log_hopper == i and now + 1e-9 >= self._log_next:
                if len(self.log) < cfg.log_capacity:
                    self.log.append((now, h.setpoint, h.sensor))
                self._log_next += self.log_period

    def _detect_clog(self, h: HopperState, now: float) -> None:
        if h.unclogged > 0.5 and h.nozzle < self.config.clog_detect_fraction * h.unclogged:
            if h.low_since is None:
                h.low_since = now
            elif now - h.low_since >= self.config.clog_detect_s:
                h.alarms |= ALARM_CLOG
        else:
            h.low_since = None


def alarm_names(bits: int) -> list[str]:
    """Return the names of the alarm bits set in ``bits`` (``[]`` for none)."""
    return [name for bit, name in ALARM_NAMES.items() if bits & bit]


__all__ = [
    "ALARM_CLOG",
    "ALARM_EMPTY",
    "ALARM_GAS",
    "ALARM_NAMES",
    "FeederConfig",
    "FeederModel",
    "HopperConfig",
    "HopperState",
    "alarm_names",
]
