"""ophyd-async device for an L-DED deposition cell speaking the couponlab ASCII serial protocol
(docs/protocols/deposition-cell-serial.md): laser, shielding gas, an x-y stage, and print
programs of one or more tracks whose feed schedules the cell plays to the feeders' hoppers.

The laser interlock lives in the cell and is mirrored here: :meth:`set_laser` reads the
shielding-gas flow first and refuses to send ``LAS ON`` without it. A print job is validated
whole (coupon id, size, tracks, paths, speed, power, every schedule point) before its first
byte is sent. A cell that does not answer ``LIM:TRK?`` (one full-width pass only) still
works for single-pass jobs; multi-track jobs are then refused before anything is sent.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Sequence
from typing import Annotated, Any, ClassVar

import numpy as np
from bluesky.protocols import Reading
from ophyd_async.core import (
    StandardReadable,
    StandardReadableFormat,
)

from couponlab.drivers._scpi_device import (
    HeldRead,
    Scpi,
    ScpiDeviceConnector,
    ScpiSignalR,
    ScpiSignalRW,
)
from couponlab.drivers.deposition._link import (
    LinkWatchdog,
    SerialSettings,
    transport_from_entry,
)
from couponlab.errors import (
    InputError,
    InstrumentTimeoutError,
    InterlockTrippedError,
    OutOfLimitsError,
    ProtocolError,
)
from couponlab.interfaces.feeder import CompositionMap, PrintJob, TrackGeometry
from couponlab.lab_settings import DeviceLimits, quantity
from couponlab.labfile import DeviceEntry
from couponlab.progress import progress_watched, report_progress
from couponlab.registry import DriverSpec
from couponlab.transports import LineTransport, ScpiClient
from couponlab.units import to_magnitude, to_switch

STATUS = "STAT"
"""The status reply every reading comes from: ``STAT:EXT?`` on a cell with tracks, ``STAT?``
(7 fields, padded with y = 0, track 0, count 0) on a single-pass one."""
SINGLE_PASS_PAD = ["0.0", "0", "0"]
READ = StandardReadableFormat.UNCACHED_SIGNAL


def _percent(text: str) -> float:
    return 100.0 * float(text)


def _known_print_state(fields: list[str]) -> bool:
    return fields[5] in _PRINT_STATES


COUPON_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,39}$")
"""Coupon ids the cell accepts: 1-40 characters, letters, digits, ``_.-``, no leading sign."""
POINTS_PER_LINE = 40
"""Schedule points sent per line (compound ``PRNT:PT ...;PRNT:PT ...``)."""
_PRINT_STATES = {"IDLE", "RUNNING", "DONE", "ABORTED"}
_NO_TRACKS = "this cell does not print tracks (it did not answer LIM:TRK? at connect)"


class CellLabLimits(DeviceLimits):
    """Lab limits of a cell: ``max_laser_power`` (W, > 0; default 2000) and
    ``max_feed_rate`` of any schedule point (g/min, > 0; default 30)."""

    max_laser_power: Annotated[float, quantity("W", gt=0)] = 2000.0
    max_feed_rate: Annotated[float, quantity("g/min", gt=0)] = 30.0


class CellLimits:
    """The cell's limits (lab limits, tightened by the instrument's ``LIM?`` at connect)."""

    def __init__(self, max_power: float, max_rate: float) -> None:
        self.max_power = max_power
        """Largest laser power, W."""
        self.max_rate = max_rate
        """Largest rate of any schedule point, g/min."""
        self.max_speed = 50.0
        self.min_shield = 5.0
        self.max_shield = 30.0
        self.x_min = -300.0
        self.x_max = 400.0
        self.max_points = 5000
        self.tracks: TrackGeometry | None = None
        """Track geometry of a multi-track cell (``LIM:TRK?``), None for a single-pass one."""


class AsciiDepositionCell(StandardReadable):
    """An L-DED cell on the couponlab ASCII serial protocol.

    Parameters
    ----------
    transport
        Serial transport to the cell controller.
    max_power
        Lab limit of the laser power, W.
    max_rate
        Lab limit of any feed rate in a print schedule, g/min.
    name
        ophyd name.
    watchdog
        Communication watchdog armed at connect (``SYST:WDOG``), s of wall time (0 = off,
        up to 3600): if this client sends nothing for that long while the cell lases, moves
        or prints, the cell stops (print aborted, laser off, feeders off). While connected a
        keep-alive task sends ``SYST:WDOG?`` every quarter of it (re-arming if needed). 2 s
        suits a print (a lost client leaves the laser on for at most 2 s more; polls are
        50 ms apart).
    """

    laser_on: Annotated[ScpiSignalR[bool], Scpi(field=(STATUS, 0)), READ]
    """Whether the laser is on."""
    laser_power: Annotated[
        ScpiSignalRW[float],
        Scpi(field=(STATUS, 1), command="LAS:POW", unit="W", limits="power", fmt="{:.2f}",
             precision=1),
        READ,
    ]  # fmt: skip
    """Laser power setpoint, W (0 .. the lab's and the cell's max)."""
    shield_flow: Annotated[
        ScpiSignalRW[float],
        Scpi(field=(STATUS, 2), command="SHLD:FLOW", unit="L/min", limits="shield",
             fmt="{:.3f}", precision=2),
        READ,
    ]  # fmt: skip
    """Shielding-gas flow, L/min (0 .. the cell's max)."""
    position: Annotated[ScpiSignalR[float], Scpi(field=(STATUS, 3), unit="mm", precision=3), READ]
    """Nozzle position along the coupon, mm."""
    moving: Annotated[ScpiSignalR[bool], Scpi(field=(STATUS, 4)), READ]
    """Whether the axis moves."""
    print_state: Annotated[ScpiSignalR[str], Scpi(field=(STATUS, 5), parse=str.lower), READ]
    """``idle``, ``running``, ``done`` or ``aborted``."""
    print_progress: Annotated[
        ScpiSignalR[float],
        Scpi(field=(STATUS, 6), unit="%", precision=1, parse=_percent),
        READ,
    ]
    """Progress of the running print, %."""
    position_y: Annotated[
        ScpiSignalR[float], Scpi(field=(STATUS, 7), unit="mm", precision=3), READ
    ]
    """Nozzle position across the coupon, mm (0 on a single-pass cell)."""
    track: Annotated[ScpiSignalR[int], Scpi(field=(STATUS, 8)), READ]
    """Track being printed (0 when none or on a single-pass cell)."""

    lab_spec: ClassVar[DriverSpec] = DriverSpec(
        family="deposition_cell",
        settings=SerialSettings,
        limits=CellLabLimits,
        twin="ascii_deposition_cell",
        example={"address": "/dev/ttyUSB1"},
    )
    """Family, lab-entry models and twin (couponlab.registry)."""

    def __init__(
        self,
        transport: LineTransport,
        *,
        max_power: float = 2000.0,
        max_rate: float = 30.0,
        name: str = "",
        watchdog: float = 0.0,
    ) -> None:
        self.client = ScpiClient(transport)
        self._watchdog = LinkWatchdog(self.client, watchdog)
        self.watchdog_s = self._watchdog.timeout_s
        """Communication watchdog armed at connect, s (0 = off)."""
        self.keepalive = self._watchdog.keepalive
        """Feeds the watchdog while connected (runs only when ``watchdog_s`` > 0)."""
        self.limits = CellLimits(max_power, max_rate)
        self._channels: list[tuple[str, int]] = []

        connector = ScpiDeviceConnector(
            self.client, statuses={STATUS: 7}, on_connect=self._on_connect, clock=False
        )
        self._binding = connector.binding
        self._held_read: HeldRead | None = None
        status = self._binding.statuses[STATUS]
        status.check = _known_print_state
        status.pad = SINGLE_PASS_PAD
        super().__init__(name=name, connector=connector)

    @classmethod
    def from_lab_entry(cls, entry: DeviceEntry) -> AsciiDepositionCell:
        """Build from a lab entry: ``address``, serial ``settings`` and ``limits``
        (``max_laser_power``, ``max_feed_rate``); ``settings.watchdog_s`` arms the
        communication watchdog (0 = off, the default; 2 s suggested)."""
        s, lim = SerialSettings.of(entry), CellLabLimits.of(entry)
        return cls(
            transport_from_entry(entry, s),
            max_power=lim.max_laser_power,
            max_rate=lim.max_feed_rate,
            name=entry.name,
            watchdog=s.watchdog_s,
        )

    # -- connection -------------------------------------------------------------------------
    async def _on_connect(self) -> None:
        """Read the cell's limits, tracks and feed channels, then arm the watchdog."""
        await self.client.command("*CLS")
        lim = self.client.floats("LIM?", await self.client.checked_query("LIM?"), 7)
        lm = self.limits
        lm.max_power = min(lm.max_power, lim[0])
        lm.max_speed, lm.min_shield, lm.max_shield = lim[1], lim[2], lim[3]
        lm.x_min, lm.x_max, lm.max_points = lim[4], lim[5], int(lim[6])
        try:
            geo = self.client.floats("LIM:TRK?", await self.client.checked_query("LIM:TRK?"), 6)
        except ProtocolError as exc:
            if "Undefined header" not in exc.message:
                raise
            lm.tracks = None  # a single-pass cell
        else:
            lm.tracks = TrackGeometry(geo[0], geo[1], geo[2], geo[3], geo[4], int(geo[5]))
        status = self._binding.statuses[STATUS]
        if lm.tracks is None:
            status.query, status.fields, status.pad = "STAT?", 7, SINGLE_PASS_PAD
        else:
            status.query, status.fields, status.pad = "STAT:EXT?", 10, []
        self._binding.limits.update(power=(0.0, lm.max_power), shield=(0.0, lm.max_shield))
        chans = (await self.client.checked_query("PRNT:CHAN?")).strip()
        self._channels = []
        for item in filter(None, chans.split(",")):
            feeder, _, hopper = item.rpartition(":")
            if not feeder or not hopper.isdigit():
                raise ProtocolError(self.name, f"garbled channel list: {chans!r}")
            self._channels.append((feeder, int(hopper)))
        await self._watchdog.arm()

    async def close(self) -> None:
        """Stop the keep-alive and close the serial link (the instrument keeps its state;
        an armed watchdog then stops a cell left lasing, moving or printing)."""
        await self._watchdog.stop()
        await self.client.close()

    async def watchdog_status(self) -> tuple[float, bool, str]:
        """Return the cell's watchdog: (timeout s (0 = off), expired (latched), reason)."""
        return await self._watchdog.status()

    async def reset_watchdog(self) -> None:
        """Clear the latched watchdog indication (the watchdog stays armed)."""
        await self._watchdog.reset()

    async def disconnect(self) -> None:
        """Close the serial link (the instrument keeps its state); ``connect()`` reopens it."""
        await self.close()

    @property
    def transport(self) -> LineTransport:
        """Return the transport (its ``bytes_written`` proves what was sent)."""
        return self.client.transport

    # -- validation -------------------------------------------------------------------------
    def _known(self) -> None:
        lm = self.limits  # lab limits only, until connect reads LIM?
        self._binding.limits.setdefault("power", (0.0, lm.max_power))
        self._binding.limits.setdefault("shield", (0.0, lm.max_shield))

    def _power(self, value: Any) -> float:
        self._known()
        power: float = self._binding.check("laser_power", value)
        return power

    def _shield(self, value: Any) -> float:
        self._known()
        flow: float = self._binding.check("shield_flow", value)
        return flow

    def _x(self, value: Any, what: str) -> float:
        lm = self.limits
        return to_magnitude(value, "mm", device=self.name, what=what, low=lm.x_min, high=lm.x_max)

    def _speed(self, value: Any) -> float:
        v = to_magnitude(
            value, "mm/s", device=self.name, what="speed", low=0.0, high=self.limits.max_speed
        )
        if v <= 0:
            raise OutOfLimitsError(self.name, "speed", v, "> 0", self.limits.max_speed, "mm/s")
        return v

    def _y(self, value: Any, what: str) -> float:
        geo = self.limits.tracks
        if geo is None:
            raise InputError(self.name, f"{what}: {_NO_TRACKS}")
        return to_magnitude(
            value, "mm", device=self.name, what=what, low=geo.y_min_mm, high=geo.y_max_mm
        )

    def _schedule(self, points: Sequence[tuple[float, Sequence[float]]], where: str) -> list[str]:
        """Validate schedule points; return their ``PRNT:PT`` lines."""
        if not points:
            raise InputError(self.name, f"{where}needs at least one schedule point")
        nchan = len(self._channels)
        lines, last = [], -math.inf
        for k, (x, rates) in enumerate(points):
            xv = float(x)
            if not math.isfinite(xv) or xv < last:
                raise InputError(
                    self.name, f"{where}schedule point {k}: x = {x} is not finite or goes back"
                )
            last = xv
            if len(rates) != nchan:
                raise InputError(
                    self.name,
                    f"{where}schedule point {k} has {len(rates)} rates, the cell has {nchan}",
                )
            checked = [
                to_magnitude(
                    r,
                    "g/min",
                    device=self.name,
                    what=f"{where}rate of channel {c} at point {k}",
                    low=0.0,
                    high=self.limits.max_rate,
                )
                for c, r in enumerate(rates)
            ]
            lines.append("PRNT:PT " + ",".join([f"{xv:.4f}"] + [f"{r:.4f}" for r in checked]))
        return lines

    def _path(self, xs_in: Any, xe_in: Any, length: float, where: str) -> tuple[float, float]:
        xs, xe = self._x(xs_in, f"{where}x_start"), self._x(xe_in, f"{where}x_end")
        if xs > 0.0 or xe < length:
            raise InputError(
                self.name, f"{where}path {xs:g}..{xe:g} mm must cover the coupon 0..{length:g} mm"
            )
        return xs, xe

    def validate_job(self, job: PrintJob) -> list[str]:
        """Check a whole print job and return the lines that would load it (nothing sent).

        Raises
        ------
        InputError
            Any field out of range, a malformed coupon id, a path that does not cover the
            coupon, schedule points going backwards or with the wrong number of rates, too
            many points or tracks, a track off the coupon, or tracks on a single-pass cell.
        """
        if not COUPON_ID.match(job.coupon_id):
            raise InputError(
                self.name,
                f"coupon id {job.coupon_id!r} must be 1-40 letters, digits or _.- "
                "(starting with a letter or digit)",
            )
        length = to_magnitude(
            job.length_mm, "mm", device=self.name, what="coupon length", low=1.0, high=300.0
        )
        width = None
        if job.width_mm is not None:
            width = to_magnitude(
                job.width_mm, "mm", device=self.name, what="coupon width", low=1.0, high=100.0
            )
        speed = self._speed(job.speed_mm_s)
        power = self._power(job.power_w)
        if power <= 0:
            raise OutOfLimitsError(self.name, "laser power", power, "> 0", self.limits.max_power)
        if not job.tracks:
            xs, xe = self._path(job.x_start_mm, job.x_end_mm, length, "")
            body = self._schedule(job.points, "a print job ")
            head = ["PRNT:CLR", f"COUP {job.coupon_id},{length:.3f}"]
            if width is not None:
                head[1] += f",{width:.3f}"
            head.append(f"PRNT:PATH {xs:.4f},{xe:.4f},{speed:.4f},{power:.2f}")
            if len(body) > self.limits.max_points:
                raise InputError(
                    self.name, f"{len(body)} schedule points, at most {self.limits.max_points}"
                )
            return head + body
        return self._validate_tracks(job, length, width, speed, power)

    def _validate_tracks(
        self, job: PrintJob, length: float, width: float | None, speed: float, power: float
    ) -> list[str]:
        geo = self.limits.tracks
        if geo is None:
            raise InputError(self.name, _NO_TRACKS)
        if job.points:
            raise InputError(self.name, "a multi-track job carries its points in its tracks")
        if len(job.tracks) > geo.max_tracks:
            raise InputError(self.name, f"{len(job.tracks)} tracks, at most {geo.max_tracks}")
        w = 10.0 if width is None else width
        lines = ["PRNT:CLR", f"COUP {job.coupon_id},{length:.3f},{w:.3f}"]
        npoints = 0
        for n, track in enumerate(job.tracks, start=1):
            where = f"track {n}: "
            y = self._y(track.y_mm, f"{where}y")
            if not -geo.bead_width_mm <= y <= w + geo.bead_width_mm:
                raise InputError(self.name, f"{where}y = {y:g} mm misses the coupon 0..{w:g} mm")
            xs, xe = self._path(track.x_start_mm, track.x_end_mm, length, where)
            body = self._schedule(track.points, where)
            npoints += len(body)
            lines.append(f"PRNT:TRK {y:.4f}")
            lines.append(f"PRNT:PATH {xs:.4f},{xe:.4f},{speed:.4f},{power:.2f}")
            lines.extend(body)
        if npoints > self.limits.max_points:
            raise InputError(
                self.name, f"{npoints} schedule points, at most {self.limits.max_points}"
            )
        return lines

    # -- DepositionCell interface -------------------------------------------------------------
    @property
    def channels(self) -> Sequence[tuple[str, int]]:
        """Return (feeder name, hopper) of every feed channel (after connect)."""
        return tuple(self._channels)

    async def set_shield_gas(self, flow: Any) -> None:
        """Set the shielding gas, L/min (0..max)."""
        f = self._shield(flow)
        await self.client.command(f"SHLD:FLOW {f:.3f}")

    async def set_laser(self, on: bool | str, power: Any = None) -> None:
        """Switch the laser, optionally setting its power (W, 0..max) first.

        ``on`` is ``True``/``False`` or ``"on"``/``"off"``; anything else is refused.

        Raises
        ------
        InputError
            ``on`` is not an explicit on/off, or ``power`` is out of range (nothing sent).
        InterlockTrippedError
            ``on`` without enough shielding gas (checked here before ``LAS ON`` is sent, and
            by the cell itself).
        """
        on = to_switch(on, device=self.name, what="laser")
        p = None if power is None else self._power(power)
        if on:
            flow = float(await self.client.checked_query("SHLD:FLOW?"))
            if flow < self.limits.min_shield:
                raise InterlockTrippedError(
                    self.name,
                    f"laser stays off: shielding gas {flow:g} L/min is below "
                    f"{self.limits.min_shield:g} L/min",
                )
        if p is not None:
            await self.client.command(f"LAS:POW {p:.2f}")
        await self.client.command("LAS ON" if on else "LAS OFF")

    async def set_speed(self, speed: Any) -> None:
        """Set the travel speed of manual moves, mm/s."""
        await self.client.command(f"MOT:SPD {self._speed(speed):.4f}")

    @property
    def track_geometry(self) -> TrackGeometry | None:
        """Return the cell's track geometry (``LIM:TRK?``), None for a single-pass cell."""
        return self.limits.tracks

    async def move_to(self, x: Any, timeout: float = 60.0, y: Any = None) -> None:
        """Move the nozzle to ``x`` (and ``y``) mm and wait (wall-clock ``timeout`` s) until
        it stops."""
        xv = self._x(x, "x")
        if y is None:
            await self.client.command(f"MOT:MOVE {xv:.4f}")
        else:
            await self.client.command(f"MOT:MOVE {xv:.4f},{self._y(y, 'y'):.4f}")
        deadline = time.monotonic() + timeout
        while (await self._status())[4] == "1":
            if time.monotonic() > deadline:
                await self.stop()
                raise InstrumentTimeoutError(self.name, f"move to {xv:g} mm took over {timeout} s")
            await asyncio.sleep(0.02)

    async def load_print(self, job: PrintJob) -> None:
        """Validate ``job`` whole, then create its coupon and load its tracks, paths and
        schedules (one ``PRNT:TRK;PRNT:PATH`` line per track, points in compound lines)."""
        lines = self.validate_job(job)
        await self.client.command(lines[0])
        await self.client.command(lines[1])
        chunk: list[str] = []
        for line in lines[2:]:
            if not line.startswith("PRNT:PT ") and chunk:
                await self.client.command(";".join(chunk))
                chunk = []
            chunk.append(line)
            if len(chunk) >= POINTS_PER_LINE:
                await self.client.command(";".join(chunk))
                chunk = []
        if chunk:
            await self.client.command(";".join(chunk))
        npoints = sum(line.startswith("PRNT:PT ") for line in lines)
        count = int(await self.client.checked_query("PRNT:COUN?"))
        if count != npoints:
            raise ProtocolError(self.name, f"cell holds {count} of {npoints} points")
        if job.tracks:
            tracks = int(await self.client.checked_query("PRNT:TRK:COUN?"))
            if tracks != len(job.tracks):
                raise ProtocolError(self.name, f"cell holds {tracks} of {len(job.tracks)} tracks")

    async def start_print(self) -> None:
        """Start the loaded program (the cell refuses it with a reason if it cannot)."""
        await self.client.command("PRNT:STRT")

    async def print_status(self) -> tuple[str, str]:
        """Return (state, reason): state is idle, running, done or aborted."""
        state = (await self.client.checked_query("PRNT:STAT?")).strip()
        if state not in _PRINT_STATES:
            raise ProtocolError(self.name, f"unknown print state {state!r}")
        reason = (await self.client.checked_query("PRNT:REAS?")).strip()
        return state.lower(), reason

    async def wait_print(self, poll: float = 0.05, timeout: float = 3600.0) -> str:
        """Wait until the print ends: return "done", or raise if it was aborted. Run in a
        :class:`couponlab.progress.ProgressStatus`, it reports the cell's progress (%).

        Raises
        ------
        InterlockTrippedError
            The cell aborted the print (interlock, feeder alarm, stop); the message gives the
            cell's reason. The cell is then in its safe state.
        InstrumentTimeoutError
            Still running after ``timeout`` s of wall time (the cell is stopped).
        """
        deadline = time.monotonic() + timeout
        while True:
            state, reason = await self.print_status()
            if state == "done":
                return state
            if state == "aborted":
                raise InterlockTrippedError(self.name, f"print aborted: {reason}")
            if state == "idle":
                raise ProtocolError(self.name, "no print is running")
            if time.monotonic() > deadline:
                await self.stop()
                raise InstrumentTimeoutError(self.name, f"print not finished in {timeout} s")
            if progress_watched():  # the cell's own progress, %
                report_progress(
                    await self.print_progress.get_value(), 0.0, 100.0, unit="%", precision=1
                )
            await asyncio.sleep(poll)

    async def as_built_map(self) -> CompositionMap | None:
        """Return the as-built map of the last printed coupon from a twin (``SIM:MAP?``);
        None from a real cell, which cannot measure composition."""
        try:
            elements = (await self.client.checked_query("SIM:MAP:ELEM?")).strip()
        except ProtocolError as exc:
            if "Undefined header" in exc.message:
                return None
            raise
        x = np.array(
            self.client.floats("SIM:MAP:X?", await self.client.checked_query("SIM:MAP:X?"))
        )
        fractions = {}
        for e in filter(None, elements.split(",")):
            reply = await self.client.checked_query(f"SIM:MAP? {e}")
            values = np.array(self.client.floats("SIM:MAP?", reply, x.size))
            fractions[e] = values
        return CompositionMap(x, fractions)

    async def as_built_map_xy(self) -> CompositionMap | None:
        """Return the as-built map of the last printed coupon on its (y, x) grid from a twin
        (``SIM:MAP:XY?``); None from a real cell, which cannot measure composition, or from
        a twin without 2-D maps."""
        try:
            y_reply = await self.client.checked_query("SIM:MAP:Y?")
            elements = (await self.client.checked_query("SIM:MAP:ELEM?")).strip()
        except ProtocolError as exc:
            if "Undefined header" in exc.message:
                return None
            raise
        x = np.array(
            self.client.floats("SIM:MAP:X?", await self.client.checked_query("SIM:MAP:X?"))
        )
        y = np.array(self.client.floats("SIM:MAP:Y?", y_reply))
        fractions = {}
        for e in filter(None, elements.split(",")):
            reply = await self.client.checked_query(f"SIM:MAP:XY? {e}")
            values = np.array(self.client.floats("SIM:MAP:XY?", reply, x.size * y.size))
            fractions[e] = values.reshape(y.size, x.size)
        return CompositionMap(x, fractions, y)

    async def _checked_floats(self, query: str) -> list[float]:
        return self.client.floats(query, await self.client.checked_query(query))

    async def stop(self, success: bool = True) -> None:
        """Laser off, axis stopped, feeders off, any print aborted."""
        await self.client.command("STOP")

    async def read(self) -> dict[str, Reading[Any]]:
        """Read every signal from one status exchange (the signals' own readings)."""
        if self._held_read is None:
            status = self._binding.statuses[STATUS]
            self._held_read = HeldRead(self, status, super().read)
        return await self._held_read.read()

    # -- LabDevice --------------------------------------------------------------------------
    async def identify(self) -> str:
        """Return ``maker,model,serial,firmware`` (``*IDN?``)."""
        return await self.client.query("*IDN?")

    async def state(self) -> str:
        """Return "printing", "lasing", "moving" or "standby"."""
        s = await self._status()
        if s[5] == "RUNNING":
            return "printing"
        if s[0] == "1":
            return "lasing"
        return "moving" if s[4] == "1" else "standby"

    async def safe_state(self) -> None:
        """Laser off, axis stopped, feeders off."""
        await self.stop()

    async def _status(self) -> list[str]:
        """Return the status fields: laser, power, gas, x, moving, state, progress, y, track
        (``STAT:EXT?``; a single-pass cell's ``STAT?`` gets y = 0 and track 0)."""
        return await self._binding.statuses[STATUS].read()


__all__ = ["COUPON_ID", "POINTS_PER_LINE", "AsciiDepositionCell", "CellLimits"]
