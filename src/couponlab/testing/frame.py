"""Conformance suite of the test-frame family, reusable by any new driver.

Every check is an ``async`` function taking a :class:`FrameConformance` (a connected
:class:`~couponlab.interfaces.frame.TestFrame` plus what the check may use) and raising
:class:`ConformanceError` (an ``AssertionError``) naming what does not conform. Each check
leaves the frame stopped, unloaded and its crosshead at the start position. Run them all
with :func:`run_conformance`, or one per pytest case::

    @pytest.mark.parametrize("check", sorted(FRAME_CHECKS))
    async def test_conformance(frame, check):
        await FRAME_CHECKS[check](FrameConformance(frame))

The checks only use the interface. Those that pull a specimen (``destructive``) break it:
they run against twins and, on hardware, only with ``destructive=True`` and a specimen
ready for each of them.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from couponlab.errors import InputError
from couponlab.interfaces import frame as iframe
from couponlab.labfile import DeviceEntry, LabFile
from couponlab.testing.conformance import ConformanceError
from couponlab.testing.conformance import require as _require

FRAME_DRIVER = "couponlab.drivers.frame:ScpiTestFrame"


@dataclass
class FrameConformance:
    """What the checks need.

    Attributes
    ----------
    frame
        The connected device under test.
    coupon_id, position
        Specimen to mount: by default ``generic:conformance``, a generic specimen (a twin
        gives it its default material, and refuses any other id its world does not know;
        on hardware the id is only recorded).
    settings
        Settings of the destructive checks' tests (fast crosshead so a twin test is short).
    destructive
        Run the checks that pull a specimen to fracture or to a fault.
    timeout
        Wall-clock limit of one test, s.
    """

    frame: Any
    coupon_id: str = "generic:conformance"
    position: float = 10.0
    settings: iframe.TestSettings = field(
        default_factory=lambda: iframe.TestSettings(
            crosshead_rate="10 mm/min", sample_rate="200 Hz"
        )
    )
    destructive: bool = True
    timeout: float = 60.0

    @property
    def name(self) -> str:
        """Return the device's name."""
        return str(self.frame.name)


async def _finish(frame: Any) -> None:
    """Leave the frame unloaded, specimen out, crosshead at 0, fault cleared."""
    await frame.unload()
    await frame.dismount()
    await frame.return_home()
    if (await frame.state()) == "fault":
        await frame.reset_fault()


async def _run_test(ctx: FrameConformance) -> iframe.TestOutcome:
    f = ctx.frame
    await f.kickoff()
    await asyncio.wait_for(asyncio.ensure_future(_await(f.complete())), ctx.timeout)
    docs = [doc async for doc in f.collect_asset_docs()]
    outcome: iframe.TestOutcome = await f.outcome()
    datums = [d for kind, d in docs if kind == "stream_datum"]
    _require(bool(datums), ctx.name, "collect_asset_docs() emitted no StreamDatum after a test")
    return outcome


async def _await(status: Awaitable[Any]) -> Any:
    return await status


async def check_identity(ctx: FrameConformance) -> None:
    """``identify()`` names maker, model, serial and firmware; ``state()`` is idle."""
    ident = await ctx.frame.identify()
    _require(len(ident.split(",")) == 4, ctx.name, f"identity {ident!r} is not 4 fields")
    state = await ctx.frame.state()
    _require(state == "idle", ctx.name, f"state {state!r} is not 'idle' at rest")
    _require(isinstance(ctx.frame, iframe.TestFrame), ctx.name, "is not a TestFrame")


async def check_units(ctx: FrameConformance) -> None:
    """Readings, configuration and the curve stream carry units."""
    f = ctx.frame
    desc = await f.describe()
    units = {k.rsplit("-", 1)[-1]: v.get("units") for k, v in desc.items()}
    for key, unit in (("force", "N"), ("position", "mm"), ("strain", "mm/mm")):
        _require(units.get(key) == unit, ctx.name, f"reading {key} has units {units.get(key)}")
    conf = await f.describe_configuration()
    conf_units = {k.rsplit("-", 1)[-1]: v.get("units") for k, v in conf.items()}
    for key, unit in (("sample_rate", "Hz"), ("crosshead_rate", "mm/min"), ("force_limit", "N")):
        _require(conf_units.get(key) == unit, ctx.name, f"config {key} units {conf_units}")
    collect = await f.describe_collect()
    _require(
        all(v.get("units") for v in collect.values()) and len(collect) == 4,
        ctx.name,
        f"curve stream data keys lack units: {collect}",
    )


