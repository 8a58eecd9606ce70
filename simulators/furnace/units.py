"""OPC UA engineering units (UNECE Recommendation 20 codes) used by the furnace server.

``UnitId`` is the UNECE common code packed as bytes (OPC 10000-8, 5.6.3): for "CEL",
``ord('C') << 16 | ord('E') << 8 | ord('L')`` = 4408652.
"""

from __future__ import annotations

from asyncua import ua

UNECE_NAMESPACE = "http://www.opcfoundation.org/UA/units/un/cefact"


def unece_unit_id(code: str) -> int:
    """Return the OPC UA ``UnitId`` of a UNECE common code (2 or 3 ASCII characters)."""
    if not 1 <= len(code) <= 3 or not code.isascii():
        raise ValueError(f"UNECE common code {code!r} must be 1-3 ASCII characters")
    uid = 0
    for ch in code:
        uid = (uid << 8) | ord(ch)
    return uid


UNITS: dict[str, tuple[str, str, str]] = {
    "degC": ("CEL", "\u00b0C", "degree Celsius"),
    "K/min": ("F11", "K/min", "kelvin per minute"),
    "mm": ("MMT", "mm", "millimetre"),
    "%": ("P1", "%", "percent"),
    "s": ("SEC", "s", "second"),
    "1": ("C62", "1", "one (dimensionless ratio)"),
}
"""Unit name used in this package -> (UNECE common code, display name, description)."""


def eu_information(unit: str) -> ua.EUInformation:
    """Return the ``EUInformation`` of one of :data:`UNITS`' keys."""
    code, display, description = UNITS[unit]
    return ua.EUInformation(
        NamespaceUri=UNECE_NAMESPACE,
        UnitId=unece_unit_id(code),
        DisplayName=ua.LocalizedText(display),
        Description=ua.LocalizedText(description),
    )


__all__ = ["UNECE_NAMESPACE", "UNITS", "eu_information", "unece_unit_id"]
