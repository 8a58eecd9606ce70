"""A batch's furnace exposure as two campaign steps around the instrument's own program.

:func:`start_exposure` puts the batch's coupons in the carrier's slots of the cold furnace,
starts one furnace program (ramp to the gradient along the coupons, hold) in a status group
and opens the exposure run under a run key of its own; the program then runs in the
instrument while the campaign prints and measures other coupons. :func:`poll_exposure`
(called between the campaign's other steps) takes a thermocouple scan of the carrier in the
exposure run each time the furnace clock passes the next scan time. :func:`finish_exposure`
takes the scans left, waits for the program (on the group when this process started it;
when resumed after a crash, it re-attaches to a program still running in the instrument
instead of starting it again), cools the furnace below the unload temperature and closes
the run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
from bluesky.utils import MsgGenerator

from couponlab.errors import InstrumentError
from couponlab.interfaces.furnace import (
    CouponPlacement,
    FurnaceProgram,
    GradientSetpoint,
    LinearGradient,
)
from couponlab.plans.campaign_file import Exposure

AMBIENT_C = 25.0
"""Temperature the ramp starts from, degC (a cold furnace)."""
SETTLE_S = 600.0
"""Instrument time after the ramp before the first scan may count as the hold, s."""


@dataclass
class OpenExposure:
    """A batch's exposure whose program runs in the furnace (state of this process only)."""

    batch: str
    """Step name of the batch, e.g. ``B1``."""
    coupons: list[str]
    run_key: str
    run_uid: str
    group: str
    scan_times: list[float]
    """Instrument clock of each scan still to take, s (ascending)."""
    tick: Any = None
    """Status of the wait for ``scan_times[0]``."""
    started_here: bool = True
    program_start_s: float = math.nan
    scans: int = 0
    run_uids: list[str] = field(default_factory=list)


def program_for(exposure: Exposure, offset_mm: float, length_mm: float) -> FurnaceProgram:
    """Return the batch's program: ramp to the gradient along the coupons and hold."""
    gradient = LinearGradient(
        f"{exposure.hot} degC", f"{exposure.cold} degC", offset_mm, offset_mm + length_mm
    )
    return FurnaceProgram.hold(gradient, exposure.hold, f"{exposure.ramp_rate} K/min")


def ramp_s(exposure: Exposure) -> float:
    """Return the programmed ramp from a cold furnace to the hot end, s."""
    return (exposure.hot - AMBIENT_C) / exposure.ramp_rate * 60.0


def hold_window(
    program_start_s: float, hot_c: float, ramp_rate_k_per_min: float, hold_s: float
) -> tuple[float, float]:
    """Return the instrument-clock interval (s) whose thermocouple scans the analysis takes
    as the hold's: from half of :data:`SETTLE_S` after the programmed ramp from
    :data:`AMBIENT_C` to ``hot_c`` (degC, at ``ramp_rate_k_per_min`` K/min) to the hold's end
    (``hold_s`` s later)."""
    ramp = (hot_c - AMBIENT_C) / ramp_rate_k_per_min * 60.0
    return program_start_s + ramp + SETTLE_S / 2, program_start_s + ramp + hold_s


def scan_times(exposure: Exposure, program_start_s: float) -> list[float]:
    """Return the clock of each scan: in the middle of every scan interval of the hold, s."""
    n = max(1, math.floor(exposure.hold / exposure.scan_interval + 1e-9))
    hold_start = program_start_s + ramp_s(exposure) + SETTLE_S
    return [hold_start + (k + 0.5) * exposure.scan_interval for k in range(n)]


def programmed_exposure_s(exposure: Exposure) -> float:
    """Return the coupons' programmed time in the furnace above ambient, s: the ramp up, the
    hold and the programmed ramp down (fixed by the program, not by when it was watched)."""
    down = (exposure.hot - unload_setpoint(exposure)) / exposure.ramp_rate * 60.0
    return ramp_s(exposure) + exposure.hold + down


def unload_setpoint(exposure: Exposure) -> float:
    """Return the setpoint the furnace cools to before unloading, degC."""
    return max(AMBIENT_C + 5.0, exposure.unload_below / 2)


def start_exposure(
    furnace: Any,
    scanner: Any,
    batch: str,
    coupons: Sequence[str],
    exposure: Exposure,
    *,
    offset_mm: float,
    length_mm: float,
    md: dict[str, Any],
) -> MsgGenerator[OpenExposure]:
    """Place ``coupons`` in slots 1.. of the (cold) furnace's carrier, start the program in
    a status group and open the exposure run (run key ``exposure-<batch>``); return it open.

    The coupons' physical transfer into the slots happens before (robot or operator); this
    tells the furnace what each slot holds.
    """
    for slot, coupon in enumerate(coupons, start=1):
        yield from bps.mv(furnace, CouponPlacement(coupon, offset_mm, slot=slot))
    key, group = f"exposure-{batch}", f"campaign.exposure.{batch}"
    start_md = {
        "plan_name": "campaign_exposure",
        "coupon_id": list(coupons),
        "batch": batch,
        "hot_end_c": exposure.hot,
        "cold_end_c": exposure.cold,
        "hold_duration_s": exposure.hold,
        "ramp_rate_k_per_min": exposure.ramp_rate,
        "coupon_offset_mm": offset_mm,
        **md,
    }
    t0 = float((yield from bps.rd(furnace.clock)))
    start_md["program_start_s"] = t0
    uid = yield from bpp.set_run_key_wrapper(bps.open_run(md=start_md), key)
    yield from bps.abs_set(furnace, program_for(exposure, offset_mm, length_mm), group=group)
    open_ = OpenExposure(
        batch, list(coupons), key, str(uid), group, scan_times(exposure, t0), program_start_s=t0
    )
    open_.run_uids.append(str(uid))
    yield from _scan(furnace, scanner, open_)
    yield from _arm(furnace, open_)
    return open_


