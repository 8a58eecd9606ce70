"""Conformance suite of the gradient-furnace family, reusable by any new driver.

Every check is an ``async`` function taking a :class:`FurnaceConformance` (a connected
:class:`~couponlab.interfaces.furnace.GradientFurnace` plus what the check may use) and
raising :class:`ConformanceError` (an ``AssertionError``) naming what does not conform.
Each check leaves the furnace in standby. Run them all with :func:`run_conformance`, or one
per pytest case::

    @pytest.mark.parametrize("check", sorted(FURNACE_CHECKS))
    async def test_conformance(furnace, check):
        await FURNACE_CHECKS[check](FurnaceConformance(furnace))

The checks only use the interface, so they run against a twin (fast, with a high world
speed-up) and against hardware (``hil/test_furnace.py``): there they heat the furnace to
the (moderate) temperatures given in :class:`FurnaceConformance` and wait in real time.

:func:`furnace_lab` builds a lab file with one furnace twin, for tests and demos.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from bluesky.utils import maybe_await
from numpy.typing import NDArray

from couponlab.errors import InputError, InterlockTrippedError
from couponlab.interfaces.furnace import (
    FurnaceProgram,
    GradientFurnace,
    GradientSetpoint,
    LinearGradient,
    ProgramAbortedError,
    ProgramSegment,
)
from couponlab.labfile import DeviceEntry, LabFile
from couponlab.testing.conformance import ConformanceError
from couponlab.testing.conformance import require as _require
from couponlab.units import Q_, QuantityLike, to_magnitude, to_temperature

FURNACE_DRIVER = "couponlab.drivers.furnace:OpcUaGradientFurnace"


@dataclass
class FurnaceConformance:
    """What the checks need.

    Attributes
    ----------
    furnace
        A connected furnace.
    hot, cold
        Gradient used by the checks (absolute temperatures; keep them moderate on hardware).
    ramp_rate
        Ramp rate of the checks, K/min.
    tolerance
        Tolerance of the gradient check, K.
    timeout
        Wall-clock limit of one long action (a gradient, a program), s.
    write_count
        Returns how many write requests (writes and method calls) reached the instrument so
        far; given, :func:`check_bad_input_refused` proves that refused input sent nothing.
        ``None``: that part of the check relies on the readback only.
    trip
        Makes the instrument's interlock trip (twin fault injection, or lowering the limit);
        ``None`` skips :func:`check_interlock_fails_status` (``pytest.skip``, with the reason).
    recover
        Undoes ``trip`` so that the interlock can be reset.
    """

    furnace: GradientFurnace
    hot: QuantityLike = "650 degC"
    cold: QuantityLike = "450 degC"
    ramp_rate: QuantityLike = "50 K/min"
    tolerance: QuantityLike = "3 K"
    timeout: float = 60.0
    write_count: Callable[[], int] | None = None
    trip: Callable[[], Awaitable[None]] | None = None
    recover: Callable[[], Awaitable[None]] | None = None

    @property
    def name(self) -> str:
        """Return the furnace's name (for messages)."""
        return self.furnace.name or "furnace"


async def _settle(status: Awaitable[None], timeout: float) -> BaseException | None:
    """Wait for a status; return its exception (or None). A hang is a conformance failure."""
    task = asyncio.ensure_future(status)
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise ConformanceError(f"a status did not finish within {timeout:g} s")
    return task.exception()


def expected_targets(
    positions_mm: NDArray[np.float64], gradient: LinearGradient
) -> NDArray[np.float64]:
    """Return the zone setpoints (degC) the interface promises for a linear gradient."""
    hot = to_temperature(gradient.hot)
    cold = to_temperature(gradient.cold)
    x_hot = (
        float(positions_mm[0])
        if gradient.hot_position is None
        else to_magnitude(gradient.hot_position, "mm")
    )
    x_cold = (
        float(positions_mm[-1])
        if gradient.cold_position is None
        else to_magnitude(gradient.cold_position, "mm")
    )
    frac = np.clip((positions_mm - x_hot) / (x_cold - x_hot), 0.0, 1.0)
    out: NDArray[np.float64] = hot + (cold - hot) * frac
    return out


# -- checks -----------------------------------------------------------------------------------


async def check_identity(ctx: FurnaceConformance) -> None:
    """The furnace identifies itself, reports a known state, and implements the interface."""
    f = ctx.furnace
    _require(isinstance(f, GradientFurnace), ctx.name, "does not implement GradientFurnace")
    identity = await f.identify()
    _require(bool(identity.strip()), ctx.name, "identify() returned nothing")
    state = await f.state()
    _require(
        state in {"standby", "manual", "program", "interlock"},
        ctx.name,
        f"state() = {state!r} is not standby/manual/program/interlock",
    )
    _require(f.num_zones >= 2, ctx.name, f"num_zones = {f.num_zones}: a gradient needs two")


