"""The SCPI link that every detector and stage driver of this family uses.

One :class:`~couponlab.transports.LineTransport` per instrument (VISA for
``TCPIP::host::port::SOCKET``, ``ASRL...`` and GPIB resources; asyncio TCP for
``socket://host:port``). A setting is sent with its error check in one round trip
(``CMD;:SYST:ERR?``), and an instrument error becomes a :class:`ProtocolError` naming the
device and the command. Waits (a move, a dwell) poll the instrument, sleeping for the time
it says is left divided by its clock rate (``SYST:CLOC:RATE?``: 1 on hardware, the speed-up
on a twin), so time lives in the instrument.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ophyd_async.core import Device, DeviceConnector

from couponlab.drivers._scpi_link import ScpiLineLink
from couponlab.errors import InstrumentTimeoutError, ProtocolError
from couponlab.transports import LineTransport, TcpLineTransport, VisaLineTransport

T = TypeVar("T")

MIN_POLL_S = 0.0002
MAX_POLL_S = 0.05
OPC_WAIT_MAX_S = 0.002
"""Operations expected to end within this wall time are awaited with a blocking ``*OPC?``
in the same exchange (cheaper than a poll); longer ones are polled, leaving the loop free."""


def make_transport(device: str, address: str, *, timeout: float = 2.0) -> LineTransport:
    """Return the transport for ``address`` (VISA resource or ``socket://host:port``)."""
    if address.startswith(("socket://", "tcp://")):
        host, _, port = address.split("://", 1)[1].rstrip("/").rpartition(":")
        return TcpLineTransport(device, host, int(port), timeout=timeout)
    return VisaLineTransport(device, address, timeout=timeout)


class ScpiLink(ScpiLineLink):
    """Request/reply with error checking and instrument-timed polling.

    Parameters
    ----------
    device
        Device name for error messages.
    address
        Where the instrument is (see :func:`make_transport`).
    timeout
        Timeout of one exchange, s.
    """

    def __init__(self, device: str, address: str, *, timeout: float = 2.0) -> None:
        super().__init__(device, address, make_transport(device, address, timeout=timeout))

    async def open(self) -> None:
        """Connect and read the instrument's clock rate."""
        await self.transport.connect()
        await self.read_clock_rate()

    async def command(self, command: str, then: str = "") -> str:
        """Send a setting with its error check in one exchange; return the reply of ``then``.

        Raises
        ------
        ProtocolError
            The instrument reported an error for ``command`` (its message is included).
        """
        line = f"{command};:SYST:ERR?" + (f";:{then}" if then else "")
        reply = await self.transport.query(line)
        err, sep, rest = _split_error(reply)
        code = _error_code(err)
        if code is None:
            raise ProtocolError(self.device, f"reply to {line!r} is malformed: {reply!r}")
        if code != 0:
            raise ProtocolError(self.device, f"instrument refused {command!r}: {err}")
        if then and not sep:
            raise ProtocolError(self.device, f"no reply to {then!r} in {reply!r}")
        return rest

    def short(self, instrument_s: float) -> bool:
        """Return whether an operation of ``instrument_s`` ends within OPC_WAIT_MAX_S."""
        return 0 <= instrument_s / self.clock_rate <= OPC_WAIT_MAX_S

    async def pause(self, remaining: float) -> None:
        """Sleep for ``remaining`` instrument seconds (bounded to a poll interval)."""
        wait = remaining / self.clock_rate if math.isfinite(remaining) else MAX_POLL_S
        # below MIN_POLL_S a poll (one round trip) costs less than a timer sleep
        await asyncio.sleep(min(MAX_POLL_S, wait) if wait > MIN_POLL_S else 0)

    async def wait_for(
        self,
        poll: Callable[[], Awaitable[tuple[bool, float, T]]],
        *,
        what: str,
        timeout: float,
    ) -> T:
        """Poll until done; sleep the remaining instrument time / clock rate in between.

        Parameters
        ----------
        poll
            Returns ``(done, remaining_instrument_s, value)``.
        what
            What is awaited, for the timeout message.
        timeout
            Wall-clock limit, s.
        """
        deadline = time.monotonic() + timeout
        while True:
            done, remaining, value = await poll()
            if done:
                return value
            if time.monotonic() > deadline:
                raise InstrumentTimeoutError(
                    self.device, f"{what} not finished within {timeout:g} s"
                )
            await self.pause(remaining)


def _split_error(reply: str) -> tuple[str, str, str]:
    # the error reply is `code,"message"`; the message may not contain `";`
    end = reply.find('"', reply.find('"') + 1)
    if end < 0:
        return reply, "", ""
    err, rest = reply[: end + 1], reply[end + 1 :]
    if rest.startswith(";"):
        return err, ";", rest[1:]
    return err, "", rest


def _error_code(err: str) -> int | None:
    head = err.split(",", 1)[0]
    try:
        return int(head)
    except ValueError:
        return None


class ScpiConnector(DeviceConnector):
    """Open the device's :class:`ScpiLink` on connect, then run its ``on_connect`` hook.

    Parameters
    ----------
    link
        The link to open.
    on_connect
        Called after the link is open (reads static instrument state into signals).
    """

    def __init__(self, link: ScpiLink, on_connect: Callable[[], Awaitable[None]]) -> None:
        self.link = link
        self.on_connect = on_connect

    async def connect_real(self, device: Device, timeout: float, force_reconnect: bool) -> None:
        """Open the link, connect the children, then run ``on_connect``."""
        await self.link.open()
        await super().connect_real(device, timeout, force_reconnect)
        await self.on_connect()


def require(value: Any, device: str, what: str) -> Any:
    """Return ``value``; raise ProtocolError if it is None (state read at connect missing)."""
    if value is None:
        raise ProtocolError(device, f"{what} unknown: connect the device first")
    return value


__all__ = ["ScpiConnector", "ScpiLink", "make_transport", "require"]
