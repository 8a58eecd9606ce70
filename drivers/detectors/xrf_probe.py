"""ophyd-async driver of the SCPI XRF composition probe (docs/protocols/xrf-probe-scpi.md):
element fractions at the spot under the probe, with counting noise that falls with dwell.

The X-ray source is switched on by ``stage()`` (at the start of a run) and off by
``unstage()``, ``stop()`` and ``safe_state()``; a measurement with the source off is refused
by the instrument.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from event_model import DataKey
from ophyd_async.core import (
    AsyncStatus,
    SignalR,
    StandardReadableFormat,
    soft_signal_r_and_setter,
)

from couponlab.drivers.detectors._spot_head import SpotHeadDevice
from couponlab.errors import InputError, ProtocolError
from couponlab.lab_settings import DeviceLimits, DeviceSettings
from couponlab.labfile import DeviceEntry
from couponlab.registry import DriverSpec
from couponlab.units import to_switch

_ELEMENT = re.compile(r"^[A-Z][a-z]?$")
DEFAULT_ELEMENTS = ("Cr", "Ni", "Fe", "Al")


class XrfSettings(DeviceSettings):
    """Settings of an XRF probe: ``elements`` it reports (distinct chemical symbols; default
    Cr, Ni, Fe, Al) and ``timeout_s``."""

    elements: tuple[str, ...] = DEFAULT_ELEMENTS


class ScpiXrfProbe(SpotHeadDevice):
    """An XRF probe on the x-y stage.

    Readings: ``<name>-fraction_<el>`` per element (fraction of the counts, 0..1; NaN off
    the coupon) and ``<name>-counts`` (total counts of the measurement).

    Parameters
    ----------
    address
        ``TCPIP::host::port::SOCKET`` (or ``socket://host:port``).
    elements
        Elements to read, as chemical symbols; the instrument must quantify each (checked
        at connect).
    timeout
        Timeout of one exchange, s.
    """

    lab_spec: ClassVar[DriverSpec] = DriverSpec(
        family="xrf_probe",
        settings=XrfSettings,
        limits=DeviceLimits,
        twin="scpi_xrf_probe",
        example={"address": "TCPIP::127.0.0.1::5025::SOCKET"},
    )
    """Family, lab-entry models and twin (couponlab.registry)."""

    def __init__(
        self,
        address: str,
        *,
        elements: Sequence[str] = DEFAULT_ELEMENTS,
        timeout: float = 2.0,
        name: str = "",
    ) -> None:
        elements = tuple(elements)
        bad = [e for e in elements if not isinstance(e, str) or not _ELEMENT.match(e)]
        if bad or not elements or len(set(elements)) != len(elements):
            raise InputError(name, f"elements {list(elements)} must be distinct chemical symbols")
        self.elements = elements
        self._fraction: dict[str, SignalR[float]] = {}
        self._setters: list[Any] = []
        self._columns: list[int] = []
        with self.add_children_as_readables(StandardReadableFormat.HINTED_SIGNAL):
            for el in elements:
                sig, setter = soft_signal_r_and_setter(
                    float, math.nan, units="dimensionless", precision=4
                )
                setattr(self, f"fraction_{el.lower()}", sig)
                self._fraction[el] = sig
                self._setters.append(setter)
        with self.add_children_as_readables():
            self.counts, self._set_counts = soft_signal_r_and_setter(float, 0.0, units="counts")
        super().__init__(address, n_values=1, timeout=timeout, name=name)

    @classmethod
    def from_lab_entry(cls, entry: DeviceEntry) -> ScpiXrfProbe:
        """Build the probe from its lab entry (:class:`XrfSettings`)."""
        s = XrfSettings.of(entry)
        return cls(
            entry.address,
            elements=s.elements,
            timeout=s.timeout_s,
            name=entry.name,
        )

    def fraction(self, element: str) -> SignalR[float]:
        """Return the signal of one element's fraction (0..1)."""
        try:
            return self._fraction[element]
        except KeyError:
            raise InputError(
                self.name, f"no element {element!r}; have {list(self.elements)}"
            ) from None

    async def _on_connect_head(self) -> None:
        quantified = [e.strip() for e in (await self.client.query("CONF:ELEM?")).split(",")]
        missing = [e for e in self.elements if e not in quantified]
        if missing:
            raise ProtocolError(
                self.name, f"instrument does not quantify {missing}; it has {quantified}"
            )
        self._columns = [quantified.index(e) for e in self.elements]
        self._n_values = 1 + len(quantified)

    def _apply(self, values: Sequence[float]) -> None:
        self._set_counts(values[0])
        for setter, col in zip(self._setters, self._columns, strict=True):
            setter(values[1 + col])

    def _value_keys(self) -> dict[str, DataKey]:
        src = f"scpi://{self.client.address}"
        keys = {
            f"{self.name}-fraction_{el.lower()}": DataKey(
                source=src, dtype="number", shape=[], units="dimensionless"
            )
            for el in self.elements
        }
        keys[f"{self.name}-counts"] = DataKey(source=src, dtype="number", shape=[], units="counts")
        return keys

    def _value_columns(self, rows: np.ndarray[Any, Any]) -> dict[str, list[Any]]:
        cols: dict[str, list[Any]] = {
            f"{self.name}-fraction_{el.lower()}": rows[:, 4 + col].tolist()
            for el, col in zip(self.elements, self._columns, strict=True)
        }
        cols[f"{self.name}-counts"] = rows[:, 3].tolist()
        return cols

    # -- source --------------------------------------------------------------------------
    async def source(self, on: bool | str) -> None:
        """Switch the X-ray source: ``True``/``"on"`` or ``False``/``"off"`` (nothing else).

        Raises
        ------
        InputError
            ``on`` is not an explicit on/off (nothing sent).
        """
        state = to_switch(on, device=self.name, what="X-ray source")
        await self.client.command(f"SOUR:STAT {'ON' if state else 'OFF'}")

    async def source_on(self) -> bool:
        """Return whether the X-ray source is on."""
        return (await self.client.query("SOUR:STAT?")).strip() == "1"

    @AsyncStatus.wrap
    async def stage(self) -> None:
        """Switch the source on for a run."""
        await self.source(True)

    @AsyncStatus.wrap
    async def unstage(self) -> None:
        """Abort and switch the source off at the end of a run."""
        await self.client.command("ABOR")
        await self.source(False)

    async def stop(self, success: bool = True) -> None:
        """Abort any measurement and switch the source off."""
        await self.client.command("ABOR")
        await self.source(False)

    async def state(self) -> str:
        """Return the acquisition state and whether the source is on."""
        base = await super().state()
        return f"{base}, source {'on' if await self.source_on() else 'off'}"


__all__ = ["ScpiXrfProbe"]
