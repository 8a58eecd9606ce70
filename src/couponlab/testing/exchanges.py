"""Byte-exchange tests of line drivers, in the spirit of PyMeasure's ``expected_protocol``.

:class:`FakeLineTransport` is a real :class:`~couponlab.transports.LineTransport` (the base
class's locking, termination, timeouts and block reading all run) whose far end is a script
of ``(command, reply)`` exchanges: it checks every line sent against the next exchange and
answers with its reply. :func:`expected_exchanges` puts one under a device's
:class:`~couponlab.transports.ScpiClient`, connects the device, and at the end fails if an
exchange was left unused::

    async with expected_exchanges(
        ScpiXrfProbe(ADDR, name="xrf"),
        [*XRF_CONNECT, ("SOUR:STAT OFF;:SYST:ERR?", '0,"No error"')],
    ) as (xrf, wire):
        await xrf.source("off")

A reply of ``None`` means the command gets no reply (a ``write``); a ``bytes`` reply is sent
as it is (an IEEE block with its terminator, a garbled line); a ``str`` reply gets the read
terminator appended. :attr:`FakeLineTransport.bytes_written` counts what reached the wire.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any, TypeVar

from couponlab.testing.conformance import ConformanceError
from couponlab.transports import LineTransport, ScpiClient

Exchange = tuple[str | bytes, str | bytes | None]
"""One command line (without terminator) and the reply the instrument gives to it."""
D = TypeVar("D")


class FakeLineTransport(LineTransport):
    """A line transport whose far end replays scripted exchanges and fails on anything else.

    Parameters
    ----------
    device
        Device name for error messages.
    exchanges
        ``(command, reply)`` pairs in the order the driver must send them.
    strict
        True (default): a command that differs from the next exchange raises
        :class:`ConformanceError` at once. False: unexpected commands are recorded in
        :attr:`unexpected` and get no reply (the exchange times out), for property tests.
    **kwargs
        Passed to :class:`LineTransport` (terminations, encoding, timeout).
    """

    def __init__(
        self,
        device: str,
        exchanges: Sequence[Exchange] = (),
        *,
        strict: bool = True,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("timeout", 0.05)
        super().__init__(device, **kwargs)
        self.exchanges: list[Exchange] = list(exchanges)
        self.strict = strict
        self.sent: list[bytes] = []
        """Every line sent, with its terminator."""
        self.unexpected: list[bytes] = []
        """Lines that matched no exchange (only when not ``strict``)."""
        self.opens = 0
        self._buffer = bytearray()

    @property
    def address(self) -> str:
        """Return ``fake://<device>``."""
        return f"fake://{self.device}"

    @property
    def unused(self) -> list[Exchange]:
        """Return the exchanges not yet sent."""
        return list(self.exchanges)

    def _bytes(self, text: str | bytes, term: str) -> bytes:
        return text if isinstance(text, bytes) else (text + term).encode(self.encoding)

    async def _open(self) -> None:
        self.opens += 1
        self._buffer.clear()

    async def _close(self) -> None:
        self._buffer.clear()

    async def _send(self, data: bytes) -> None:
        self.sent.append(data)
        if not self.exchanges:
            self._refuse(data, "nothing more was expected")
            return
        command, reply = self.exchanges[0]
        expected = self._bytes(command, self.write_termination)
        if data != expected:
            self._refuse(data, f"expected {expected!r}")
            return
        self.exchanges.pop(0)
        if reply is not None:
            self._buffer += self._bytes(reply, self.read_termination)

    def _refuse(self, data: bytes, why: str) -> None:
        if self.strict:
            raise ConformanceError(f"{self.device}: sent {data!r}, {why}")
        self.unexpected.append(data)

    async def _recv_until(self, terminator: bytes) -> bytes:
        end = self._buffer.find(terminator)
        if end < 0:
            raise TimeoutError("the script has no (more) reply")
        line = bytes(self._buffer[: end + len(terminator)])
        del self._buffer[: end + len(terminator)]
        return line

    async def _recv_exactly(self, n: int) -> bytes:
        if len(self._buffer) < n:
            raise TimeoutError("the script has no (more) reply")
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data


def fake_client(
    device: Any, exchanges: Sequence[Exchange] = (), **kwargs: Any
) -> FakeLineTransport:
    """Put a :class:`FakeLineTransport` with ``exchanges`` under ``device.client``; return it.

    The fake keeps the device's terminations and encoding, so the bytes are the real ones.
    """
    client: ScpiClient = device.client
    old = client.transport
    fake = FakeLineTransport(
        old.device,
        exchanges,
        write_termination=old.write_termination,
        read_termination=old.read_termination,
        encoding=old.encoding,
        **kwargs,
    )
    client.transport = fake
    return fake


@contextlib.asynccontextmanager
async def expected_exchanges(
    device: D, exchanges: Sequence[Exchange], *, connect: bool = True
) -> AsyncIterator[tuple[D, FakeLineTransport]]:
    """Run a block against ``device`` over scripted ``exchanges``; fail on any left unused.

    Parameters
    ----------
    device
        A line device with a ``client`` (:class:`~couponlab.transports.ScpiClient`); it is
        connected first (its connect exchanges must lead the script) unless ``connect`` is
        False, and disconnected at the end.
    exchanges
        ``(command, reply)`` pairs, in order.

    Raises
    ------
    ConformanceError
        A command differed from the script, or exchanges were left unused.
    """
    fake = fake_client(device, exchanges)
    try:
        if connect:
            await device.connect()  # type: ignore[attr-defined]
        yield device, fake
    finally:
        with contextlib.suppress(Exception):
            await device.disconnect()  # type: ignore[attr-defined]
    if fake.exchanges:
        raise ConformanceError(f"{fake.device}: exchanges left unused: {fake.exchanges}")


__all__ = ["Exchange", "FakeLineTransport", "expected_exchanges", "fake_client"]
