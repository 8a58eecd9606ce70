"""Checks of what goes into the registry: ids, station names, numbers, JSON attributes.

Every check raises :class:`~couponlab.errors.RegistryError` naming the registry (its path),
the field, the value and what is allowed, before anything is written.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from couponlab.errors import OutOfLimitsError, RegistryError

ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
"""Sample, campaign and run ids: a letter or digit, then letters, digits, ``_ . : -``."""

STATION = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)?$")
"""Station names: ``<device name>``, ``<device name>.slot<k>``, ``rack.<k>`` (CAMPAIGN.md)."""

ABSOLUTE_ZERO_C = -273.15


def check_id(where: str, what: str, value: object) -> str:
    """Return ``value`` if it is a valid id (:data:`ID`), else refuse it."""
    if not isinstance(value, str) or not ID.match(value):
        raise RegistryError(where, f"{what} {value!r} must match {ID.pattern}")
    return value


def check_text(where: str, what: str, value: object) -> str:
    """Return ``value`` if it is a non-empty string without surrounding blanks, else refuse."""
    if not isinstance(value, str) or not value or value != value.strip():
        raise RegistryError(where, f"{what} {value!r} must be a non-empty string")
    return value


def check_station(where: str, value: object) -> str:
    """Return ``value`` if it is a station name (:data:`STATION`), else refuse it."""
    if not isinstance(value, str) or not STATION.match(value):
        raise RegistryError(where, f"station {value!r} must match {STATION.pattern}")
    return value


def check_number(
    where: str, what: str, value: object, low: float, high: float, unit: str
) -> float:
    """Return ``value`` as a float if it is a real number in ``[low, high]``, else refuse it."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise RegistryError(where, f"{what} = {value!r} must be a number in {unit}")
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high:
        raise OutOfLimitsError(where, what, value, low, high, unit)
    return number


def _plain(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"{type(obj).__name__} is not JSON")


def to_json(where: str, what: str, value: object) -> str:
    """Return ``value`` (a mapping) as canonical JSON text (sorted keys), or refuse it.

    numpy scalars and arrays become numbers and lists; NaN, infinities and other objects are
    refused.
    """
    if not isinstance(value, Mapping):
        raise RegistryError(where, f"{what} must be a mapping, not {type(value).__name__}")
    try:
        return json.dumps(dict(value), sort_keys=True, allow_nan=False, default=_plain)
    except (TypeError, ValueError) as exc:
        raise RegistryError(where, f"{what} is not storable as JSON: {exc}") from exc


def from_json(text: str | None) -> Any:
    """Return the value of JSON ``text`` (None for SQL NULL)."""
    return None if text is None else json.loads(text)
