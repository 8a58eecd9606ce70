"""Line transport through pyvisa (pyvisa-py backend by default): ``TCPIP::host::port::SOCKET``,
``ASRL/dev/ttyUSB0::INSTR``, GPIB ... whatever VISA resource the lab file names.

pyvisa keeps one ResourceManager per VISA library, and closing it closes every session opened
through it. So a link never closes the manager: it closes only its own resource, and a
manager that someone else closed (``InvalidSession``) is re-made at the link's next
reconnection. A dropped or closed link on one device never affects another.

pyvisa calls block. They run directly on the event loop rather than in a worker thread: a
thread hop per query more than doubles the cost of an exchange on these machines
(../shared/MEASUREMENTS.md), and each call is bounded by VISA's own timeout, which this
transport sets to the exchange's timeout. See docs/decisions/0004-visa-calls-on-the-loop.md.
"""

from __future__ import annotations

import contextlib
import select
import socket
from typing import Any

import pyvisa
from pyvisa import constants as visa_constants
from pyvisa.errors import InvalidSession, VisaIOError

from couponlab.transports._base import LineTransport


class VisaLineTransport(LineTransport):
    """A :class:`LineTransport` over a VISA resource.

    Parameters
    ----------
    resource
        VISA resource name, e.g. ``"TCPIP::127.0.0.1::5025::SOCKET"``.
    backend
        pyvisa backend (``"@py"`` for pyvisa-py).
    **kwargs
        Passed to :class:`LineTransport`.
    """

    native_timeout = True

    def __init__(self, device: str, resource: str, *, backend: str = "@py", **kwargs: Any) -> None:
        super().__init__(device, **kwargs)
        self.resource_name = resource
        self.backend = backend
        self._res: Any = None
        self._timeout_ms = -1.0

    @property
    def address(self) -> str:
        """Return the VISA resource name."""
        return self.resource_name

    def _set_native_timeout(self, seconds: float) -> None:
        ms = seconds * 1000.0
        if ms != self._timeout_ms and self._res is not None:
            # a session closed under us fails at the next read or write, as a lost link
            with contextlib.suppress(VisaIOError, InvalidSession):
                self._res.timeout = ms
                self._timeout_ms = ms

    async def _open(self) -> None:
        try:
            # pyvisa returns the library's one manager, or a new one if it was closed
            rm = pyvisa.ResourceManager(self.backend)
            self._res = rm.open_resource(
                self.resource_name,
                read_termination=self.read_termination,
                write_termination="",
                timeout=self.timeout * 1000.0,
            )
        except (VisaIOError, InvalidSession) as exc:
            raise OSError(str(exc)) from exc
        self._timeout_ms = self.timeout * 1000.0

    async def _close(self) -> None:
        # only this link's resource: the manager is shared by every VISA link
        res, self._res = self._res, None
        if res is not None:
            with contextlib.suppress(VisaIOError, InvalidSession, OSError):
                res.close()

    def _socket(self) -> socket.socket | None:
        """Return the TCP socket under a pyvisa-py ``SOCKET`` resource (None: another kind)."""
        try:
            sock = self._res.visalib.sessions[self._res.session].interface
        except (AttributeError, KeyError, TypeError, ValueError, InvalidSession):
            return None
        return sock if isinstance(sock, socket.socket) else None

    def _check_socket(self, sock: socket.socket) -> None:
        """Raise ``OSError`` if the instrument closed the link, ``TimeoutError`` if it takes no
        data within the exchange's timeout.

        pyvisa-py reads an orderly close as silence until its timeout, and waits for a full
        send buffer with no timeout at all (an instrument that stopped reading would block
        the event loop for good): look before sending instead.
        """
        try:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable and sock.recv(1, socket.MSG_PEEK) == b"":
                raise OSError(f"{self.resource_name} closed the connection")
            wait = max(self._timeout_ms, 0.0) / 1000.0
            _, writable, _ = select.select([], [sock], [], wait)
        except ValueError as exc:  # a closed socket's descriptor
            raise OSError(str(exc)) from exc
        if not writable:
            raise TimeoutError(f"{self.resource_name} takes no data (it stopped reading)")

    async def _send(self, data: bytes) -> None:
        sock = self._socket()
        if sock is not None:
            self._check_socket(sock)
        try:
            self._res.write_raw(data)
        except (VisaIOError, InvalidSession) as exc:
            raise _map(exc) from exc

    def _discard_input(self) -> bytes:
        """Drop what the VISA library holds unread (``viFlush``, discard read buffer, no I/O).

        VISA does not say how much it dropped: nothing is reported, and no warning logged."""
        if self._res is not None:
            with contextlib.suppress(VisaIOError, InvalidSession, NotImplementedError):
                self._res.flush(visa_constants.BufferOperation.discard_read_buffer_no_io)
        return b""

    async def _recv_until(self, terminator: bytes) -> bytes:
        try:
            raw: bytes = self._res.read_raw()
        except (VisaIOError, InvalidSession) as exc:
            raise _map(exc) from exc
        if not raw.endswith(terminator):
            raise EOFError(f"reply ended without terminator: {raw[-40:]!r}")
        return raw

    async def _recv_exactly(self, n: int) -> bytes:
        try:
            data: bytes = self._res.read_bytes(n)
        except (VisaIOError, InvalidSession) as exc:
            raise _map(exc) from exc
        return data


def _map(exc: VisaIOError | InvalidSession) -> Exception:
    """Turn a VISA error into what the base class handles: a timeout or a broken link."""
    if isinstance(exc, VisaIOError) and exc.error_code == visa_constants.StatusCode.error_timeout:
        return TimeoutError(str(exc))
    return OSError(str(exc))


__all__ = ["VisaLineTransport"]
