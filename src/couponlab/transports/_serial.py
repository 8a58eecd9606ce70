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
from typing import Any

import serial

from couponlab.transports._base import LineTransport

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

    Attributes
    ----------
    bytes_written
        Total bytes handed to the port since construction; tests use it to prove that
        refused input never reached the line.
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
            raise ValueError(f"{device}: baudrate must be > 0, got {baudrate}")
        if bytesize not in (5, 6, 7, 8):
            raise ValueError(f"{device}: bytesize must be 5..8, got {bytesize}")
        if parity.upper() not in PARITIES:
            raise ValueError(f"{device}: parity must be one of N, E, O, got {parity!r}")
        if stopbits not in (1, 1.5, 2):
            raise ValueError(f"{device}: stopbits must be 1, 1.5 or 2, got {stopbits}")
        super().__init__(device, **kwargs)
        self.url = url
        self.baudrate = baudrate
        self.bytesize = bytesize
        self.parity = PARITIES[parity.upper()]
        self.stopbits = stopbits
        self._port: Any = None
        self._timeout_s = -1.0
        self.bytes_written = 0

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
        self.bytes_written += len(data)

    async def _recv_until(self, terminator: bytes) -> bytes:
        raw: bytes = self._port.read_until(terminator)
        if not raw.endswith(terminator):
            raise TimeoutError(f"partial reply {raw[-40:]!r}")
        return raw

    async def _recv_exactly(self, n: int) -> bytes:
        data: bytes = self._port.read(n)
        if len(data) < n:
            raise TimeoutError(f"{len(data)} of {n} bytes")
        return data


__all__ = ["PARITIES", "SerialLineTransport"]
