"""ophyd-async device of a universal test frame speaking the couponlab frame SCPI protocol
(docs/protocols/frame-scpi.md) through pyvisa: ``TCPIP::host::port::SOCKET``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any, ClassVar

from bluesky.protocols import StreamAsset
from event_model import DataKey
from ophyd_async.core import (
    AsyncStatus,
    StandardReadable,
    StandardReadableFormat,
    StrictEnum,
)
from pydantic import StrictBool

from couponlab.data import DEFAULT_OUT_DIR
from couponlab.drivers._scpi_device import (
    Scpi,
    ScpiDeviceConnector,
    ScpiSignalR,
    ScpiSignalRW,
)
from couponlab.drivers.frame._curve_file import FIELDS, CurveFile, read_curve_file
from couponlab.errors import InputError, ProtocolError
from couponlab.interfaces.frame import (
    FrameLimits,
    SamplesLostError,
    SpecimenGeometry,
    TensileCurve,
    TestOutcome,
    TestSettings,
)
from couponlab.lab_settings import DeviceLimits, DeviceSettings, quantity
from couponlab.labfile import DeviceEntry
from couponlab.registry import DriverSpec
from couponlab.specimens import check_inside
from couponlab.transports import ScpiClient, make_transport
from couponlab.units import to_magnitude

log = logging.getLogger(__name__)

_COUPON_ID = re.compile(r'^[^",;\r\n]{1,64}$')
COLUMNS = len(FIELDS)


class ControlMode(StrictEnum):
    """Control mode of a test: crosshead rate (``POS``) or extensometer strain rate (``STR``)."""

    POS = "POS"
    STR = "STR"


class FrameSettings(DeviceSettings):
    """Settings of a test frame: ``specimen_thickness`` (mm, 0.1..20; default 2),
    ``coupon_length`` and ``coupon_width`` (mm, 0.5..1000; None: unknown; a specimen whose
    outline sticks out of a known side is refused), ``data_dir`` of the curve files,
    ``timeout_s``, ``poll_period_s`` (s, 0.005..1; default 0.05) and ``hil_destructive``
    (the HIL suite may pull specimens on this real frame; default false)."""

    specimen_thickness: Annotated[float, quantity("mm", ge=0.1, le=20)] = 2.0
    coupon_width: Annotated[float | None, quantity("mm", ge=0.5, le=1000)] = None
    coupon_length: Annotated[float | None, quantity("mm", ge=0.5, le=1000)] = None
    data_dir: str | None = None
    poll_period_s: Annotated[float, quantity("s", ge=0.005, le=1.0)] = 0.05
    hil_destructive: StrictBool = False


class FrameLabLimits(DeviceLimits):
    """Lab limits of a frame, tighter than its own: ``max_force`` (N),
    ``max_crosshead_rate`` (mm/min) and ``max_sample_rate`` (Hz), each > 0."""

    max_force: Annotated[float | None, quantity("N", gt=0)] = None
    max_crosshead_rate: Annotated[float | None, quantity("mm/min", gt=0)] = None
    max_sample_rate: Annotated[float | None, quantity("Hz", gt=0)] = None


def parse_quoted(reply: str) -> str:
    """Return a SCPI string reply without its quotes."""
    text = reply.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    raise ValueError(f"not a quoted string: {reply!r}")


HINTED = StandardReadableFormat.HINTED_UNCACHED_SIGNAL
CONFIG = StandardReadableFormat.CONFIG_SIGNAL
NUM = "{:.10g}"
SPEC_DIM = "SPEC:DIM?"
"""The specimen geometry query: gauge length, width, thickness, reduced length, mm."""


class ScpiTestFrame(StandardReadable):
    """A screw-driven universal test frame with load cell, crosshead control and extensometer.

    Readings (read on every ``read``): ``force`` (N), ``position`` (crosshead, mm), ``strain``
    (extensometer, mm/mm). Configuration: sampling rate (Hz), crosshead rate (mm/min),
    strain rate (1/min), control mode, force limit (N), specimen geometry (mm) and identity.
    The whole curve is collected through an HDF5 file referenced by stream documents
    (``kickoff`` / ``complete`` / ``collect``), not one event per sample.

    Parameters
    ----------
    address
        VISA resource, ``TCPIP::host::port::SOCKET``.
    name
        Device name.
    limits
        Lab limits tighter than the frame's: ``max_force`` (N), ``max_crosshead_rate``
        (mm/min), ``max_sample_rate`` (Hz); quantities or strings such as ``"20 kN"``.
    specimen_thickness
        Default specimen thickness, mm (from the lab file), used when a mount request does
        not give one.
    coupon_width
        Width of the lab's coupons, mm (0.5 .. 1000), when known: a mount's ``across``
        position is then checked to lie in 0 .. width, and the specimen's outline (grip
        width, or the reduced section's width) to lie inside it, before a byte is sent.
        ``None`` (default) leaves the ``across`` check to the frame, which knows the
        coupon in the twin.
    coupon_length
        Length of the lab's coupons, mm (0.5 .. 1000), when known: the specimen's outline
        (overall length, or the reduced length) centred at ``position`` must lie in
        0 .. length, so a specimen longer than the coupon is refused before a byte is sent.
    data_dir
        Directory of the curve files (created if missing): the run's output folder (a
        Session passes its ``out_dir``; see :func:`couponlab.lab.make_device`); ``runs``
        in the working directory by default.
    timeout
        Timeout of one exchange, s.
    poll_period
        Wall-clock period of the acquisition loop, s (0.005 .. 1).
    """

    lab_spec: ClassVar[DriverSpec] = DriverSpec(
        family="test_frame",
        settings=FrameSettings,
        limits=FrameLabLimits,
        twin="scpi_test_frame",
        example={"address": "TCPIP::127.0.0.1::5025::SOCKET"},
    )
    """Family, lab-entry models and twin (couponlab.registry)."""
    writes_files = True
    """Writes curve files: :func:`couponlab.lab.make_device` gives it the runs' folder."""
    force: Annotated[ScpiSignalR[float], Scpi("MEAS:FORC?", unit="N", precision=2), HINTED]
    """Load-cell force, N."""
    position: Annotated[ScpiSignalR[float], Scpi("MEAS:POS?", unit="mm", precision=4), HINTED]
    """Crosshead position, mm."""
    strain: Annotated[ScpiSignalR[float], Scpi("MEAS:STR?", unit="mm/mm", precision=6), HINTED]
    """Extensometer strain, mm/mm."""
    sample_rate: Annotated[
        ScpiSignalRW[float],
        Scpi("CONF:SAMP?", "CONF:SAMP", unit="Hz", limits="sample_rate", fmt=NUM),
        CONFIG,
    ]
    """Sampling rate of a test, Hz (the frame's range, capped by the lab's)."""
    crosshead_rate: Annotated[
        ScpiSignalRW[float],
        Scpi("CONF:XRAT?", "CONF:XRAT", unit="mm/min", limits="crosshead_rate", fmt=NUM),
        CONFIG,
    ]
    """Crosshead rate in position control, mm/min."""
    strain_rate: Annotated[
        ScpiSignalRW[float],
        Scpi("CONF:SRAT?", "CONF:SRAT", unit="1/min", limits="strain_rate", fmt=NUM),
        CONFIG,
    ]
    """Strain rate in strain control, 1/min."""
    control_mode: Annotated[ScpiSignalRW[ControlMode], Scpi("CONF:MODE?", "CONF:MODE"), CONFIG]
    """Control mode of a test (``POS`` or ``STR``)."""
    force_limit: Annotated[
        ScpiSignalRW[float],
        Scpi("CONF:FLIM?", "CONF:FLIM", unit="N", limits="force_limit", fmt=NUM),
        CONFIG,
    ]
    """Force at which the frame stops a test, N (1 .. the lab's max_force)."""
    specimen: Annotated[ScpiSignalR[str], Scpi("SPEC?"), CONFIG]
    """Identity of the gripped specimen."""
    specimen_gauge_length: Annotated[
        ScpiSignalR[float], Scpi(field=(SPEC_DIM, 0), unit="mm"), CONFIG
    ]
    """Extensometer gauge length of the mounted specimen, mm (field 0 of ``SPEC:DIM?``)."""
    specimen_width: Annotated[ScpiSignalR[float], Scpi(field=(SPEC_DIM, 1), unit="mm"), CONFIG]
    """Width of the specimen's reduced section, mm (field 1 of ``SPEC:DIM?``)."""
    specimen_thickness: Annotated[ScpiSignalR[float], Scpi(field=(SPEC_DIM, 2), unit="mm"), CONFIG]
    """Thickness of the specimen, mm (field 2 of ``SPEC:DIM?``)."""
    specimen_reduced_length: Annotated[
        ScpiSignalR[float], Scpi(field=(SPEC_DIM, 3), unit="mm"), CONFIG
    ]
    """Length of the specimen's reduced section, mm (field 3 of ``SPEC:DIM?``)."""
    state_text: Annotated[ScpiSignalR[str], Scpi("STAT?")]
    """The frame's state (``IDLE``, ``TEST`` ...)."""
    fault: Annotated[ScpiSignalR[str], Scpi("STAT:FAUL?")]
    """The latched fault (``NONE`` when none)."""
    slips: Annotated[ScpiSignalR[int], Scpi("STAT:SLIP?")]
    """Grip slips counted in the last test."""
    composition: Annotated[ScpiSignalR[str], Scpi("SPEC:COMP?", parse=parse_quoted)]
    """Composition at the specimen site (from the twin; empty from a real frame)."""
    specimen_site: Annotated[ScpiSignalR[str], Scpi("SPEC:POS?")]
    """Where the specimen was cut: ``x`` or ``x,y`` mm."""

    family = "test_frame"
    """Instrument family of this driver (lab-file ``family``)."""
    example_address = "TCPIP::127.0.0.1::5025::SOCKET"
    """The form of address this driver takes."""

    def __init__(
        self,
        address: str,
        name: str = "",
        *,
        limits: dict[str, Any] | None = None,
        specimen_thickness: Any = "2 mm",
        coupon_width: Any = None,
        coupon_length: Any = None,
        data_dir: str | Path | None = None,
        timeout: float = 2.0,
        poll_period: float = 0.05,
    ) -> None:
        self.client = ScpiClient(make_transport(name or "frame", address, timeout=timeout))
        connector = ScpiDeviceConnector(
            self.client, statuses={SPEC_DIM: 4}, on_connect=self._read_limits, clear=True
        )
        self._binding = connector.binding
        self._lab_limits = dict(limits or {})
        self._default_thickness = to_magnitude(
            specimen_thickness, "mm", device=name, what="specimen_thickness", low=0.1, high=20
        )
        self._coupon_width = (
            None
            if coupon_width is None
            else to_magnitude(
                coupon_width, "mm", device=name, what="coupon_width", low=0.5, high=1000.0
            )
        )
        self._coupon_length = (
            None
            if coupon_length is None
            else to_magnitude(
                coupon_length, "mm", device=name, what="coupon_length", low=0.5, high=1000.0
            )
        )
        self._data_dir = Path(data_dir or DEFAULT_OUT_DIR).absolute()
        self._poll_period = to_magnitude(
            poll_period, "s", device=name, what="poll_period", low=0.005, high=1.0
        )
        self._limits: FrameLimits | None = None
        self._fetch_max = 100_000
        self._file: CurveFile | None = None
        self._last_file: Path | None = None
        self._pump: asyncio.Task[None] | None = None
        self._area = 0.0
        self._gauge = 0.0
        self._produced = 0
        super().__init__(name=name, connector=connector)

    # -- construction and connection --------------------------------------------------------
    @classmethod
    def from_lab_entry(cls, entry: DeviceEntry) -> ScpiTestFrame:
        """Build the device from a lab-file entry (:class:`FrameSettings`,
        :class:`FrameLabLimits`)."""
        s = FrameSettings.of(entry)
        return cls(
            entry.address,
            name=entry.name,
            limits=FrameLabLimits.of(entry).model_dump(exclude_none=True),
            specimen_thickness=s.specimen_thickness,
            coupon_width=s.coupon_width,
            coupon_length=s.coupon_length,
            data_dir=s.data_dir,
            timeout=s.timeout_s,
            poll_period=s.poll_period_s,
        )

    @property
    def address(self) -> str:
        """Return the VISA resource the device talks to."""
        return self.client.address

    def set_name(self, name: str, *, child_name_separator: str | None = None) -> None:
        """Name the device (and the link's error messages)."""
        super().set_name(name, child_name_separator=child_name_separator)
        self.client.device = name

    async def _read_limits(self) -> None:
        values = await self.client.query_floats("SYST:LIM?", 11)
        cap, xlo, xhi, slo, shi, flo, fhi, tlo, thi, _buf, fetch = values
        name = self.name
        max_force = cap
        if "max_force" in self._lab_limits:
            max_force = min(
                cap,
                to_magnitude(self._lab_limits["max_force"], "N", device=name, what="max_force"),
            )
        if "max_crosshead_rate" in self._lab_limits:
            xhi = min(
                xhi,
                to_magnitude(
                    self._lab_limits["max_crosshead_rate"], "mm/min", device=name,
                    what="max_crosshead_rate",
                ),
            )  # fmt: skip
        if "max_sample_rate" in self._lab_limits:
            fhi = min(
                fhi,
                to_magnitude(
                    self._lab_limits["max_sample_rate"], "Hz", device=name, what="max_sample_rate"
                ),
            )
        self._limits = FrameLimits(
            capacity_n=cap,
            force_limit_max_n=max_force,
            crosshead_rate_mm_per_min=(xlo, xhi),
            strain_rate_per_min=(slo, shi),
            sample_rate_hz=(flo, fhi),
            travel_mm=(tlo, thi),
        )
        self._fetch_max = int(fetch)
        self._binding.limits.update(
            sample_rate=(flo, fhi),
            crosshead_rate=(xlo, xhi),
            strain_rate=(slo, shi),
            force_limit=(1.0, max_force),
        )
        if max_force < cap:
            await self.client.command(f"CONF:FLIM {_num(max_force)}")

    async def disconnect(self) -> None:
        """Stop acquiring and close the link (the frame itself is left as it is)."""
        await self._stop_pump()
        if self._file is not None:
            self._file.close()
        await self.client.close()

    # -- validation (before a byte is sent) ------------------------------------------------
    def _lim(self) -> FrameLimits:
        if self._limits is None:
            raise InputError(self.name, "not connected: the frame's limits are unknown")
        return self._limits

    def _checked(self, signal: str, value: Any) -> float:
        """Return ``value`` as ``signal`` takes it (unit, the frame's and the lab's limits)."""
        self._lim()
        checked: float = self._binding.check(signal, value)
        return checked

    # -- LabDevice ---------------------------------------------------------------------------
    async def identify(self) -> str:
        """Return ``maker,model,serial,firmware`` from ``*IDN?``."""
        return await self.client.query("*IDN?")

    async def state(self) -> str:
        """Return the frame's state in lower case (``idle``, ``test``, ``fault`` ...)."""
        return (await self.client.query("STAT?")).lower()

    async def safe_state(self) -> None:
        """Stop the crosshead and unload the specimen to near zero force (then hold)."""
        await self.client.command("CTRL:STOP")
        await self.client.command("CTRL:UNL")
        await self._wait_idle(allow_fault=True)

    async def limits(self) -> FrameLimits:
        """Return the frame's and the lab's limits (read at connect)."""
        return self._lim()

    # -- actions -----------------------------------------------------------------------------
    @AsyncStatus.wrap
    async def mount(
        self,
        coupon_id: str,
        position: Any,
        geometry: SpecimenGeometry | None = None,
        *,
        across: Any = None,
        coupon_width: Any = None,
        coupon_length: Any = None,
    ) -> None:
        """Grip a specimen from ``coupon_id`` centred at ``(position, across)`` on the coupon.

        ``position`` is mm along the coupon (x, 0 .. 1000), ``across`` mm across it (y,
        >= 0, at most ``coupon_width`` (this call's, else the lab file's) when known;
        ``None`` is the coupon's centre line and sends the two-argument ``SPEC:LOAD``).
        The gauge length runs along x. With the coupon's length and/or width known (this
        call's, else the lab file's), a specimen whose outline (overall length by grip
        width, :func:`couponlab.specimens.outline_mm`) sticks out of the coupon is refused
        (:class:`~couponlab.specimens.CutPlanError`) before a byte is sent.
        """
        if not isinstance(coupon_id, str) or not _COUPON_ID.match(coupon_id):
            raise InputError(
                self.name,
                f"coupon id {coupon_id!r} must be 1..64 characters without quotes, commas, "
                "semicolons or line breaks",
            )
        x = to_magnitude(position, "mm", device=self.name, what="position", low=0.0, high=1000.0)
        width_of_coupon = self._coupon_width
        if coupon_width is not None:
            width_of_coupon = to_magnitude(
                coupon_width, "mm", device=self.name, what="coupon_width", low=0.5, high=1000.0
            )
        y = (
            None
            if across is None
            else to_magnitude(
                across, "mm", device=self.name, what="across", low=0.0,
                high=1000.0 if width_of_coupon is None else width_of_coupon,
            )
        )  # fmt: skip
        g = geometry or SpecimenGeometry()
        gauge = to_magnitude(g.gauge_length, "mm", device=self.name, what="gauge_length",
                             low=5.0, high=200.0)  # fmt: skip
        width = to_magnitude(g.width, "mm", device=self.name, what="width", low=0.5, high=50.0)
        thick = (
            self._default_thickness
            if g.thickness is None
            else to_magnitude(
                g.thickness, "mm", device=self.name, what="thickness", low=0.1, high=20.0
            )
        )
        reduced = to_magnitude(g.reduced_length, "mm", device=self.name, what="reduced_length",
                               low=gauge, high=400.0)  # fmt: skip
        if g.overall_length is not None:
            to_magnitude(g.overall_length, "mm", device=self.name, what="overall_length",
                         low=reduced, high=1000.0)  # fmt: skip
        if g.grip_width is not None:
            to_magnitude(g.grip_width, "mm", device=self.name, what="grip_width",
                         low=width, high=200.0)  # fmt: skip
        length_of_coupon = self._coupon_length
        if coupon_length is not None:
            length_of_coupon = to_magnitude(
                coupon_length, "mm", device=self.name, what="coupon_length", low=0.5, high=1000.0
            )
        check_inside(self.name, coupon_id, g, x, y, length_of_coupon, width_of_coupon)
        self._lim()
        await self.client.command(
            f"SPEC:DIM {_num(gauge)},{_num(width)},{_num(thick)},{_num(reduced)}"
        )
        site = _num(x) if y is None else f"{_num(x)},{_num(y)}"
        await self.client.command(f'SPEC:LOAD "{coupon_id}",{site}')
        self._area, self._gauge = width * thick, gauge

    @AsyncStatus.wrap
    async def dismount(self) -> None:
        """Take the specimen out of the grips."""
        await self.client.command("SPEC:REM")

    @AsyncStatus.wrap
    async def configure_test(self, settings: TestSettings) -> None:
        """Validate every setting, then send them all with one error check."""
        lim = self._lim()
        n = self.name
        if settings.control not in ("crosshead", "strain"):
            raise InputError(n, f"control = {settings.control!r}: use 'crosshead' or 'strain'")
        mode = "POS" if settings.control == "crosshead" else "STR"
        x = self._checked("crosshead_rate", settings.crosshead_rate)
        s = self._checked("strain_rate", settings.strain_rate)
        hz = self._checked("sample_rate", settings.sample_rate)
        if settings.force_limit is None:
            f = lim.force_limit_max_n
        else:
            f = self._checked("force_limit", settings.force_limit)
        await self.client.command(
            f"CONF:MODE {mode};CONF:XRAT {_num(x)};CONF:SRAT {_num(s)};"
            f"CONF:SAMP {_num(hz)};CONF:FLIM {_num(f)}"
        )

    @AsyncStatus.wrap
    async def preload(self, force: Any) -> None:
        """Pull at the crosshead rate until ``force`` (N) is reached, then hold."""
        f = to_magnitude(
            force, "N", device=self.name, what="preload", low=1.0,
            high=self._lim().force_limit_max_n,
        )  # fmt: skip
        await self.client.command(f"CTRL:PREL {_num(f)}")
        await self._wait_idle()

    @AsyncStatus.wrap
    async def return_home(self) -> None:
        """Move the crosshead back to position 0 at the frame's return rate."""
        await self.client.command("CTRL:RET")
        await self._wait_idle(allow_fault=True)

    @AsyncStatus.wrap
    async def unload(self) -> None:
        """Move in compression until the force is near zero, then hold."""
        await self.client.command("CTRL:UNL")
        await self._wait_idle(allow_fault=True)

    async def reset_fault(self) -> None:
        """Clear a latched fault whose cause is gone (raises if it is still there)."""
        await self.client.command("STAT:RES")

    def stop(self, success: bool = True) -> AsyncStatus[None]:
        """Stop the crosshead and hold; a running test ends (its samples are still read)."""
        return AsyncStatus(self._send("CTRL:STOP"))

    async def _send(self, command: str) -> None:
        await self.client.command(command)

    async def _wait_idle(self, *, allow_fault: bool = False) -> None:
        """Wait until the crosshead has stopped; raise if a fault stopped it (unless allowed)."""
        while True:
            motion = await self.client.query("STAT:MOT?")
            if motion == "IDLE":
                break
            await self.client.sleep_instrument(0.05, low=0.005, high=0.05)
        if not allow_fault:
            fault = await self.client.query("STAT:FAUL?")
            if fault != "NONE":
                raise ProtocolError(self.name, f"frame stopped on fault {fault}")

    # -- flying: the whole curve through an HDF5 file ------------------------------------------
    def _new_file(self) -> CurveFile:
        self._data_dir.mkdir(parents=True, exist_ok=True)
        path = self._data_dir / f"{self.name or 'frame'}-{uuid.uuid4()}.h5"
        return CurveFile(path, self.name)

    @AsyncStatus.wrap
    async def kickoff(self) -> None:
        """Open a new curve file, start the test and the acquisition loop."""
        await self._stop_pump()
        if self._file is not None:
            self._file.close()
        self._file = self._new_file()
        self._last_file = self._file.path
        self._produced = 0
        await self.client.command("CTRL:STAR")
        (_, _, _, rate) = await self.client.query_floats("DATA:STAT?", 4)
        self._pump = asyncio.create_task(self._acquire(self._file, rate), name=f"{self.name}-pump")

    def complete(self) -> AsyncStatus[None]:
        """Finish when the test has ended and every sample it produced is in the file."""

        async def wait() -> None:
            if self._pump is None:
                raise InputError(self.name, "complete() before kickoff()")
            await asyncio.shield(self._pump)

        return AsyncStatus(wait())

    async def _acquire(self, file: CurveFile, rate: float) -> None:
        link = self.client
        try:
            while True:
                acq, total, oldest, _ = await link.query_floats("DATA:STAT?", 4)
                self._produced = int(total)
                if oldest > file.written:
                    raise SamplesLostError(
                        self.name,
                        f"samples {file.written}..{int(oldest) - 1} were overwritten in the "
                        "frame's buffer before they were read",
                    )
                while file.written < total:
                    count = min(self._fetch_max, int(total) - file.written)
                    rows = await link.query_binary_values(
                        f"DATA:FETC? {file.written},{count}", columns=COLUMNS
                    )
                    if len(rows) == 0:
                        break
                    expected = file.written / rate
                    if abs(rows[0, 0] - expected) > 0.5 / rate:
                        raise SamplesLostError(
                            self.name,
                            f"block at sample {file.written} starts at t={rows[0, 0]:.6f} s, "
                            f"expected {expected:.6f} s",
                        )
                    file.append(rows)
                if not acq and file.written >= total:
                    return
                await asyncio.sleep(self._poll_period)
        finally:
            log.debug("%s: acquisition ended with %d samples", self.name, file.written)

    async def _stop_pump(self) -> None:
        pump, self._pump = self._pump, None
        if pump is not None and not pump.done():
            pump.cancel()
        if pump is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump

    async def describe_collect(self) -> dict[str, DataKey]:
        """Return the data keys of the curve stream (external HDF5 datasets, with units)."""
        if self._file is None:
            return {
                f"{self.name}-{n}": DataKey(
                    source="hdf5",
                    shape=[],
                    dtype="number",
                    dtype_numpy="<f8",
                    external="STREAM:",
                    units=u,
                )
                for n, u in FIELDS
            }
        return self._file.describe()

    async def collect_asset_docs(self, index: int | None = None) -> AsyncIterator[StreamAsset]:
        """Yield StreamResource / StreamDatum documents for the rows written so far."""
        if self._file is None:
            return
        for doc in self._file.stream_docs(index):
            yield doc

    async def get_index(self) -> int:
        """Return the number of samples written to the curve file."""
        return self._file.written if self._file is not None else 0

    async def outcome(self) -> TestOutcome:
        """Return how the last test ended and how many samples it produced and wrote."""
        end = await self.client.query("STAT:END?")
        fault = await self.client.query("STAT:FAUL?")
        _, total, _, _ = await self.client.query_floats("DATA:STAT?", 4)
        slips = int(await self.client.query("STAT:SLIP?"))
        written = self._file.written if self._file is not None else 0
        return TestOutcome(end=end, fault=fault, samples=int(total), written=written, slips=slips)

    @property
    def curve_path(self) -> Path | None:
        """Return the file of the last test (None before the first kickoff)."""
        return self._last_file

    def curve(self) -> TensileCurve:
        """Return the last test's samples, read back from its file."""
        if self._last_file is None:
            raise InputError(self.name, "no test has been run")
        cols = read_curve_file(self._last_file)
        return TensileCurve(
            time=cols["time"],
            force=cols["force"],
            position=cols["position"],
            strain=cols["strain"],
            area=self._area,
            gauge_length=self._gauge,
        )


def _num(value: float) -> str:
    return f"{value:.10g}"


__all__ = ["ControlMode", "ScpiTestFrame"]
