"""What every conformance suite and byte-exchange test of couponlab raises when a driver
does not conform: one :class:`ConformanceError` (an ``AssertionError``, so pytest shows it as
a failed check) naming the device and what is wrong."""

from __future__ import annotations


class ConformanceError(AssertionError):
    """A driver does not do what its family's interface or its protocol requires."""


def require(condition: bool, device: str, message: str) -> None:
    """Raise :class:`ConformanceError` (``"<device>: <message>"``) unless ``condition``."""
    if not condition:
        raise ConformanceError(f"{device}: {message}")


__all__ = ["ConformanceError", "require"]