async def check_units(ctx: FurnaceConformance) -> None:
    """Descriptors carry units: the profile in degC (one array of N), the clock in s."""
    f = ctx.furnace
    desc = await maybe_await(f.describe())
    profiles = [
        k
        for k, d in desc.items()
        if d.get("units") == "degC" and list(d.get("shape", [])) == [f.num_zones]
    ]
    _require(bool(profiles), ctx.name, f"no {f.num_zones}-zone degC array in describe(): {desc}")
    for key, d in desc.items():
        if d["dtype"] in ("number", "array") and key not in profiles:
            _require(bool(d.get("units")), ctx.name, f"{key} has no units")
    clock = await maybe_await(f.clock.describe())
    _require(
        any(d.get("units") == "s" for d in clock.values()),
        ctx.name,
        f"the clock does not read in s: {clock}",
    )
    reading = await maybe_await(f.read())
    _require(set(reading) == set(desc), ctx.name, "read() and describe() keys differ")


async def check_profile_shape(ctx: FurnaceConformance) -> None:
    """The profile has one PV and one setpoint per zone at increasing positions."""
    f = ctx.furnace
    p = await f.read_profile()
    n = f.num_zones
    for what, arr in (
        ("positions", p.positions_mm),
        ("temperatures", p.temperatures_c),
        ("setpoints", p.setpoints_c),
    ):
        _require(arr.shape == (n,), ctx.name, f"profile {what} has shape {arr.shape}, not ({n},)")
    _require(bool(np.all(np.diff(p.positions_mm) > 0)), ctx.name, "zone positions do not increase")
    _require(
        bool(np.all(np.isfinite(p.temperatures_c))),
        ctx.name,
        f"profile has non-finite temperatures {p.temperatures_c}",
    )
    _require(
        math.isfinite(p.sim_time_s) and p.sim_time_s >= 0,
        ctx.name,
        f"clock reads {p.sim_time_s}",
    )
    now = await f.clock.now()
    _require(now >= p.sim_time_s, ctx.name, f"the clock went back: {now} < {p.sim_time_s}")


async def check_gradient_reaches_setpoints(ctx: FurnaceConformance) -> None:
    """``set_gradient`` writes the linear setpoints and completes with every zone in tolerance."""
    f = ctx.furnace
    try:
        status = f.set_gradient(
            ctx.hot, ctx.cold, ramp_rate=ctx.ramp_rate, tolerance=ctx.tolerance
        )
        error = await _settle(status, ctx.timeout)
        _require(error is None, ctx.name, f"the gradient failed: {error!r}")
        p = await f.read_profile()
        want = expected_targets(p.positions_mm, LinearGradient(ctx.hot, ctx.cold))
        _require(
            bool(np.allclose(p.setpoints_c, want, atol=1e-6)),
            ctx.name,
            f"setpoints {p.setpoints_c} are not the linear gradient {want}",
        )
        tol = to_magnitude(ctx.tolerance, "K")
        worst = float(np.max(np.abs(p.temperatures_c - want)))
        _require(
            worst <= tol,
            ctx.name,
            f"a zone is {worst:.2f} K from its setpoint after the status completed "
            f"(tolerance {tol:g} K)",
        )
    finally:
        await f.stop()


async def check_program_completes(ctx: FurnaceConformance) -> None:
    """A two-segment program runs in instrument time and its status completes."""
    f = ctx.furnace
    rate = to_magnitude(ctx.ramp_rate, "K/min")
    step = 20.0
    dwell_s = 600.0
    low = LinearGradient(
        Q_(to_temperature(ctx.hot) - step, "degC"), Q_(to_temperature(ctx.cold) - step, "degC")
    )
    program = FurnaceProgram(
        (
            ProgramSegment(low, ctx.ramp_rate, dwell_s),
            ProgramSegment(LinearGradient(ctx.hot, ctx.cold), ctx.ramp_rate, "0 s"),
        )
    )
    try:
        t0 = await f.clock.now()
        error = await _settle(f.run_program(program), ctx.timeout)
        _require(error is None, ctx.name, f"the program failed: {error!r}")
        elapsed = await f.clock.now() - t0
        # the last ramp alone takes step/rate; the dwell adds dwell_s
        least = dwell_s + step / rate * 60.0
        _require(
            elapsed >= least,
            ctx.name,
            f"the program completed after {elapsed:.0f} s of instrument time; "
            f"its dwell and last ramp alone take {least:.0f} s",
        )
        p = await f.read_profile()
        want = expected_targets(p.positions_mm, LinearGradient(ctx.hot, ctx.cold))
        _require(
            bool(np.allclose(p.setpoints_c, want, atol=1e-6)),
            ctx.name,
            f"after the program the setpoints are {p.setpoints_c}, not the last segment's {want}",
        )
    finally:
        await f.stop()


