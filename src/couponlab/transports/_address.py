"""Pick the line transport an address names: VISA resource, serial port or TCP socket."""

from __future__ import annotations

from typing import Any

from couponlab.errors import InputError
from couponlab.transports._base import Backoff, LineTransport
from couponlab.transports._serial import SerialLineTransport
from couponlab.transports._tcp import TcpLineTransport
from couponlab.transports._visa import VisaLineTransport


def make_transport(
    device: str,
    address: str,
    *,
    timeout: float = 2.0,
    serial: dict[str, Any] | None = None,
    backoff: Backoff | None = None,
) -> LineTransport:
    """Return the (unconnected) transport for ``address``.

    - a VISA resource name (``TCPIP::host::port::SOCKET``, ``ASRL...::INSTR``, ``GPIB...``):
      :class:`VisaLineTransport`;
    - ``socket://host:port`` or ``tcp://host:port``: :class:`TcpLineTransport`, unless
      ``serial`` framing is given (an instrument on a serial line reached through a
      serial-to-LAN bridge or a twin): then :class:`SerialLineTransport`;
    - anything else (``/dev/ttyUSB0``, ``COM3``, ``rfc2217://...``):
      :class:`SerialLineTransport` with ``serial`` framing (``baudrate``, ``bytesize``,
      ``parity``, ``stopbits``).

    Parameters
    ----------
    timeout
        Timeout of one exchange, s (> 0).

    Raises
    ------
    InputError
        The address or the framing is malformed.
    """
    try:
        if not isinstance(address, str) or not address:
            raise ValueError(f"address {address!r} is not a non-empty string")
        if "::" in address:
            return VisaLineTransport(device, address, timeout=timeout, backoff=backoff)
        if address.startswith(("socket://", "tcp://")) and serial is None:
            host, _, port = address.split("://", 1)[1].rstrip("/").rpartition(":")
            return TcpLineTransport(device, host, int(port), timeout=timeout, backoff=backoff)
        s = serial or {}
        return SerialLineTransport(
            device,
            address,
            baudrate=int(s.get("baudrate", 115200)),
            bytesize=int(s.get("bytesize", 8)),
            parity=str(s.get("parity", "N")),
            stopbits=float(s.get("stopbits", 1)),
            timeout=timeout,
            backoff=backoff,
        )
    except (TypeError, ValueError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(device, f"bad address {address!r} or settings {serial}: {exc}") from exc


__all__ = ["make_transport"]
