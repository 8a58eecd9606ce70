"""The pyrometer family and an ophyd-async driver of a two-colour (ratio) optical pyrometer
over SCPI (docs/protocols/pyrometer-scpi.md).

A ratio pyrometer reads the temperature of the coupon it sights from the ratio of two
spectral radiances, without touching it and independently of the furnace's thermocouples;
its one setting that matters is the emissivity slope ε(λ1)/ε(λ2) of the target (1 for a
grey body). ``trigger()`` takes one measurement (``MEAS:ALL?``: ratio temperature,
single-colour temperature, signal strength and status in one exchange); ``read()`` gives it
with units. A temperature the instrument cannot give (below or above its range, too weak a
signal) reads NaN, and ``status`` says why.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar, Protocol, runtime_checkable

from bluesky.protocols import Triggerable
from ophyd_async.core import (
    AsyncStatus,
    SignalR,
    SignalRW,
    StandardReadable,
    StandardReadableFormat,
    soft_signal_r_and_setter,
)

from couponlab.drivers._scpi_device import (
    Scpi,
    ScpiBinding,
    ScpiConnector,
    ScpiSignalRW,
    scpi_signal,
)
from couponlab.errors import ProtocolError
from couponlab.interfaces import LabDevice
from couponlab.lab_settings import DeviceLimits, DeviceSettings, quantity
from couponlab.labfile import DeviceEntry
from couponlab.registry import DriverSpec
from couponlab.transports import ScpiClient, make_transport
from couponlab.values import ValueSpec

OVERRANGE = 9.0e37
"""Readings at or above this are the instrument's "no valid temperature"."""
STATUS = {0: "ok", 1: "under range", 2: "over range", 3: "low signal"}
"""The status flag of ``MEAS:ALL?``."""
SLOPE_RANGE, EMISSIVITY_RANGE = (0.8, 1.2), (0.05, 1.0)
SLOPE = ValueSpec(unit="", low=SLOPE_RANGE[0], high=SLOPE_RANGE[1])
"""Emissivity slope ε(λ1)/ε(λ2) the instrument accepts."""
EMISSIVITY = ValueSpec(unit="", low=EMISSIVITY_RANGE[0], high=EMISSIVITY_RANGE[1])
"""Single-colour emissivity the instrument accepts."""
_SLOPE_SIGNAL = Scpi("CONF:SLOP?", "CONF:SLOP", limits="emissivity_slope", fmt="{:.4f}")
_EPS_SIGNAL = Scpi("CONF:EMIS?", "CONF:EMIS", limits="emissivity", fmt="{:.4f}")


@runtime_checkable
class Pyrometer(LabDevice, Triggerable, Protocol):
    """A pyrometer: a contact-free temperature of the coupon it sights (the ``pyrometer``
    family's interface; plans type their arguments with it)."""

    temperature: SignalR[float]
    """The measured temperature, degC (NaN when the instrument has none)."""
    emissivity_slope: SignalRW[float]
    """ε(λ1)/ε(λ2) the instrument assumes of the target (1 = grey)."""


class PyrometerSettings(DeviceSettings):
    """Settings of a ratio pyrometer, written at connect: ``emissivity_slope`` ε(λ1)/ε(λ2)
    of the coupon (0.8..1.2; default 1, a grey body), ``emissivity`` for the single-colour
    temperature (0.05..1; default 1), and ``timeout_s``."""

    emissivity_slope: Annotated[float, quantity("", ge=0.8, le=1.2)] = 1.0
    emissivity: Annotated[float, quantity("", ge=0.05, le=1.0)] = 1.0


