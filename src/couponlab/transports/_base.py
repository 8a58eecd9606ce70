"""The transport base class: locking, timeouts, error mapping and reconnection."""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import stamina
from pyvisa.util import parse_ieee_block_header

from couponlab.errors import (
    ConnectionLostError,
    InputError,
    InstrumentError,
    InstrumentRestartedError,
    InstrumentTimeoutError,
    ProtocolError,
)
from couponlab.transports._deadline import reply_deadline, stall_note
from couponlab.transports._link_state import LinkState

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    """Bounded exponential back-off between reconnection attempts (run by ``stamina``).

    Attributes
    ----------
    attempts
        Connection attempts before giving up with :class:`ConnectionLostError` (>= 1).
    initial
        Delay before the second attempt, in s.
    factor
        Growth of the delay per attempt (>= 1).
    maximum
        Upper bound of a single delay, in s.
    """

    attempts: int = 5
    initial: float = 0.05
    factor: float = 2.0
    maximum: float = 2.0

    def delays(self) -> list[float]:
        """Return the delays (s) slept before attempts 2..N (the same as :meth:`retrying`)."""
        out, d = [], self.initial
        for _ in range(self.attempts - 1):
            out.append(min(d, self.maximum))
            d *= self.factor
        return out

    def retrying(self) -> Any:
        """Return a ``stamina.retry_context`` that retries an ``OSError`` or a timeout."""
        return stamina.retry_context(
            on=(OSError, TimeoutError),
            attempts=self.attempts,
            timeout=None,
            wait_initial=self.initial,
            wait_max=self.maximum,
            wait_exp_base=self.factor,
            wait_jitter=0.0,
        )


@dataclass(frozen=True)
class RestartProbe:
    """How a line instrument tells that it restarted: a query sent on every reconnection.

    Attributes
    ----------
    command
        The query (``"*ESR?"``).
    restarted
        Takes the reply; returns True if the instrument restarted (raise ``ValueError`` on a
        malformed reply).
    evidence
        What a restart looks like, for the error message.
    """

    command: str
    restarted: Callable[[str], bool]
    evidence: str


