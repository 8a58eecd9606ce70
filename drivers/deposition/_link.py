"""What the feeder and cell drivers take from their lab entries (serial transport, limits,
watchdog) and the driver's side of their communication watchdog. Exchanges go through the
one SCPI/line client, :class:`~couponlab.transports.ScpiClient`."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import field_validator

from couponlab.errors import InputError
from couponlab.keepalive import KeepAlive
from couponlab.lab_settings import DeviceSettings, Watchdog
from couponlab.labfile import DeviceEntry
from couponlab.transports import ScpiClient, SerialLineTransport


class SerialSettings(DeviceSettings):
    """Settings of a serial instrument (feeder, cell): framing, timeout and watchdog.

    Attributes
    ----------
    baudrate
        Bits per second (a standard rate, 1200..921600; default 115200).
    bytesize, parity, stopbits
        Framing: 5..8 data bits (8), parity ``N``/``E``/``O``/``M``/``S`` (``N``), 1, 1.5 or 2
        stop bits (1).
    watchdog_s
        Communication watchdog armed at connect, s of wall time (0 = off, the default;
        2 s suggested).
    """

    baudrate: Literal[
        1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600
    ] = 115200
    bytesize: Literal[5, 6, 7, 8] = 8
    parity: Literal["N", "E", "O", "M", "S"] = "N"
    stopbits: float = 1
    watchdog_s: Watchdog = 0.0

    @field_validator("stopbits")
    @classmethod
    def _stopbits(cls, value: float) -> float:
        if value not in (1, 1.5, 2):
            raise ValueError(f"{value!r} must be 1, 1.5 or 2")
        return value


def transport_from_entry(entry: DeviceEntry, s: SerialSettings) -> SerialLineTransport:
    """Build the serial transport of ``entry`` with its validated settings ``s``.

    ``entry.address`` is a port (``/dev/ttyUSB0``) or a pyserial URL
    (``socket://127.0.0.1:PORT`` for a twin).
    """
    return SerialLineTransport(
        entry.name,
        entry.address,
        baudrate=s.baudrate,
        bytesize=s.bytesize,
        parity=s.parity,
        stopbits=s.stopbits,
        timeout=s.timeout_s,
    )


class LinkWatchdog:
    """The driver's side of the instrument's communication watchdog (``SYST:WDOG``).

    :meth:`arm` (at connect) sets the timeout and starts a keep-alive that sends
    ``SYST:WDOG?`` every quarter of it (and re-arms an instrument that lost the timeout);
    :meth:`stop` (at close) stops the keep-alive and leaves the watchdog armed, so an
    instrument left active stops by itself.

    Parameters
    ----------
    link
        The checked link.
    timeout_s
        Watchdog timeout, s of wall time (0 = off: nothing is sent; up to 3600).
    """

    def __init__(self, link: ScpiClient, timeout_s: float) -> None:
        if not (math.isfinite(timeout_s) and 0.0 <= timeout_s <= 3600.0):
            raise InputError(
                link.device, f"watchdog = {timeout_s} s must be in [0, 3600] (0 = off)"
            )
        self.link = link
        self.timeout_s = float(timeout_s)
        self.keepalive = KeepAlive(link.device, self._feed, max(self.timeout_s / 4, 0.01))

    async def _feed(self) -> None:
        """One keep-alive query; re-arm if the instrument lost the timeout (restarted)."""
        reply = await self.link.query("SYST:WDOG?")
        try:
            ok = abs(float(reply) - self.timeout_s) < 5e-4
        except ValueError:
            ok = False
        if not ok:
            await self.link.command(f"SYST:WDOG {self.timeout_s:.3f}")

    async def arm(self) -> None:
        """Set the instrument's timeout and start feeding it (nothing when off)."""
        if self.timeout_s > 0:
            await self.link.command(f"SYST:WDOG {self.timeout_s:.3f}")
            self.keepalive.start()

    async def stop(self) -> None:
        """Stop feeding (the instrument's watchdog stays armed)."""
        await self.keepalive.stop()

    async def status(self) -> tuple[float, bool, str]:
        """Return the instrument's watchdog: (timeout s (0 = off), expired (latched), reason)."""
        timeout = float(await self.link.checked_query("SYST:WDOG?"))
        expired = (await self.link.checked_query("SYST:WDOG:EXP?")).strip() == "1"
        reason = (await self.link.checked_query("SYST:WDOG:REAS?")).strip()
        return timeout, expired, reason

    async def reset(self) -> None:
        """Clear the latched indication (the watchdog stays armed)."""
        await self.link.command("SYST:WDOG:RES")


__all__ = ["LinkWatchdog", "SerialSettings", "transport_from_entry"]
