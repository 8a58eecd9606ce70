"""Say what went wrong in one line: the root cause of an error, and the lab's state after it.

Errors reach the user wrapped: bluesky wraps a device's failure in ``FailedStatus``,
ophyd-async turns a typed timeout into a bare ``TimeoutError`` whose ``__cause__`` is the
typed error, and a failed connect is a ``NotConnectedError`` holding one error per device.
:func:`root_cause` digs out the device's own error; :func:`set_lab_state` /
:func:`lab_state` carry what the clean-up found (safe or not) on the error itself, so the
first line a user sees can say both (see ``couponlab.cli``).
"""

from __future__ import annotations

from collections.abc import Mapping

from couponlab.errors import CouponlabError, SafeStateError, describe_error

_LAB_STATE = "couponlab_lab_state"
_CLEANUP = "couponlab_cleanup_failures"


def root_cause(exc: BaseException) -> BaseException:
    """Return the device's own error inside ``exc`` (``exc`` itself when there is none).

    Follows, at most 20 levels deep: bluesky ``FailedStatus(status)`` to
    ``status.exception()``; an error whose ``__cause__`` is a couponlab error; ophyd-async's
    ``NotConnectedError`` to the first device error it holds.
    """
    seen: set[int] = set()
    current = exc
    for _ in range(20):
        if id(current) in seen or isinstance(current, CouponlabError):
            return current
        seen.add(id(current))
        inner = _inner(current)
        if inner is None:
            return current
        current = inner
    return current


def _inner(exc: BaseException) -> BaseException | None:
    if type(exc).__name__ == "FailedStatus" and exc.args:
        getter = getattr(exc.args[0], "exception", None)
        if callable(getter):
            inner = getter()
            if isinstance(inner, BaseException):
                return inner
    sub_errors = getattr(exc, "sub_errors", None)  # ophyd-async NotConnectedError
    if isinstance(sub_errors, dict) and sub_errors:
        values = [e for e in sub_errors.values() if isinstance(e, BaseException)]
        typed = [e for e in values if isinstance(root_cause(e), CouponlabError)]
        if typed or values:
            return (typed or values)[0]
    if isinstance(exc.__cause__, BaseException):
        return exc.__cause__
    return None


def set_lab_state(exc: BaseException, state: str, cleanup: BaseException | None = None) -> None:
    """Record on ``exc`` the lab's state after the clean-up that followed it, and the
    clean-up's own failure if it had one (a :class:`~couponlab.errors.SafeStateError`)."""
    setattr(exc, _LAB_STATE, (state, cleanup))


def lab_state(exc: BaseException) -> str | None:
    """Return the lab state recorded by :func:`set_lab_state` (None: no clean-up ran)."""
    recorded = getattr(exc, _LAB_STATE, None)
    return recorded[0] if isinstance(recorded, tuple) else None


def add_cleanup_failure(exc: BaseException, failure: BaseException) -> None:
    """Attach to ``exc`` the failure of a clean-up that ran after it (a plan's finalizer)."""
    failures = getattr(exc, _CLEANUP, None)
    if not isinstance(failures, list):
        failures = []
        setattr(exc, _CLEANUP, failures)
    failures.append(failure)
    exc.add_note(f"clean-up: {describe_error(failure)}")


def cleanup_failures(exc: BaseException) -> list[str]:
    """Return one line per failure of the clean-ups that followed ``exc`` (the plan's own
    finalizer first, then the session's safe state), each naming its device first."""
    lines: list[str] = []
    for error in (exc, root_cause(exc)):
        attached = getattr(error, _CLEANUP, None)
        if isinstance(attached, list):
            lines += [
                describe_error(root_cause(f)) for f in attached if isinstance(f, BaseException)
            ]
        if lines:
            break
    recorded = getattr(exc, _LAB_STATE, None)
    cleanup = recorded[1] if isinstance(recorded, tuple) else None
    if isinstance(cleanup, SafeStateError):
        lines += cleanup.lines()
    elif isinstance(cleanup, BaseException):
        lines.append(describe_error(cleanup))
    return lines


def lab_summary(states: Mapping[str, str], not_safe: SafeStateError | None = None) -> str:
    """Return where each device was left, as one line: ``"safe: furnace1 standby, feeder1
    idle"``, or ``"NOT SAFE (stage1 not in its safe state: <why>); read back: ..."``.

    Parameters
    ----------
    states
        Device name -> its state as read back from it.
    not_safe
        The devices that did not reach their safe state (None: every one did).
    """
    read_back = ", ".join(f"{name} {state}" for name, state in states.items())
    if not_safe is None:
        return f"safe: {read_back}"
    return f"NOT SAFE ({'; '.join(not_safe.lines())}); read back: {read_back}"


def one_line(exc: BaseException) -> str:
    """Return ``"<device>: <what happened> (<ErrorType>); lab: <state>"`` for ``exc``."""
    cause = root_cause(exc)
    state = lab_state(exc) or lab_state(cause)
    text = describe_error(cause)
    return f"{text}; lab: {state}" if state else text


__all__ = [
    "add_cleanup_failure",
    "cleanup_failures",
    "lab_state",
    "lab_summary",
    "one_line",
    "root_cause",
    "set_lab_state",
]
