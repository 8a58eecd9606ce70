"""How a signal's value is given, converted and checked: one :class:`ValueSpec` per signal.

A declarative device names a spec beside each writable signal (its unit, what kind of
quantity it is, its range); the signal backend calls :meth:`ValueSpec.check` on every write,
and the device's logic calls the same spec for its own arguments, so a ``set`` on a signal,
a method and a plan all pass the same checks. :meth:`~ValueSpec.check` accepts what the docs
promise (a pint quantity, a string such as ``"850 degC"`` or ``"0.2 s"``, a plain number in
the instrument's unit, and for arrays a sequence, an ndarray or a quantity array) and raises a
typed :class:`~couponlab.errors.InputError` for anything else, naming the device, the value
and the allowed range. Nothing else escapes: no ``TypeError``, ``OverflowError`` or pint error.

Kinds of quantity:

- ``"number"``: a number in :attr:`ValueSpec.unit` (``mm``, ``s``, ``K/min``).
- ``"temperature"``: an absolute temperature (``degC``, ``K``, ``degF``); a temperature
  difference (``delta_degC``) is refused, as it would be off by 273.15 K.
- ``"difference"``: a temperature difference in K; ``2 degC`` is read as a difference of
  2 K (a tolerance of 275 K is never what was meant), ``delta_degC`` and ``K`` as they are.
- ``"text"``: a printable string of at most :attr:`ValueSpec.max_length` characters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import pint
from numpy.typing import NDArray

from couponlab.errors import InputError, OutOfLimitsError, UnitError
from couponlab.units import as_quantity, to_magnitude, to_temperature, ureg

Kind = Literal["number", "temperature", "difference", "text"]
FloatArray = NDArray[np.float64]


def _fmt(x: float | None, default: str) -> str:
    return default if x is None else f"{x:g}"


@dataclass(frozen=True)
class ValueSpec:
    """The unit, kind and range of one signal's value (or of one method argument).

    Attributes
    ----------
    unit
        The instrument's unit; a value is converted to it before it is written (``None`` for
        text).
    kind
        ``"number"``, ``"temperature"``, ``"difference"`` or ``"text"`` (see the module).
    low, high
        Inclusive range in :attr:`unit` (``None``: unbounded on that side).
    above
        If true, ``low`` is exclusive (a ramp rate must be > 0 K/min).
    lab_limit
        Name of a lab-file limit that caps ``high`` (``"max_temperature"``); the device
        applies it with :meth:`capped`.
    size
        Number of elements of an array value (``None``: a scalar).
    max_length
        Longest accepted text, characters.
    """

    unit: str | None = None
    kind: Kind = "number"
    low: float | None = None
    high: float | None = None
    above: bool = False
    lab_limit: str | None = None
    size: int | None = None
    max_length: int = 64

    def capped(self, low: float | None = None, high: float | None = None) -> ValueSpec:
        """Return this spec with its range narrowed to ``[low, high]`` (None: unchanged)."""
        lo = self.low if low is None else (low if self.low is None else max(self.low, low))
        hi = self.high if high is None else (high if self.high is None else min(self.high, high))
        return replace(self, low=lo, high=hi)

    def sized(self, size: int) -> ValueSpec:
        """Return this spec for an array of ``size`` elements."""
        return replace(self, size=size)

    # -- checking --------------------------------------------------------------------------
    def check(self, value: Any, *, device: str, what: str) -> Any:
        """Return ``value`` converted to :attr:`unit` (a float, an array or a string).

        Raises
        ------
        UnitError
            Wrong dimension, an ambiguous temperature, NaN or infinite.
        OutOfLimitsError
            Outside ``[low, high]`` (any element of an array).
        InputError
            Anything else that is not a valid value (None, a wrong type or shape).
        """
        try:
            if self.kind == "text":
                return self._text(value, device, what)
            if self.size is not None:
                return self._array(value, device, what)
            return self._scalar(value, device, what)
        except InputError:
            raise
        except (
            ArithmeticError,
            TypeError,
            ValueError,
            AttributeError,
            KeyError,
            pint.errors.PintError,
        ) as exc:
            raise InputError(
                device, f"{what} = {_short(value)} is not a valid value: {exc}"
            ) from exc

    def _scalar(self, value: Any, device: str, what: str) -> float:
        if value is None:
            raise InputError(device, f"{what}: no value given")
        if isinstance(value, pint.Quantity) and np.ndim(value.magnitude) != 0:
            raise InputError(device, f"{what} = {_short(value)} is not a single value")
        unit = self.unit or ""
        if self.kind == "temperature":
            x = to_temperature(value, unit, device=device, what=what)
        elif self.kind == "difference":
            x = _difference(value, unit, device, what)
        else:
            x = to_magnitude(value, unit, device=device, what=what)
        self._check_range(np.array([x]), device, what)
        return x

    def _array(self, value: Any, device: str, what: str) -> FloatArray:
        size = self.size or 0
        if isinstance(value, pint.Quantity):
            arr = self._quantity_array(value, self.unit or "", device, what)
        elif isinstance(value, str | bytes) or not isinstance(value, Sequence | np.ndarray):
            raise InputError(device, f"{what} = {_short(value)} is not {size} values")
        elif len(value) != size:
            raise InputError(device, f"{what} needs {size} values, got {len(value)}")
        elif any(isinstance(v, bool | np.bool_) for v in value):
            raise InputError(device, f"{what} = {_short(value)}: a boolean is not a value")
        else:
            try:
                arr = np.asarray(value, dtype=np.float64)
            except (TypeError, ValueError):  # quantities or strings: one by one (size is small)
                scalar = replace(self, size=None, low=None, high=None, above=False)
                arr = np.array(
                    [
                        scalar.check(v, device=device, what=f"{what}[{i}]")
                        for i, v in enumerate(value)
                    ],
                    dtype=np.float64,
                )
        if arr.shape != (size,):
            raise InputError(device, f"{what} needs {size} values, got shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise UnitError(device, f"{what} = {_short(arr)} has NaN or infinite values")
        self._check_range(arr, device, what)
        return arr

    def _quantity_array(
        self, q: pint.Quantity[Any], unit: str, device: str, what: str
    ) -> FloatArray:
        q = as_quantity(q, unit, device=device, what=what)  # refuses another registry
        if np.ndim(q.magnitude) != 1:
            raise InputError(device, f"{what} = {_short(q)} is not a 1-D array")
        is_delta = "delta_" in format(q.units, "D")
        if self.kind == "temperature" and is_delta:
            raise UnitError(
                device,
                f"{what} is a temperature difference; an absolute temperature "
                f"(degC or K) is required",
            )
        try:
            if self.kind == "difference" and not is_delta and _is_offset(q.units):
                zero = ureg.Quantity(0.0, q.units).to(unit).magnitude
                return np.asarray(q.to(unit).magnitude, dtype=np.float64) - zero
            return np.asarray(q.to(unit).magnitude, dtype=np.float64)
        except pint.errors.DimensionalityError as exc:
            raise UnitError(
                device, f"{what} has the wrong unit ({q.units}): expected {unit}"
            ) from exc

    def _check_range(self, arr: FloatArray, device: str, what: str) -> None:
        unit = self.unit or ""
        low, high = self.low, self.high
        bad = np.zeros(arr.shape, dtype=bool)
        if low is not None:
            bad |= arr <= low if self.above else arr < low
        if high is not None:
            bad |= arr > high
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            where = f"{what}[{i}]" if arr.shape != (1,) or self.size else what
            lo = _fmt(low, "-inf") + (" (exclusive)" if self.above else "")
            raise OutOfLimitsError(device, where, f"{arr[i]:g}", lo, _fmt(high, "inf"), unit)

    def _text(self, value: Any, device: str, what: str) -> str:
        if not isinstance(value, str):
            raise InputError(device, f"{what} = {_short(value)} is not a string")
        if len(value) > self.max_length:
            raise InputError(
                device, f"{what} is {len(value)} characters long; at most {self.max_length}"
            )
        if not value.isprintable():
            raise InputError(device, f"{what} = {value!r} has non-printable characters")
        return value


def _is_offset(units: Any) -> bool:
    """Return whether a unit has an offset (degC, degF): 0 of it is not 0 K."""
    try:
        return bool(ureg.Quantity(0.0, units).to("K").magnitude != 0.0)
    except pint.errors.DimensionalityError:
        return False


def _difference(value: Any, unit: str, device: str, what: str) -> float:
    """Convert a temperature difference to ``unit``; ``2 degC`` is a difference of 2 K."""
    q = as_quantity(value, unit, device=device, what=what)
    if "delta_" not in format(q.units, "D") and _is_offset(q.units):
        zero = float(ureg.Quantity(0.0, q.units).to(unit).magnitude)
        return to_magnitude(q, unit, device=device, what=what) - zero
    return to_magnitude(q, unit, device=device, what=what)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def finite_seconds(value: Any, *, device: str, what: str, high: float) -> float:
    """Return a time span or instant in s, in ``[0, high]``."""
    return ValueSpec("s", low=0.0, high=high).check(value, device=device, what=what)  # type: ignore[no-any-return]


__all__ = ["Kind", "ValueSpec", "finite_seconds"]
