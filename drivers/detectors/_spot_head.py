"""What the oxide profiler and the XRF probe drivers share: dwell, a triggered measurement,
and a hardware-timed line for fly scans (docs/protocols/oxide-profiler-scpi.md).

Step scans: ``trigger()`` sends ``INIT`` with its error check and the status query in one
exchange, then polls ``ACQ?`` (status and result in one reply), sleeping for the dwell left
on the instrument's clock. The result lands in soft signals that ``read()`` returns, so a
read costs no exchange.

Fly scans: ``prepare(LineSpec)`` configures ``LINE:CONF``; ``kickoff()`` arms the line,
which starts at the stage's next motion start; ``complete()`` polls ``LINE:STAT?``;
``collect_pages()`` fetches every sample (time, stage x, y, values) as one IEEE block and
yields one event page.
"""

from __future__ import annotations

import math
import time
from abc import abstractmethod
from collections.abc import AsyncIterator, Sequence
from typing import Annotated as A  # noqa: N817 (ophyd-async idiom)
from typing import Any

import numpy as np
from bluesky.protocols import Reading
from event_model import DataKey, PartialEventPage
from ophyd_async.core import AsyncStatus, StandardReadable, StandardReadableFormat

from couponlab.drivers._scpi_device import Scpi, ScpiDeviceConnector, ScpiSignalRW
from couponlab.errors import InputError, OutOfLimitsError, ProtocolError
from couponlab.interfaces.detectors import LineSpec
from couponlab.transports import ScpiClient, make_transport
from couponlab.units import to_magnitude

MAX_LINE_POINTS = 100_000


