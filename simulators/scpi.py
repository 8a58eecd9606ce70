"""A small SCPI command dispatcher for twins: headers, an error queue, compound commands.

Subclasses register handlers per header (``"MEAS:FORC?"``, ``"CONF:RATE"``). The dispatcher
gives the IEEE 488.2 common commands (``*IDN?``, ``*RST``, ``*CLS``, ``*OPC?``) and
``SYST:ERR?``, and ``*ESR?`` with its power-on bit (PON, 128: set when the twin comes back
from an injected power loss, cleared by reading it or by ``*CLS``). A line may hold several
commands separated by ``;`` (``CONF:RATE 100;:SYST:ERR?``),
and the replies of its queries are joined by ``;`` -- so a driver can send a setting and
read back its error status in one round trip.

Errors follow SCPI: a bad command puts ``<code>,"<message>"`` on the error queue and a
query that fails produces no reply of its own. A handler that fails in any other way (an
``OverflowError`` from ``inf`` in a valid command, a bug) puts -222 or -200 on the queue:
the link is never dropped over one command. :func:`parse_float` refuses NaN and infinities.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable

log = logging.getLogger(__name__)

ScpiHandler = Callable[[list[str]], "str | bytes | None"]


class ScpiError(Exception):
    """Raised by a handler to put ``code, message`` on the error queue."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f'{code},"{message}"')
        self.code = code
        self.message = message


# Standard SCPI error codes used by the twins.
COMMAND_ERROR = -100
SYNTAX_ERROR = -102
UNDEFINED_HEADER = -113
MISSING_PARAMETER = -109
EXECUTION_ERROR = -200
SETTINGS_CONFLICT = -221
DATA_OUT_OF_RANGE = -222
ILLEGAL_PARAMETER = -224
QUEUE_OVERFLOW = -350

POWER_ON = 128
"""Bit 7 (PON) of the IEEE 488.2 Standard Event Status Register: the instrument was powered on
since the register was last read or cleared."""


class ScpiDispatcher:
    """Dispatch SCPI lines to handlers and keep the error queue.

    Parameters
    ----------
    idn
        The ``*IDN?`` reply: ``maker,model,serial,firmware``.
    queue_size
        Length of the error queue (>= 2); on overflow the last entry becomes -350.
    """

    def __init__(self, idn: str, queue_size: int = 32) -> None:
        self.idn = idn
        self._handlers: dict[str, ScpiHandler] = {}
        self.errors: deque[tuple[int, str]] = deque()
        self.queue_size = queue_size
        self.esr = 0
        """Standard Event Status Register (only PON is kept: an instrument already on and
        cleared when the lab starts has 0)."""
        self.boot_count = 1
        """Times the instrument was powered on (1 at start, +1 per injected power loss)."""
        self.register("*IDN?", lambda a: self.idn)
        self.register("*RST", lambda a: self.reset())
        self.register("*CLS", lambda a: self._clear_status())
        self.register("*ESR?", lambda a: self._read_esr())
        self.register("*OPC?", lambda a: "1")
        self.register("SYST:ERR?", lambda a: self.pop_error())

    def register(self, header: str, handler: ScpiHandler) -> None:
        """Register ``handler`` for ``header`` (case-insensitive, queries end in ``?``)."""
        self._handlers[header.upper()] = handler

    def reset(self) -> None:
        """Handle ``*RST``: subclasses or owners override to restore defaults."""
        return None

    def _clear_status(self) -> None:
        self.errors.clear()
        self.esr = 0

    def _read_esr(self) -> str:
        value, self.esr = self.esr, 0
        return str(value)

    def power_off(self) -> None:
        """Lose power: the error queue and status registers are gone."""
        self._clear_status()

    def power_on(self) -> None:
        """Come back from a power loss: PON set, boot counter incremented."""
        self._clear_status()
        self.esr |= POWER_ON
        self.boot_count += 1

    def headers(self) -> list[str]:
        """Return the registered headers (upper case), in registration order."""
        return list(self._handlers)

    def push_error(self, code: int, message: str) -> None:
        """Put an error on the queue (-350 replaces the last entry on overflow); a ``"`` in
        the message becomes ``'`` (the reply quotes it)."""
        message = message.replace('"', "'")
        if len(self.errors) >= self.queue_size - 1:
            if len(self.errors) == self.queue_size - 1:
                self.errors.append((QUEUE_OVERFLOW, "Queue overflow"))
            return
        self.errors.append((code, message))

    def pop_error(self) -> str:
        """Return the oldest error as ``code,"message"`` (``0,"No error"`` when empty)."""
        code, msg = self.errors.popleft() if self.errors else (0, "No error")
        return f'{code},"{msg}"'

    def handle(self, line: str) -> str | bytes | None:
        """Handle one received line; return the joined query replies, or None."""
        replies: list[str] = []
        for part in line.split(";"):
            part = part.strip()
            if not part:
                continue
            header, _, rest = part.partition(" ")
            key = header.lstrip(":").upper()
            args = [a.strip() for a in rest.split(",")] if rest.strip() else []
            handler = self._handlers.get(key)
            if handler is None:
                self.push_error(UNDEFINED_HEADER, f"Undefined header; {header}")
                continue
            try:
                reply = handler(args)
            except ScpiError as exc:
                self.push_error(exc.code, exc.message)
                continue
            except (ValueError, IndexError) as exc:
                self.push_error(ILLEGAL_PARAMETER, f"Illegal parameter value; {exc}")
                continue
            except ArithmeticError as exc:  # inf or a huge number in a valid command
                self.push_error(DATA_OUT_OF_RANGE, f"Data out of range; {header} {rest}: {exc}")
                continue
            except Exception as exc:  # a twin never drops the link over one command
                log.exception("twin handler of %r failed", part)
                self.push_error(EXECUTION_ERROR, f"Execution error; {type(exc).__name__}: {exc}")
                continue
            if isinstance(reply, bytes):
                return reply  # a block reply ends the line
            if reply is not None and key.endswith("?"):
                replies.append(reply)
        return ";".join(replies) if replies else None


def parse_float(args: list[str], index: int = 0, name: str = "value") -> float:
    """Return argument ``index`` as a float; raise :class:`ScpiError` if missing or bad."""
    if index >= len(args):
        raise ScpiError(MISSING_PARAMETER, f"Missing parameter; {name}")
    try:
        value = float(args[index])
    except ValueError:
        raise ScpiError(
            ILLEGAL_PARAMETER, f"Illegal parameter value; {name}={args[index]}"
        ) from None
    if not math.isfinite(value):
        raise ScpiError(DATA_OUT_OF_RANGE, f"Data out of range; {name}={args[index]}")
    return value


def ieee_block(data: bytes, terminator: bytes = b"\n") -> bytes:
    """Frame ``data`` as an IEEE 488.2 definite-length block ``#<n><len><data>``."""
    length = str(len(data)).encode()
    return b"#" + str(len(length)).encode() + length + data + terminator


__all__ = [
    "COMMAND_ERROR",
    "DATA_OUT_OF_RANGE",
    "EXECUTION_ERROR",
    "ILLEGAL_PARAMETER",
    "MISSING_PARAMETER",
    "POWER_ON",
    "QUEUE_OVERFLOW",
    "SETTINGS_CONFLICT",
    "SYNTAX_ERROR",
    "UNDEFINED_HEADER",
    "ScpiDispatcher",
    "ScpiError",
    "ieee_block",
    "parse_float",
]
