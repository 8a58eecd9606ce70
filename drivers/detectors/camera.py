"""ophyd-async driver of the SCPI surface camera (docs/protocols/camera-scpi.md), built on
ophyd-async's ``StandardDetector``: the camera writes its frames to an HDF5 file itself (in
the directory the path provider names; docs/decisions/0030-camera-writes-its-own-hdf5.md)
and the run's documents reference them by StreamResource / StreamDatum, never embedding
pixels in events.

- trigger logic: exposure, period and number of frames (``CONF:EXP``, ``CONF:PER``,
  ``CONF:FRAM``), internal triggering;
- acquire logic: ``ACQ:STAR`` / ``ACQ:STOP``, idle when ``ACQ:STAT?`` says so;
- data logic: ``FILE:PATH`` / ``FILE:NAME`` / ``FILE:OPEN`` at prepare, ``FILE:CLOS`` at
  stop; frames written (``FILE:NUMC?``) drive the stream datum documents. Each frame's
  stage position (x, y in mm) is written beside it and referenced too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from bluesky.protocols import Reading
from event_model import DataKey
from ophyd_async.core import (
    DetectorAcquireLogic,
    DetectorDataLogic,
    DetectorTriggerLogic,
    PathProvider,
    SignalDict,
    SignalR,
    StandardDetector,
    StaticPathProvider,
    StreamableDataProvider,
    StreamResourceDataProvider,
    StreamResourceInfo,
    TriggerInfo,
    UUIDFilenameProvider,
    soft_signal_r_and_setter,
)
from pydantic import field_validator

from couponlab.drivers._scpi_device import ScpiConnector
from couponlab.errors import InputError, OutOfLimitsError, ProtocolError
from couponlab.lab_settings import DeviceLimits, DeviceSettings
from couponlab.labfile import DeviceEntry
from couponlab.registry import DriverSpec
from couponlab.transports import ScpiClient, make_transport
from couponlab.units import to_magnitude

DATA = "/entry/data/data"
X = "/entry/instrument/x"
Y = "/entry/instrument/y"
FRAMES_POLL_S = 0.002
"""How often the number of written frames is polled while a status waits on it, s."""


class _CameraState:
    """What the logics share: the link and static facts read at connect."""

    def __init__(self, link: ScpiClient) -> None:
        self.link = link
        self.shape = (0, 0)
        self.exposure_limits = (0.0, math.inf)
        self.readout = 0.0
        self.name = ""
        self.prepared = False
        """Whether a file is open for a prepared acquisition (its frames are stream keys)."""

    async def frames_written(self) -> int:
        (n,) = await self.link.query_floats("FILE:NUMC?", 1)
        return int(n)


class CameraTriggerLogic(DetectorTriggerLogic):
    """Internal triggering: ``num`` frames of ``livetime`` s, one every livetime + deadtime."""

    def __init__(
        self,
        state: _CameraState,
        exposure: SignalR[float],
        period: SignalR[float],
        record: Callable[[float, float | None], None],
    ):
        self._s = state
        self._exposure = exposure
        self._period = period
        self._record = record

    def config_sigs(self) -> set[SignalR[Any]]:
        """Exposure and period appear in the run's configuration."""
        return {self._exposure, self._period}

    def get_deadtime(self, config_values: SignalDict) -> float:
        """Return the camera's readout time, s."""
        return self._s.readout

    async def prepare_internal(self, num: int, livetime: float, deadtime: float) -> None:
        """Set exposure (0 keeps it), period and frame count, in one exchange each."""
        link = self._s.link
        if livetime:
            lo, hi = self._s.exposure_limits
            to_magnitude(livetime, "s", device=self._s.name, what="exposure", low=lo, high=hi)
            await link.command(f"CONF:EXP {livetime:.9g}")
        (exposure,) = await link.query_floats("CONF:EXP?", 1)
        period = exposure + max(deadtime, self._s.readout)
        await link.command(f"TRIG:SOUR INT;:CONF:PER {period:.9g};:CONF:FRAM {max(num, 1)}")
        self._record(exposure, period)

    async def prepare_edge(self, num: int, livetime: float) -> None:
        """One frame of ``livetime`` s (0 keeps the exposure) per pulse of the stage's
        position-compare output (``TRIG:SOUR EXT``)."""
        link = self._s.link
        if livetime:
            lo, hi = self._s.exposure_limits
            to_magnitude(livetime, "s", device=self._s.name, what="exposure", low=lo, high=hi)
            await link.command(f"CONF:EXP {livetime:.9g}")
        (exposure,) = await link.query_floats("CONF:EXP?", 1)
        await link.command(f"TRIG:SOUR EXT;:CONF:FRAM {max(num, 1)}")
        self._record(exposure, None)

    async def default_trigger_info(self) -> TriggerInfo:
        """One frame at the current exposure."""
        return TriggerInfo()


