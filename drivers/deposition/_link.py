"""What the feeder and cell drivers take from their lab entries (serial transport, limits,
watchdog) and the driver's side of their communication watchdog. Exchanges go through the
one SCPI/line client, :class:`~couponlab.transports.ScpiClient`."""

from __future__ import annotations

import math
from typing import Any

from couponlab.errors import InputError
from couponlab.keepalive import KeepAlive
from couponlab.labfile import DeviceEntry
from couponlab.transports import ScpiClient, SerialLineTransport
from couponlab.units import to_magnitude


def transport_from_entry(entry: DeviceEntry) -> SerialLineTransport:
    """Build the serial transport of ``entry``.

    ``entry.address`` is a port (``/dev/ttyUSB0``) or a pyserial URL
    (``socket://127.0.0.1:PORT`` for a twin). ``entry.settings`` may give ``baudrate``
    (default 115200), ``bytesize`` (8), ``parity`` ("N"), ``stopbits`` (1) and ``timeout``
    (s, default 2; a quantity string such as ``"500 ms"`` works).
    """
    s = entry.settings
    try:
        timeout = to_magnitude(
            s.get("timeout", 2.0), "s", device=entry.name, what="timeout", low=0.01, high=60
        )
        return SerialLineTransport(
            entry.name,
            entry.address,
            baudrate=int(s.get("baudrate", 115200)),
            bytesize=int(s.get("bytesize", 8)),
            parity=str(s.get("parity", "N")),
            stopbits=float(s.get("stopbits", 1)),
            timeout=timeout,
        )
    except (TypeError, ValueError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(entry.name, f"bad serial settings {s}: {exc}") from exc


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


def watchdog_setting(entry: DeviceEntry) -> float:
    """Return ``settings.watchdog_s`` of ``entry``, s (0 = off when absent)."""
    value: Any = entry.settings.get("watchdog_s", 0.0)
    return to_magnitude(value, "s", device=entry.name, what="watchdog_s", low=0)


def limit(entry: DeviceEntry, key: str, unit: str, default: float) -> float:
    """Return the lab limit ``key`` of ``entry`` in ``unit`` (``default`` when absent)."""
    value: Any = entry.limits.get(key, default)
    return to_magnitude(value, unit, device=entry.name, what=f"limits.{key}", low=0)


__all__ = ["LinkWatchdog", "limit", "transport_from_entry", "watchdog_setting"]
