"""Parameters of the gradient-furnace twin, read from a lab entry's ``twin_config``.

Every default is *typical* (no single source): chosen so that an 8-zone, 300 mm tube reaches
gradients of 0.2-4.5 K/mm and holds each zone within about +/-0.3 K of setpoint near 1000 degC
with a Eurotherm-3200-class PID loop per zone (../shared/DOMAIN.md, "Gradient furnaces").
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from couponlab.simulators.opcua_security import TwinAccount


class FurnaceConfig(BaseModel):
    """Physics, control and identity parameters of the furnace twin (all *typical*).

    The tube is modelled as ``zones`` lumped thermal masses in a row (see
    ``docs/protocols/furnace-opcua.md``, "Model"). Units are in each field's name.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    # -- geometry ---------------------------------------------------------------------------
    zones: int = Field(default=8, ge=1, le=32)
    """Number of heated zones N (1..32)."""
    length_mm: float = Field(default=300.0, gt=0, le=5000)
    """Heated length of the tube, mm; zone i's thermocouple sits at (i + 0.5) * length / N."""
    carrier_slots: int = Field(default=1, ge=1, le=16)
    """Slots of the coupon carrier (1..16): coupons side by side across the carrier, all at
    the carrier's one offset along the tube (so all see the same gradient)."""
    end_decay_mm: float = Field(default=20.0, gt=0)
    """Length over which the field decays to ambient outside the heated length, mm."""

    # -- thermal model (per zone) -----------------------------------------------------------
    heat_capacity_j_per_k: float = Field(default=1200.0, gt=0)
    """Heat capacity of one zone (tube, element, insulation share), J/K."""
    heater_power_w: float = Field(default=1000.0, gt=0)
    """Heater power of one zone at 100 % output, W."""
    conduction_w_per_k: float = Field(default=0.5, ge=0)
    """Conductance between neighbouring zones, W/K (couples the zones)."""
    loss_w_per_k: float = Field(default=0.25, ge=0)
    """Linear loss of a zone to ambient through the insulation, W/K."""
    radiation_w_per_k4: float = Field(default=5e-11, ge=0)
    """Radiative loss coefficient of a zone, W/K^4: loss = c * (T^4 - Tamb^4), T in K."""
    end_loss_w_per_k: float = Field(default=0.3, ge=0)
    """Extra linear loss of the two end zones (open tube ends), W/K."""
    substeps: int = Field(default=1, ge=1, le=100)
    """Euler sub-steps of the thermal model per controller period."""

    # -- measurement ------------------------------------------------------------------------
    noise_k: float = Field(default=0.05, ge=0)
    """Standard deviation of thermocouple noise, K."""

    # -- control ----------------------------------------------------------------------------
    sample_period_s: float = Field(default=1.0, gt=0, le=60)
    """Controller period, s of virtual time."""
    kp_percent_per_k: float = Field(default=4.0, gt=0)
    """Proportional gain of each zone's PID, % output per K of error."""
    ti_s: float = Field(default=150.0, gt=0)
    """Integral time, s."""
    td_s: float = Field(default=0.0, ge=0)
    """Derivative time, s (derivative on the process value, not on the error)."""
    ramp_feedforward_percent_per_k_per_min: float = Field(default=2.0, ge=0)
    """Output added per K/min of working-setpoint ramp, % (0 = none). The default is the
    power that heats one zone's heat capacity at that rate: 100 * C / (60 s * P_max)."""
    max_temperature_c: float = Field(default=1200.0, gt=0, le=2000)
    """Instrument limit of any setpoint, degC."""
    standby_temperature_c: float = Field(default=25.0, ge=0)
    """Setpoint of every zone in standby, degC (at or below ambient the heaters idle)."""
    max_ramp_rate_k_per_min: float = Field(default=100.0, gt=0)
    """Largest ramp rate accepted (global limit and program segments), K/min."""
    interlock_margin_k: float = Field(default=25.0, ge=0)
    """Default over-temperature limit = max_temperature_c + this margin, K."""
    interlock_max_c: float | None = None
    """Largest writable interlock limit, degC (default max_temperature_c + 2 * margin)."""
    max_segments: int = Field(default=64, ge=1, le=1024)
    """Most segments a program may have."""
    max_dwell_s: float = Field(default=1e7, gt=0)
    """Longest dwell of one segment, s (about 116 days)."""
    publish_period_s: float = Field(default=0.05, gt=0, le=10)
    """Wall-clock period of the server's background publish (subscriptions), s."""
    watchdog_timeout_s: float = Field(default=0.0, ge=0, le=3600)
    """Communication watchdog at power-on, s of wall time (0 = off; a client arms it by
    writing ``Furnace.Watchdog.Timeout``)."""

    # -- OPC UA accounts (docs/decisions/0069-opcua-security.md) -----------------------------
    users: dict[str, TwinAccount] = Field(default_factory=dict)
    """Accounts of the twin's server, by user name: role (operator or viewer) and where the
    password is (a missing password file is created with a random password). Needs the lab
    entry's ``settings.security.policy: Basic256Sha256_SignAndEncrypt``."""
    anonymous: Literal["none", "viewer", "operator"] | None = None
    """Role of anonymous sessions: default ``none`` with a secure endpoint, ``operator``
    without one (a twin on loopback)."""

    # -- identity ---------------------------------------------------------------------------
    manufacturer: str = "couponlab"
    model: str = "GF-8 gradient tube furnace (twin)"
    serial_number: str = "TWIN-0001"
    firmware_version: str = "couponlab-twin 0.1"

    @model_validator(mode="after")
    def _consistent(self) -> FurnaceConfig:
        if self.standby_temperature_c >= self.max_temperature_c:
            raise ValueError("standby_temperature_c must be below max_temperature_c")
        if self.interlock_max_c is not None and self.interlock_max_c < self.max_temperature_c:
            raise ValueError("interlock_max_c must be at least max_temperature_c")
        return self

    @property
    def interlock_default_c(self) -> float:
        """Return the interlock limit at start, degC."""
        return self.max_temperature_c + self.interlock_margin_k

    @property
    def interlock_limit_max_c(self) -> float:
        """Return the largest writable interlock limit, degC."""
        if self.interlock_max_c is not None:
            return self.interlock_max_c
        return self.max_temperature_c + 2 * self.interlock_margin_k

    @classmethod
    def from_twin_config(cls, twin_config: dict[str, Any]) -> FurnaceConfig:
        """Validate a lab entry's ``twin_config`` mapping (raises pydantic ValidationError)."""
        return cls.model_validate(twin_config)


__all__ = ["FurnaceConfig"]