def bad_requests(limits: iframe.FrameLimits) -> list[tuple[str, Callable[[Any], Any]]]:
    """Return (label, call) pairs that every driver must refuse with an ``InputError``."""
    x_hi = limits.crosshead_rate_mm_per_min[1]
    f_hi = limits.sample_rate_hz[1]
    s = iframe.TestSettings
    return [
        ("crosshead rate above range",
         lambda f: f.configure_test(s(crosshead_rate=f"{x_hi * 2} mm/min"))),
        ("crosshead rate zero", lambda f: f.configure_test(s(crosshead_rate="0 mm/min"))),
        ("sample rate above range", lambda f: f.configure_test(s(sample_rate=f"{f_hi * 2} Hz"))),
        ("force limit above load cell",
         lambda f: f.configure_test(s(force_limit=f"{limits.capacity_n * 1.5} N"))),
        ("rate in wrong units", lambda f: f.configure_test(s(crosshead_rate="5 N"))),
        ("rate that is not a quantity", lambda f: f.configure_test(s(crosshead_rate="fast"))),
        ("unknown control mode", lambda f: f.configure_test(s(control="force"))),  # type: ignore[arg-type]
        ("coupon id with a quote", lambda f: f.mount('c"1', 10.0)),
        ("position in wrong units", lambda f: f.mount("c1", "10 N")),
        ("thickness too large",
         lambda f: f.mount("c1", 10.0, iframe.SpecimenGeometry(thickness="30 mm"))),
        ("across below the coupon's edge", lambda f: f.mount("c1", 10.0, across="-1 mm")),
        ("across in wrong units", lambda f: f.mount("c1", 10.0, across="3 N")),
        ("across beyond the coupon's width",
         lambda f: f.mount("c1", 10.0, across="12 mm", coupon_width="10 mm")),
        ("specimen longer than the coupon (100 mm E8M on 60 mm)",
         lambda f: f.mount("c1", 30.0, coupon_length="60 mm")),
        ("grips wider than the coupon (10 mm E8M on 8 mm)",
         lambda f: f.mount("c1", 50.0, across="4 mm", coupon_width="8 mm")),
        ("preload above force limit", lambda f: f.preload(f"{limits.capacity_n * 2} N")),
    ]  # fmt: skip


async def check_bad_input_refused(ctx: FrameConformance) -> None:
    """Out-of-range, wrong-unit and malformed input raise ``InputError``; nothing changes."""
    f = ctx.frame
    before = {k: v["value"] for k, v in (await f.read_configuration()).items()}
    limits = await f.limits()
    for label, call in bad_requests(limits):
        try:
            await call(f)
        except InputError:
            continue
        except Exception as exc:
            raise ConformanceError(
                f"{ctx.name}: {label}: raised {type(exc).__name__}, not InputError: {exc}"
            ) from exc
        raise ConformanceError(f"{ctx.name}: {label} was accepted")
    after = {k: v["value"] for k, v in (await f.read_configuration()).items()}
    _require(before == after, ctx.name, f"refused input changed the configuration: {after}")


async def check_test_to_fracture(ctx: FrameConformance) -> None:
    """A test runs to a detected break; every sample the frame produced reaches the file."""
    f = ctx.frame
    try:
        await f.mount(ctx.coupon_id, ctx.position)
        await f.configure_test(ctx.settings)
        await f.preload("50 N")
        outcome = await _run_test(ctx)
        _require(outcome.end == "BREAK", ctx.name, f"test ended {outcome.end}, not BREAK")
        _require(
            outcome.samples > 0 and outcome.written == outcome.samples,
            ctx.name,
            f"{outcome.samples} samples produced, {outcome.written} written",
        )
        curve = f.curve()
        _require(len(curve.force) == outcome.samples, ctx.name, "curve file length differs")
        peak = float(curve.force.max())
        _require(peak > 100.0, ctx.name, f"peak force {peak:.1f} N is implausibly low")
        _require(
            float(curve.force[-1]) < 0.5 * peak, ctx.name, "the curve does not end in a break"
        )
        dt = curve.time[1:] - curve.time[:-1]
        _require(
            bool(len(dt)) and math.isclose(float(dt.max()), float(dt.min()), rel_tol=1e-6),
            ctx.name,
            "samples are not evenly spaced: some were lost",
        )
    finally:
        await _finish(f)


