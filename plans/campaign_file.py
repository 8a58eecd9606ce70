"""The campaign file: which coupons to make, how to expose, map and test them, and the agent.

A campaign file is YAML validated by :class:`CampaignFile` (unknown keys refused; quantities
given as strings such as ``"20 h"`` or ``"1100 degC"`` are parsed with pint here, at the
boundary, and held as numbers in the unit each field names). The bundled default is
``src/couponlab/campaigns/default.yaml`` (:func:`bundled_campaign_path`).

Example::

    id: nicr-nial-1
    lab: sim                      # a lab file path, or sim (the bundled lab)
    carrier_batch: 2              # coupons oxidised together (<= the carrier's slots)
    policy: {agent: critical_content, margin: 0.03}
    exposure: {hot: 1100 degC, cold: 800 degC, hold: 20 h, ramp_rate: 25 K/min}
    map: {x_points: 10, y_rows: 14, dwell: 0.5 s}
    specimens: [5 mm]             # tensile specimens, by where they are cut across
    coupons:
      - {system: Ni-Cr, gradient: {low: 0.0, high: 0.5}}
      - {system: Ni-Al, gradient: proposed}   # the agent proposes it

Every batch of ``carrier_batch`` coupons is oxidised in one furnace program, so the exposure
is the campaign's (one per file); the map and the specimens may differ per coupon.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, model_validator

from couponlab.errors import InputError
from couponlab.lab_settings import quantity, temperature


@dataclass(frozen=True)
class AlloySystem:
    """How the bundled hoppers print one alloy system.

    Attributes
    ----------
    element
        The graded element (its mass fraction goes from ``low`` to ``high`` across the
        coupon's width); the balance is ``base``.
    base
        The balance element.
    hoppers
        Feeder hoppers whose powders make the system (bundled feeder: 1 Ni, 2 Ni-50Cr, 4 Al).
    reach
        Highest fraction of ``element`` the hoppers can print (Ni-50Cr: 0.5 Cr; Ni-Al is kept
        below 0.3 Al, beyond which it is an intermetallic).
    """

    element: str
    base: str
    hoppers: tuple[int, ...]
    reach: float


SYSTEMS: dict[str, AlloySystem] = {
    "Ni-Cr": AlloySystem("Cr", "Ni", (1, 2), 0.5),
    "Ni-Al": AlloySystem("Al", "Ni", (1, 4), 0.3),
}
"""The alloy systems a campaign may name (the bundled lab's hoppers)."""

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Gradient(_Model):
    """Mass fraction of the system's graded element from y = 0 to y = width (0..1)."""

    low: Annotated[float, Field(ge=0.0, le=1.0)]
    high: Annotated[float, Field(ge=0.0, le=1.0)]

    @model_validator(mode="after")
    def _ordered(self) -> Gradient:
        if not self.low < self.high:
            raise ValueError(f"low {self.low:g} must be below high {self.high:g}")
        return self


class Exposure(_Model):
    """The furnace program of every batch: load cold, ramp to the gradient, hold, cool.

    The coupons go in and out of a cold furnace (the transfer robot's interlock: no move into
    or out of a furnace above the lab's ``max_furnace_entry``), so their exposure is the
    ramp, the hold and the cooling; the analysis takes the hold with the thermocouple scans
    taken during it.
    """

    hot: Annotated[float, temperature("degC", gt=0)] = 1100.0
    """Hot-end setpoint at the coupon's start (x = 0), degC."""
    cold: Annotated[float, temperature("degC", gt=0)] = 800.0
    """Cold-end setpoint at the coupon's end (x = length), degC."""
    hold: Annotated[float, quantity("s", gt=0, le=1e7)] = 72000.0
    """Hold at the gradient, s (e.g. ``"20 h"``)."""
    ramp_rate: Annotated[float, quantity("K/min", gt=0, le=100)] = 25.0
    """Heating and programmed cooling rate, K/min."""
    scan_interval: Annotated[float, quantity("s", gt=0)] = 14400.0
    """Thermocouple scans of the carrier every this much instrument time during the hold, s."""
    unload_below: Annotated[float, temperature("degC", gt=0)] = 80.0
    """The coupons come out once every zone is below this, degC."""

    @model_validator(mode="after")
    def _consistent(self) -> Exposure:
        if self.scan_interval > self.hold:
            raise ValueError("scan_interval must not exceed the hold")
        if self.cold >= self.hot:
            raise ValueError("cold must be below hot")
        return self


class MapGrid(_Model):
    """The oxide-thickness and composition map of a coupon (profiler and XRF on the stage)."""

    x_points: Annotated[StrictInt, Field(ge=3, le=60)] = 10
    """Points along the coupon (the temperature axis), from 3 mm to length - 3 mm."""
    y_rows: Annotated[StrictInt, Field(ge=3, le=40)] = 14
    """Composition rows across the coupon, from 1 mm to width - 0.5 mm."""
    dwell: Annotated[float, quantity("s", gt=0, le=600)] = 0.5
    """Dwell of both detectors at each point, s."""


class Policy(_Model):
    """The agent that proposes the gradients marked ``proposed``."""

    agent: Literal["critical_content"] = "critical_content"
    """``critical_content``: :class:`couponlab.plans.agents.CriticalContentAgent`."""
    margin: Annotated[float, Field(ge=0.0, le=0.5)] = 0.03
    """Added around the critical content's 95 % interval and transition band, fraction."""
    min_width: Annotated[float, Field(gt=0.0, le=1.0)] = 0.08
    """Narrowest range proposed, fraction."""


Across = Annotated[float, quantity("mm", gt=0)]


class CouponSpec(_Model):
    """One coupon: its system, its gradient (or ``proposed``), what to map, which specimens."""

    system: str
    gradient: Gradient | Literal["proposed"]
    map: MapGrid | None = None
    """The campaign's map unless given."""
    specimens: list[Across] | None = None
    """Where tensile specimens are cut across the coupon, mm (the campaign's unless given)."""

    @model_validator(mode="after")
    def _known_system(self) -> CouponSpec:
        system = SYSTEMS.get(self.system)
        if system is None:
            raise ValueError(f"system {self.system!r} unknown; known: {sorted(SYSTEMS)}")
        if isinstance(self.gradient, Gradient) and self.gradient.high > system.reach + 1e-9:
            raise ValueError(
                f"{self.system}: high {self.gradient.high:g} {system.element} is beyond the "
                f"hoppers' reach {system.reach:g}"
            )
        return self


class CampaignFile(_Model):
    """A whole campaign (see the module docstring for an example)."""

    id: str
    """Campaign id: 1-40 letters, digits, ``_ . -``; coupons are ``<id>-C01`` ..."""
    lab: str = "sim"
    """Lab file path, or ``sim`` for the bundled lab."""
    carrier_batch: Annotated[StrictInt, Field(ge=1, le=16)] = 2
    """Coupons oxidised together in one furnace program (at most the carrier's slots)."""
    coupon_length: Annotated[float, quantity("mm", gt=10, le=200)] = 60.0
    coupon_width: Annotated[float, quantity("mm", gt=4, le=50)] = 10.0
    policy: Policy = Policy()
    exposure: Exposure = Exposure()
    map: MapGrid = MapGrid()
    specimens: list[Across] = Field(default_factory=lambda: [5.0])
    """Where tensile specimens are cut across each coupon, mm (the gauge is 6 mm wide)."""
    coupons: Annotated[list[CouponSpec], Field(min_length=1, max_length=99)]

    @model_validator(mode="after")
    def _valid_id(self) -> CampaignFile:
        if not _ID.match(self.id):
            raise ValueError(f"id {self.id!r}: 1-40 letters, digits, '_', '.', '-'")
        return self

    def coupon_ids(self) -> list[str]:
        """Return the coupons' ids, ``<id>-C01`` ... in file order."""
        return [f"{self.id}-C{k:02d}" for k in range(1, len(self.coupons) + 1)]

    def batches(self) -> list[list[int]]:
        """Return the coupon indices of each furnace batch, in order."""
        n, size = len(self.coupons), self.carrier_batch
        return [list(range(i, min(i + size, n))) for i in range(0, n, size)]

    def spec(self) -> dict[str, Any]:
        """Return the campaign as plain data (numbers in the fields' units), for the registry
        and the run documents."""
        return self.model_dump(mode="json")


class CampaignFileError(InputError):
    """A campaign file that cannot be used (one line naming the file and the key)."""


def bundled_campaign_path() -> Path:
    """Return the path of the bundled default campaign."""
    return Path(str(resources.files("couponlab") / "campaigns" / "default.yaml"))


def parse_campaign(data: Any, source: str = "<campaign>") -> CampaignFile:
    """Validate campaign data (a mapping, as read from YAML).

    Raises
    ------
    CampaignFileError
        Not a mapping, an unknown key, a bad value: one line naming the key.
    """
    if not isinstance(data, dict):
        raise CampaignFileError(source, "a campaign file is a mapping (id, coupons, ...)")
    try:
        return CampaignFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "(file)"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise CampaignFileError(source, f"{key}: {first['msg']}{more}") from None


def load_campaign(path: str | Path | None = None) -> CampaignFile:
    """Read and validate a campaign file (None: the bundled default)."""
    p = Path(path) if path is not None else bundled_campaign_path()
    try:
        data = yaml.safe_load(p.read_text())
    except OSError as exc:
        raise CampaignFileError(str(p), f"cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise CampaignFileError(str(p), f"not YAML: {exc}") from None
    return parse_campaign(data, str(p))


__all__ = [
    "SYSTEMS",
    "AlloySystem",
    "CampaignFile",
    "CampaignFileError",
    "CouponSpec",
    "Exposure",
    "Gradient",
    "MapGrid",
    "Policy",
    "bundled_campaign_path",
    "load_campaign",
    "parse_campaign",
]
