"""ophyd-async driver of the SCPI x-y stage (docs/protocols/xy-stage-scpi.md).

Both axes work in coupon coordinates: mm from the mounted coupon's start (x along, y across).
An axis is a bluesky ``Movable``: ``set(mm)`` checks the soft limits (the instrument's travel
read at connect, narrowed by the lab file's ``limits``) before a byte is sent, sends the move
and its error check in one exchange, then polls the stage's status, sleeping for the time
the stage says is left. The readbacks are the positions the stage reported in its last
status reply (every move ends with one; :meth:`ScpiXyStage.refresh` asks again).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar

from ophyd_async.core import (
    AsyncStatus,
    StandardReadable,
    StandardReadableFormat,
    soft_signal_r_and_setter,
)

from couponlab.drivers._scpi_device import (
    Scpi,
    ScpiBinding,
    ScpiDeviceConnector,
    ScpiSignalR,
    ScpiSignalRW,
    scpi_signal,
)
from couponlab.errors import InputError, InstrumentError, OutOfLimitsError
from couponlab.interfaces.detectors import CouponMount
from couponlab.lab_settings import DeviceLimits, DeviceSettings, quantity, quantity_range
from couponlab.labfile import DeviceEntry
from couponlab.progress import Countdown, ProgressStatus
from couponlab.registry import DriverSpec
from couponlab.transports import ScpiClient, make_transport
from couponlab.units import to_magnitude

AXES = ("x", "y")
STATUS = "STAT?"
"""``moving x, moving y, x mm, y mm, remaining x s, remaining y s``."""
MOUNT = "SAMP?"
"""``"coupon id",length mm,width mm``."""
CONFIG = StandardReadableFormat.CONFIG_SIGNAL
POSITION_TOLERANCE_MM = 1e-3
_BAD_ID_CHARS = set(",;\"'\n\r")


class StageAxisDevice(StandardReadable):
    """One axis of :class:`ScpiXyStage`; its reading is the position in mm.

    Parameters
    ----------
    stage
        The stage that owns the axis.
    index
        0 for x, 1 for y.
    """

    def __init__(
        self, stage: ScpiXyStage, binding: ScpiBinding, index: int, name: str = ""
    ) -> None:
        self._owner = (stage,)  # a tuple, so that ophyd-async does not adopt the stage
        self._index = index
        with self.add_children_as_readables(StandardReadableFormat.HINTED_SIGNAL):
            # the position in the last status reply (every move ends with one)
            self.readback = scpi_signal(
                float,
                binding,
                Scpi(field=(STATUS, 2 + index), cached=True, unit="mm", precision=4),
            )
        with self.add_children_as_readables(StandardReadableFormat.CONFIG_SIGNAL):
            self.low_limit, self._set_low = soft_signal_r_and_setter(float, units="mm")
            self.high_limit, self._set_high = soft_signal_r_and_setter(float, units="mm")
        self._limits = (-math.inf, math.inf)
        super().__init__(name=name)

    def set_name(self, name: str, *, child_name_separator: str | None = None) -> None:
        """Name the axis; its readback takes the axis' own name (``stage-x``)."""
        super().set_name(name, child_name_separator=child_name_separator)
        self.readback.set_name(name)

    def limits(self) -> tuple[float, float]:
        """Return the soft limits (low, high) in mm, coupon coordinates."""
        return self._limits

    def set_limits(self, low: float, high: float) -> None:
        """Set the soft limits in mm (the travel read at connect, narrowed by the lab file)."""
        self._limits = (low, high)
        self._set_low(low)
        self._set_high(high)

    def check_position(self, value: Any) -> float:
        """Return ``value`` in mm if inside the soft limits, else raise OutOfLimitsError."""
        lo, hi = self._limits
        return to_magnitude(
            value,
            "mm",
            device=self._owner[0].name,
            what=f"{AXES[self._index]} position",
            low=lo,
            high=hi,
        )

    def set(self, value: float) -> AsyncStatus[None]:
        """Move the axis to ``value`` (mm, or a length quantity) and wait until it is there;
        the status reports the move's remaining instrument time (progress bars)."""
        return ProgressStatus(self._move(value), name=self.name)

    async def _move(self, value: float) -> None:
        target = self.check_position(value)
        await self._owner[0].move_axes({self._index: target})

    async def stop(self, success: bool = True) -> None:
        """Stop both axes where they are (the stage stops as a whole)."""
        await self._owner[0].halt()


