"""ophyd-async driver of the sample-transfer robot (docs/protocols/transfer-robot.md).

The robot moves one sample at a time between named stations. ``set(Transfer(...))`` (a
bluesky ``Movable``; ``bps.mv(robot, Transfer(...))``) checks the transfer before a byte is
sent (known stations, source != destination), reads the stations and the gripper, refuses an
occupied destination or a source without the sample, mirrors the furnace interlock when it
watches that furnace, then sends one ``XFER`` job (with the lab's furnace limit written again
in the same line, so a robot reset or restarted meanwhile holds it) and its error check, and
polls the status,
sleeping for the time the robot says is left (its clock, decision 0031). The status completes
when the robot reports the job done and the sample at its destination.

Idempotent for resume: a sample already at its destination completes at once (no command),
a sample in the gripper is placed (the robot skips the pick).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated, Any, ClassVar

from ophyd_async.core import AsyncStatus, StandardReadable, StandardReadableFormat
from pydantic import field_validator

from couponlab.drivers._scpi_device import Scpi, ScpiDeviceConnector, ScpiSignalR
from couponlab.drivers.deposition._link import LinkWatchdog
from couponlab.errors import (
    InputError,
    InstrumentError,
    InterlockTrippedError,
    OutOfLimitsError,
    ProtocolError,
)
from couponlab.interfaces.furnace import GradientFurnace
from couponlab.interfaces.transfer import (
    Transfer,
    check_occupancy,
    check_sample_id,
    check_station,
    check_station_names,
    check_transfer,
)
from couponlab.lab_settings import DeviceLimits, DeviceSettings, Seconds, Watchdog, temperature
from couponlab.labfile import DeviceEntry
from couponlab.progress import ProgressStatus
from couponlab.registry import DriverSpec
from couponlab.transports import ScpiClient, make_transport
from couponlab.units import to_temperature

STATUS = "STAT?"
"""``state,remaining s,"held","position"``."""
STATES = ("IDLE", "BUSY", "FAULT", "ESTOP")
CONFIG = StandardReadableFormat.CONFIG_SIGNAL
READ = StandardReadableFormat.UNCACHED_SIGNAL
DEFAULT_FURNACE_ENTRY_C = 100.0
"""The lab limit when the lab file sets none, degC."""


def _quoted(text: str) -> str:
    return text.strip().strip('"')


def _quoted_list(text: str) -> list[str]:
    return [_quoted(p) for p in text.split(",")] if text.strip() else []


class RobotSettings(DeviceSettings):
    """Settings of a transfer robot's lab entry.

    Attributes
    ----------
    stations
        The stations plans may use (each taught on the robot): ``build_plate``,
        ``furnace1.slot1`` .. , ``stage1``, ``frame1``, ``rack.1`` .. (unique).
    watchdog_s
        Communication watchdog armed at connect, s of wall time (0 = off, the default): a
        client gone silent during a job halts the arm, the sample kept gripped.
    move_timeout_s
        Wall-clock limit of one transfer, s (default 600).
    """

    stations: list[str]
    watchdog_s: Watchdog = 0.0
    move_timeout_s: Seconds = 600.0

    @field_validator("stations")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        try:
            return check_station_names("", value)
        except InputError as exc:
            raise ValueError(exc.message) from None


class RobotLimits(DeviceLimits):
    """Lab limits of a transfer robot: ``max_furnace_entry`` (degC, an absolute
    temperature; default 100 degC), the hottest furnace zone at which the arm may enter or
    leave that furnace's slots."""

    max_furnace_entry: Annotated[float, temperature()] = DEFAULT_FURNACE_ENTRY_C


