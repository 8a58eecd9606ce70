"""The twin control channel: simulation-only controls of a running twin process.

JSON lines over TCP on 127.0.0.1 (docs/protocols/twin-control.md). One request per line,
``{"id": 1, "method": "set_speedup", "params": {"speedup": 5000}}``, one reply per line,
``{"id": 1, "result": ...}`` or ``{"id": 1, "error": {"type": "...", "message": "..."}}``.

Only Session, the demo and tests use it (virtual-time speed, pause and step, ground truth);
plans and drivers never do: they reach the instruments over their own wire protocols.
Ground-truth queries are plain functions of the world in :data:`TRUTHS`; adding one is one
function and one line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from couponlab.simulators.bind_host import check_bind_host
from couponlab.simulators.faults import FaultRefusedError
from couponlab.simulators.line_server import LineServer
from couponlab.simulators.oxidation_truth import coupon_rows_truth, oxidation_truth
from couponlab.simulators.world import World

log = logging.getLogger(__name__)

Params = Mapping[str, Any]
MAX_LINE = 1 << 20
"""Longest request line, bytes."""


class ControlError(Exception):
    """A control request that cannot be carried out (reported to the client, not raised)."""


def _positions(params: Params) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        x = np.atleast_1d(np.asarray(params["x_mm"], float))
        y = None if params.get("y_mm") is None else np.asarray(params["y_mm"], float)
    except KeyError as exc:
        raise ControlError(f"missing parameter {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise ControlError(f"positions must be numbers in mm: {exc}") from None
    if y is not None:
        y = np.broadcast_to(np.atleast_1d(y), x.shape)
    if not (np.all(np.isfinite(x)) and (y is None or np.all(np.isfinite(y)))):
        raise ControlError("positions must be finite")
    return x, y


def _coupon_composition(world: World, params: Params) -> dict[str, np.ndarray]:
    try:
        coupon = world.coupon(str(params["coupon_id"]))
    except KeyError as exc:
        raise ControlError(str(exc.args[0])) from None
    x, y = _positions(params)
    return coupon.composition_at(x, y)


def _truth_activation_energy(world: World, params: Params) -> list[float]:
    """True Q (kJ/mol) of the coupon's as-built composition at points (x_mm, y_mm): under
    the regime law that of the scale covering most of the surface at each point."""
    comp = _coupon_composition(world, params)
    if world.config.oxidation.law == "mixing":
        q = world.config.oxidation.activation_energy(comp) / 1e3
        return [float(v) for v in np.atleast_1d(q)]
    n = len(next(iter(comp.values()))) if comp else 0
    points = [{e: float(c[i]) for e, c in comp.items()} for i in range(n)]
    return [
        float(oxidation_truth(world.config, p)["activation_energy_kj_per_mol"]) for p in points
    ]


def _truth_oxidation(world: World, params: Params) -> dict[str, object]:
    """The critical Cr fraction and, per row ``y_mm`` (a list), the regime, Q (kJ/mol) and
    ln k0 of the as-built composition at the points ``x_mm`` of that row; on a coupon with
    Al also the critical Al fraction at each point's temperature
    (:func:`~couponlab.simulators.oxidation_truth.coupon_rows_truth`)."""
    try:
        coupon_id = str(params["coupon_id"])
        x = [float(v) for v in params["x_mm"]]
        y = [float(v) for v in params["y_mm"]]
    except KeyError as exc:
        raise ControlError(f"missing parameter {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise ControlError(f"x_mm and y_mm must be lists of numbers in mm: {exc}") from None
    if not all(math.isfinite(v) for v in (*x, *y)):
        raise ControlError("positions must be finite")
    try:
        return coupon_rows_truth(world, coupon_id, x, y)
    except KeyError as exc:
        raise ControlError(str(exc.args[0])) from None


def _truth_composition(world: World, params: Params) -> dict[str, list[float]]:
    """As-built element fractions of the coupon at points (x_mm, y_mm)."""
    return {e: [float(v) for v in c] for e, c in _coupon_composition(world, params).items()}


def _truth_recession(world: World, params: Params) -> dict[str, object]:
    """Metal the coupon's oxidation consumed under its surface at points (x_mm, y_mm), um,
    and the coupon's exposure, s (what the frame twin takes off a specimen's section)."""
    try:
        coupon = world.coupon(str(params["coupon_id"]))
    except KeyError as exc:
        raise ControlError(str(exc.args[0])) from None
    x, y = _positions(params)
    um = coupon.recession_at(x, y) * 1e6
    return {"recession_um": [float(v) for v in um], "exposure_s": float(coupon.exposure_s)}


def _truth_coupons(world: World, params: Params) -> list[str]:
    """Ids of the coupons in the world."""
    return sorted(world.coupons)


def _truth_active(world: World, params: Params) -> dict[str, bool]:
    """Per twin whose instrument a lost client must stop (furnace, feeders, deposition
    cells: the models with an ``active`` flag, the one their watchdogs watch), whether it
    is out of its safe state now: heating above standby, feeding, lasing, moving or
    printing. What a test checks after an abort; plans and drivers never see it."""
    return {
        name: bool(active)
        for name, model in sorted(world.instruments.items())
        if isinstance(active := getattr(model, "active", None), bool)
    }


TRUTHS: dict[str, Callable[[World, Params], Any]] = {
    "active": _truth_active,
    "activation_energy": _truth_activation_energy,
    "oxidation": _truth_oxidation,
    "composition": _truth_composition,
    "coupons": _truth_coupons,
    "recession": _truth_recession,
}
"""Ground-truth queries by name: ``f(world, params) -> JSON-able``."""


def _number(params: Params, key: str, low: float, high: float) -> float:
    try:
        value = float(params[key])
    except KeyError:
        raise ControlError(f"missing parameter {key!r}") from None
    except (TypeError, ValueError):
        raise ControlError(f"{key} must be a number, got {params[key]!r}") from None
    if not (math.isfinite(value) and low <= value <= high):
        raise ControlError(f"{key} must be in [{low:g}, {high:g}], got {value!r}")
    return value


class ControlServer:
    """Serves the control channel of one world and its twins.

    Parameters
    ----------
    world
        The world whose time and truth it controls.
    addresses
        Device name -> resolved address of every twin (reported by ``status``).
    stop
        Set by the ``shutdown`` request.
    host, port
        Where to listen (port 0: a free port).
    """

    def __init__(
        self,
        world: World,
        addresses: Mapping[str, str],
        stop: asyncio.Event,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.world = world
        self.addresses = dict(addresses)
        self._stop = stop
        self.server = LineServer(
            world, self._reply, host=host, port=port, encoding="utf-8", limit=MAX_LINE
        )
        self.methods: dict[str, Callable[[Params], Any]] = {
            "ping": lambda p: "pong",
            "status": self._status,
            "set_speedup": self._set_speedup,
            "pause": self._pause,
            "resume": self._resume,
            "work_stats": self._work_stats,
            "truth": self._truth,
            "fault": self._fault,
            "clear_faults": self._clear_faults,
            "faults": self._faults,
            "shutdown": self._shutdown,
        }

    @property
    def address(self) -> str:
        """Return ``tcp://host:port`` (the bound port once started)."""
        return f"tcp://{self.server.host}:{self.server.port}"

    async def start(self) -> None:
        """Start listening (on 127.0.0.1, or the operator's ``--bind`` host)."""
        check_bind_host(self.server.host, "twin control channel")
        await self.server.start()

    async def stop(self) -> None:
        """Stop listening and close every client."""
        await self.server.stop()

    # -- requests ----------------------------------------------------------------------------
    def _status(self, params: Params) -> dict[str, Any]:
        w = self.world
        return {
            "virtual_time_s": w.now,
            "speedup": w.speedup,
            "achieved_speedup": w.achieved_speedup(),
            "paused": w.paused,
            "slowed_s": w.slowed_s,
            "seed": w.config.seed,
            "twins": self.addresses,
        }

    def _set_speedup(self, params: Params) -> float:
        self.world.set_speedup(_number(params, "speedup", 1e-6, 1e6))
        return self.world.speedup

    def _pause(self, params: Params) -> float:
        self.world.pause()
        return self.world.now

    def _resume(self, params: Params) -> float:
        self.world.resume()
        return self.world.now

    async def _advance(self, params: Params) -> float:
        await self.world.advance_async(_number(params, "seconds", 0.0, 1e9))
        return self.world.now

    def _work_stats(self, params: Params) -> dict[str, float | int]:
        return self.world.work_stats(reset=bool(params.get("reset", False)))

    def _truth(self, params: Params) -> Any:
        name = str(params.get("name", ""))
        try:
            query = TRUTHS[name]
        except KeyError:
            raise ControlError(f"no truth {name!r}; have {sorted(TRUTHS)}") from None
        return query(self.world, params)

    def _fault(self, params: Params) -> dict[str, Any]:
        extra = {k: v for k, v in params.items() if k not in ("device", "kind", "for_s", "wall_s")}
        try:
            fault = self.world.faults.inject(
                str(params.get("device", "")),
                str(params.get("kind", "")),
                for_s=params.get("for_s"),
                wall_s=params.get("wall_s"),
                **extra,
            )
        except FaultRefusedError as exc:
            raise ControlError(str(exc)) from None
        return fault.as_dict()

    def _clear_faults(self, params: Params) -> list[dict[str, Any]]:
        device, kind = params.get("device"), params.get("kind")
        try:
            ended = self.world.faults.clear(
                None if device is None else str(device), None if kind is None else str(kind)
            )
        except ValueError as exc:
            raise ControlError(f"unknown fault kind {kind!r}") from exc
        return [f.as_dict() for f in ended]

    def _faults(self, params: Params) -> dict[str, Any]:
        board = self.world.faults
        return {
            "active": [f.as_dict() for f in board.active()],
            "devices": board.devices(),
            "injected": board.injected,
        }

    def _shutdown(self, params: Params) -> str:
        self._stop.set()
        return "stopping"

    async def handle(self, line: str) -> dict[str, Any]:
        """Answer one request line (never raises)."""
        req_id: Any = None
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ControlError("a request is a JSON object")
            req_id = request.get("id")
            method = request.get("method")
            params = request.get("params") or {}
            if not isinstance(params, dict):
                raise ControlError("params must be a JSON object")
            if method == "advance":
                result = await self._advance(params)
            elif isinstance(method, str) and method in self.methods:
                result = self.methods[method](params)
            else:
                known = sorted([*self.methods, "advance"])
                raise ControlError(f"unknown method {method!r}; have {known}")
            return {"id": req_id, "result": result}
        except json.JSONDecodeError as exc:
            return {"id": None, "error": {"type": "ParseError", "message": str(exc)}}
        except (ControlError, ValueError, KeyError, TypeError) as exc:
            message = str(exc.args[0]) if exc.args else type(exc).__name__
            return {"id": req_id, "error": {"type": type(exc).__name__, "message": message}}
        except Exception as exc:  # a bug in a truth query must not take the channel down
            log.exception("control request failed")
            return {"id": req_id, "error": {"type": type(exc).__name__, "message": str(exc)}}

    async def _reply(self, line: str) -> str:
        """Answer one line with one JSON line (a deferred reply of the line server)."""
        return json.dumps(await self.handle(line), allow_nan=True)


__all__ = ["TRUTHS", "ControlError", "ControlServer"]