class ScpiRatioPyrometer(StandardReadable):
    """A two-colour (ratio) optical pyrometer over SCPI that sights the coupon.

    Parameters
    ----------
    address
        ``TCPIP::host::port::SOCKET`` (or ``socket://host:port``).
    emissivity_slope
        ε(λ1)/ε(λ2) written at connect (0.8..1.2).
    emissivity
        Single-colour emissivity written at connect (0.05..1).
    timeout
        Timeout of one exchange, s.
    name
        Device name.
    """

    lab_spec: ClassVar[DriverSpec] = DriverSpec(
        family="pyrometer",
        settings=PyrometerSettings,
        limits=DeviceLimits,
        twin="scpi_ratio_pyrometer",
        example={"address": "TCPIP::127.0.0.1::5025::SOCKET"},
    )
    """Family, lab-entry models and twin (couponlab.registry)."""

    def __init__(
        self,
        address: str,
        *,
        emissivity_slope: Any = 1.0,
        emissivity: Any = 1.0,
        timeout: float = 2.0,
        name: str = "",
    ) -> None:
        label = name or "pyrometer"
        self._slope = SLOPE.check(emissivity_slope, device=label, what="emissivity_slope")
        self._emissivity = EMISSIVITY.check(emissivity, device=label, what="emissivity")
        self.client = ScpiClient(make_transport(label, address, timeout=timeout))
        self._idn = ""
        self._range_c = (math.nan, math.nan)
        with self.add_children_as_readables(StandardReadableFormat.HINTED_SIGNAL):
            self.temperature, self._set_temperature = soft_signal_r_and_setter(
                float, math.nan, units="degC", precision=2
            )
        with self.add_children_as_readables():
            self.brightness_temperature, self._set_brightness = soft_signal_r_and_setter(
                float, math.nan, units="degC", precision=2
            )
            self.signal_strength, self._set_signal = soft_signal_r_and_setter(
                float, math.nan, units="%", precision=2
            )
            self.status, self._set_status = soft_signal_r_and_setter(str, "")
        # the two settings are declarative SCPI signals: signal.set(), the set_ methods
        # and connect all write through the same check (unit, range, a typed error)
        self._binding = ScpiBinding(
            self.client,
            limits={"emissivity_slope": SLOPE_RANGE, "emissivity": EMISSIVITY_RANGE},
        )
        with self.add_children_as_readables(StandardReadableFormat.CONFIG_SIGNAL):
            self.emissivity_slope = self._setting(_SLOPE_SIGNAL, "emissivity_slope")
            self.emissivity = self._setting(_EPS_SIGNAL, "emissivity")
        super().__init__(name=name, connector=ScpiConnector(self.client, self._on_connect))

    def _setting(self, spec: Scpi, what: str) -> ScpiSignalRW[float]:
        signal = scpi_signal(float, self._binding, spec, what)
        assert isinstance(signal, ScpiSignalRW)  # the declaration has a command
        return signal

    @classmethod
    def from_lab_entry(cls, entry: DeviceEntry) -> ScpiRatioPyrometer:
        """Build the pyrometer from its lab entry (:class:`PyrometerSettings`)."""
        s = PyrometerSettings.of(entry)
        return cls(
            entry.address,
            emissivity_slope=s.emissivity_slope,
            emissivity=s.emissivity,
            timeout=s.timeout_s,
            name=entry.name,
        )

    def set_name(self, name: str, *, child_name_separator: str | None = None) -> None:
        """Name the device (and the link's error messages)."""
        super().set_name(name, child_name_separator=child_name_separator)
        self.client.device = name

    # -- connect and settings -----------------------------------------------------------
    async def _on_connect(self) -> None:
        self._idn = await self.client.query("*IDN?")
        low, high = await self.client.query_floats("SENS:RANG?", 2)
        self._range_c = (low, high)
        await self.client.command("UNIT:TEMP C")
        await self.emissivity_slope.set(self._slope)
        await self.emissivity.set(self._emissivity)

    def range_c(self) -> tuple[float, float]:
        """Return the measuring range read at connect, degC (NaN before connect)."""
        return self._range_c

    async def set_emissivity_slope(self, value: Any) -> None:
        """Set ε(λ1)/ε(λ2) of the target (0.8..1.2; a number, a string or a dimensionless
        quantity). ``emissivity_slope.set(x)`` does the same."""
        await self.emissivity_slope.set(value)

    async def set_emissivity(self, value: Any) -> None:
        """Set the single-colour emissivity (0.05..1; a number, string or quantity)."""
        await self.emissivity.set(value)

    # -- measuring ----------------------------------------------------------------------
    @AsyncStatus.wrap
    async def trigger(self) -> None:
        """Take one measurement (ratio and single-colour temperature, signal, status)."""
        t, bright, signal, flag = await self.client.query_floats("MEAS:ALL?", 4)
        status = STATUS.get(int(flag))
        if status is None or flag != int(flag):
            raise ProtocolError(self.name, f"unknown status flag {flag!r} in MEAS:ALL?")
        self._set_temperature(math.nan if t >= OVERRANGE else t)
        self._set_brightness(math.nan if bright >= OVERRANGE else bright)
        self._set_signal(signal)
        self._set_status(status)

    async def identify(self) -> str:
        """Return the pyrometer's ``*IDN?``."""
        return self._idn or await self.client.query("*IDN?")

    async def state(self) -> str:
        """Return the status of the last measurement and the emissivity slope."""
        status = await self.status.get_value() or "not measured yet"
        return f"{status}, emissivity slope {await self.emissivity_slope.get_value():.3f}"

    async def safe_state(self) -> None:
        """A pyrometer only reads: its safe state is the idle state it is always in."""
        await self.client.query("*OPC?")

    async def disconnect(self) -> None:
        """Close the link."""
        await self.client.close()


__all__ = ["Pyrometer", "PyrometerSettings", "ScpiRatioPyrometer"]
