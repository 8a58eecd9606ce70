"""One pint unit registry for the whole project, and the checks used at every public boundary.

Public setters accept a pint quantity, a string such as ``"850 degC"``, or a plain number in
the documented unit. :func:`to_magnitude` turns any of those into a float in the unit the
instrument speaks, or raises a typed :class:`~couponlab.errors.InputError` that names the
device, the value and what was allowed -- before a byte is sent.

Temperatures are the classic trap: an absolute temperature (``degC``, ``K``) and a
temperature *difference* (``delta_degC``, ``K`` in a rate) are different quantities.
:func:`to_temperature` accepts only absolute temperatures and refuses ``delta_degC``;
rates must be written ``K/min`` or ``delta_degC/min`` (pint refuses ``degC/min``).
"""

from __future__ import annotations

import math
import re
from numbers import Real
from typing import Any, TypeAlias

import numpy as np
import pint

from couponlab.errors import InputError, OutOfLimitsError, UnitError


def _registry() -> pint.UnitRegistry[Any]:
    """Return a new unit registry with pint's parsed definitions cached on disk.

    Parsing pint's definitions costs 0.8-1.3 s of CPU at every start of a process that
    imports couponlab (each twin, ingest and CLI process); pint's own disk cache
    (``cache_folder=":auto:"``, the user's cache folder, checked against the definition
    file's modification time) brings that to about 0.1 s. A cache that cannot be read or
    written (read-only home, a file another process is still writing) is not used: the
    definitions are then parsed as before.
    """
    try:
        return pint.UnitRegistry(cache_folder=":auto:")
    except Exception:  # any failure of the cache: parse instead (same registry)
        return pint.UnitRegistry()


ureg: pint.UnitRegistry[Any] = _registry()
"""The project's only unit registry; quantities from another registry are refused."""
ureg.formatter.default_format = "~P"
Q_ = ureg.Quantity

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
"""A decimal number as text (the pattern both expressions below start with)."""
_NUMBER_UNIT = re.compile(rf"^\s*({_NUMBER})\s*(\S.*)$")
_QUANTITY_TEXT = re.compile(
    rf"\s*{_NUMBER}"  # the number, always first
    r"(?:\s*[A-Za-z0-9_%\u00b0\u00b5\u03bc\u03a9()*/^. -]*)?\s*"
)
"""What a quantity written as text may look like: a number, then an optional unit expression
of names, digits, ``* / ^ ** ( )`` and spaces (``"0.015 / min"``, ``"5 mm**2"``). Anything
else (a bare unit such as ``"ya"``, brackets, ``?``) is refused before pint sees it: pint's
tokenizer silently drops some trailing text, so ``"ya]?{?"`` would read as one yocto-year."""

QuantityLike: TypeAlias = "pint.Quantity[Any] | float | int | str"
"""What a public setter accepts: a quantity, a number in the documented unit, or a string."""


def _as_quantity(value: Any, unit: str, device: str, what: str) -> pint.Quantity[Any]:
    if isinstance(value, bool):
        raise UnitError(device, f"{what} = {value!r}: a boolean is not a quantity in {unit}")
    if isinstance(value, str):
        if _QUANTITY_TEXT.fullmatch(value) is None:
            raise UnitError(
                device,
                f"{what} = {_short(value)} cannot be parsed: write a number, then a unit "
                f"(for example '2.5 {unit}')",
            )
        try:
            value = ureg.Quantity(value)
        except pint.errors.OffsetUnitCalculusError as exc:
            # "850 degC" parses as 850 * degC, which pint refuses for offset units: split
            # the number from the unit instead (a rate such as "5 degC/min" is still
            # refused when it is converted).
            match = _NUMBER_UNIT.match(value)
            try:
                if match is None:
                    raise exc
                parsed = ureg.Quantity(float(match.group(1)), match.group(2).strip())
                if [exp for _, exp in parsed.unit_items()] != [1]:
                    raise UnitError(
                        device,
                        f"{what} = {value!r} mixes an offset temperature unit into a product; "
                        f"write temperature differences as K or delta_degC (expected {unit})",
                    )
                value = parsed
            except UnitError:
                raise
            except Exception as exc2:  # pint's parser raises many kinds on odd text
                raise UnitError(
                    device, f"{what} = {_short(value)} cannot be parsed: {exc2}"
                ) from exc
        except Exception as exc:  # pint's parser raises many kinds on odd text
            raise UnitError(device, f"{what} = {_short(value)} cannot be parsed: {exc}") from exc
        if not isinstance(value, pint.Quantity):  # a bare number in a string
            try:
                value = ureg.Quantity(float(value), unit)
            except (TypeError, ValueError, OverflowError) as exc:
                raise UnitError(device, f"{what} = {value!r} is not a number") from exc
    if isinstance(value, pint.Quantity):
        if not isinstance(value, ureg.Quantity):  # each registry has its own class
            raise UnitError(device, f"{what} = {value} comes from another unit registry")
        return value
    if isinstance(value, Real):
        try:
            return ureg.Quantity(float(value), unit)
        except OverflowError as exc:
            raise UnitError(device, f"{what} = {_short(value)} is not a finite number") from exc
    raise UnitError(
        device, f"{what} = {_short(value)} ({type(value).__name__}) is not a number or quantity"
    )