def bad_requests(num_zones: int) -> list[tuple[str, object]]:
    """Return (description, request) pairs every driver must refuse before writing."""
    ok = [400.0] * num_zones
    return [
        ("setpoint above any furnace's limit", GradientSetpoint("5000 degC", "500 degC")),
        ("absolute above the limit in K", GradientSetpoint("6000 K", "500 degC")),
        ("temperature difference as a setpoint", GradientSetpoint(Q_(600, "delta_degC"), 500)),
        ("NaN setpoint", GradientSetpoint(math.nan, 500.0)),
        ("wrong unit", GradientSetpoint("600 mm", "500 degC")),
        ("offset unit in a rate", GradientSetpoint(600, 500, ramp_rate="10 degC/min")),
        ("negative ramp rate", GradientSetpoint(600, 500, ramp_rate="-10 K/min")),
        ("zero ramp rate (the instrument's 'unlimited')", GradientSetpoint(600, 500, ramp_rate=0)),
        ("length as a tolerance", GradientSetpoint(600, 500, tolerance="2 mm")),
        ("too many segments", FurnaceProgram((ProgramSegment(ok, "10 K/min", 60),) * 65)),
        ("NaN dwell", FurnaceProgram((ProgramSegment(ok, "10 K/min", math.nan),))),
        ("empty program", FurnaceProgram(())),
        ("wrong zone count", FurnaceProgram((ProgramSegment(ok[:-1], "10 K/min", 60),))),
        ("negative dwell", FurnaceProgram((ProgramSegment(ok, "10 K/min", "-1 min"),))),
        ("zero program rate", FurnaceProgram((ProgramSegment(ok, 0, 60),))),
        ("not a request", 600.0),
    ]


async def check_bad_input_refused(ctx: FurnaceConformance) -> None:
    """Bad input raises a typed InputError and writes nothing (setpoints unchanged)."""
    f = ctx.furnace
    before = (await f.read_profile()).setpoints_c
    writes = ctx.write_count() if ctx.write_count else None
    for what, request in bad_requests(f.num_zones):
        try:
            await asyncio.wait_for(f.set(request), ctx.timeout)  # type: ignore[arg-type]
        except InputError as exc:
            _require(ctx.name in str(exc), ctx.name, f"{what}: error does not name the device")
        except Exception as exc:
            raise ConformanceError(
                f"{ctx.name}: {what} raised {type(exc).__name__}, not an InputError: {exc}"
            ) from exc
        else:
            raise ConformanceError(f"{ctx.name}: {what} was accepted")
        if ctx.write_count is not None:
            _require(
                ctx.write_count() == writes,
                ctx.name,
                f"{what}: refused, but a write reached the instrument",
            )
    after = (await f.read_profile()).setpoints_c
    _require(bool(np.array_equal(before, after)), ctx.name, "refused input changed setpoints")


async def check_stop_to_standby(ctx: FurnaceConformance) -> None:
    """``stop()`` aborts a running program (its status fails) and leaves the furnace in standby."""
    f = ctx.furnace
    hold = FurnaceProgram.hold(LinearGradient(ctx.hot, ctx.cold), "100 h", ctx.ramp_rate)
    status = f.set(hold)
    await asyncio.sleep(0.2)
    _require(not status.done, ctx.name, f"a 100 h program ended at once: {status.exception()!r}")
    await asyncio.wait_for(f.stop(), ctx.timeout)
    error = await _settle(status, ctx.timeout)
    _require(
        isinstance(error, ProgramAbortedError),
        ctx.name,
        f"stop() left the program status with {error!r}, not ProgramAbortedError",
    )
    state = await f.state()
    _require(state == "standby", ctx.name, f"after stop() the state is {state!r}")


async def check_interlock_fails_status(ctx: FurnaceConformance) -> None:
    """A tripped interlock fails a running program with InterlockTrippedError; after the fault
    is cleared the interlock resets and the furnace returns to standby.

    Skipped (``pytest.skip``) when ``ctx.trip`` is ``None``: nothing can trip the interlock.
    """
    if ctx.trip is None:
        pytest.skip(f"{ctx.name}: no way to trip the interlock given (FurnaceConformance.trip)")
    f = ctx.furnace
    status = f.set(FurnaceProgram.hold(LinearGradient(ctx.hot, ctx.cold), "100 h", ctx.ramp_rate))
    try:
        await asyncio.sleep(0.2)
        await ctx.trip()
        error = await _settle(status, ctx.timeout)
        _require(
            isinstance(error, InterlockTrippedError),
            ctx.name,
            f"the program status ended with {error!r}, not InterlockTrippedError",
        )
        state = await f.state()
        _require(state == "interlock", ctx.name, f"a tripped furnace reports {state!r}")
        refused = await _settle(f.set_gradient(ctx.hot, ctx.cold), ctx.timeout)
        _require(
            isinstance(refused, InterlockTrippedError),
            ctx.name,
            f"a gradient while tripped ended with {refused!r}",
        )
    finally:
        if ctx.recover is not None:
            await ctx.recover()
        await _reset_when_possible(f, ctx.timeout)
        await f.stop()
    state = await f.state()
    _require(state == "standby", ctx.name, f"after reset and stop the state is {state!r}")


