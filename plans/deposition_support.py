"""Plan helpers of the deposition plans: await a device coroutine from a plan and get its
result, and emit computed values (fits, maps) as events with units."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import numpy as np
from bluesky import plan_stubs as bps
from bluesky.protocols import Reading
from bluesky.utils import MsgGenerator
from event_model import DataKey

T = TypeVar("T")


def call(fn: Callable[[], Awaitable[T]]) -> MsgGenerator[T]:
    """Await ``fn()`` on the RunEngine's loop and return its result (re-raising its error)."""
    tasks = yield from bps.wait_for([fn])
    result: T = tasks[0].result()
    return result


class Record:
    """A bluesky ``Readable`` holding computed values, for ``trigger_and_read``.

    Parameters
    ----------
    name
        Prefix of the data keys.
    values
        Field -> value (number, string, or array of any shape, e.g. a (ny, nx) map).
    units
        Field -> unit string (numbers and arrays).
    """

    def __init__(
        self, name: str, values: Mapping[str, Any], units: Mapping[str, str] | None = None
    ) -> None:
        self.name = name
        self.parent = None
        self._values = dict(values)
        self._units = dict(units or {})

    def update(self, values: Mapping[str, Any]) -> None:
        """Replace the values (same fields and shapes, for the next event of a stream)."""
        self._values = dict(values)

    def _key(self, field: str) -> str:
        return f"{self.name}_{field}"

    def read(self) -> dict[str, Reading[Any]]:
        """Return the values as readings (timestamp: now)."""
        import time

        ts = time.time()
        out: dict[str, Reading[Any]] = {}
        for f, v in self._values.items():
            value = np.asarray(v, float) if isinstance(v, list | tuple | np.ndarray) else v
            out[self._key(f)] = Reading(value=value, timestamp=ts, alarm_severity=0)
        return out

    def describe(self) -> dict[str, DataKey]:
        """Describe every field with dtype, shape and units."""
        out: dict[str, DataKey] = {}
        for f, v in self._values.items():
            if isinstance(v, list | tuple | np.ndarray):
                shape: list[int | None] = [int(n) for n in np.shape(v)]
                key = DataKey(source="computed", dtype="array", shape=shape, dtype_numpy="<f8")
            elif isinstance(v, str):
                key = DataKey(source="computed", dtype="string", shape=[])
            else:
                key = DataKey(source="computed", dtype="number", shape=[])
            if f in self._units:
                key["units"] = self._units[f]
            out[self._key(f)] = key
        return out


__all__ = ["Record", "call"]
