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
    soft_signal_rw,
)

from couponlab.drivers._scpi_device import ScpiConnector
from couponlab.errors import InputError, InstrumentError, OutOfLimitsError, ProtocolError
from couponlab.interfaces.detectors import CouponMount
from couponlab.lab_settings import DeviceLimits, DeviceSettings, quantity, quantity_range
from couponlab.labfile import DeviceEntry
from couponlab.registry import DriverSpec
from couponlab.transports import ScpiClient, make_transport
from couponlab.units import to_magnitude

AXES = ("x", "y")
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

    def __init__(self, stage: ScpiXyStage, index: int, name: str = "") -> None:
        self._owner = (stage,)  # a tuple, so that ophyd-async does not adopt the stage
        self._index = index
        with self.add_children_as_readables(StandardReadableFormat.HINTED_SIGNAL):
            self.readback, self._set_readback = soft_signal_r_and_setter(
                float, 0.0, units="mm", precision=4
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

    @AsyncStatus.wrap
    async def set(self, value: float) -> None:
        """Move the axis to ``value`` (mm, or a length quantity) and wait until it is there."""
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
        self._lab_limits = dict(limits or {})
        self._move_timeout = move_timeout
        self._idn = ""
        self._mount: CouponMount | None = None
        self._velocity_limits = (0.0, math.inf)
        self._velocity = 0.0
        self._position = [0.0, 0.0]
        self.x = StageAxisDevice(self, 0)
        self.y = StageAxisDevice(self, 1)
        self.add_readables([self.x, self.y])
        with self.add_children_as_readables(StandardReadableFormat.CONFIG_SIGNAL):
            self.velocity = soft_signal_rw(float, 0.0, units="mm/s", setter=self._set_velocity)
            self.pulse_spacing = soft_signal_rw(
                float, 0.0, units="mm", setter=self._set_pulse_spacing
            )
            self.coupon_id, self._set_coupon_id = soft_signal_r_and_setter(str, "")
            self.coupon_length, self._set_coupon_length = soft_signal_r_and_setter(
                float, 0.0, units="mm"
            )
            self.coupon_width, self._set_coupon_width = soft_signal_r_and_setter(
                float, 0.0, units="mm"
            )
        super().__init__(name=name, connector=ScpiConnector(self.client, self._on_connect))

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
            axis._limits = (lo, hi)
            axis._set_low(lo)
            axis._set_high(hi)
        vlo, vhi = vlim
        if "max_velocity" in self._lab_limits:
            vhi = min(
                vhi,
                to_magnitude(
                    self._lab_limits["max_velocity"], "mm/s", device=self.name, what="max_velocity"
                ),
            )
        self._velocity_limits = (vlo, vhi)
        (spacing,) = await self.client.query_floats("PSO:DIST?", 1)
        self.pulse_spacing._connector.backend.set_value(spacing)  # type: ignore[attr-defined]
        (v,) = await self.client.query_floats("VEL?", 1)
        self._velocity = v
        self.velocity._connector.backend.set_value(v)  # type: ignore[attr-defined]
        await self._read_mount()
        await self.refresh()

    # -- coupon --------------------------------------------------------------------------
    def mounted(self) -> CouponMount | None:
        """Return the mounted coupon (as last read from the stage), or None."""
        return self._mount

    async def load_coupon(self, coupon_id: str, length: Any, width: Any) -> None:
        """Mount a coupon: its id and size (mm, or length quantities), checked before sending."""
        if not isinstance(coupon_id, str) or not coupon_id or _BAD_ID_CHARS & set(coupon_id):
            raise InputError(
                self.name,
                f"coupon id {coupon_id!r} must be a non-empty string without , ; or quotes",
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
        reply = await self.client.query("SAMP?")
        parts = reply.rsplit(",", 2)
        if len(parts) != 3:
            raise ProtocolError(self.name, f"malformed SAMP? reply {reply!r}")
        cid = parts[0].strip().strip('"')
        ln, wd = float(parts[1]), float(parts[2])
        self._mount = CouponMount(cid, ln, wd) if cid else None
        self._set_coupon_id(cid)
        self._set_coupon_length(ln)
        self._set_coupon_width(wd)

    # -- motion --------------------------------------------------------------------------
    def check_position(self, x: Any, y: Any) -> tuple[float, float]:
        """Return (x, y) in mm if both are inside the soft limits."""
        return self.x.check_position(x), self.y.check_position(y)

    def velocity_limits(self) -> tuple[float, float]:
        """Return the allowed velocity (low, high), mm/s."""
        return self._velocity_limits

    def check_velocity(self, value: Any) -> float:
        """Return ``value`` in mm/s if inside the velocity limits."""
        lo, hi = self._velocity_limits
        return to_magnitude(value, "mm/s", device=self.name, what="velocity", low=lo, high=hi)

    async def _set_velocity(self, value: float | None) -> None:
        v = self.check_velocity(value)
        await self.client.command(f"VEL {v:.6g}")
        self._velocity = v

    def check_pulse_spacing(self, value: Any) -> float:
        """Return ``value`` in mm if it is a valid position-compare spacing (0 = off)."""
        mm = to_magnitude(value, "mm", device=self.name, what="pulse spacing", low=0, high=1000)
        if 0 < mm < 0.001:
            raise OutOfLimitsError(self.name, "pulse spacing", mm, 0.001, 1000, "mm")
        return mm

    async def _set_pulse_spacing(self, value: float | None) -> None:
        mm = self.check_pulse_spacing(value)
        await self.client.command(f"PSO:DIST {mm:.6g}")

    def _apply_status(self, reply: str) -> tuple[list[bool], list[float]]:
        try:
            f = [float(v) for v in reply.split(",")]
        except ValueError:
            f = []
        if len(f) != 6:
            raise ProtocolError(self.name, f"malformed STAT? reply {reply!r}")
        self._position = [f[2], f[3]]
        self.x._set_readback(f[2])
        self.y._set_readback(f[3])
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
        v, here = self._velocity, self._position
        travel = max(abs(t - here[i]) for i, t in targets.items()) / v if v > 0 else math.inf
        if self.client.short(travel):
            reply = await self.client.command(cmd, "*OPC?;:STAT?")
            moving, remaining = self._apply_status(reply.partition(";")[2])
        else:
            moving, remaining = self._apply_status(await self.client.command(cmd, "STAT?"))

        async def poll() -> tuple[bool, float, None]:
            mv, rem = self._apply_status(await self.client.query("STAT?"))
            return not any(mv[i] for i in targets), max(rem[i] for i in targets), None

        if any(moving[i] for i in targets):
            await self.client.pause(max(remaining[i] for i in targets))
            await self.client.wait_for(poll, what=f"move {cmd!r}", timeout=self._move_timeout)
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