async def _reset_when_possible(f: GradientFurnace, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            await f.reset_interlock()
            return
        except InterlockTrippedError:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.1)


FURNACE_CHECKS: dict[str, Callable[[FurnaceConformance], Awaitable[None]]] = {
    "identity": check_identity,
    "units": check_units,
    "profile_shape": check_profile_shape,
    "gradient": check_gradient_reaches_setpoints,
    "program": check_program_completes,
    "bad_input": check_bad_input_refused,
    "stop": check_stop_to_standby,
    "interlock": check_interlock_fails_status,
}
"""Every check by name, in a sensible order."""


async def run_conformance(
    ctx: FurnaceConformance, names: list[str] | None = None
) -> dict[str, str]:
    """Run checks (all by default) in order; return ``{name: "ok" | "skipped: ..." |
    "failed: ..."}`` (a check skips when a capability it needs is absent, e.g. ``ctx.trip``).

    Raises
    ------
    ConformanceError
        If any check failed (after running them all); the message lists every failure.
    """
    results: dict[str, str] = {}
    for name in names or list(FURNACE_CHECKS):
        try:
            await FURNACE_CHECKS[name](ctx)
        except AssertionError as exc:
            results[name] = f"failed: {exc}"
        except pytest.skip.Exception as exc:
            results[name] = f"skipped: {exc.msg}"
        else:
            results[name] = "ok"
    failed = {k: v for k, v in results.items() if v.startswith("failed")}
    if failed:
        raise ConformanceError("\n".join(f"{k}: {v}" for k, v in failed.items()))
    return results


class WireSpy:
    """Count the Write and Call requests a furnace's OPC UA client sends.

    It wraps the asyncua session's ``write`` and ``call`` (below the driver, so a write that
    went around the driver's checks is counted too): refused input must not produce one.
    ``attach`` after ``connect``; a reconnection makes a new session that is not spied on.
    """

    def __init__(self) -> None:
        self.writes: list[list[str]] = []
        self.calls: list[list[str]] = []

    def attach(self, furnace: Any) -> WireSpy:
        """Spy on ``furnace.connection`` (a connected OPC UA furnace); return self."""
        client = furnace.connection.client
        if client is None:
            raise RuntimeError("connect the furnace before attaching a WireSpy")
        session = client.uaclient.session
        write, call = session.write, session.call

        async def spy_write(params: Any) -> Any:
            self.writes.append([str(w.NodeId.Identifier) for w in params.NodesToWrite])
            return await write(params)

        async def spy_call(methods: Any) -> Any:
            self.calls.append([str(m.MethodId.Identifier) for m in methods])
            return await call(methods)

        session.write = spy_write
        session.call = spy_call
        return self

    def count(self) -> int:
        """Return how many Write and Call requests were sent since :meth:`attach`."""
        return len(self.writes) + len(self.calls)


def furnace_lab(
    *,
    speedup: float = 2000.0,
    seed: int = 0,
    zones: int = 8,
    max_temperature: str = "1150 degC",
    twin_config: dict[str, Any] | None = None,
    name: str = "furnace1",
    carrier_slots: int = 1,
) -> LabFile:
    """Return a lab with one gradient-furnace twin on ``opc.tcp://127.0.0.1:0`` (free port),
    ``zones`` zones and ``carrier_slots`` carrier slots (the lab setting; the twin follows it)."""
    entry = DeviceEntry(
        name=name,
        family="gradient_furnace",
        driver=FURNACE_DRIVER,
        address="opc.tcp://127.0.0.1:0",
        twin=True,
        limits={"max_temperature": max_temperature},
        settings={"zones": zones, "carrier_slots": carrier_slots},
        twin_config={"zones": zones, **(twin_config or {})},
    )
    return LabFile(name="furnace-lab", world={"speedup": speedup, "seed": seed}, devices=[entry])


__all__ = [
    "FURNACE_CHECKS",
    "FURNACE_DRIVER",
    "ConformanceError",
    "FurnaceConformance",
    "WireSpy",
    "bad_requests",
    "check_bad_input_refused",
    "check_gradient_reaches_setpoints",
    "check_identity",
    "check_interlock_fails_status",
    "check_profile_shape",
    "check_program_completes",
    "check_stop_to_standby",
    "check_units",
    "expected_targets",
    "furnace_lab",
    "run_conformance",
]