class LineTransport(ABC):
    """A line-based request/reply link to one instrument.

    Exchanges are serialised by a lock, so concurrent callers never interleave. Every
    exchange has a timeout; after a timeout or a broken link the connection is dropped, so
    a late reply can never be taken for the answer to the next command, and the next
    exchange reconnects with :class:`Backoff`. Before every command, input received but not
    read (a reply doubled, split by a stray terminator, or sent unasked) is dropped and
    logged, so it is never taken for the next answer either. A command is never re-sent behind the
    caller's back, except a query marked idempotent (``?`` queries by default), which is
    retried once on a fresh connection.

    With a :attr:`restart_probe`, every reconnection first asks the instrument whether it
    restarted meanwhile; if it did, the exchange raises
    :class:`~couponlab.errors.InstrumentRestartedError` (once; the link stays up) instead of
    sending its command.

    Parameters
    ----------
    device
        Device name for error messages.
    timeout
        Default timeout of one exchange, in s (> 0).
    write_termination, read_termination
        Line terminators (``"\\n"`` by default).
    encoding
        Text encoding of the link (``"ascii"`` by default).
    backoff
        Reconnection policy.
    """

    def __init__(
        self,
        device: str,
        *,
        timeout: float = 2.0,
        write_termination: str = "\n",
        read_termination: str = "\n",
        encoding: str = "ascii",
        backoff: Backoff | None = None,
    ) -> None:
        if not (isinstance(timeout, int | float) and 0 < timeout < float("inf")):
            raise InputError(device, f"timeout must be > 0 s, got {timeout}")
        self.device = device
        self.timeout = timeout
        self.write_termination = write_termination
        self.read_termination = read_termination
        self.encoding = encoding
        self.backoff = backoff or Backoff()
        self._lock = asyncio.Lock()
        self._connected = False
        self._ever_connected = False
        self.restart_probe: RestartProbe | None = None
        """Asked on every reconnection (not the first connection): did the instrument restart?"""
        self.restarts = 0
        """How many restarts of the instrument the probe has seen."""
        self.reconnects = 0
        """How many times the link was re-established after a failure."""
        self.stale_drops = 0
        """How many times unread input was dropped before a command (see the class doc)."""
        self.bytes_written = 0
        """Bytes handed to the link since construction: tests use it to prove that refused
        input never reached the line."""
        self.link_state = LinkState(device)
        """Down while the instrument does not accept a connection (the policy layer's
        suspenders watch it); see :mod:`couponlab.transports._link_state`."""
        self._pending_restart: InstrumentRestartedError | None = None

    # -- implemented by each link type -------------------------------------------------
    @abstractmethod
    async def _open(self) -> None:
        """Open the link once; raise ``OSError`` if that fails."""

    @abstractmethod
    async def _close(self) -> None:
        """Close the link; must not raise."""

    @abstractmethod
    async def _send(self, data: bytes) -> None:
        """Send raw bytes."""

    @abstractmethod
    async def _recv_until(self, terminator: bytes) -> bytes:
        """Receive up to and including ``terminator``; raise ``EOFError`` if the peer closed."""

    @abstractmethod
    async def _recv_exactly(self, n: int) -> bytes:
        """Receive exactly ``n`` bytes; raise ``EOFError`` if the peer closed."""

    def _discard_input(self) -> bytes:
        """Drop and return what was received but not read (a stale reply); called before
        every command is sent. Links that cannot tell what they dropped return ``b"?"``."""
        return b""

    @property
    @abstractmethod
    def address(self) -> str:
        """Return where this transport points, for messages and ``couponlab check``."""

    native_timeout = False
    """True for links whose calls block and time out by themselves (VISA): then the base
    class sets that timeout with :meth:`_set_native_timeout` instead of wrapping the
    exchange in ``reply_deadline``; such calls must raise ``TimeoutError`` on expiry."""

    def _set_native_timeout(self, seconds: float) -> None:
        """Set the link's own timeout for the next exchange (links with native timeouts)."""
        raise NotImplementedError

    # -- public API ----------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        """Return whether the link is currently open."""
        return self._connected

    async def connect(self) -> None:
        """Open the link, retrying with back-off; raise :class:`ConnectionLostError`."""
        async with self._lock:
            await self._ensure_connected()

    async def close(self) -> None:
        """Close the link (idempotent)."""
        async with self._lock:
            await self._drop()

    async def reconnect(self) -> None:
        """Try to re-open a link that is down (what a link watch does while a plan waits).

        A restart of the instrument found now is not raised here: the next exchange raises
        it (:class:`~couponlab.errors.InstrumentRestartedError`, once), as if it had found it.

        Raises
        ------
        ConnectionLostError
            The link could not be opened (:attr:`link_state` stays down).
        """
        async with self._lock:
            if self._pending_restart is not None:
                return
            try:
                await self._ensure_connected()
            except InstrumentRestartedError as exc:
                self._pending_restart = exc

    async def query(
        self, command: str, *, timeout: float | None = None, idempotent: bool | None = None
    ) -> str:
        """Send ``command`` and return the reply line without its terminator.

        Raises
        ------
        InstrumentTimeoutError
            No complete reply within ``timeout`` s.
        ConnectionLostError
            The link broke and could not be re-established.
        """
        if idempotent is None:
            idempotent = command.rstrip().endswith("?")
        payload = self._encode(command)
        term = self.read_termination.encode(self.encoding)
        async with self._lock:
            for attempt in (1, 2):
                await self._ensure_connected()
                try:
                    self._drop_stale(command)
                    await self._send(payload)
                    self.bytes_written += len(payload)
                    raw = await self._with_timeout(self._recv_until(term), command, timeout)
                except InstrumentError:
                    raise
                except (OSError, EOFError, asyncio.IncompleteReadError) as exc:
                    await self._drop()
                    if idempotent and attempt == 1:
                        log.warning("%s: link lost during %r, retrying once", self.device, command)
                        continue
                    raise ConnectionLostError(
                        self.device, f"link to {self.address} lost during {command!r}: {exc}"
                    ) from exc
                return self._decode(raw[: -len(term)], command)
        raise AssertionError("unreachable")  # pragma: no cover

    async def write(self, command: str) -> None:
        """Send ``command`` with no reply expected."""
        payload = self._encode(command)
        async with self._lock:
            await self._ensure_connected()
            try:
                self._drop_stale(command)
                await self._send(payload)
                self.bytes_written += len(payload)
            except OSError as exc:
                await self._drop()
                raise ConnectionLostError(
                    self.device, f"link to {self.address} lost writing {command!r}: {exc}"
                ) from exc

    async def query_block(self, command: str, *, timeout: float | None = None) -> bytes:
        """Send ``command`` and read an IEEE 488.2 definite-length block (``#<n><len><data>``).

        The block is followed by the read terminator, which is consumed.
        """
        payload = self._encode(command)
        term = self.read_termination.encode(self.encoding)

        async def read_block() -> bytes:
            head = await self._recv_exactly(2)
            if head[:1] != b"#" or not head[1:2].isdigit() or head[1:2] == b"0":
                rest = await self._recv_until(term)
                raise ProtocolError(
                    self.device,
                    f"reply to {command!r} is not a definite-length block: {(head + rest)!r}",
                )
            header = head + await self._recv_exactly(int(head[1:2]))
            try:
                offset, length = parse_ieee_block_header(header, 0)
            except ValueError as exc:
                raise ProtocolError(
                    self.device, f"bad block header {header!r} in reply to {command!r}"
                ) from exc
            data = await self._recv_exactly(length)
            tail = await self._recv_until(term)
            if offset != len(header) or tail != term:
                raise ProtocolError(
                    self.device, f"{len(tail)} unexpected bytes after block for {command!r}"
                )
            return data

        async with self._lock:
            await self._ensure_connected()
            try:
                self._drop_stale(command)
                await self._send(payload)
                self.bytes_written += len(payload)
                return await self._with_timeout(read_block(), command, timeout)
            except InstrumentError:
                await self._drop()
                raise
            except (OSError, EOFError, asyncio.IncompleteReadError, ValueError) as exc:
                await self._drop()
                raise ConnectionLostError(
                    self.device, f"link to {self.address} lost during {command!r}: {exc}"
                ) from exc

    # -- helpers -------------------------------------------------------------------------
    def _drop_stale(self, command: str) -> None:
        stale = self._discard_input()
        if stale:
            self.stale_drops += 1
            log.warning("%s: dropped unread input before %r: %r", self.device, command, stale[:80])

    def _encode(self, command: str) -> bytes:
        if self.write_termination in command or self.read_termination in command:
            raise ProtocolError(self.device, f"command {command!r} contains a line terminator")
        try:
            return (command + self.write_termination).encode(self.encoding)
        except UnicodeEncodeError as exc:
            raise ProtocolError(
                self.device, f"command {command!r} is not {self.encoding}"
            ) from exc

    def _decode(self, raw: bytes, command: str) -> str:
        try:
            return raw.decode(self.encoding).rstrip("\r")
        except UnicodeDecodeError as exc:
            raise ProtocolError(
                self.device, f"garbled reply to {command!r}: {raw[:80]!r}"
            ) from exc

    async def _with_timeout(
        self, coro: Coroutine[Any, Any, T], command: str, timeout: float | None
    ) -> T:
        t = self.timeout if timeout is None else timeout
        deadline = reply_deadline(t)
        try:
            if self.native_timeout:
                self._set_native_timeout(t)
                return await coro
            async with deadline:
                return await coro
        except TimeoutError as exc:
            await self._drop()
            raise InstrumentTimeoutError(
                self.device,
                f"no reply to {command!r} from {self.address} within {t:g} s"
                + stall_note(deadline),
            ) from exc

    async def _ensure_connected(self) -> None:
        if self._pending_restart is not None:  # found by reconnect(): this exchange says it
            pending, self._pending_restart = self._pending_restart, None
            raise pending
        if self._connected:
            return
        attempts = 0
        probe = self.restart_probe if self._ever_connected else None
        restarted = False
        try:
            async for attempt in self.backoff.retrying():
                with attempt:
                    attempts += 1
                    try:
                        async with reply_deadline(self.timeout):
                            await self._open()
                        if probe is not None:  # an instrument that accepts and hangs up
                            restarted = await self._ask_restart(probe)  # is not reached
                    except BaseException as exc:
                        await self._close()
                        if isinstance(exc, OSError | TimeoutError):
                            why = f"cannot connect to {self.address}: {exc!r}"
                            self.link_state.set(False, why)
                        raise
        except (OSError, TimeoutError) as exc:
            raise ConnectionLostError(
                self.device,
                f"cannot connect to {self.address} after {attempts} attempts: {exc}",
            ) from exc
        if self.reconnects or attempts > 1:
            log.info("%s: connected to %s after %d attempts", self.device, self.address, attempts)
        self._connected = True
        self._ever_connected = True
        self.link_state.set(True)
        if restarted and probe is not None:
            self.restarts += 1
            log.warning("%s: %s restarted (%s)", self.device, self.address, probe.evidence)
            raise InstrumentRestartedError(self.device, f"{self.address}: {probe.evidence}")

    async def _ask_restart(self, probe: RestartProbe) -> bool:
        """Ask a just-opened link's instrument whether it restarted.

        Raises ``ConnectionResetError`` (an ``OSError``: the attempt is retried) if it hangs
        up, :class:`ProtocolError` on a reply that does not parse.
        """
        term = self.read_termination.encode(self.encoding)
        payload = self._encode(probe.command)
        try:
            await self._send(payload)
            self.bytes_written += len(payload)
            raw = await self._with_timeout(self._recv_until(term), probe.command, None)
        except (EOFError, asyncio.IncompleteReadError) as exc:
            raise ConnectionResetError(f"hung up on {probe.command!r}: {exc}") from exc
        reply = self._decode(raw[: -len(term)], probe.command)
        try:
            return probe.restarted(reply)
        except ValueError as exc:
            raise ProtocolError(
                self.device, f"unexpected reply to {probe.command!r}: {reply!r}"
            ) from exc

    async def _drop(self) -> None:
        if self._connected:
            self.reconnects += 1
        self._connected = False
        await self._close()
