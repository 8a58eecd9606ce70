"""Typed errors: every message names the device, the value and what was allowed.

The hierarchy lets a plan catch a family of faults (``InputError`` for anything refused
before a byte was sent, ``InstrumentError`` for anything the instrument or the link did)
without parsing messages.
"""

from __future__ import annotations

from typing import Any


class CouponlabError(Exception):
    """Base of every error raised by couponlab.

    Parameters
    ----------
    device
        Name of the device concerned ("" when none).
    message
        What went wrong, in words a user can act on.
    """

    def __init__(self, device: str, message: str) -> None:
        self.device = device
        self.message = message
        super().__init__(f"{device}: {message}" if device else message)


class InputError(CouponlabError, ValueError):
    """Input refused before anything was sent to the instrument."""


class OutOfLimitsError(InputError):
    """A value outside the range the device (or its lab file) allows."""

    def __init__(
        self,
        device: str,
        what: str,
        value: Any,
        low: Any,
        high: Any,
        unit: str = "",
    ) -> None:
        self.what = what
        self.value = value
        self.low = low
        self.high = high
        self.unit = unit
        u = f" {unit}" if unit else ""
        super().__init__(
            device, f"{what} = {value}{u} is outside the allowed range [{low}, {high}]{u}"
        )


class UnitError(InputError):
    """A value with the wrong unit, or an ambiguous one (a bare number where a unit matters)."""


class InstrumentError(CouponlabError):
    """Something the instrument or the link to it did wrong."""


class ProtocolError(InstrumentError):
    """A reply that is malformed, unexpected, or an error reported by the instrument."""


class InstrumentTimeoutError(InstrumentError, TimeoutError):
    """No (complete) reply within the exchange's timeout."""


class ConnectionLostError(InstrumentError, ConnectionError):
    """The link to the instrument is down and could not be re-established."""


class InterlockTrippedError(InstrumentError):
    """An interlock in the instrument has tripped; it is in its safe state until reset."""


__all__ = [
    "ConnectionLostError",
    "CouponlabError",
    "InputError",
    "InstrumentError",
    "InstrumentTimeoutError",
    "InterlockTrippedError",
    "OutOfLimitsError",
    "ProtocolError",
    "UnitError",
]
