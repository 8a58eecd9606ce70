"""Line transport through pyserial: a real serial port (``/dev/ttyUSB0``) or any pyserial URL,
including ``socket://host:port``, which is how drivers reach a twin of a serial instrument.

pyserial calls block. Like the VISA transport, they run directly on the event loop, each
bounded by the port's own read/write timeout, which this transport sets to the exchange's
timeout: a thread hop per exchange would more than double its cost on these machines
(../shared/MEASUREMENTS.md). Twins run on another loop (or process), so this cannot
deadlock. See docs/decisions/0004-visa-and-serial-calls-on-the-loop.md.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

import serial

from couponlab.errors import ConnectionLostError, InputError, InstrumentTimeoutError
from couponlab.transports._base import LineTransport

log = logging.getLogger(__name__)

PARITIES = {"N": serial.PARITY_NONE, "E": serial.PARITY_EVEN, "O": serial.PARITY_ODD}
"""Parity letters accepted in a lab file's ``settings`` (none, even, odd)."""


class SerialLineTransport(LineTransport):
    """A :class:`LineTransport` over a pyserial port or URL.

    Parameters
    ----------
    device
        Device name for error messages.
    url
        ``/dev/ttyUSB0``, ``COM3``, ``socket://127.0.0.1:PORT`` or any other pyserial URL.
    baudrate
        Line speed in baud (> 0; ignored by ``socket://``).
    bytesize
        Data bits, 5 to 8.
    parity
        ``"N"``, ``"E"`` or ``"O"``.
    stopbits
        1, 1.5 or 2.
    **kwargs
        Passed to :class:`LineTransport` (timeout, terminations, encoding, backoff).

    """

    native_timeout = True

    def __init__(
        self,
        device: str,
        url: str,
        *,
        baudrate: int = 115200,
        bytesize: int = 8,
        parity: str = "N",
        stopbits: float = 1,
        **kwargs: Any,
    ) -> None:
        if baudrate <= 0:
            raise InputError(device, f"baudrate must be > 0, got {baudrate}")
        if bytesize not in (5, 6, 7, 8):
            raise InputError(device, f"bytesize must be 5..8, got {bytesize}")
        if parity.upper() not in PARITIES:
            raise InputError(device, f"parity must be one of N, E, O, got {parity!r}")
        if stopbits not in (1, 1.5, 2):
            raise InputError(device, f"stopbits must be 1, 1.5 or 2, got {stopbits}")
        super().__init__(device, **kwargs)
        self.url = url
        self.baudrate = baudrate
        self.bytesize = bytesize
        self.parity = PARITIES[parity.upper()]
        self.stopbits = stopbits
        self._port: Any = None
        self._timeout_s = -1.0

    @property
    def address(self) -> str:
        """Return the port name or URL."""
        return self.url

    def _set_native_timeout(self, seconds: float) -> None:
        if seconds != self._timeout_s and self._port is not None:
            self._port.timeout = seconds
            self._port.write_timeout = seconds
            self._timeout_s = seconds

    async def _open(self) -> None:
        # serial_for_url raises SerialException, a subclass of OSError.
        self._port = serial.serial_for_url(
            self.url,
            baudrate=self.baudrate,
            bytesize=self.bytesize,
            parity=self.parity,
            stopbits=self.stopbits,
            timeout=self.timeout,
            write_timeout=self.timeout,
        )
        self._timeout_s = self.timeout
        self._port.reset_input_buffer()

    async def _close(self) -> None:
        port, self._port = self._port, None
        if port is None:
            return
        # pyserial's socket:// close() skips closing the socket when shutdown() fails (a
        # peer that already hung up), leaking the descriptor: close it ourselves as well.
        sock = getattr(port, "_socket", None)
        with contextlib.suppress(OSError):
            port.close()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    def __del__(self) -> None:
        # A transport dropped without close() (a device never closed) releases its port
        # instead of leaving the descriptor to the garbage collector's ResourceWarning.
        port, self._port = getattr(self, "_port", None), None
        if port is not None:
            sock = getattr(port, "_socket", None)
            with contextlib.suppress(Exception):
                port.close()
            if sock is not None:
                with contextlib.suppress(Exception):
                    sock.close()

    async def _send(self, data: bytes) -> None:
        try:
            self._port.write(data)
        except serial.SerialTimeoutException as exc:
            raise TimeoutError(str(exc)) from exc

    async def _recv_until(self, terminator: bytes) -> bytes:
        return self._read_line(terminator, self._timeout_s)

    def _discard_input(self) -> bytes:
        """Drop bytes waiting in the port (one ``in_waiting`` check: a select or an ioctl)."""
        port = self._port
        if port is None or not port.in_waiting:
            return b""
        stale = bytearray()
        while port.in_waiting and len(stale) < 65536:
            stale += port.read(port.in_waiting)
        return bytes(stale)

    def _read_line(self, terminator: bytes, timeout: float) -> bytes:
        """Read up to and including ``terminator`` within ``timeout`` s in all.

        The same contract as pyserial's ``read_until`` (each byte waits at most the port's
        timeout, the line as a whole is checked against ``timeout``), in a leaner loop:
        ``read_until`` costs about 0.5 us of Python per byte more, which is a tenth of a
        short exchange on these machines (bench/feeder_read.py).
        """
        read = self._port.read
        last = terminator[-1:]
        deadline = time.monotonic() + timeout
        line = bytearray()
        while True:
            c = read(1)
            if not c:
                raise TimeoutError(f"partial reply {bytes(line[-40:])!r}")
            line += c
            if c == last and line.endswith(terminator):
                return bytes(line)
            if time.monotonic() > deadline:
                raise TimeoutError(f"reply still incomplete after {timeout:g} s: {line[-40:]!r}")

    async def query(
        self, command: str, *, timeout: float | None = None, idempotent: bool | None = None
    ) -> str:
        """Send ``command`` and return the reply line without its terminator.

        Same contract as :meth:`LineTransport.query`. pyserial calls block and never suspend
        the coroutine, so when the port is open and no other exchange holds the lock (it is
        held only across the awaits of a reconnection), the exchange runs here to its end
        without yielding to the loop: nothing can interleave with it, and taking the lock and
        the base class's layers would only add cost. Anything else (not connected, a
        reconnection in progress) takes the base class's path.

        Raises
        ------
        InstrumentTimeoutError
            No complete reply within ``timeout`` s.
        ConnectionLostError
            The link broke and could not be re-established.
        """
        port = self._port
        if port is None or not self._connected or self._lock.locked():
            return await super().query(command, timeout=timeout, idempotent=idempotent)
        payload = self._encode(command)
        t = self.timeout if timeout is None else timeout
        term = self.read_termination.encode(self.encoding)
        try:
            self._set_native_timeout(t)
            self._drop_stale(command)
            port.write(payload)
            self.bytes_written += len(payload)
        except (OSError, EOFError) as exc:  # SerialException and write timeouts are OSErrors
            return await self._lost(command, exc, idempotent, timeout)
        try:
            raw = self._read_line(term, t)
        except TimeoutError as exc:
            await self._drop()
            raise InstrumentTimeoutError(
                self.device, f"no reply to {command!r} from {self.address} within {t:g} s"
            ) from exc
        except (OSError, EOFError) as exc:
            return await self._lost(command, exc, idempotent, timeout)
        return self._decode(raw[: -len(term)], command)

    async def _lost(
        self, command: str, exc: BaseException, idempotent: bool | None, timeout: float | None
    ) -> str:
        """Handle a link that broke during a fast-path exchange as the base class does: drop
        it; retry an idempotent query once on a fresh connection, else raise."""
        await self._drop()
        if idempotent is None:
            idempotent = command.rstrip().endswith("?")
        if idempotent:
            log.warning("%s: link lost during %r, retrying once", self.device, command)
            return await super().query(command, timeout=timeout, idempotent=False)
        raise ConnectionLostError(
            self.device, f"link to {self.address} lost during {command!r}: {exc}"
        ) from exc

    async def _recv_exactly(self, n: int) -> bytes:
        data: bytes = self._port.read(n)
        if len(data) < n:
            raise TimeoutError(f"{len(data)} of {n} bytes")
        return data


__all__ = ["PARITIES", "SerialLineTransport"]