class CameraAcquireLogic(DetectorAcquireLogic):
    """Start and stop the camera's acquisition."""

    def __init__(self, state: _CameraState) -> None:
        self._s = state

    async def start_acquiring(self) -> None:
        """Start the prepared acquisition."""
        await self._s.link.command("ACQ:STAR")

    async def wait_for_idle(self) -> None:
        """Wait until the camera has taken every frame."""

        async def poll() -> tuple[bool, float, None]:
            state, _, _ = (await self._s.link.query("ACQ:STAT?")).split(",")
            if state == "ERROR":
                err = await self._s.link.query("ACQ:ERR?")
                raise ProtocolError(self._s.name, f"acquisition failed: {err}")
            return state == "IDLE", 0.0, None

        await self._s.link.wait_for(poll, what="acquisition", timeout=60.0)

    async def ensure_stopped(self) -> None:
        """Stop acquiring."""
        await self._s.link.command("ACQ:STOP")


class CameraDataLogic(DetectorDataLogic):
    """The camera writes HDF5; this logic opens/closes the file and describes its datasets."""

    def __init__(
        self, state: _CameraState, path_provider: PathProvider, written: SignalR[int]
    ) -> None:
        self._s = state
        self._paths = path_provider
        self._written = written

    async def prepare_unbounded(self, datakey_name: str) -> StreamableDataProvider:
        """Open a new file for this run's frames and return its stream resources."""
        info = self._paths(datakey_name)
        directory = Path(info.directory_path)  # the camera refuses a directory it lacks
        link = self._s.link
        await link.command("FILE:CLOS")
        await link.command(f'FILE:PATH "{directory}";:FILE:NAME "{info.filename}"')
        await link.command("FILE:OPEN")
        self._s.prepared = True
        h, w = self._s.shape
        frames = StreamResourceInfo(
            data_key=datakey_name,
            shape=(h, w),
            chunk_shape=(1, h, w),
            dtype_numpy=np.dtype("<u2").str,
            parameters={"dataset": DATA},
        )
        positions = [
            StreamResourceInfo(
                data_key=f"{datakey_name}-{axis}",
                shape=(),
                chunk_shape=(1024,),
                dtype_numpy=np.dtype("<f8").str,
                parameters={"dataset": path},
            )
            for axis, path in (("x", X), ("y", Y))
        ]
        return StreamResourceDataProvider(
            uri=f"{info.directory_uri}{info.filename}.h5",
            resources=[frames, *positions],
            mimetype="application/x-hdf5",
            collections_written_signal=self._written,
        )

    def get_hinted_fields(self, datakey_name: str) -> Sequence[str]:
        """The frames are hinted."""
        return [datakey_name]

    async def stop(self) -> None:
        """Close the file."""
        self._s.prepared = False
        await self._s.link.command("FILE:CLOS")


class CameraSettings(DeviceSettings):
    """Settings of a camera: ``data_dir``, an absolute directory that both this process and
    the camera reach (where the camera writes its HDF5 files; when the lab file names none,
    :func:`couponlab.lab.make_device` gives the runs' output folder), and ``timeout_s``."""

    data_dir: str | None = None

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).is_absolute():
            raise ValueError(f"{value!r} must be an absolute path")
        return value


