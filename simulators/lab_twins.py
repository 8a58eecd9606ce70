"""Start every twin a lab file asks for, in one world, and stop them all."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from couponlab.labfile import DeviceEntry, LabFile
from couponlab.simulators.bind_host import LOOPBACK, operator_bind, reachable_host, with_host
from couponlab.simulators.control import ControlServer
from couponlab.simulators.registry import RunningTwin, twin_starter
from couponlab.simulators.world import World, WorldConfig


@dataclass
class TwinLab:
    """Running twins of a lab: the world, each twin, their control channel, and the lab file
    with real addresses."""

    world: World
    twins: dict[str, RunningTwin]
    lab: LabFile
    """The lab file with every twin's address resolved (real ports instead of 0) and
    ``twin_control`` naming the control channel."""
    control: ControlServer
    shutdown: asyncio.Event
    """Set when a client asks the control channel to shut down."""
    _clock: asyncio.Task[None] | None = field(default=None, repr=False)

    async def stop(self) -> None:
        """Stop the control channel, the clock and every twin (in reverse start order)."""
        await self.control.stop()
        if self._clock is not None:
            self._clock.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._clock
            self._clock = None
        for twin in reversed(list(self.twins.values())):
            await twin.stop()
        self.twins.clear()


async def start_lab_twins(
    lab: LabFile,
    *,
    world: World | None = None,
    run_clock: bool = True,
    control_port: int = 0,
    bind: str = LOOPBACK,
) -> TwinLab:
    """Start the twins of every ``twin: true`` device of ``lab``, and their control channel.

    Parameters
    ----------
    lab
        The lab file; each twin listens on its address's port (0 picks a free port). The
        host of the address is ignored: every twin binds ``bind``.
    world
        The world to share; by default one is built from ``lab.world``.
    run_clock
        Keep virtual time following the wall clock in a background task.
    control_port
        Port of the control channel (0: a free port).
    bind
        Host every twin and the control channel bind (default 127.0.0.1, loopback only;
        twins have no authentication). A wildcard (``0.0.0.0``) is served but resolved
        addresses name 127.0.0.1.
    """
    world = world or World(WorldConfig.model_validate(lab.world))
    twins: dict[str, RunningTwin] = {}
    shutdown = asyncio.Event()
    near = reachable_host(bind)
    try:
        with operator_bind(bind):
            for entry in lab.devices:
                if entry.twin:
                    bound = _bound_entry(entry, bind)
                    twins[entry.name] = await twin_starter(bound)(world, bound)
            addresses = {n: with_host(t.address, near) for n, t in twins.items()}
            control = ControlServer(world, addresses, shutdown, host=bind, port=control_port)
            await control.start()
    except BaseException:
        for twin in reversed(list(twins.values())):
            await twin.stop()
        raise
    control_address = with_host(control.address, near)
    resolved = lab.with_addresses(addresses).model_copy(update={"twin_control": control_address})
    running = TwinLab(world, twins, resolved, control, shutdown)
    if run_clock:
        running._clock = asyncio.create_task(world.run_clock(), name="world-clock")
    return running


def _bound_entry(entry: DeviceEntry, bind: str) -> DeviceEntry:
    """Return ``entry`` with its address's host replaced by the bind host."""
    return entry.model_copy(update={"address": with_host(entry.address, bind)})


@contextlib.asynccontextmanager
async def lab_twins(lab: LabFile, **kwargs: object) -> AsyncIterator[TwinLab]:
    """Context manager around :func:`start_lab_twins` that always stops the twins."""
    running = await start_lab_twins(lab, **kwargs)  # type: ignore[arg-type]
    try:
        yield running
    finally:
        await running.stop()


__all__ = ["TwinLab", "lab_twins", "start_lab_twins"]
