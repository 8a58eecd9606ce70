"""Typed ``settings`` and ``limits`` of a lab-file entry: the base models every driver's own
small models derive from, the field types they use, and references between devices.

A driver declares its models beside itself (``FurnaceSettings(DeviceSettings)``, ...) and
names them in its :class:`~couponlab.registry.DriverSpec`; the lab-file loader validates
every entry against them, so a typo in a key, a wrong unit, a negative limit or a range in
the wrong order is refused when the file is read, naming the file, the device and the key.

Common settings have one name in every driver (a key names its unit, like ``positions_mm``):

``timeout_s``
    Timeout of one exchange with the instrument, s (0 < t <= 60; default 2).
``poll_period_s``
    Wall-clock period of a driver's status polls, s.
``watchdog_s``
    Communication watchdog the driver arms, s of wall time (0 = off).

Quantities are written as pint strings (``"1150 degC"``, ``"30 g/min"``) or plain numbers
in the documented unit; the models hold floats in that unit.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Self, get_args

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationError

from couponlab.errors import CouponlabError, InputError
from couponlab.units import to_magnitude, to_temperature

if TYPE_CHECKING:
    from couponlab.labfile import DeviceEntry


def _bounds_text(gt: float | None, ge: float | None, lt: float | None, le: float | None) -> str:
    parts = []
    if gt is not None:
        parts.append(f"> {gt:g}")
    if ge is not None:
        parts.append(f">= {ge:g}")
    if lt is not None:
        parts.append(f"< {lt:g}")
    if le is not None:
        parts.append(f"<= {le:g}")
    return " and ".join(parts)


def _converter(
    unit: str,
    *,
    absolute: bool,
    gt: float | None,
    ge: float | None,
    lt: float | None,
    le: float | None,
) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if value is None:  # an optional field left empty
            return None
        try:
            mag = to_temperature(value, unit) if absolute else to_magnitude(value, unit)
        except CouponlabError as exc:
            raise ValueError(exc.message) from None
        ok = (
            (gt is None or mag > gt)
            and (ge is None or mag >= ge)
            and (lt is None or mag < lt)
            and (le is None or mag <= le)
        )
        if not ok:
            raise ValueError(
                f"{value!r} must be {_bounds_text(gt, ge, lt, le)} {unit}".replace("  ", " ")
            )
        return mag

    return convert


def quantity(
    unit: str,
    *,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
) -> BeforeValidator:
    """Return the validator of a quantity field held as a float in ``unit``:
    ``x: Annotated[float, quantity("g/min", ge=0)]``.

    Accepts a pint quantity, a string (``"30 g/min"``) or a plain number in ``unit``; refuses
    another dimension, NaN, inf, and values outside the bounds (exclusive ``gt``/``lt``,
    inclusive ``ge``/``le``, in ``unit``).
    """
    return BeforeValidator(_converter(unit, absolute=False, gt=gt, ge=ge, lt=lt, le=le))


def temperature(
    unit: str = "degC",
    *,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
) -> BeforeValidator:
    """Return the validator of an *absolute* temperature field held in ``unit`` (degC or
    K): ``t: Annotated[float, temperature(gt=0)]``. A temperature difference
    (``delta_degC``) is refused, as is anything at or below absolute zero."""
    zero = -273.15 if unit == "degC" else 0.0
    floor = zero if gt is None or gt < zero else gt
    return BeforeValidator(_converter(unit, absolute=True, gt=floor, ge=ge, lt=lt, le=le))


def quantity_range(
    unit: str, *, ge: float | None = None, le: float | None = None
) -> BeforeValidator:
    """Return the validator of a ``[low, high]`` field in ``unit`` with low < high:
    ``x: Annotated[tuple[float, float], quantity_range("mm")]``."""
    one = _converter(unit, absolute=False, gt=None, ge=ge, lt=None, le=le)

    def convert(value: Any) -> tuple[float, float]:
        if isinstance(value, str) or not isinstance(value, list | tuple) or len(value) != 2:
            raise ValueError(f"{value!r} must be a pair [low, high] in {unit}")
        low, high = one(value[0]), one(value[1])
        if not low < high:
            raise ValueError(f"low {low:g} must be below high {high:g} {unit}")
        return low, high

    return BeforeValidator(convert)


Seconds = Annotated[float, quantity("s", gt=0, le=3600)]
"""A duration in s, 0 < t <= 1 h."""
Timeout = Annotated[float, quantity("s", gt=0, le=60)]
"""An exchange timeout in s, 0 < t <= 60."""
Watchdog = Annotated[float, quantity("s", ge=0, le=3600)]
"""A communication watchdog in s of wall time, 0 (off) .. 3600."""


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(f"{value!r} is not a finite number")
    return value


FiniteFloat = Annotated[float, AfterValidator(_finite)]
"""A plain finite float (no unit)."""


@dataclass(frozen=True)
class DeviceRef:
    """Marks a field whose value names another device of the lab, of one of ``families``
    (any when none given): ``stage: Annotated[str, DeviceRef("xy_stage")] = ""``. An empty
    string means "none"."""

    families: tuple[str, ...]

    def __init__(self, *families: str) -> None:
        object.__setattr__(self, "families", families)


def references(model: BaseModel) -> Iterator[tuple[str, str, DeviceRef]]:
    """Yield ``(key, device name, ref)`` for every device reference a validated model holds."""
    for key, field in type(model).model_fields.items():
        ref = next((m for m in field.metadata if isinstance(m, DeviceRef)), None)
        ref = ref or _nested_ref(field.annotation)
        if ref is None:
            continue
        value = getattr(model, key)
        names = [value] if isinstance(value, str) else list(value or ())
        for i, name in enumerate(names):
            if name:
                yield (key if isinstance(value, str) else f"{key}.{i}", str(name), ref)


def _nested_ref(annotation: Any) -> DeviceRef | None:
    for arg in get_args(annotation):
        if isinstance(arg, DeviceRef):
            return arg
        found = _nested_ref(arg)
        if found is not None:
            return found
    return None


def _model_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel]:
    """Return the (nested) model that holds the key at ``loc``."""
    for part in loc:
        field = model.model_fields.get(str(part)) if isinstance(part, str) else None
        if field is None:
            continue
        nested = _model_in(field.annotation)
        if nested is None:
            break
        model = nested
    return model


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


MAX_LISTED_KEYS = 10
"""An unknown key lists the allowed keys when there are at most this many."""


def problems(exc: ValidationError, model: type[BaseModel]) -> list[tuple[str, str]]:
    """Return ``(key, problem)`` for every error of ``exc``, in short words.

    An unknown key names the closest allowed key (for a typo) and the allowed keys (or the
    model that lists them, when there are many).
    """
    out: list[tuple[str, str]] = []
    for err in exc.errors(include_url=False):
        key = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            owner = _model_at(model, err["loc"][:-1])
            allowed = sorted(owner.model_fields)
            last = str(err["loc"][-1])
            close = difflib.get_close_matches(last, allowed, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}? " if close else ""
            if len(allowed) <= MAX_LISTED_KEYS:
                known = f"allowed: {', '.join(allowed) or 'none'}"
            else:
                known = f"not one of the {len(allowed)} keys of {owner.__name__}"
            out.append((key, f"unknown key; {hint}{known}"))
            continue
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "missing":
            msg = "missing (required)"
        elif "input" in err and err["type"] not in ("value_error", "assertion_error"):
            msg = f"{err['input']!r}: {msg}"
        out.append((key, msg))
    return out


class _EntryModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    lab_section: ClassVar[str] = "settings"
    """The lab-entry section this model validates."""

    @classmethod
    def validate_section(cls, data: Any) -> tuple[Self | None, list[tuple[str, str]]]:
        """Validate one section of a lab entry; return the model or ``(key, problem)``s."""
        if data is None:
            data = {}
        if not isinstance(data, dict):
            return None, [(cls.lab_section, f"must be a mapping, got {type(data).__name__}")]
        try:
            return cls.model_validate(data), []
        except ValidationError as exc:
            return None, [(f"{cls.lab_section}.{k}", p) for k, p in problems(exc, cls)]

    @classmethod
    def of(cls, entry: DeviceEntry) -> Self:
        """Return the validated section of ``entry``.

        Raises
        ------
        InputError
            Naming the device, the key and the problem (the first one).
        """
        model, errs = cls.validate_section(getattr(entry, cls.lab_section))
        if model is None:
            key, problem = errs[0]
            more = f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""
            raise InputError(entry.name, f"{key}: {problem}{more}")
        return model


class DeviceSettings(_EntryModel):
    """Base of every driver's ``settings`` model: unknown keys are refused.

    Attributes
    ----------
    timeout_s
        Timeout of one exchange with the instrument, s (0 < t <= 60).
    """

    timeout_s: Timeout = 2.0


class DeviceLimits(_EntryModel):
    """Base of every driver's ``limits`` model (none by default): unknown keys are refused."""

    lab_section: ClassVar[str] = "limits"


__all__ = [
    "DeviceLimits",
    "DeviceRef",
    "DeviceSettings",
    "FiniteFloat",
    "Seconds",
    "Timeout",
    "Watchdog",
    "problems",
    "quantity",
    "quantity_range",
    "references",
    "temperature",
]
