"""ophyd-async driver of the SCPI oxide-thickness profiler
(docs/protocols/oxide-profiler-scpi.md): thickness in nm at the spot under the head, with
an out-of-range flag, in step scans (trigger/read) and fly lines (kickoff/collect)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from event_model import DataKey
from ophyd_async.core import StandardReadableFormat, soft_signal_r_and_setter

from couponlab.drivers.detectors._spot_head import SpotHeadDevice
from couponlab.lab_settings import DeviceLimits, DeviceSettings
from couponlab.labfile import DeviceEntry
from couponlab.registry import DriverSpec

FLAGS = ("ok", "under", "over")


class ScpiOxideProfiler(SpotHeadDevice):
    """An oxide-thickness profiler (reflectometer) head on the x-y stage.

    Readings: ``<name>-thickness`` (nm, NaN when out of range) and ``<name>-range_flag``
    (``ok``, ``under`` or ``over``). Configuration: ``<name>-dwell`` (s).

    Parameters
    ----------
    address
        ``TCPIP::host::port::SOCKET`` (or ``socket://host:port``).
    timeout
        Timeout of one exchange, s.
    """

    lab_spec: ClassVar[DriverSpec] = DriverSpec(
        family="oxide_profiler",
        settings=DeviceSettings,
        limits=DeviceLimits,
        twin="scpi_oxide_profiler",
        example={"address": "TCPIP::127.0.0.1::5025::SOCKET"},
    )
    """Family, lab-entry models and twin (couponlab.registry)."""

    def __init__(self, address: str, *, timeout: float = 2.0, name: str = "") -> None:
        with self.add_children_as_readables(StandardReadableFormat.HINTED_SIGNAL):
            self.thickness, self._set_thickness = soft_signal_r_and_setter(
                float, math.nan, units="nm", precision=2
            )
        with self.add_children_as_readables():
            self.range_flag, self._set_flag = soft_signal_r_and_setter(str, "under")
        self._range_nm = (0.0, math.inf)
        super().__init__(address, n_values=2, timeout=timeout, name=name)

    @classmethod
    def from_lab_entry(cls, entry: DeviceEntry) -> ScpiOxideProfiler:
        """Build the profiler from its lab-file entry (``settings.timeout_s`` optional)."""
        return cls(entry.address, timeout=DeviceSettings.of(entry).timeout_s, name=entry.name)

    async def _on_connect_head(self) -> None:
        lo, hi = await self.client.query_floats("CONF:RANG?", 2)
        self._range_nm = (lo * 1e9, hi * 1e9)

    def thickness_range_nm(self) -> tuple[float, float]:
        """Return the measurable range (low, high), nm."""
        return self._range_nm

    def _apply(self, values: Sequence[float]) -> None:
        thickness_m, flag = values
        self._set_thickness(thickness_m * 1e9)
        self._set_flag(_flag(flag))

    def _value_keys(self) -> dict[str, DataKey]:
        src = f"scpi://{self.client.address}"
        return {
            f"{self.name}-thickness": DataKey(source=src, dtype="number", shape=[], units="nm"),
            f"{self.name}-range_flag": DataKey(source=src, dtype="string", shape=[]),
        }

    def _value_columns(self, rows: np.ndarray[Any, Any]) -> dict[str, list[Any]]:
        return {
            f"{self.name}-thickness": (rows[:, 3] * 1e9).tolist(),
            f"{self.name}-range_flag": [_flag(f) for f in rows[:, 4]],
        }


def _flag(code: float) -> str:
    i = int(code) if math.isfinite(code) else -1
    return FLAGS[i] if 0 <= i < len(FLAGS) else "invalid"


__all__ = ["ScpiOxideProfiler"]