class SpotHeadDevice(StandardReadable):
    dwell: A[
        ScpiSignalRW[float],
        Scpi("CONF:DWEL?", "CONF:DWEL", unit="s", limits="dwell"),
        StandardReadableFormat.CONFIG_SIGNAL,
    ]
    """Measuring time at one spot, s (the instrument's range)."""

    """Base of a spot-measuring head on the x-y stage, over SCPI.

    ``dwell`` (s, the instrument's range read at connect) is declared once: ``set`` on it,
    ``prepare`` and the plans all go through its checks.

    Parameters
    ----------
    address
        ``TCPIP::host::port::SOCKET`` (or ``socket://host:port``).
    n_values
        Values per measurement in the instrument's replies.
    timeout
        Timeout of one exchange, s.
    fly_timeout
        Wall-clock limit of one fly line (arm to last sample), s.
    """

    def __init__(
        self,
        address: str,
        *,
        n_values: int,
        timeout: float = 2.0,
        fly_timeout: float = 600.0,
        name: str = "",
    ) -> None:
        self.client = ScpiClient(make_transport(name or "head", address, timeout=timeout))
        self._n_values = n_values
        self._fly_timeout = fly_timeout
        self._idn = ""
        self._line: LineSpec | None = None
        self._armed_clock = 0.0
        self._armed_wall = 0.0
        self._collected = 0
        connector = ScpiDeviceConnector(self.client, on_connect=self._on_connect)
        self._binding = connector.binding
        super().__init__(name=name, connector=connector)

    def set_name(self, name: str, *, child_name_separator: str | None = None) -> None:
        """Name the device (and the link's error messages)."""
        super().set_name(name, child_name_separator=child_name_separator)
        self.client.device = name

    async def _on_connect(self) -> None:
        self._idn = await self.client.query("*IDN?")
        lo, hi = await self.client.query_floats("CONF:DWEL:LIM?", 2)
        self._binding.limits["dwell"] = (lo, hi)
        await self.dwell.get_value()
        await self._on_connect_head()

    async def _on_connect_head(self) -> None:
        """Read head-specific static state (override)."""

    # -- dwell -------------------------------------------------------------------------
    def dwell_limits(self) -> tuple[float, float]:
        """Return the allowed dwell (low, high), s."""
        return self._binding.limits.get("dwell", (0.0, math.inf))

    def check_dwell(self, value: Any) -> float:
        """Return ``value`` in s if allowed, else raise OutOfLimitsError / UnitError."""
        dwell: float = self._binding.check("dwell", value)
        return dwell

    # -- step measurement --------------------------------------------------------------
    @abstractmethod
    def _apply(self, values: Sequence[float]) -> None:
        """Put one measurement's values into the reading signals."""

    def _parse_acq(self, reply: str) -> tuple[str, float, list[float]]:
        parts = reply.split(",")
        if len(parts) != 2 + self._n_values:
            raise ProtocolError(self.name, f"malformed ACQ? reply {reply!r}")
        try:
            return parts[0], float(parts[1]), [float(v) for v in parts[2:]]
        except ValueError:
            raise ProtocolError(self.name, f"malformed ACQ? reply {reply!r}") from None

    @AsyncStatus.wrap
    async def trigger(self) -> None:
        """Take one measurement of ``dwell`` s at the spot and wait for its result."""
        dwell = self._binding.last("dwell") or 0.0
        if self.client.short(dwell):
            reply = (await self.client.command("INIT", "*OPC?;:ACQ?")).partition(";")[2]
        else:
            reply = await self.client.command("INIT", "ACQ?")
        state, remaining, values = self._parse_acq(reply)
        if state != "DONE":
            await self.client.pause(remaining)

            async def poll() -> tuple[bool, float, list[float]]:
                st, rem, vals = self._parse_acq(await self.client.query("ACQ?"))
                if st == "IDLE":
                    raise ProtocolError(self.name, "measurement was aborted")
                return st == "DONE", rem, vals

            values = await self.client.wait_for(
                poll, what="measurement", timeout=2 * dwell / self.client.clock_rate + 10.0
            )
        self._apply(values)

    # -- fly line ----------------------------------------------------------------------
    def check_line(self, value: LineSpec) -> None:
        """Raise OutOfLimitsError if the line cannot be taken (points, period)."""
        if not isinstance(value, LineSpec):
            raise InputError(self.name, f"prepare() takes a LineSpec, not {value!r}")
        if isinstance(value.points, bool) or not isinstance(value.points, int | np.integer):
            raise InputError(self.name, f"line points = {value.points!r} is not a whole number")
        if not 1 <= value.points <= MAX_LINE_POINTS:
            raise OutOfLimitsError(self.name, "line points", value.points, 1, MAX_LINE_POINTS)
        lo, hi = self.dwell_limits()
        to_magnitude(value.period_s, "s", device=self.name, what="line period", low=lo, high=hi)

    @AsyncStatus.wrap
    async def prepare(self, value: LineSpec) -> None:
        """Configure a line of ``value.points`` samples of ``value.period_s`` each."""
        self.check_line(value)
        await self.client.command(f"LINE:CONF {value.points},{value.period_s:.6g}")
        self._line = value

    @AsyncStatus.wrap
    async def kickoff(self) -> None:
        """Arm the line: sampling starts when the stage next starts moving."""
        if self._line is None:
            raise InputError(self.name, "kickoff() before prepare(LineSpec)")
        clock = await self.client.command("LINE:ARM", "SYST:CLOC?")
        self._armed_wall = time.time()
        self._armed_clock = float(clock)
        self._collected = 0

    @AsyncStatus.wrap
    async def complete(self) -> None:
        """Wait until every sample of the line is taken."""
        line = self._line
        if line is None:
            raise InputError(self.name, "complete() before prepare(LineSpec)")

        async def poll() -> tuple[bool, float, None]:
            reply = await self.client.query("LINE:STAT?")
            state, got, n = reply.split(",")
            if state == "IDLE":
                raise ProtocolError(self.name, "line acquisition was aborted")
            left = (int(n) - int(got)) * line.period_s
            return state == "DONE", left if state != "ARMED" else line.period_s, None

        await self.client.wait_for(poll, what="line acquisition", timeout=self._fly_timeout)

    @abstractmethod
    def _value_keys(self) -> dict[str, DataKey]:
        """Return the data keys of the measured values (without positions)."""

    @abstractmethod
    def _value_columns(self, rows: np.ndarray[Any, Any]) -> dict[str, list[Any]]:
        """Return the event-page columns of the values (rows: t, x, y, values...)."""

    def describe_collect(self) -> dict[str, DataKey]:
        """Describe a fly line's columns: sample time, stage x and y, and the values."""
        src = f"scpi://{self.client.address}"
        keys: dict[str, DataKey] = {
            f"{self.name}-x": DataKey(source=src, dtype="number", shape=[], units="mm"),
            f"{self.name}-y": DataKey(source=src, dtype="number", shape=[], units="mm"),
            f"{self.name}-instrument_time": DataKey(
                source=src, dtype="number", shape=[], units="s"
            ),
        }
        keys.update(self._value_keys())
        return keys

    async def collect_pages(self) -> AsyncIterator[PartialEventPage]:
        """Yield the samples taken since the last collect as one event page."""
        block = await self.client.query_binary_values("LINE:DATA?", columns=3 + self._n_values)
        rows = block[self._collected :]
        if rows.shape[0] == 0:
            return
        self._collected += rows.shape[0]
        wall = self._armed_wall + (rows[:, 0] - self._armed_clock) / self.client.clock_rate
        data: dict[str, list[Any]] = {
            f"{self.name}-x": rows[:, 1].tolist(),
            f"{self.name}-y": rows[:, 2].tolist(),
            f"{self.name}-instrument_time": rows[:, 0].tolist(),
        }
        data.update(self._value_columns(rows))
        ts = wall.tolist()
        yield PartialEventPage(data=data, timestamps={k: ts for k in data}, time=ts)

    # -- LabDevice -----------------------------------------------------------------------
    async def identify(self) -> str:
        """Return the head's ``*IDN?`` (maker, model, serial, firmware)."""
        return self._idn or await self.client.query("*IDN?")

    async def state(self) -> str:
        """Return the acquisition state: ``idle``, ``measuring``, ``line-armed`` ..."""
        acq = (await self.client.query("ACQ?")).split(",")[0]
        line = (await self.client.query("LINE:STAT?")).split(",")[0]
        if line in ("ARMED", "RUNNING"):
            return f"line-{line.lower()}"
        return "measuring" if acq == "BUSY" else "idle"

    @AsyncStatus.wrap
    async def unstage(self) -> None:
        """Abort any measurement or line at the end of a run."""
        await self.client.command("ABOR")

    async def stop(self, success: bool = True) -> None:
        """Abort any measurement or line."""
        await self.client.command("ABOR")

    async def safe_state(self) -> None:
        """Abort any measurement or line (the head's safe state)."""
        await self.stop()

    async def disconnect(self) -> None:
        """Close the link."""
        await self.client.close()


def reading(value: Any, ts: float) -> Reading[Any]:
    """Return a bluesky reading."""
    return Reading(value=value, timestamp=ts)


__all__ = ["MAX_LINE_POINTS", "SpotHeadDevice"]
