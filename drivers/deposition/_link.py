"""The serial link shared by the feeder and cell drivers: a :class:`SerialLineTransport`
built from a lab entry, and SCPI-style checked commands (a setting and its error status in
one round trip: ``RATE 1,5;:SYST:ERR?``)."""

from __future__ import annotations

import math
import re
from typing import Any

from couponlab.errors import InputError, InterlockTrippedError, ProtocolError
from couponlab.keepalive import KeepAlive
from couponlab.labfile import DeviceEntry
from couponlab.transports import SerialLineTransport
from couponlab.units import to_magnitude

_ERROR = re.compile(r'^\s*([+-]?\d+)\s*,\s*"(.*)"\s*$')
_STATUS_TAIL = re.compile(r'(?:^|;)(\s*[+-]?\d+\s*,\s*"[^"]*"\s*)$')
"""The error status that ends a ``query;:SYST:ERR?`` reply (its message may hold ``;``)."""
NO_ERROR = 0


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


def parse_error(device: str, command: str, reply: str) -> None:
    """Raise the typed error that a ``SYST:ERR?`` reply reports (nothing for ``0``)."""
    m = _ERROR.match(reply)
    if m is None:
        raise ProtocolError(device, f"unexpected error-status reply to {command!r}: {reply!r}")
    code, message = int(m.group(1)), m.group(2)
    if code == NO_ERROR:
        return
    if "interlock" in message.lower():
        raise InterlockTrippedError(device, f"{command!r} refused: {message} ({code})")
    raise ProtocolError(device, f"{command!r} refused by the instrument: {message} ({code})")


class ScpiLink:
    """Checked exchanges over a line transport.

    Parameters
    ----------
    transport
        The serial transport (connected lazily by its first exchange).
    """

    def __init__(self, transport: SerialLineTransport) -> None:
        self.transport = transport
        self.device = transport.device

    async def query(self, command: str) -> str:
        """Send a query and return its reply (no error check)."""
        return await self.transport.query(command)

    async def command(self, command: str) -> None:
        """Send a setting and raise the typed error the instrument reports for it."""
        reply = await self.transport.query(f"{command};:SYST:ERR?", idempotent=False)
        parse_error(self.device, command, reply)

    async def checked_query(self, command: str) -> str:
        """Send a query with an error check; return its reply or raise the reported error."""
        reply = await self.transport.query(f"{command};:SYST:ERR?")
        m = _STATUS_TAIL.search(reply)
        if m is None:
            raise ProtocolError(
                self.device, f"unexpected error-status reply to {command!r}: {reply!r}"
            )
        parse_error(self.device, command, m.group(1))
        if m.start(1) == 0:  # a failed query sends no reply of its own, only the status
            raise ProtocolError(self.device, f"no reply to {command!r}: {reply!r}")
        return reply[: m.start()]

    async def close(self) -> None:
        """Close the transport."""
        await self.transport.close()


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

    def __init__(self, link: ScpiLink, timeout_s: float) -> None:
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


def floats(device: str, command: str, reply: str, count: int | None = None) -> list[float]:
    """Parse a comma-separated reply of numbers (exactly ``count`` if given)."""
    parts = reply.split(",")
    if count is not None and len(parts) != count:
        raise ProtocolError(
            device, f"reply to {command!r} has {len(parts)} fields, expected {count}: {reply!r}"
        )
    try:
        return [float(p) for p in parts]
    except ValueError:
        raise ProtocolError(
            device, f"garbled numbers in reply to {command!r}: {reply!r}"
        ) from None


def limit(entry: DeviceEntry, key: str, unit: str, default: float) -> float:
    """Return the lab limit ``key`` of ``entry`` in ``unit`` (``default`` when absent)."""
    value: Any = entry.limits.get(key, default)
    return to_magnitude(value, unit, device=entry.name, what=f"limits.{key}", low=0)


__all__ = [
    "LinkWatchdog",
    "ScpiLink",
    "floats",
    "limit",
    "parse_error",
    "transport_from_entry",
    "watchdog_setting",
]