def _scan(furnace: Any, scanner: Any, e: OpenExposure) -> MsgGenerator[None]:
    yield from bpp.set_run_key_wrapper(bps.trigger_and_read([furnace, scanner]), e.run_key)
    e.scans += 1


def _arm(furnace: Any, e: OpenExposure) -> MsgGenerator[None]:
    e.tick = None
    if e.scan_times:
        e.tick = yield from bps.abs_set(furnace.clock, e.scan_times[0])


def poll_exposure(furnace: Any, scanner: Any, e: OpenExposure) -> MsgGenerator[None]:
    """Take the scan whose time has come, if any (between other steps; never waits)."""
    while e.tick is not None and e.tick.done:
        e.scan_times.pop(0)
        yield from bpp.set_run_key_wrapper(bps.trigger_and_read([furnace, scanner]), e.run_key)
        e.scans += 1
        yield from _arm(furnace, e)


def reattach_exposure(
    furnace: Any,
    batch: str,
    coupons: Sequence[str],
    exposure: Exposure,
    *,
    program_start_s: float,
    md: dict[str, Any],
) -> MsgGenerator[OpenExposure | None]:
    """Re-attach to a batch's exposure after a crash: open a new exposure run if the program
    still runs in the furnace (and return it), or return None if it completed.

    Raises
    ------
    InstrumentError
        The program is neither running nor complete (aborted, for example by the furnace's
        communication watchdog while the campaign was down): the coupons' exposure was cut
        short, and running it again would expose them twice.
    """
    state = str((yield from bps.rd(furnace.program.state)).value)
    if state == "complete":
        return None
    if state not in ("running", "held"):
        raise InstrumentError(
            furnace.name,
            f"batch {batch}'s furnace program is {state!r}, not running or complete: the "
            f"exposure of {', '.join(coupons)} was cut short while the campaign was down "
            "(a furnace watchdog sends the furnace to standby when its client goes silent); "
            "it is not started again",
        )
    key = f"exposure-{batch}"
    start_md = {
        "plan_name": "campaign_exposure",
        "coupon_id": list(coupons),
        "batch": batch,
        "reattached": True,
        "program_start_s": program_start_s,
        **md,
    }
    uid = yield from bpp.set_run_key_wrapper(bps.open_run(md=start_md), key)
    now = float((yield from bps.rd(furnace.clock)))
    times = [t for t in scan_times(exposure, program_start_s) if t > now]
    e = OpenExposure(
        batch,
        list(coupons),
        key,
        str(uid),
        f"campaign.exposure.{batch}",
        times,
        started_here=False,
        program_start_s=program_start_s,
    )
    e.run_uids.append(str(uid))
    return e


def finish_exposure(
    furnace: Any, scanner: Any, e: OpenExposure | None, exposure: Exposure
) -> MsgGenerator[None]:
    """Take the scans left, wait for the program to end, cool the furnace below
    ``exposure.unload_below`` and send it to standby; close the exposure run."""
    if e is not None:
        while e.scan_times:
            yield from bps.mv(furnace.clock, e.scan_times[0])
            e.scan_times.pop(0)
            yield from _scan(furnace, scanner, e)
        if e.started_here:
            yield from bps.wait(group=e.group)
        else:
            yield from _wait_for_program(furnace)
    yield from cool_down(furnace, exposure)
    if e is not None:
        yield from _scan(furnace, scanner, e)  # the carrier at unloading
        yield from bpp.set_run_key_wrapper(bps.close_run(), e.run_key)


def cool_down(furnace: Any, exposure: Exposure) -> MsgGenerator[None]:
    """Cool the furnace until every zone is below ``exposure.unload_below`` (a setpoint below
    it, ramped at the exposure's rate; done when every zone is within the tolerance that
    reaches up to it), then send it to standby."""
    low = unload_setpoint(exposure)
    cool = GradientSetpoint(
        f"{low} degC",
        f"{low} degC",
        ramp_rate=f"{exposure.ramp_rate} K/min",
        tolerance=f"{exposure.unload_below - low} K",
        settle_time="48 h",
    )
    yield from bps.mv(furnace, cool)
    yield from bps.stop(furnace)  # standby


def _wait_for_program(furnace: Any) -> MsgGenerator[None]:
    """Wait for a program this process did not start: on the instrument clock, by its
    ``Remaining`` time, until it reads complete."""
    while True:
        state = str((yield from bps.rd(furnace.program.state)).value)
        if state == "complete":
            return
        if state not in ("running", "held"):
            raise InstrumentError(furnace.name, f"the furnace program ended {state!r}")
        remaining = float((yield from bps.rd(furnace.program.remaining)))
        now = float((yield from bps.rd(furnace.clock)))
        yield from bps.mv(furnace.clock, now + max(remaining, 1.0))


def empty_slots(furnace: Any, count: int) -> MsgGenerator[None]:
    """Tell the furnace slots 1..``count`` are empty (the coupons were taken out)."""
    for slot in range(1, count + 1):
        yield from bps.mv(furnace, CouponPlacement("", 0.0, slot=slot))


__all__ = [
    "OpenExposure",
    "cool_down",
    "empty_slots",
    "finish_exposure",
    "hold_window",
    "poll_exposure",
    "program_for",
    "programmed_exposure_s",
    "ramp_s",
    "reattach_exposure",
    "scan_times",
    "start_exposure",
    "unload_setpoint",
]
