"""Conformance suite of the sample-transfer family (``transfer_robot``), reusable by any
implementation of :class:`~couponlab.interfaces.transfer.SampleTransfer`: a robot driver
or an :class:`~couponlab.interfaces.transfer.OperatorTransfer` with a scripted ``ask``.

Every check is an ``async`` function taking a :class:`TransferConformance` and raising
:class:`~couponlab.testing.conformance.ConformanceError` naming what does not conform. The
checks use two empty stations that are not furnace slots (a rack's, preferably), record a
test sample there with ``record`` and take it away again at the end::

    @pytest.mark.parametrize("check", sorted(TRANSFER_CHECKS))
    async def test_conformance(robot, check):
        await TRANSFER_CHECKS[check](TransferConformance(robot))

The checks that move a sample (``moving``) need an empty gripper and room to move: on
hardware, run them with a dummy sample ready.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from couponlab.errors import InputError
from couponlab.interfaces.transfer import SampleTransfer, Transfer
from couponlab.testing.conformance import ConformanceError, require

MOVING = frozenset({"moves_there_and_back", "idempotent_at_destination"})
"""Checks that move a sample."""


@dataclass
class TransferConformance:
    """What the checks need.

    Attributes
    ----------
    transfer
        The connected device under test.
    sample_id
        Id of the test sample the checks record and move.
    timeout
        Wall-clock limit of one transfer, s.
    """

    transfer: Any
    sample_id: str = "conformance-1"
    timeout: float = 60.0

    @property
    def name(self) -> str:
        """Return the device's name."""
        return str(getattr(self.transfer, "name", "transfer"))


async def _free_pair(ctx: TransferConformance) -> tuple[str, str]:
    stations = await ctx.transfer.stations()
    free = [s for s, v in stations.items() if v is None and ".slot" not in s]
    free.sort(key=lambda s: (not s.startswith("rack."), s))
    require(len(free) >= 2, ctx.name, f"needs two empty stations that are not slots: {stations}")
    return free[0], free[1]


async def _move(ctx: TransferConformance, t: Transfer) -> None:
    await asyncio.wait_for(ctx.transfer.set(t), ctx.timeout)


async def _refused(ctx: TransferConformance, t: Any, why: str) -> None:
    before = await ctx.transfer.stations()
    try:
        await _move(ctx, t)
    except InputError:
        pass
    else:
        raise ConformanceError(f"{ctx.name}: accepted {why}: {t}")
    require(await ctx.transfer.stations() == before, ctx.name, f"{why} changed the stations")


async def implements_the_interface(ctx: TransferConformance) -> None:
    """It is a SampleTransfer; stations map names to a sample id or None; the gripper holds
    nothing between checks."""
    require(isinstance(ctx.transfer, SampleTransfer), ctx.name, "is not a SampleTransfer")
    stations = await ctx.transfer.stations()
    require(bool(stations), ctx.name, "has no stations")
    require(
        all(isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in stations.items()),
        ctx.name,
        f"stations() must map names to a sample id or None: {stations}",
    )
    require(await ctx.transfer.holding() is None, ctx.name, "holds a sample before the checks")


async def refuses_bad_transfers(ctx: TransferConformance) -> None:
    """Unknown stations, source == destination, an occupied destination, a source without
    the sample and a non-Transfer are refused with an InputError; nothing moves."""
    a, b = await _free_pair(ctx)
    sid = ctx.sample_id
    await ctx.transfer.record(a, sid)
    await ctx.transfer.record(b, f"{sid}-other")
    try:
        await _refused(ctx, Transfer(sid, a, "no-such-station"), "an unknown station")
        await _refused(ctx, Transfer(sid, a, a), "source == destination")
        await _refused(ctx, Transfer(sid, a, b), "an occupied destination")
        await _refused(ctx, Transfer(f"{sid}-missing", b, a), "a source without the sample")
        await _refused(ctx, (sid, a, b), "a tuple instead of a Transfer")
    finally:
        await ctx.transfer.record(a, None)
        await ctx.transfer.record(b, None)


async def moves_there_and_back(ctx: TransferConformance) -> None:
    """A transfer places the sample at the destination (the status completes then), empties
    the source and leaves the gripper empty; the way back too."""
    a, b = await _free_pair(ctx)
    sid = ctx.sample_id
    await ctx.transfer.record(a, sid)
    try:
        for src, dst in ((a, b), (b, a)):
            await _move(ctx, Transfer(sid, src, dst))
            stations = await ctx.transfer.stations()
            require(stations[dst] == sid, ctx.name, f"{sid} is not at {dst}: {stations}")
            require(stations[src] is None, ctx.name, f"{src} is not empty: {stations}")
            require(await ctx.transfer.holding() is None, ctx.name, "still holds a sample")
    finally:
        for station in (a, b):
            if (await ctx.transfer.stations())[station] == sid:
                await ctx.transfer.record(station, None)


async def idempotent_at_destination(ctx: TransferConformance) -> None:
    """Repeating a transfer whose sample is already at its destination completes at once and
    changes nothing (a resumed campaign repeats its last step)."""
    a, b = await _free_pair(ctx)
    sid = ctx.sample_id
    await ctx.transfer.record(a, sid)
    try:
        await _move(ctx, Transfer(sid, a, b))
        before = await ctx.transfer.stations()
        await _move(ctx, Transfer(sid, a, b))
        require(await ctx.transfer.stations() == before, ctx.name, "a repeated transfer moved")
    finally:
        for station in (a, b):
            if (await ctx.transfer.stations())[station] == sid:
                await ctx.transfer.record(station, None)


TRANSFER_CHECKS: dict[str, Callable[[TransferConformance], Awaitable[None]]] = {
    "implements_the_interface": implements_the_interface,
    "refuses_bad_transfers": refuses_bad_transfers,
    "moves_there_and_back": moves_there_and_back,
    "idempotent_at_destination": idempotent_at_destination,
}
"""Every check, by name."""


async def run_conformance(transfer: Any, **kwargs: Any) -> list[str]:
    """Run every check against ``transfer``; return the names of the checks passed."""
    ctx = TransferConformance(transfer, **kwargs)
    for check in TRANSFER_CHECKS.values():
        await check(ctx)
    return list(TRANSFER_CHECKS)


__all__ = ["MOVING", "TRANSFER_CHECKS", "TransferConformance", "run_conformance"]