class StageLabLimits(DeviceLimits):
    """Lab limits of a stage, inside its travel: ``x`` and ``y`` as ``[low, high]`` in mm
    (coupon coordinates, low < high) and ``max_velocity`` (mm/s, > 0)."""

    x: Annotated[tuple[float, float] | None, quantity_range("mm")] = None
    y: Annotated[tuple[float, float] | None, quantity_range("mm")] = None
    max_velocity: Annotated[float | None, quantity("mm/s", gt=0)] = None


def _pulse_spacing_rule(device: str, mm: float) -> None:
    if 0 < mm < 0.001:
        raise OutOfLimitsError(device, "pulse spacing", mm, 0.001, 1000, "mm")


def _quoted(text: str) -> str:
    return text.strip().strip('"')


class ScpiXyStage(StandardReadable):
    """An x-y stage over SCPI.

    Parameters
    ----------
    address
        ``TCPIP::host::port::SOCKET`` (or ``socket://host:port``).
    limits
        Lab limits, narrower than the travel: ``x: [lo, hi]``, ``y: [lo, hi]`` (mm or
        length strings), ``max_velocity`` (mm/s or a speed string).
    timeout
        Timeout of one exchange, s.
    move_timeout
        Wall-clock limit of one move, s.
    """

    lab_spec: ClassVar[DriverSpec] = DriverSpec(
        family="xy_stage",
        settings=DeviceSettings,
        limits=StageLabLimits,
        twin="scpi_xy_stage",
        example={"address": "TCPIP::127.0.0.1::5025::SOCKET"},
    )
    """Family, lab-entry models and twin (couponlab.registry)."""

    velocity: Annotated[
        ScpiSignalRW[float],
        Scpi("VEL?", "VEL", unit="mm/s", limits="velocity", precision=3),
        CONFIG,
    ]
    """Travel speed of moves, mm/s (instrument range, capped by the lab's max_velocity)."""
    pulse_spacing: Annotated[
        ScpiSignalRW[float],
        Scpi(
            "PSO:DIST?", "PSO:DIST", unit="mm", limits="pulse_spacing",
            validate=_pulse_spacing_rule,
        ),
        CONFIG,
    ]  # fmt: skip
    """Distance between position-compare pulses, mm (0 = off, else 0.001 .. 1000)."""
    coupon_id: Annotated[
        ScpiSignalR[str], Scpi(field=(MOUNT, 0), cached=True, parse=_quoted), CONFIG
    ]
    """Id of the mounted coupon ("" when none)."""
    coupon_length: Annotated[
        ScpiSignalR[float], Scpi(field=(MOUNT, 1), cached=True, unit="mm"), CONFIG
    ]
    """Length of the mounted coupon, mm."""
    coupon_width: Annotated[
        ScpiSignalR[float], Scpi(field=(MOUNT, 2), cached=True, unit="mm"), CONFIG
    ]
    """Width of the mounted coupon, mm."""

    def __init__(
        self,
        address: str,
        *,
        limits: dict[str, Any] | None = None,
        timeout: float = 2.0,
        move_timeout: float = 120.0,
        name: str = "",
    ) -> None:
        self.client = ScpiClient(make_transport(name or "stage", address, timeout=timeout))
        connector = ScpiDeviceConnector(
            self.client, statuses={STATUS: 6, MOUNT: 3}, on_connect=self._on_connect
        )
        self._binding = connector.binding
        self._lab_limits = dict(limits or {})
        self._move_timeout = move_timeout
        self._idn = ""
        self._mount: CouponMount | None = None
        self._position = [0.0, 0.0]
        self._binding.statuses[STATUS].on_reply.append(self._track_position)
        self._binding.statuses[MOUNT].on_reply.append(self._track_mount)
        self.x = StageAxisDevice(self, self._binding, 0)
        self.y = StageAxisDevice(self, self._binding, 1)
        self.add_readables([self.x, self.y])
        super().__init__(name=name, connector=connector)

    @classmethod
    def from_lab_entry(cls, entry: DeviceEntry) -> ScpiXyStage:
        """Build the stage from its lab-file entry (``settings.timeout_s``;
        :class:`StageLabLimits`)."""
        return cls(
            entry.address,
            limits=StageLabLimits.of(entry).model_dump(exclude_none=True),
            timeout=DeviceSettings.of(entry).timeout_s,
            name=entry.name,
        )

    def set_name(self, name: str, *, child_name_separator: str | None = None) -> None:
        """Name the device (and the link's error messages)."""
        super().set_name(name, child_name_separator=child_name_separator)
        self.client.device = name

    def _track_position(self, fields: list[str]) -> None:
        self._position = [float(fields[2]), float(fields[3])]

    def _track_mount(self, fields: list[str]) -> None:
        cid = _quoted(fields[0])
        self._mount = CouponMount(cid, float(fields[1]), float(fields[2])) if cid else None

    # -- connect -----------------------------------------------------------------------
    async def _on_connect(self) -> None:
        self._idn = await self.client.query("*IDN?")
        travel = await self.client.query_floats("LIM?", 4)
        vlim = await self.client.query_floats("VEL:LIM?", 2)
        for i, axis in enumerate((self.x, self.y)):
            lo, hi = travel[2 * i], travel[2 * i + 1]
            lab = self._lab_limits.get(AXES[i])
            if lab is not None:
                llo, lhi = (
                    to_magnitude(v, "mm", device=self.name, what=f"{AXES[i]} limit") for v in lab
                )
                lo, hi = max(lo, llo), min(hi, lhi)
            if lo > hi:
                raise InputError(self.name, f"lab limits of {AXES[i]} lie outside the travel")
            axis.set_limits(lo, hi)
        vlo, vhi = vlim
        if "max_velocity" in self._lab_limits:
            vhi = min(
                vhi,
                to_magnitude(
                    self._lab_limits["max_velocity"], "mm/s", device=self.name, what="max_velocity"
                ),
            )
        self._binding.limits["velocity"] = (vlo, vhi)
        self._binding.limits["pulse_spacing"] = (0.0, 1000.0)
        await self.velocity.get_value()
        await self._read_mount()
        await self.refresh()

    # -- coupon --------------------------------------------------------------------------
    def mounted(self) -> CouponMount | None:
        """Return the mounted coupon (as last read from the stage), or None."""
        return self._mount

    async def load_coupon(self, coupon_id: str, length: Any, width: Any) -> None:
        """Mount a coupon: its id and size (mm, or length quantities), checked before sending."""
        if (
            not isinstance(coupon_id, str)
            or not 1 <= len(coupon_id) <= 64
            or _BAD_ID_CHARS & set(coupon_id)
        ):
            raise InputError(
                self.name,
                f"coupon id {coupon_id!r:.80} must be 1-64 characters without , ; or quotes",
            )
        ln = to_magnitude(
            length, "mm", device=self.name, what="coupon length", low=1e-3, high=1000
        )
        wd = to_magnitude(width, "mm", device=self.name, what="coupon width", low=1e-3, high=1000)
        await self.client.command(f'SAMP:LOAD "{coupon_id}",{ln:.6g},{wd:.6g}')
        await self._read_mount()

    async def unload_coupon(self) -> None:
        """Unmount the coupon."""
        await self.client.command("SAMP:UNL")
        await self._read_mount()

    async def _read_mount(self) -> None:
        await self._binding.statuses[MOUNT].read()

    # -- motion --------------------------------------------------------------------------
    def check_position(self, x: Any, y: Any) -> tuple[float, float]:
        """Return (x, y) in mm if both are inside the soft limits."""
        return self.x.check_position(x), self.y.check_position(y)

    def velocity_limits(self) -> tuple[float, float]:
        """Return the allowed velocity (low, high), mm/s."""
        return self._binding.limits.get("velocity", (0.0, math.inf))

    def check_velocity(self, value: Any) -> float:
        """Return ``value`` in mm/s if inside the velocity limits."""
        v: float = self._binding.check("velocity", value)
        return v

    def check_pulse_spacing(self, value: Any) -> float:
        """Return ``value`` in mm if it is a valid position-compare spacing (0 = off)."""
        mm: float = self._binding.check("pulse_spacing", value)
        return mm

    def _apply_status(self, reply: str) -> tuple[list[bool], list[float]]:
        f = [float(v) for v in self._binding.statuses[STATUS].feed(reply)]
        return [f[0] != 0, f[1] != 0], [f[4], f[5]]

    async def refresh(self) -> tuple[float, float]:
        """Ask the stage where it is; update the readbacks; return (x, y) in mm."""
        self._apply_status(await self.client.query("STAT?"))
        return self._position[0], self._position[1]

    async def move_axes(self, targets: dict[int, float]) -> None:
        """Move axes (index -> mm, already checked) and wait until they stop there."""
        if len(targets) == 2:
            cmd = f"MOV:XY {targets[0]:.6f},{targets[1]:.6f}"
        else:
            ((i, t),) = targets.items()
            cmd = f"MOV:{AXES[i].upper()} {t:.6f}"
        v = self._binding.last("velocity")
        here = self._position
        travel = max(abs(t - here[i]) for i, t in targets.items()) / v if v else math.inf
        if self.client.short(travel):
            reply = await self.client.command(cmd, "*OPC?;:STAT?")
            moving, remaining = self._apply_status(reply.partition(";")[2])
        else:
            moving, remaining = self._apply_status(await self.client.command(cmd, "STAT?"))

        async def poll() -> tuple[bool, float, None]:
            mv, rem = self._apply_status(await self.client.query("STAT?"))
            return not any(mv[i] for i in targets), max(rem[i] for i in targets), None

        countdown = Countdown()  # the move's progress, instrument s (couponlab.progress)
        countdown(travel)
        if any(moving[i] for i in targets):
            countdown(max(remaining[i] for i in targets))
            await self.client.pause(max(remaining[i] for i in targets))
            await self.client.wait_for(
                poll, what=f"move {cmd!r}", timeout=self._move_timeout, countdown=countdown
            )
        countdown(0.0)
        for i, t in targets.items():
            pos = self._position[i]
            if abs(pos - t) > POSITION_TOLERANCE_MM:
                raise InstrumentError(
                    self.name, f"{AXES[i]} stopped at {pos:g} mm, not at {t:g} mm"
                )

    async def halt(self) -> None:
        """Stop both axes where they are."""
        self._apply_status(await self.client.command("STOP", "STAT?"))

    # -- LabDevice ---------------------------------------------------------------------------
    async def identify(self) -> str:
        """Return the stage's ``*IDN?`` (maker, model, serial, firmware)."""
        return self._idn or await self.client.query("*IDN?")

    async def state(self) -> str:
        """Return ``"moving"`` or ``"idle"``, and the mounted coupon."""
        mv, _ = self._apply_status(await self.client.query("STAT?"))
        where = f" with {self._mount.coupon_id}" if self._mount else ""
        return ("moving" if any(mv) else "idle") + where

    async def safe_state(self) -> None:
        """Stop both axes and the position-compare output (the stage's safe state)."""
        await self.halt()
        await self.client.command("PSO:DIST 0")

    async def disconnect(self) -> None:
        """Close the link to the stage."""
        await self.client.close()


__all__ = ["ScpiXyStage", "StageAxisDevice"]