class ScpiCamera(StandardDetector):
    """A surface camera over SCPI whose frames go to HDF5 files referenced by the documents.

    Parameters
    ----------
    address
        ``TCPIP::host::port::SOCKET`` (or ``socket://host:port``).
    path_provider
        Where the camera writes (a directory it can reach, and file names).
    timeout
        Timeout of one exchange, s.
    """

    lab_spec: ClassVar[DriverSpec] = DriverSpec(
        family="camera",
        settings=CameraSettings,
        limits=DeviceLimits,
        twin="scpi_camera",
        example={"address": "TCPIP::127.0.0.1::5025::SOCKET", "settings": {"data_dir": "/tmp"}},
    )
    """Family, lab-entry models and twin (couponlab.registry)."""

    writes_files = True
    """Writes frame files: :func:`couponlab.lab.make_device` gives it the runs' folder as
    ``settings.data_dir`` unless the lab entry names one (a folder the camera reaches)."""

    def __init__(
        self, address: str, path_provider: PathProvider, *, timeout: float = 2.0, name: str = ""
    ) -> None:
        self.client = ScpiClient(make_transport(name or "camera", address, timeout=timeout))
        self._state = _CameraState(self.client)
        self._idn = ""
        self.exposure, self._set_exposure = soft_signal_r_and_setter(float, 0.0, units="s")
        self.period, self._set_period = soft_signal_r_and_setter(float, 0.0, units="s")
        self.frames_written, _ = soft_signal_r_and_setter(
            int, 0, units="frames", getter=self._state.frames_written, poll_period=FRAMES_POLL_S
        )
        self.add_detector_logics(
            CameraTriggerLogic(self._state, self.exposure, self.period, self._record),
            CameraAcquireLogic(self._state),
            CameraDataLogic(self._state, path_provider, self.frames_written),
        )
        super().__init__(name=name, connector=ScpiConnector(self.client, self._on_connect))

    @classmethod
    def from_lab_entry(cls, entry: DeviceEntry) -> ScpiCamera:
        """Build the camera from its lab entry (``settings.data_dir`` required: an absolute
        directory both this process and the camera reach; :func:`couponlab.lab.make_device`
        fills in the runs' output folder when the lab file names none)."""
        s = CameraSettings.of(entry)
        if s.data_dir is None:
            raise InputError(entry.name, "settings.data_dir must be an absolute path, got None")
        provider = StaticPathProvider(UUIDFilenameProvider(), Path(s.data_dir))
        return cls(
            entry.address,
            provider,
            timeout=s.timeout_s,
            name=entry.name,
        )

    def set_name(self, name: str, *, child_name_separator: str | None = None) -> None:
        """Name the device (and the link's error messages)."""
        super().set_name(name, child_name_separator=child_name_separator)
        self.client.device = name
        self._state.name = name

    async def _on_connect(self) -> None:
        self._idn = await self.client.query("*IDN?")
        h, w = await self.client.query_floats("SENS:SIZE?", 2)
        lo, hi = await self.client.query_floats("CONF:EXP:LIM?", 2)
        (readout,) = await self.client.query_floats("CONF:READ?", 1)
        self._state.shape = (int(h), int(w))
        self._state.exposure_limits = (lo, hi)
        self._state.readout = readout
        (exposure,) = await self.client.query_floats("CONF:EXP?", 1)
        (period,) = await self.client.query_floats("CONF:PER?", 1)
        self._record(exposure, period)

    def _record(self, exposure: float, period: float | None) -> None:
        """Put the exposure and period (s) the camera reported into their signals."""
        self._set_exposure(exposure)
        if period is not None:
            self._set_period(period)

    async def describe(self) -> dict[str, DataKey]:
        """Describe the frame count, and the frames' stream keys once prepared."""
        own: dict[str, DataKey] = await self.frames_written.describe()
        if not self._state.prepared:
            return own
        return {**(await super().describe()), **own}

    async def read(self) -> dict[str, Reading[Any]]:
        """Read how many frames the open file holds (the frames are stream assets)."""
        own: dict[str, Reading[Any]] = await self.frames_written.read(cached=False)
        if not self._state.prepared:
            return own
        return {**(await super().read()), **own}

    def frame_shape(self) -> tuple[int, int]:
        """Return (height, width) of a frame, pixels."""
        return self._state.shape

    def check_exposure(self, value: Any, period: float | None = None) -> float:
        """Return ``value`` in s if the camera allows it as an exposure time (and, with
        ``period`` in s, if a frame every ``period`` leaves time for the readout)."""
        lo, hi = self._state.exposure_limits
        exposure = to_magnitude(value, "s", device=self.name, what="exposure", low=lo, high=hi)
        if period is not None and exposure + self._state.readout > period:
            raise OutOfLimitsError(
                self.name, "exposure + readout", exposure + self._state.readout, 0, period, "s"
            )
        return exposure

    async def identify(self) -> str:
        """Return the camera's ``*IDN?``."""
        return self._idn or await self.client.query("*IDN?")

    async def state(self) -> str:
        """Return ``idle``/``acquiring`` and the frames written to the open file."""
        state, _acquired, written = (await self.client.query("ACQ:STAT?")).split(",")
        return f"{'acquiring' if state == 'BUSY' else state.lower()}, {written} frames written"

    async def safe_state(self) -> None:
        """Stop acquiring and close the file (the camera's safe state)."""
        await self.client.command("ACQ:STOP")
        await self.client.command("FILE:CLOS")

    async def disconnect(self) -> None:
        """Close the link."""
        await self.client.close()


__all__ = ["CameraAcquireLogic", "CameraDataLogic", "CameraTriggerLogic", "ScpiCamera"]
