"""OPC UA ``EngineeringUnits`` (EUInformation) to the unit strings couponlab writes in
descriptors.

The display name decides (``"°C"`` -> ``"degC"``); the UNECE ``UnitId`` is the fall-back
when a server sends a display name we do not know. Every unit returned parses with
:data:`couponlab.units.ureg`.
"""

from __future__ import annotations

from typing import Any

import pint

from couponlab.units import ureg

_DISPLAY: dict[str, str] = {
    "°c": "degC",
    "℃": "degC",
    "degc": "degC",
    "deg c": "degC",
    "celsius": "degC",
    "k": "K",
    "kelvin": "K",
    "k/min": "K/min",
    "°c/min": "K/min",  # a *rate* in degC/min is a rate in K/min
    "degc/min": "K/min",
    "delta_degc/min": "K/min",
    "%": "%",
    "percent": "%",
    "mm": "mm",
    "s": "s",
    "sec": "s",
    "min": "min",
    "h": "h",
    "1": "",
}

_UNECE: dict[str, str] = {
    "CEL": "degC",
    "KEL": "K",
    "F11": "K/min",
    "P1": "%",
    "MMT": "mm",
    "SEC": "s",
    "MIN": "min",
    "HUR": "h",
    "C62": "",
}


def unece_code(unit_id: int) -> str:
    """Return the UNECE common code packed in an OPC UA ``UnitId`` (4408652 -> ``"CEL"``)."""
    if unit_id <= 0:
        return ""
    raw = unit_id.to_bytes((unit_id.bit_length() + 7) // 8, "big")
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        return ""


def unit_from_eu(eu: Any) -> str | None:
    """Return the unit string of an ``EUInformation``, or ``None`` if it cannot be read.

    ``""`` means dimensionless. The display name is tried first, then the UNECE code, then
    pint's own parser on the display name.
    """
    display_obj = getattr(eu, "DisplayName", None)
    display = str(getattr(display_obj, "Text", "") or "").strip()
    known = _DISPLAY.get(display.lower())
    if known is not None:
        return known
    code = unece_code(int(getattr(eu, "UnitId", 0) or 0))
    if code in _UNECE:
        return _UNECE[code]
    if not display:
        return None
    try:
        ureg.Unit(display)
    except (pint.errors.PintError, ValueError, AttributeError, TypeError, AssertionError):
        return None
    return display


def same_unit(a: str, b: str) -> bool:
    """Return whether two unit strings name the same unit (``"K/min"`` == ``"kelvin/minute"``).

    Offset units compare by name: ``degC`` and ``K`` are different units.
    """
    if a == b:
        return True
    try:
        ua_, ub = ureg.Unit(a or "dimensionless"), ureg.Unit(b or "dimensionless")
    except (pint.errors.PintError, ValueError, AttributeError, TypeError, AssertionError):
        return False
    return bool(ua_ == ub)


__all__ = ["same_unit", "unece_code", "unit_from_eu"]