class ScpiTransferRobot(StandardReadable):
    """A sample-transfer robot (cobot with a gripper) over its SCPI text interface.

    Parameters
    ----------
    address
        ``TCPIP::host::port::SOCKET`` (or ``socket://host:port``).
    stations
        The stations plans may use (all must be taught on the robot).
    max_furnace_entry
        Lab limit of the furnace interlock, degC or a temperature quantity (written to the
        robot at connect, capped by the robot's own ceiling).
    furnaces
        Furnaces whose slots (``<furnace name>.slot<k>``) the driver checks before sending a
        transfer (the robot's own interlock holds whatever the driver does).
    timeout
        Timeout of one exchange, s.
    move_timeout
        Wall-clock limit of one transfer, s.
    watchdog
        Communication watchdog armed at connect, s of wall time (0 = off).
    """

    lab_spec: ClassVar[DriverSpec] = DriverSpec(
        family="transfer_robot",
        settings=RobotSettings,
        limits=RobotLimits,
        twin="scpi_transfer_robot",
        example={
            "address": "TCPIP::127.0.0.1::5025::SOCKET",
            "settings": {"stations": ["build_plate", "rack.1"]},
        },
    )
    """Family, lab-entry models and twin (couponlab.registry)."""

    mode: Annotated[ScpiSignalR[str], Scpi(field=(STATUS, 0)), READ]
    """IDLE, BUSY (a job runs), FAULT (latched: an interlock or the watchdog stopped a job)
    or ESTOP (latched)."""
    remaining: Annotated[ScpiSignalR[float], Scpi(field=(STATUS, 1), unit="s", precision=3), READ]
    """Instrument seconds left in the running job (0 when none)."""
    held_sample: Annotated[ScpiSignalR[str], Scpi(field=(STATUS, 2), parse=_quoted), READ]
    """Id of the sample in the gripper ("" when empty)."""
    position: Annotated[ScpiSignalR[str], Scpi(field=(STATUS, 3), parse=_quoted), READ]
    """Station the arm is at, ``home`` or ``transit``."""
    furnace_entry_limit: Annotated[
        ScpiSignalR[float], Scpi("LIM:FURN?", unit="degC", precision=1), CONFIG
    ]
    """Furnace interlock the robot applies, degC (the lab's, capped by the robot's)."""

    def __init__(
        self,
        address: str,
        *,
        stations: Sequence[str],
        max_furnace_entry: Any = DEFAULT_FURNACE_ENTRY_C,
        furnaces: Sequence[GradientFurnace] = (),
        timeout: float = 2.0,
        move_timeout: float = 600.0,
        watchdog: float = 0.0,
        name: str = "",
    ) -> None:
        label = name or "robot"
        self._stations = check_station_names(label, stations)
        self._lab_limit_c = to_temperature(
            max_furnace_entry, "degC", device=label, what="max_furnace_entry"
        )
        self.client = ScpiClient(make_transport(label, address, timeout=timeout))
        connector = ScpiDeviceConnector(
            self.client, statuses={STATUS: 4}, on_connect=self._on_connect
        )
        self._binding = connector.binding
        self._binding.statuses[STATUS].check = lambda f: f[0] in STATES
        self._furnaces: dict[str, GradientFurnace] = {}
        for furnace in furnaces:
            self.watch_furnace(furnace)
        self._move_timeout = move_timeout
        self._watchdog = LinkWatchdog(self.client, watchdog)
        self.watchdog_s = self._watchdog.timeout_s
        """Communication watchdog armed at connect, s (0 = off)."""
        self._limit_c = self._lab_limit_c
        self._idn = ""
        self._taught: list[str] = []
        super().__init__(name=name, connector=connector)

    @classmethod
    def from_lab_entry(cls, entry: DeviceEntry) -> ScpiTransferRobot:
        """Build the robot from its lab-file entry (:class:`RobotSettings`,
        :class:`RobotLimits`)."""
        s = RobotSettings.of(entry)
        return cls(
            entry.address,
            stations=s.stations,
            max_furnace_entry=RobotLimits.of(entry).max_furnace_entry,
            timeout=s.timeout_s,
            move_timeout=s.move_timeout_s,
            watchdog=s.watchdog_s,
            name=entry.name,
        )

    def set_name(self, name: str, *, child_name_separator: str | None = None) -> None:
        """Name the device (and the link's error messages)."""
        super().set_name(name, child_name_separator=child_name_separator)
        self.client.device = name

    def watch_furnace(self, furnace: GradientFurnace) -> None:
        """Check ``furnace`` (its hottest zone against the limit) before any transfer into or
        out of its slots (``<furnace.name>.slot<k>``)."""
        self._furnaces[str(getattr(furnace, "name", ""))] = furnace

    @property
    def station_names(self) -> list[str]:
        """Return the stations plans may use (the lab entry's ``settings.stations``)."""
        return list(self._stations)

    @property
    def furnace_limit_c(self) -> float:
        """Return the furnace interlock in force, degC (lab limit, capped by the robot's)."""
        return self._limit_c

    # -- connect -----------------------------------------------------------------------------
    async def _on_connect(self) -> None:
        self._idn = await self.client.query("*IDN?")
        self._taught = taught = _quoted_list(await self.client.checked_query("STN:CAT?"))
        missing = [s for s in self._stations if s not in taught]
        if missing:
            raise InputError(
                self.name,
                f"stations {missing} of the lab file are not taught on the robot "
                f"(it knows {', '.join(taught) or 'none'})",
            )
        (ceiling,) = self.client.floats(
            "LIM:FURN:MAX?", await self.client.checked_query("LIM:FURN:MAX?"), 1
        )
        self._limit_c = min(self._lab_limit_c, ceiling)
        await self.client.command(f"LIM:FURN {self._limit_c:.6g}")
        await self.furnace_entry_limit.get_value()
        await self._watchdog.arm()
        await self._status()

    # -- what the robot knows ------------------------------------------------------------------
    async def _status(self) -> list[str]:
        return await self._binding.statuses[STATUS].read()

    async def stations(self) -> dict[str, str | None]:
        """Return station -> sample id there (None: empty), as the robot knows it (the lab
        file's stations only; one exchange: the taught stations' order is read at connect)."""
        occupants = _quoted_list(await self.client.checked_query("STN:OCC?"))
        if len(self._taught) != len(occupants):
            raise ProtocolError(
                self.name, f"{len(occupants)} occupants for {len(self._taught)} stations"
            )
        known = dict(zip(self._taught, occupants, strict=True))
        return {s: (known.get(s) or None) for s in self._stations}

    async def holding(self) -> str | None:
        """Return the id of the sample in the gripper (None: empty)."""
        return _quoted((await self._status())[2]) or None

    async def record(self, station: str, sample_id: str | None) -> None:
        """Record that ``sample_id`` (None: nothing) sits at ``station``, put there by hand or
        by another instrument (a print on the build plate)."""
        check_station(self.name, station, self._stations)
        sid = "" if sample_id is None else check_sample_id(self.name, sample_id)
        await self.client.command(f'STN:SET "{station}","{sid}"')

    # -- transfer ------------------------------------------------------------------------------
    def set(self, value: Transfer) -> AsyncStatus[None]:
        """Move ``value.sample_id`` from ``value.source`` to ``value.destination``; the status
        completes when the robot has placed it, and reports the job's remaining instrument
        time (progress bars).

        Raises
        ------
        InputError
            Not a Transfer, malformed sample id, unknown station or source == destination
            (raised here, nothing sent); from the status: occupied destination, source
            without the sample, gripper holding another sample, a watched furnace too hot
            (:class:`~couponlab.errors.OutOfLimitsError`).
        InterlockTrippedError, InstrumentError
            (from the status) the robot refused or halted the job (interlock, E-stop,
            watchdog, stop); the held sample stays gripped.
        """
        transfer = check_transfer(self.name, value, self._stations)
        return ProgressStatus(self._transfer(transfer), name=self.name)

    async def _transfer(self, t: Transfer) -> None:
        stations = await self.stations()
        fields = await self._status()
        held = _quoted(fields[2]) or None
        if not check_occupancy(self.name, t, stations, held):
            return
        if fields[0] != "IDLE":
            raise await self._halted(fields[0], f"cannot move {t.sample_id}")
        touched = [t.destination] if held == t.sample_id else [t.source, t.destination]
        for station in touched:
            await self._check_furnace(station)
        reply = await self.client.command(
            f'LIM:FURN {self._limit_c:.6g};:XFER "{t.sample_id}","{t.source}","{t.destination}"',
            STATUS,
        )
        self._binding.statuses[STATUS].feed(reply)

        async def poll() -> tuple[bool, float, list[str]]:
            f = await self._status()
            return f[0] != "BUSY", float(f[1]), f

        what = f"transfer of {t.sample_id} to {t.destination}"
        final = await self.client.wait_for(poll, what=what, timeout=self._move_timeout)
        if final[0] != "IDLE":
            raise await self._halted(final[0], what)
        where = (await self.stations()).get(t.destination)
        if where != t.sample_id:
            reason = _quoted(await self.client.checked_query("STAT:REAS?"))
            raise InstrumentError(
                self.name, f"{what} did not complete ({reason or 'no reason given'})"
            )

    async def _halted(self, state: str, what: str) -> InstrumentError:
        reason = _quoted(await self.client.checked_query("STAT:REAS?"))
        message = f"{what}: robot is {state} ({reason}); the held sample stays gripped"
        if state in ("FAULT", "ESTOP") or "interlock" in reason.lower():
            return InterlockTrippedError(self.name, message + "; reset() clears it")
        return InstrumentError(self.name, message)

    async def _check_furnace(self, station: str) -> None:
        """Refuse (before sending) a move into or out of a watched furnace that is too hot."""
        furnace_name, sep, slot = station.partition(".")
        furnace = self._furnaces.get(furnace_name)
        if not sep or not slot.startswith("slot") or furnace is None:
            return
        temps = (await furnace.read_profile()).temperatures_c
        if len(temps) == 0 or not all(math.isfinite(float(v)) for v in temps):
            raise InputError(
                self.name,
                f"{furnace_name} temperature unknown ({list(temps)}): no move at {station}",
            )
        hottest = float(max(temps))
        if hottest > self._limit_c:
            raise OutOfLimitsError(
                self.name,
                f"{furnace_name} temperature for a move at {station}",
                round(hottest, 1),
                -273.15,
                self._limit_c,
                "degC",
            )

    # -- stop, reset ---------------------------------------------------------------------------
    async def stop(self, success: bool = True) -> None:
        """Halt a running job; the arm stays where it is, a held sample stays gripped."""
        self._binding.statuses[STATUS].feed(await self.client.command("STOP", STATUS))

    async def emergency_stop(self) -> None:
        """Software E-stop: halt at once and latch ESTOP (a held sample stays gripped)."""
        self._binding.statuses[STATUS].feed(await self.client.command("ESTOP", STATUS))

    async def reset(self) -> None:
        """Clear a latched FAULT or ESTOP (the arm and the grip stay as they are)."""
        self._binding.statuses[STATUS].feed(await self.client.command("RES", STATUS))

    # -- LabDevice -------------------------------------------------------------------------------
    async def identify(self) -> str:
        """Return the robot's ``*IDN?`` (maker, model, serial, firmware)."""
        return self._idn or await self.client.query("*IDN?")

    async def state(self) -> str:
        """Return the robot's state (``idle``, ``busy``, ``fault``, ``estop``), where the arm
        is and what it holds."""
        f = await self._status()
        held = _quoted(f[2])
        return f"{f[0].lower()} at {_quoted(f[3])}" + (f" holding {held}" if held else "")

    async def safe_state(self) -> None:
        """Halt any job (the robot's safe state: still, a held sample gripped)."""
        await self.stop()

    async def disconnect(self) -> None:
        """Stop feeding the watchdog and close the link (an armed watchdog then halts a job
        left running)."""
        await self._watchdog.stop()
        await self.client.close()


__all__ = ["RobotLimits", "RobotSettings", "ScpiTransferRobot"]
