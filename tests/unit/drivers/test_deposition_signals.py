"""The deposition drivers' query signals: a fresh exchange per get, monitors kept up to date,
setters and units as with ophyd-async's soft signals."""

from __future__ import annotations

from typing import Any

from couponlab.drivers.deposition._signals import query_signal_r, query_signal_rw


async def test_every_get_is_a_fresh_query_and_monitors_see_it() -> None:
    values = iter([1.0, 2.0, 3.0, 4.0])
    calls = 0

    async def query() -> float:
        nonlocal calls
        calls += 1
        return next(values)

    sig = query_signal_r(float, 0.0, query, units="g/min", precision=3)
    await sig.connect()
    assert await sig.get_value() == 1.0
    assert await sig.get_value() == 2.0
    assert calls == 2
    desc = (await sig.describe())[sig.name]
    assert desc["units"] == "g/min" and desc["precision"] == 3
    seen: list[Any] = []

    def monitor(reading: dict[str, Any]) -> None:
        seen.append(reading[sig.name]["value"])

    sig.subscribe_reading(monitor)
    try:
        assert await sig.get_value(cached=False) == 3.0
        assert seen[-1] == 3.0  # the monitor got the value the get fetched
        assert await sig.get_value() == 3.0  # a monitored signal answers from its cache
        assert (await sig.read(cached=False))[sig.name]["value"] == 4.0
        assert seen[-1] == 4.0
    finally:
        sig.clear_sub(monitor)


async def test_set_goes_through_the_setter() -> None:
    sent: list[float | None] = []
    state = {"value": 0.0}

    async def query() -> float:
        return state["value"]

    async def setter(value: float | None) -> float:
        sent.append(value)
        state["value"] = 0.0 if value is None else value
        return state["value"]

    sig = query_signal_rw(float, 0.0, query, setter, units="L/min")
    await sig.connect()
    await sig.set(4.5)
    assert sent == [4.5]
    assert await sig.get_value() == 4.5
