"""The twin control channel: simulation-only controls over JSON lines on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from couponlab.simulators.control import ControlServer
from couponlab.simulators.oxidation_truth import oxidation_truth
from couponlab.simulators.world import Coupon, World, WorldConfig
from couponlab.twins import TwinControl, TwinControlError


@pytest.fixture
async def served() -> tuple[World, ControlServer, asyncio.Event]:
    world = World(WorldConfig(speedup=10.0, seed=3), paused=True)
    coupon = world.add_coupon(Coupon("C1", length_mm=20.0, width_mm=10.0))
    coupon.set_composition(
        {
            "Cr": 0.05 * coupon.y_mm[:, None] + 0 * coupon.x_mm,
            "Ni": 1.0 - 0.05 * coupon.y_mm[:, None] + 0 * coupon.x_mm,
        }
    )
    stop = asyncio.Event()
    server = ControlServer(world, {"furnace1": "opc.tcp://127.0.0.1:1"}, stop)
    await server.start()
    yield world, server, stop  # type: ignore[misc]
    await server.stop()


async def _ask(server: ControlServer, method: str, **params: object) -> dict[str, object]:
    reply = await server.handle(json.dumps({"id": 9, "method": method, "params": params}))
    assert reply["id"] in (9, None)
    return reply


async def test_status_pause_resume_and_advance(
    served: tuple[World, ControlServer, asyncio.Event],
) -> None:
    world, server, _ = served
    status = (await _ask(server, "status"))["result"]
    assert status["paused"] is True and status["seed"] == 3
    assert status["twins"] == {"furnace1": "opc.tcp://127.0.0.1:1"}
    assert (await _ask(server, "advance", seconds=3600))["result"] == 3600.0
    assert world.now == 3600.0
    assert (await _ask(server, "set_speedup", speedup=250))["result"] == 250.0
    await _ask(server, "resume")
    assert not world.paused
    await _ask(server, "pause")
    assert world.paused


@pytest.mark.parametrize(
    ("method", "params", "message"),
    [
        ("set_speedup", {"speedup": 0}, "speedup must be in"),
        ("set_speedup", {"speedup": "fast"}, "must be a number"),
        ("set_speedup", {"speedup": float("nan")}, "speedup must be in"),
        ("set_speedup", {}, "missing parameter 'speedup'"),
        ("advance", {"seconds": -1}, "seconds must be in"),
        ("advance", {"seconds": 1e300}, "seconds must be in"),
        ("truth", {"name": "nothing"}, "no truth 'nothing'"),
        ("truth", {"name": "activation_energy", "coupon_id": "C9", "x_mm": [1]}, "no coupon 'C9'"),
        (
            "truth",
            {"name": "activation_energy", "coupon_id": "C1", "x_mm": ["a"]},
            "numbers in mm",
        ),
        ("fly", {}, "unknown method 'fly'"),
    ],
)
async def test_bad_requests_get_an_error_reply_and_change_nothing(
    served: tuple[World, ControlServer, asyncio.Event],
    method: str,
    params: dict[str, object],
    message: str,
) -> None:
    world, server, _ = served
    reply = await _ask(server, method, **params)
    assert message in reply["error"]["message"]  # type: ignore[index]
    assert world.now == 0.0 and world.speedup == 10.0


async def test_malformed_lines_get_an_error_reply(
    served: tuple[World, ControlServer, asyncio.Event],
) -> None:
    _, server, _ = served
    assert (await server.handle("{not json"))["error"]["type"] == "ParseError"  # type: ignore[index]
    assert "JSON object" in (await server.handle("[1, 2]"))["error"]["message"]  # type: ignore[index]


async def test_truth_is_the_world_model_at_the_asked_points(
    served: tuple[World, ControlServer, asyncio.Event],
) -> None:
    world, server, _ = served
    x, y = [5.0, 10.0], [2.0, 8.0]
    q = (await _ask(server, "truth", name="activation_energy", coupon_id="C1", x_mm=x, y_mm=y))[
        "result"
    ]
    comp = world.coupon("C1").composition_at(np.array(x), np.array(y))
    expected = [
        oxidation_truth(world.config, {e: float(c[i]) for e, c in comp.items()})[
            "activation_energy_kj_per_mol"
        ]
        for i in range(2)
    ]
    assert q == pytest.approx(expected)
    assert q[1] > q[0]  # NiO at 10 % Cr (y = 2 mm), chromia at 40 % (y = 8 mm): a higher Q
    assert (await _ask(server, "truth", name="coupons"))["result"] == ["C1"]
    rows = (
        await _ask(server, "truth", name="oxidation", coupon_id="C1", x_mm=x, y_mm=[1.0, 9.0])
    )["result"]
    assert rows["critical_cr_fraction"] == pytest.approx(0.2)  # type: ignore[index]
    assert [r["regime"] for r in rows["rows"]] == ["NiO", "chromia"]  # type: ignore[index]
    bad = await _ask(server, "truth", name="oxidation", coupon_id="C1", x_mm=x, y_mm=["a"])
    assert "lists of numbers" in bad["error"]["message"]  # type: ignore[index]


async def test_the_client_over_the_socket_and_shutdown(
    served: tuple[World, ControlServer, asyncio.Event],
) -> None:
    _, server, stop = served
    client = TwinControl(server.address, timeout_s=10.0)
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(1) as pool:  # the client blocks; the server runs on this loop

        async def blocking(fn: Callable[..., Any], *args: Any) -> Any:
            return await loop.run_in_executor(pool, fn, *args)

        try:
            assert await blocking(client.call, "ping") == "pong"
            assert await blocking(client.advance, 60.0) == 60.0
            with pytest.raises(TwinControlError, match="speedup must be in"):
                await blocking(client.set_speedup, -5.0)
            stats = await blocking(client.work_stats)
            assert set(stats) == {"count", "p50_ms", "p99_ms", "max_ms"}
            await blocking(client.shutdown)
            assert stop.is_set()
        finally:
            client.close()


def test_a_control_address_must_be_tcp_host_port() -> None:
    with pytest.raises(TwinControlError, match="not tcp://HOST:PORT"):
        TwinControl("opc.tcp://127.0.0.1")


async def test_truth_of_a_ni_al_coupon_gives_the_critical_al_content_per_temperature(
    served: tuple[World, ControlServer, asyncio.Event],
) -> None:
    world, server, _ = served
    coupon = world.add_coupon(Coupon("A1", length_mm=20.0, width_mm=10.0))
    al = 0.03 * coupon.y_mm[:, None] + 0 * coupon.x_mm  # 0 -> 30 % Al, no Cr
    coupon.set_composition({"Al": al, "Ni": 1.0 - al})
    q = await _ask(
        server, "truth", name="activation_energy", coupon_id="A1", x_mm=[5.0, 5.0], y_mm=[1, 9]
    )
    assert q["result"] == pytest.approx([112.0, 340.0])  # NiO at 3 % Al, alumina at 27 %
    rows = (
        await _ask(server, "truth", name="oxidation", coupon_id="A1", x_mm=[5.0], y_mm=[1.0, 9.0])
    )["result"]
    assert rows["critical_al"]["fraction"] == pytest.approx(0.10)  # type: ignore[index]
    assert [r["regime"] for r in rows["rows"]] == ["NiO", "alumina"]  # type: ignore[index]
    assert rows["temperature_k"] is None  # never heated: no temperature it formed at
