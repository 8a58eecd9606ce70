"""The furnace twin's faults (OPC UA): the link's at the server's transports, the rest in the
controller model.

- ``drop``: every client connection is closed; with a duration new ones are refused.
- ``stall``: the server stops reading its clients' requests (they wait) and refuses new
  connections until the fault ends.
- ``garble`` / ``truncate``: responses on the connections open at injection are corrupted
  (bytes inverted) or cut to their first half; a connection opened later is clean (a client
  that drops a corrupted link and reconnects gets a good one).
- ``error``: a latched controller fault: heaters off, ``State`` = ``interlock`` and
  ``Interlock.Reason`` = the fault's ``message``, until ``Interlock.Reset()``.
- ``sensor_loss``: the thermocouple of ``zone`` (1..N, default 1) breaks: its
  ``ProcessValue`` reads NaN, ``ThermocoupleBroken`` is true, its heater output is 0.
- ``jam``: the heater of ``zone`` (1..N, default 1) sticks at ``output`` % (1..100, default
  100), asked or not: at 100 a welded relay, below it a power controller whose firing stage is
  stuck at one phase angle. The zone heats towards the temperature at which its losses take
  that power. A welded relay at the bundled campaign's 1100 degC gradient climbs until the
  over-temperature interlock opens the contactor (latched, not recoverable); zone 2 stuck at
  65 % settles near 1211 degC, inside the 1200 degC over-temperature alarm and below the
  1225 degC interlock, until cleared (about 1400 s to reach the alarm), and the controller then
  takes it back. With a duration (``for_s``, virtual s) the heater frees by itself after it.
- ``power_loss``: connections drop (and are refused while the power is off), the controller
  restarts with its power-on state (standby, no program, default limits and watchdog timeout)
  and ``Server.ServerStatus.StartTime`` becomes the time it came back.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any, cast

from asyncua import ua
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds

from couponlab.simulators.faults import Fault, FaultKind, FaultTarget, float_param, int_param
from couponlab.simulators.furnace.model import FurnaceModel
from couponlab.simulators.furnace.server import FurnaceServer


class _MangledTransport:
    """Stands in for an OPC UA connection's transport and corrupts what is written to it."""

    def __init__(self, inner: Any, garble: bool) -> None:
        self.inner = inner
        self.garble = garble

    def write(self, data: bytes) -> None:
        if self.garble:
            self.inner.write(bytes(b ^ 0xFF for b in data))
        else:
            self.inner.write(data[: len(data) // 2])

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class FurnaceFaults(FaultTarget):
    """The faults of one furnace twin (its server and model)."""

    def __init__(self, server: FurnaceServer, model: FurnaceModel) -> None:
        self.server = server
        self.model = model
        self._refusals = 0
        self._max_connections: int | None = None
        self._paused: list[Any] = []
        self._mangled: list[tuple[Any, Any]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def kinds(self) -> frozenset[FaultKind]:
        """Return every kind but ``gas_loss`` (the furnace has no carrier gas)."""
        return frozenset(FaultKind) - {FaultKind.GAS_LOSS}

    # -- server internals ------------------------------------------------------------------
    def _iserver(self) -> Any:
        if self.server.server is None:
            raise ValueError("the furnace twin is not serving")
        return self.server.server.iserver

    def _refuse(self, on: bool) -> None:
        iserver = self._iserver()
        if on:
            if self._refusals == 0:
                self._max_connections = iserver.max_connections
                iserver.max_connections = 0
            self._refusals += 1
        elif self._refusals > 0:
            self._refusals -= 1
            if self._refusals == 0 and self._max_connections is not None:
                iserver.max_connections = self._max_connections

    def _drop_all(self) -> None:
        for transport in list(self._iserver().asyncio_transports):
            transport.close()

    def _clients(self) -> list[Any]:
        bserver = self.server.server.bserver if self.server.server is not None else None
        return list(getattr(bserver, "clients", []))

    # -- FaultTarget -----------------------------------------------------------------------
    def apply(self, fault: Fault) -> None:
        """Start ``fault`` (see the module docstring)."""
        kind, lasting = fault.kind, fault.for_s is not None or fault.wall_s is not None
        if kind in (FaultKind.SENSOR_LOSS, FaultKind.JAM):
            zone = int_param(fault.params, "zone", 1, self.model.zones, 1)
            fault.params["zone"] = zone
            if kind is FaultKind.SENSOR_LOSS:
                self.model.break_thermocouple(zone - 1)
            else:
                output = float_param(fault.params, "output", 1.0, 100.0, 100.0)
                fault.params["output"] = output
                self.model.set_heater_stuck(zone - 1, True, output)
        elif kind is FaultKind.DROP:
            self._iserver()
            if lasting:
                self._refuse(True)
            self._drop_all()
        elif kind is FaultKind.STALL:
            self._refuse(True)
            for transport in list(self._iserver().asyncio_transports):
                transport.pause_reading()
                self._paused.append(transport)
        elif kind in (FaultKind.GARBLE, FaultKind.TRUNCATE):
            for proto in self._clients():
                processor = getattr(proto, "processor", None)
                if processor is not None:
                    inner = processor._transport
                    processor._transport = _MangledTransport(inner, kind is FaultKind.GARBLE)
                    self._mangled.append((processor, inner))
        elif kind is FaultKind.ERROR:
            message = str(fault.params.get("message", "controller fault"))
            fault.params["message"] = message
            self.model.controller_fault(message)
        elif kind is FaultKind.POWER_LOSS:
            self._iserver()
            if lasting:
                self._refuse(True)
            self._drop_all()
            self.model.power_cycle()
            self.server.watchdog.set_timeout(self.model.config.watchdog_timeout_s)

    def clear(self, fault: Fault) -> None:
        """End ``fault``: repaired, freed, answering again, powered on."""
        kind, lasting = fault.kind, fault.for_s is not None or fault.wall_s is not None
        zone = int(fault.params.get("zone", 1)) - 1
        if kind is FaultKind.SENSOR_LOSS:
            self.model.repair_thermocouple(zone)
        elif kind is FaultKind.JAM:
            self.model.set_heater_stuck(zone, False)
        elif kind is FaultKind.DROP and lasting:
            self._refuse(False)
        elif kind is FaultKind.STALL:
            for transport in self._paused:
                if not transport.is_closing():
                    transport.resume_reading()
            self._paused.clear()
            self._refuse(False)
        elif kind in (FaultKind.GARBLE, FaultKind.TRUNCATE):
            for processor, inner in self._mangled:
                processor._transport = inner
            self._mangled.clear()
        elif kind is FaultKind.POWER_LOSS:
            self._spawn(self._boot())
            if lasting:
                self._refuse(False)

    async def _boot(self) -> None:
        """Set ``ServerStatus.StartTime`` to now: the server came back up."""
        if self.server.server is None:
            return
        now = datetime.now(UTC)
        dv = ua.DataValue(ua.Variant(now, ua.VariantType.DateTime))
        aspace = self.server.server.iserver.aspace
        node = ua.NodeId(cast(Any, ObjectIds.Server_ServerStatus_StartTime))
        await aspace.write_attribute_value(node, AttributeIds.Value, dv)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro, name="furnace-boot")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Wait for a pending boot (the twin stops)."""
        for task in list(self._tasks):
            with contextlib.suppress(Exception):
                await task


__all__ = ["FurnaceFaults"]
