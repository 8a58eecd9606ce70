"""The serial link shared by the feeder and cell drivers: a :class:`SerialLineTransport`
built from a lab entry, and SCPI-style checked commands (a setting and its error status in
one round trip: ``RATE 1,5;:SYST:ERR?``)."""

from __future__ import annotations

import re
from typing import Any

from couponlab.errors import InputError, InterlockTrippedError, ProtocolError
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


__all__ = ["ScpiLink", "floats", "limit", "parse_error", "transport_from_entry"]