def _short(value: Any) -> str:
    """Return ``repr(value)`` cut to 60 characters, for messages about huge input."""
    try:
        text = repr(value)
    except Exception:  # a repr that fails (int too large to print) still gets a message
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 60 else text[:57] + "..."


def as_quantity(value: Any, unit: str, *, device: str = "", what: str = "value") -> Any:
    """Return ``value`` as a quantity of :data:`ureg` (a plain number is taken in ``unit``).

    Strings such as ``"850 degC"`` parse as 850 degC (not 850 times degC). No conversion and
    no range check: :func:`to_magnitude` does those.

    Raises
    ------
    UnitError
        A boolean, an unparseable string, a quantity of another registry, or not a number.
    """
    return _as_quantity(value, unit, device, what)


def to_magnitude(
    value: Any,
    unit: str,
    *,
    device: str = "",
    what: str = "value",
    low: float | None = None,
    high: float | None = None,
) -> float:
    """Convert ``value`` to a finite float in ``unit`` and check it against ``[low, high]``.

    Parameters
    ----------
    value
        A pint quantity, a string such as ``"2 L/min"``, or a plain number taken to be in
        ``unit``.
    unit
        The unit the result is expressed in (the instrument's own unit).
    device, what
        Names used in error messages.
    low, high
        Inclusive limits in ``unit``; ``None`` for no limit.

    Raises
    ------
    UnitError
        Wrong dimension, unparseable, NaN or infinite.
    OutOfLimitsError
        Outside ``[low, high]``.
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        # a plain number is in ``unit`` already: same checks, without building a quantity
        try:
            mag = float(value)
        except OverflowError:  # an int too large for a float
            mag = math.inf
        if not math.isfinite(mag):
            raise UnitError(device, f"{what} = {_short(value)} is not a finite number")
        _check_limits(mag, low, high, device, what, unit)
        return mag
    q = _as_quantity(value, unit, device, what)
    if not isinstance(q.magnitude, Real):  # an array, a complex number, a string inside
        raise UnitError(device, f"{what} = {_short(value)} is not a single real number")
    try:
        mag = float(q.to(unit).magnitude)
    except pint.errors.DimensionalityError as exc:
        raise UnitError(
            device, f"{what} = {q} has the wrong unit: expected a quantity in {unit}"
        ) from exc
    except pint.errors.OffsetUnitCalculusError as exc:
        raise UnitError(
            device,
            f"{what} = {q} mixes an offset temperature unit into a product; "
            f"write temperature differences as K or delta_degC (expected {unit})",
        ) from exc
    except OverflowError as exc:
        raise UnitError(device, f"{what} = {_short(value)} is not a finite number") from exc
    if not math.isfinite(mag):
        raise UnitError(device, f"{what} = {value!r} is not a finite number")
    _check_limits(mag, low, high, device, what, unit)
    return mag


def _check_limits(
    mag: float, low: float | None, high: float | None, device: str, what: str, unit: str
) -> None:
    if (low is not None and mag < low) or (high is not None and mag > high):
        raise OutOfLimitsError(
            device,
            what,
            _fmt(mag),
            _fmt(low) if low is not None else "-inf",
            _fmt(high) if high is not None else "inf",
            unit,
        )


def to_temperature(
    value: Any,
    unit: str = "degC",
    *,
    device: str = "",
    what: str = "temperature",
    low: float | None = None,
    high: float | None = None,
) -> float:
    """Convert an *absolute* temperature to ``unit`` (``degC`` or ``K``) and check limits.

    A temperature difference (``delta_degC``) is refused: it would silently be off by
    273.15 K. Plain numbers are taken to be in ``unit``.
    """
    q = _as_quantity(value, unit, device, what)
    # the registry prints delta_degC as "Δ°C": look at the canonical unit names instead
    if any(name.startswith("delta_") for name, _ in q.unit_items()):
        raise UnitError(
            device,
            f"{what} = {q} is a temperature difference; an absolute temperature "
            f"(degC or K) is required",
        )
    return to_magnitude(q, unit, device=device, what=what, low=low, high=high)


def quantity_metadata(
    value: Any, unit: str, *, device: str = "", what: str = "value"
) -> dict[str, Any]:
    """Return ``value`` in ``unit`` as run metadata: ``{"value": <float>, "units": unit}``.

    A plain number is taken in ``unit``; a quantity or string (``"1 in"``) is converted.
    Run documents carry quantities this way, never as strings such as ``"25,6,2,32"``.

    Raises
    ------
    UnitError
        ``value`` is not a finite number in a unit compatible with ``unit``.
    """
    return {"value": to_magnitude(value, unit, device=device, what=what), "units": unit}


_PLAIN_NUMBER = re.compile(r"^\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*$")


def numbers_with_units(value: Any) -> Any:
    """Return ``value`` (run metadata: dicts, lists, scalars) with every string that is a
    quantity written as text (``"50.0 h"``, ``"0.075 mm/min"``, ``"100 degC"``) turned into
    ``{"value": <float>, "units": <unit as written>}`` and every string that is a plain
    number (``"2.0"``) into that number; anything else is kept as it is (a string whose unit
    pint does not know stays text).

    For plan arguments and the lab file in start documents, which record what was given as
    text: tools reading the documents then find numbers with their units, never strings.
    """
    if isinstance(value, dict):  # a unit already given apart ("units": "1/min") stays text
        return {k: v if k == "units" else numbers_with_units(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [numbers_with_units(v) for v in value]
    if not isinstance(value, str):
        return value
    if _PLAIN_NUMBER.match(value):
        return float(value)
    found = _NUMBER_UNIT.match(value)
    if found is None:
        return value
    unit = found.group(2).strip()
    unit = "1" + unit if unit.startswith("/") else unit  # "0.015 / min"
    if not _QUANTITY_TEXT.fullmatch(value):
        return value
    try:
        ureg.parse_units(unit)
    except (pint.errors.PintError, ValueError, TypeError, AttributeError, AssertionError):
        return value
    return {"value": float(found.group(1)), "units": unit.replace(" ", "")}


def _fmt(x: float) -> str:
    return f"{x:g}"


SWITCH_WORDS = {"on": True, "off": False}
"""The only strings a hazard switch accepts (any case, surrounding blanks ignored)."""


def to_switch(value: Any, *, device: str = "", what: str = "switch") -> bool:
    """Return the state an unambiguous on/off request asks for.

    Hazard switches (laser, X-ray source, gas, heaters) accept only ``True``/``False``
    (Python or numpy booleans) or the words ``"on"``/``"off"``. Anything else -- ``1``,
    ``"yes"``, ``"0"``, ``None``, an array -- is refused: truthiness would make ``"off"``
    switch something on.

    Raises
    ------
    InputError
        ``value`` is not one of those forms.
    """
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, str):
        state = SWITCH_WORDS.get(value.strip().lower())
        if state is not None:
            return state
    raise InputError(
        device, f"{what} = {_short(value)} is ambiguous: use True/False or 'on'/'off'"
    )


__all__ = [
    "Q_",
    "SWITCH_WORDS",
    "QuantityLike",
    "as_quantity",
    "numbers_with_units",
    "quantity_metadata",
    "to_magnitude",
    "to_switch",
    "to_temperature",
    "ureg",
]
