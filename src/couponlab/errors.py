"""Typed errors: every message names the device, the value and what was allowed.

The hierarchy lets a plan catch a family of faults (``InputError`` for anything refused
before a byte was sent, ``InstrumentError`` for anything the instrument or the link did)
without parsing messages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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


class RegistryError(InputError):
    """A sample-registry write or query refused: an unknown or duplicate sample, campaign or
    run, a move to where the sample already is, a different spec under an existing campaign
    id, a database of a newer schema. Nothing of the refused call was recorded."""


class InstrumentError(CouponlabError):
    """Something the instrument or the link to it did wrong."""


class ProtocolError(InstrumentError):
    """A reply that is malformed, unexpected, or an error reported by the instrument."""


class AccessDeniedError(InstrumentError):
    """The instrument refused who we are: an untrusted certificate, a wrong user or
    password, a role that may not do what was asked, or no endpoint with the security the
    lab file asks for. Never retried: trying again would not change the answer."""


class InstrumentTimeoutError(InstrumentError):
    """No (complete) reply within the exchange's timeout.

    Deliberately not a subclass of the built-in ``TimeoutError``: ophyd-async turns every
    ``TimeoutError`` raised inside a signal or command call into a bare
    ``TimeoutError(source)``, which would hide the device, the command and the address (decision
    0001). Catch :class:`InstrumentError` or this class, not ``TimeoutError``.
    """


class ConnectionLostError(InstrumentError, ConnectionError):
    """The link to the instrument is down and could not be re-established."""


class InstrumentRestartedError(InstrumentError):
    """The instrument restarted since this client last talked to it (a power loss, a reboot):
    its setpoints, programs and settings are back at their power-on defaults and whatever it
    was doing stopped. Raised once, by the first exchange after the link came back (the link
    is up again); a plan must not carry on as if nothing happened.

    Parameters
    ----------
    device
        Name of the device.
    evidence
        How the restart was seen (``*ESR?`` power-on bit, a new OPC UA server start time).
    """

    def __init__(self, device: str, evidence: str) -> None:
        self.evidence = evidence
        super().__init__(
            device,
            f"the instrument restarted ({evidence}): its settings, setpoints and programs "
            "are at power-on defaults",
        )


class InterlockTrippedError(InstrumentError):
    """An interlock in the instrument has tripped; it is in its safe state until reset."""


class ConditionPersistsError(InstrumentError):
    """A condition that suspended a run (a lost link, an alarm) did not clear within the
    suspenders' bound (:attr:`couponlab.suspenders.SuspenderSettings.max_suspension_s`): the
    run is ended, and a session puts the lab in its safe state."""


class SafeStateError(InstrumentError):
    """One or more devices did not reach their safe state (the lab is NOT safe).

    Parameters
    ----------
    failures
        Device name -> the error that kept it from its safe state (a timeout, a refusal,
        a lost link), in the order the devices were tried.
    reached
        Names of the devices that did reach their safe state.
    """

    def __init__(self, failures: Mapping[str, BaseException], reached: Sequence[str] = ()) -> None:
        self.failures = dict(failures)
        self.reached = list(reached)
        why = "; ".join(self.lines())
        super().__init__("", f"{len(self.failures)} device(s) NOT in their safe state: {why}")

    def lines(self) -> list[str]:
        """Return one ``"<device>: <why> (<ErrorType>)"`` line per device not made safe."""
        out = []
        for name, exc in self.failures.items():
            text = describe_error(exc)
            out.append(text if text.startswith(f"{name}:") else f"{name}: {text}")
        return out


def describe_error(exc: BaseException) -> str:
    """Return ``"<message> (<ErrorType>)"``, or just the type when the message is empty.

    A couponlab error's message already names its device, so this reads as one line:
    ``furnace1: no reply to call Furnace.Standby() within 2 s (InstrumentTimeoutError)``.
    """
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{text} ({type(exc).__name__})" if text else type(exc).__name__


__all__ = [
    "AccessDeniedError",
    "ConnectionLostError",
    "CouponlabError",
    "InputError",
    "InstrumentError",
    "InstrumentRestartedError",
    "InstrumentTimeoutError",
    "InterlockTrippedError",
    "OutOfLimitsError",
    "ProtocolError",
    "RegistryError",
    "SafeStateError",
    "UnitError",
    "describe_error",
]
