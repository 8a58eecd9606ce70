"""The detector conformance suite can fail: fakes that break the interface's promises."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from couponlab.testing.detectors import (
    ConformanceError,
    check_dwell,
    check_scanner_reading,
    check_stage_refuses_out_of_limits,
)


class LooseAxis:
    """An axis that moves wherever it is told, limits or not."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.value = 0.0

    def limits(self) -> tuple[float, float]:
        return (0.0, 10.0)

    async def set(self, value: float) -> None:
        self.value = value

    async def read(self) -> dict[str, Any]:
        return {self.name: {"value": self.value, "timestamp": 0.0}}


class LooseStage:
    name = "loose"

    def __init__(self) -> None:
        self.x = LooseAxis("loose-x")
        self.y = LooseAxis("loose-y")

    def check_velocity(self, value: Any) -> float:
        return float(value)


async def test_a_stage_that_ignores_its_limits_fails() -> None:
    with pytest.raises(ConformanceError, match=r"loose: loose-x accepted 11\.0 > limit 10\.0"):
        await check_stage_refuses_out_of_limits(LooseStage())


class Signal:
    def __init__(self, value: Any) -> None:
        self.value = value

    async def get_value(self) -> Any:
        return self.value

    async def set(self, value: Any) -> None:
        self.value = value


class LenientDwell:
    """A detector whose check_dwell accepts anything."""

    name = "lenient"
    dwell = Signal(1.0)

    def dwell_limits(self) -> tuple[float, float]:
        return (0.1, 10.0)

    def check_dwell(self, value: Any) -> float:
        return float(value)

    def trigger(self) -> Any: ...
    def read(self) -> Any: ...
    def describe(self) -> Any: ...
    async def identify(self) -> str:
        return "x"

    async def state(self) -> str:
        return "x"

    async def safe_state(self) -> None:
        return None

    async def disconnect(self) -> None:
        return None


async def test_a_detector_that_accepts_any_dwell_fails() -> None:
    with pytest.raises(ConformanceError, match=r"dwell 20\.0 s accepted"):
        await check_dwell(LenientDwell())


class KelvinScanner:
    """A scanner that reports kelvin as if it were degC."""

    name = "kelvin"
    temperatures = Signal(np.array([1000.0, 1001.0]))

    def positions_mm(self) -> tuple[float, ...]:
        return (0.0, 10.0)

    async def trigger(self) -> None:
        return None

    async def describe(self) -> dict[str, Any]:
        return {"kelvin-temperatures": {"dtype": "array", "shape": [2], "units": "K"}}

    def read(self) -> Any: ...
    async def identify(self) -> str:
        return "x"

    async def state(self) -> str:
        return "x"

    async def safe_state(self) -> None:
        return None

    async def disconnect(self) -> None:
        return None


async def test_a_scanner_in_kelvin_fails() -> None:
    with pytest.raises(ConformanceError, match="temperature units"):
        await check_scanner_reading(KelvinScanner())
