"""ophyd-async driver of the SCPI thermocouple scanner
(docs/protocols/thermocouple-scanner-scpi.md): one scan of every channel per trigger.

The thermocouples sit along the coupon carrier at ``positions_mm`` (lab entry settings);
the reading ``<name>-temperatures`` is one temperature per channel in degC (an open
thermocouple reads NaN), and ``<name>-positions`` (configuration) says where each one is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, ClassVar

import numpy as np
from ophyd_async.core import (
    Array1D,
    AsyncStatus,
    StandardReadable,
    StandardReadableFormat,
    soft_signal_r_and_setter,
)
from pydantic import Field

from couponlab.drivers._scpi_device import ScpiConnector
from couponlab.errors import InputError, ProtocolError
from couponlab.lab_settings import DeviceLimits, DeviceSettings, FiniteFloat
from couponlab.labfile import DeviceEntry
from couponlab.registry import DriverSpec
from couponlab.transports import ScpiClient, make_transport

OVERRANGE = 9.0e37
"""Readings at or above this are the instrument's overflow: an open thermocouple."""
MIN_CHANNELS = 1


class ScannerSettings(DeviceSettings):
    """Settings of a thermocouple scanner: ``positions_mm`` (required), the position of each
    channel's thermocouple along the coupon, mm (finite, at least one), and ``timeout_s``."""

    positions_mm: Annotated[tuple[FiniteFloat, ...], Field(min_length=MIN_CHANNELS)]


class ScpiThermocoupleScanner(StandardReadable):
    """A multi-channel thermocouple scanner (Keithley 2700 class) over SCPI.

    Parameters
    ----------
    address
        ``TCPIP::host::port::SOCKET`` (or ``socket://host:port``).
    positions_mm
        Position of each channel's thermocouple along the coupon, mm; the instrument must
        have exactly that many channels in its scan list (checked at connect).
    timeout
        Timeout of one exchange, s.
    """

    lab_spec: ClassVar[DriverSpec] = DriverSpec(
        family="thermocouple_scanner",
        settings=ScannerSettings,
        limits=DeviceLimits,
        twin="scpi_thermocouple_scanner",
        example={
            "address": "TCPIP::127.0.0.1::1394::SOCKET",
            "settings": {"positions_mm": [0, 10, 20]},
        },
    )
    """Family, lab-entry models and twin (couponlab.registry)."""

    def __init__(
        self,
        address: str,
        *,
        positions_mm: Sequence[float],
        timeout: float = 2.0,
        name: str = "",
    ) -> None:
        pos = np.asarray([float(p) for p in positions_mm], dtype=np.float64)
        if pos.size < MIN_CHANNELS or not np.all(np.isfinite(pos)):
            raise InputError(
                name, f"positions_mm {list(positions_mm)} must be finite, >= 1 of them"
            )
        self._positions = pos
        self.client = ScpiClient(make_transport(name or "scanner", address, timeout=timeout))
        self._idn = ""
        with self.add_children_as_readables(StandardReadableFormat.HINTED_SIGNAL):
            self.temperatures, self._set_temperatures = soft_signal_r_and_setter(
                Array1D[np.float64], np.full(pos.size, np.nan), units="degC", precision=2
            )
        with self.add_children_as_readables(StandardReadableFormat.CONFIG_SIGNAL):
            self.positions, _set_positions = soft_signal_r_and_setter(
                Array1D[np.float64], pos, units="mm"
            )
        super().__init__(name=name, connector=ScpiConnector(self.client, self._on_connect))

    @classmethod
    def from_lab_entry(cls, entry: DeviceEntry) -> ScpiThermocoupleScanner:
        """Build the scanner from its lab entry (:class:`ScannerSettings`: ``positions_mm``
        required)."""
        s = ScannerSettings.of(entry)
        return cls(
            entry.address,
            positions_mm=s.positions_mm,
            timeout=s.timeout_s,
            name=entry.name,
        )

    def set_name(self, name: str, *, child_name_separator: str | None = None) -> None:
        """Name the device (and the link's error messages)."""
        super().set_name(name, child_name_separator=child_name_separator)
        self.client.device = name

    def positions_mm(self) -> tuple[float, ...]:
        """Return each thermocouple's position along the coupon, mm."""
        return tuple(float(p) for p in self._positions)

    async def _on_connect(self) -> None:
        self._idn = await self.client.query("*IDN?")
        (count,) = await self.client.query_floats("ROUT:COUN?", 1)
        if int(count) != self._positions.size:
            raise ProtocolError(
                self.name,
                f"the scan list has {int(count)} channels but "
                f"{self._positions.size} positions are set",
            )
        await self.client.command("UNIT:TEMP C")

    @AsyncStatus.wrap
    async def trigger(self) -> None:
        """Scan every channel once."""
        values = await self.client.query_floats("READ?", self._positions.size)
        arr = np.asarray(values, dtype=np.float64)
        arr[arr >= OVERRANGE] = np.nan
        self._set_temperatures(arr)

    async def identify(self) -> str:
        """Return the scanner's ``*IDN?``."""
        return self._idn or await self.client.query("*IDN?")

    async def state(self) -> str:
        """Return ``"scanning <n> channels"`` and how many read open."""
        temps = await self.temperatures.get_value()
        open_ = int(np.isnan(temps).sum())
        return f"scanning {self._positions.size} channels" + (f", {open_} open" if open_ else "")

    async def safe_state(self) -> None:
        """A scanner only reads: its safe state is the idle state it is always in."""
        await self.client.query("*OPC?")

    async def disconnect(self) -> None:
        """Close the link."""
        await self.client.close()


__all__ = ["ScpiThermocoupleScanner"]