async def check_stop_holds(ctx: FrameConformance) -> None:
    """``stop()`` during a test stops the crosshead and holds the load; the test ends
    ``STOP`` with every sample written.

    Independent of timing: the specimen is preloaded to 1000 N (the frame holds it there)
    before the test starts at the frame's slowest crosshead and sample rates, so the stop,
    sent once ``state()`` says the test runs, lands long before a fracture however long the
    host or the instrument takes to answer (about 9 h of instrument time to fracture).
    """
    f = ctx.frame
    lim = await f.limits()
    slowest = iframe.TestSettings(
        crosshead_rate=f"{lim.crosshead_rate_mm_per_min[0]} mm/min",
        sample_rate=f"{lim.sample_rate_hz[0]} Hz",
    )
    try:
        await f.mount(ctx.coupon_id, ctx.position)
        await f.configure_test(ctx.settings)
        await f.preload("1000 N")
        await f.configure_test(slowest)
        await f.kickoff()
        state = await f.state()
        _require(state == "test", ctx.name, f"state {state!r} is not 'test' after kickoff()")
        await f.stop()
        await asyncio.wait_for(asyncio.ensure_future(_await(f.complete())), ctx.timeout)
        outcome = await f.outcome()
        _require(outcome.end == "STOP", ctx.name, f"stopped test ended {outcome.end}")
        _require(outcome.written == outcome.samples, ctx.name, "samples lost after stop")
        state = await f.state()
        _require(state == "idle", ctx.name, f"state {state!r} is not 'idle' after stop()")
        r1 = await f.read()
        r2 = await f.read()
        force = r1[f"{f.name}-force"]["value"]
        _require(force > 500.0, ctx.name, f"stop() did not hold the load: {force:.1f} N left")
        p1, p2 = r1[f"{f.name}-position"]["value"], r2[f"{f.name}-position"]["value"]
        _require(abs(p2 - p1) < 0.01, ctx.name, f"crosshead still moving after stop: {p1}->{p2}")
    finally:
        await f.stop()
        await f.configure_test(ctx.settings)
        await _finish(f)


async def check_overforce_stops(ctx: FrameConformance) -> None:
    """A force limit below the specimen's strength stops the test on an OVERFORCE fault."""
    f = ctx.frame
    try:
        await f.mount(ctx.coupon_id, ctx.position)
        await f.configure_test(
            iframe.TestSettings(
                crosshead_rate=ctx.settings.crosshead_rate,
                sample_rate=ctx.settings.sample_rate,
                force_limit="1000 N",
            )
        )
        outcome = await _run_test(ctx)
        _require(outcome.end == "FAULT", ctx.name, f"over-force test ended {outcome.end}")
        _require(outcome.fault == "OVERFORCE", ctx.name, f"fault is {outcome.fault}")
        _require((await f.state()) == "fault", ctx.name, "state is not 'fault' after over-force")
        try:
            await f.preload("10 N")
        except Exception:
            pass
        else:
            raise ConformanceError(f"{ctx.name}: motion accepted while a fault is latched")
        await f.unload()
        await f.reset_fault()
        _require((await f.state()) == "idle", ctx.name, "fault not cleared after unloading")
    finally:
        await f.configure_test(ctx.settings)
        await _finish(f)


async def check_safe_state_unloads(ctx: FrameConformance) -> None:
    """``safe_state()`` stops the crosshead and unloads a preloaded specimen."""
    f = ctx.frame
    try:
        await f.mount(ctx.coupon_id, ctx.position)
        await f.configure_test(ctx.settings)
        await f.preload("500 N")
        force = (await f.read())[f"{f.name}-force"]["value"]
        _require(force > 400.0, ctx.name, f"preload reached only {force:.1f} N")
        await f.safe_state()
        force = (await f.read())[f"{f.name}-force"]["value"]
        _require(abs(force) < 50.0, ctx.name, f"safe_state left {force:.1f} N on the specimen")
        _require((await f.state()) == "idle", ctx.name, "not idle after safe_state")
    finally:
        await _finish(f)


FRAME_CHECKS: dict[str, Callable[[FrameConformance], Awaitable[None]]] = {
    "identity": check_identity,
    "units": check_units,
    "bad_input_refused": check_bad_input_refused,
    "test_to_fracture": check_test_to_fracture,
    "stop_holds": check_stop_holds,
    "overforce_stops": check_overforce_stops,
    "safe_state_unloads": check_safe_state_unloads,
}
"""Every check by name."""
DESTRUCTIVE = frozenset(
    {"test_to_fracture", "stop_holds", "overforce_stops", "safe_state_unloads"}
)
"""Checks that load or break a specimen."""


async def run_conformance(ctx: FrameConformance) -> list[str]:
    """Run every check (the destructive ones only if ``ctx.destructive``); return their names."""
    ran = []
    for name, check in FRAME_CHECKS.items():
        if name in DESTRUCTIVE and not ctx.destructive:
            continue
        await check(ctx)
        ran.append(name)
    return ran


def frame_lab(speedup: float = 1000.0, seed: int = 0, **twin_config: Any) -> LabFile:
    """Return a lab file with one frame twin on 127.0.0.1 (port 0), for tests and demos."""
    return LabFile(
        name="frame-lab",
        world={"speedup": speedup, "seed": seed},
        devices=[
            DeviceEntry(
                name="frame1",
                family="test_frame",
                driver=FRAME_DRIVER,
                address="TCPIP::127.0.0.1::0::SOCKET",
                twin=True,
                settings={"specimen_thickness": "2 mm"},
                twin_config=dict(twin_config),
            )
        ],
    )


__all__ = [
    "DESTRUCTIVE",
    "FRAME_CHECKS",
    "ConformanceError",
    "FrameConformance",
    "bad_requests",
    "frame_lab",
    "run_conformance",
]
