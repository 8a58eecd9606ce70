"""Twin of the surface camera: 2-D frames (default 1024 x 1024, 16-bit) of the coupon under
the stage, written by the camera itself to an HDF5 file on a path the driver sets, as an
area detector's file plugin does (docs/decisions/0030-camera-writes-its-own-hdf5.md,
protocol: docs/protocols/camera-scpi.md).

A frame images a field of view centred on the stage position. Its intensity follows the
oxide thickness (thin-film interference: ``0.5 + 0.4 cos(4 pi n t / lambda)``) and the
composition (brighter with more Cr), on the holder's dark background off the coupon; noise
is added from a bank of pre-drawn noise frames (a twin simplification that keeps a frame's
cost near a memory copy, so the file path, not the noise, sets the frame rate).

File layout: ``/entry/data/data`` (N, H, W) uint16, ``/entry/instrument/x`` and ``/y``
(N,) float64 stage position (mm) at each frame's mid-exposure, ``/entry/instrument/time``
(N,) float64 instrument time (s).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from pathlib import Path
from typing import Annotated, Any

import h5py
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from couponlab.data import DEFAULT_OUT_DIR
from couponlab.lab_settings import DeviceRef
from couponlab.labfile import DeviceEntry
from couponlab.registry import TwinSpec
from couponlab.simulators.detectors._acquisition import StageLike
from couponlab.simulators.detectors._opc_server import OpcDispatcher
from couponlab.simulators.detectors._scpi_twin import ScpiTwin, load_config, quoted
from couponlab.simulators.scpi import (
    DATA_OUT_OF_RANGE,
    EXECUTION_ERROR,
    ILLEGAL_PARAMETER,
    SETTINGS_CONFLICT,
    ScpiError,
    ieee_block,
    parse_float,
)
from couponlab.simulators.world import World

log = logging.getLogger(__name__)

DATA = "/entry/data/data"
X = "/entry/instrument/x"
Y = "/entry/instrument/y"
TIME = "/entry/instrument/time"
MAX_FRAMES = 1_000_000
FLUSH_S = 0.01
"""Longest wall time between flushes while acquiring (the last frame is flushed at once)."""


RENDER_BLOCKS = 256
"""A frame is rendered as at most this many blocks across (each block one value)."""


class CameraConfig(BaseModel):
    """Parameters of the camera twin (``twin_config``); defaults are *typical*."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stage: Annotated[str, DeviceRef("xy_stage")] = ""
    """Device name of the stage the camera rides on ("" = a fixed, empty view)."""
    idn: str = "couponlab,CAM-1M,SIM0005,1.0"
    height: int = Field(default=1024, ge=8, le=8192)
    width: int = Field(default=1024, ge=8, le=8192)
    pixel_size_um: float = Field(default=10.0, gt=0)
    """Size of a pixel on the coupon, um (1024 px of 10 um: a 10.24 mm field of view)."""
    exposure_range_s: tuple[float, float] = (1e-5, 10.0)
    readout_s: float = Field(default=1e-4, ge=0)
    """Minimum gap between exposures, s."""
    default_exposure_s: float = Field(default=0.01, gt=0)
    full_well: int = Field(default=60000, ge=1000, le=64000)
    noise_frames: int = Field(default=8, ge=1, le=64)
    noise_counts: int = Field(default=400, ge=0, le=2000)
    """Peak-to-peak span of the additive noise, counts."""
    data_root: str | None = None
    """Absolute folder the camera may write under (``FILE:PATH`` outside it, after resolving
    ``..`` and symbolic links, is refused with -222). None: :func:`default_data_root` (the
    lab entry's ``settings.data_dir``, else ``runs/`` in the twin's working folder); never
    "anywhere" (docs/security.md)."""

    @field_validator("data_root")
    @classmethod
    def _absolute_root(cls, v: str | None) -> str | None:
        if v is not None and not Path(v).is_absolute():
            raise ValueError(f"data_root must be an absolute folder, got {v!r}")
        return v


def default_data_root(entry: DeviceEntry | None = None) -> str:
    """Return the data root of a camera twin whose ``twin_config`` names none: the folder
    its lab entry's ``settings.data_dir`` names (where the lab's driver puts frames; a
    Session fills in its output folder), else ``runs/`` in the working folder (the drivers'
    default output folder), as an absolute path."""
    named = entry.settings.get("data_dir") if entry is not None else None
    folder = Path(named) if isinstance(named, str) and named else Path(DEFAULT_OUT_DIR)
    return str(folder.absolute())


def check_under_root(directory: str, root: str) -> None:
    """Refuse (SCPI -222) a ``directory`` that is not under ``root`` once ``..`` and symbolic
    links are resolved."""
    path = Path(directory)
    if not path.is_absolute() or not path.resolve().is_relative_to(Path(root).resolve()):
        raise ScpiError(
            DATA_OUT_OF_RANGE,
            f"Data out of range; {directory!r} is outside the data root {root!r}",
        )


class CameraModel:
    """Acquisition state, frame synthesis and the HDF5 writer (twins' thread only)."""

    def __init__(self, world: World, config: CameraConfig, device: str = "camera") -> None:
        self.world = world
        self.config = config
        self.data_root = config.data_root or default_data_root()
        """The folder every file is written under (absolute)."""
        self.rng = world.rng_for(device)
        self.exposure = config.default_exposure_s
        self.period = config.default_exposure_s + config.readout_s
        self.frames = 1
        self.trigger_source = "INT"
        """``INT``: frames every period from ACQ:STAR; ``EXT``: one frame per pulse of the
        stage's position-compare output after ACQ:STAR."""
        self.missed = 0
        self.directory = ""
        self.name = ""
        self.file: h5py.File | None = None
        self.full_name = ""
        self.written = 0
        self.acquired = 0
        self.task: asyncio.Task[None] | None = None
        self.error = ""
        self._pending: list[tuple[float, float, float]] = []
        self._flushed_at = 0.0
        h, w = config.height, config.width
        rng = self.rng
        self.noise = rng.integers(
            0, config.noise_counts + 1, size=(config.noise_frames, h, w), dtype=np.uint16
        )
        self._base_key: tuple[float, float, str] | None = None
        self._base = np.zeros((h, w), dtype=np.uint16)
        self.last = np.zeros((h, w), dtype=np.uint16)

    # -- synthesis -------------------------------------------------------------------------
    def _stage(self) -> StageLike | None:
        if not self.config.stage:
            return None
        model = self.world.instruments.get(self.config.stage)
        return model if hasattr(model, "position_at") else None  # type: ignore[return-value]

    def base_image(self, x: float, y: float, coupon_id: str, coupon: Any) -> np.ndarray[Any, Any]:
        """Return the noiseless image (uint16) centred on work position (x, y) mm."""
        key = (round(x, 4), round(y, 4), coupon_id)
        if key == self._base_key:
            return self._base
        cfg = self.config
        px = cfg.pixel_size_um * 1e-3
        # render blocks of `step` x `step` pixels (about 256 x 256 of them): the coupon's maps
        # are smooth on that scale, and a frame then costs milliseconds of the twin's loop
        step = max(1, math.ceil(max(cfg.width, cfg.height) / RENDER_BLOCKS))
        u = x + (np.arange(0, cfg.width, step) + (step - 1) / 2 - (cfg.width - 1) / 2) * px
        v = y + (np.arange(0, cfg.height, step) + (step - 1) / 2 - (cfg.height - 1) / 2) * px
        dark = 0.05
        if coupon is not None:
            # the coupon's 2-D maps (composition graded across y, oxide along x and y)
            uc, vc = np.clip(u, 0, coupon.length_mm), np.clip(v, 0, coupon.width_mm)
            on = ((u >= 0) & (u <= coupon.length_mm))[None, :] & (
                (v >= 0) & (v <= coupon.width_mm)
            )[:, None]
            t = coupon.oxide_thickness_grid(uc, vc)
            comp = coupon.composition_grid(uc, vc)
            cr = comp["Cr"] if "Cr" in comp else np.zeros_like(t)
            fringe = 0.5 + 0.4 * np.cos(4 * math.pi * 2.2 * t / 550e-9)
            field = np.where(on, fringe * (0.8 + 0.4 * cr), dark)
        else:
            field = np.full((v.size, u.size), dark)
        scale = cfg.full_well - cfg.noise_counts
        img = np.repeat(np.repeat(field * scale, step, axis=0), step, axis=1)
        img = img[: cfg.height, : cfg.width]
        self._base = np.clip(img, 0, scale).astype(np.uint16)
        self._base_key = key
        return self._base

    def frame(self, t: float) -> tuple[np.ndarray[Any, Any], float, float]:
        """Return (frame, x, y): the image at instrument time ``t`` and where the stage was."""
        stage = self._stage()
        if stage is None:
            x = y = math.nan
            base = self.base_image(0.0, 0.0, "", None)
        else:
            x, y = stage.position_at(t)
            coupon = stage.coupon()
            base = self.base_image(x, y, coupon.coupon_id if coupon else "", coupon)
        k = int(self.rng.integers(self.config.noise_frames))
        np.add(base, self.noise[k], out=self.last)
        return self.last, x, y

    # -- file --------------------------------------------------------------------------------
    def open_file(self) -> None:
        """Create the HDF5 file ``<directory>/<name>.h5`` with empty datasets."""
        if self.file is not None:
            raise ScpiError(SETTINGS_CONFLICT, "Settings conflict; a file is already open")
        directory = Path(self.directory)
        if not self.directory or not directory.is_absolute() or not directory.is_dir():
            raise ScpiError(EXECUTION_ERROR, f"Execution error; no directory {self.directory!r}")
        if not self.name:
            raise ScpiError(EXECUTION_ERROR, "Execution error; no file name set")
        check_under_root(self.directory, self.data_root)  # a link changed since PATH
        path = directory / f"{self.name}.h5"
        h, w = self.config.height, self.config.width
        try:
            f = h5py.File(path, "x", libver="latest")
        except OSError as exc:
            raise ScpiError(
                EXECUTION_ERROR, f"Execution error; cannot create {path}: {exc}"
            ) from exc
        f.create_dataset(DATA, (0, h, w), maxshape=(None, h, w), chunks=(1, h, w), dtype="<u2")
        for name in (X, Y, TIME):
            f.create_dataset(name, (0,), maxshape=(None,), chunks=(1024,), dtype="<f8")
        f.swmr_mode = True
        self.file = f
        self.full_name = str(path)
        self.written = 0

    def close_file(self) -> None:
        """Stop acquiring and close the file."""
        self.stop()
        if self.file is not None:
            with contextlib.suppress(Exception):
                self._flush()
                self.file.close()
        self._pending.clear()
        self.file = None

    def _write(self, frame: np.ndarray[Any, Any], t: float, x: float, y: float) -> None:
        """Write one frame's chunk (the positions wait for the next flush)."""
        f = self.file
        assert f is not None
        n = self.written + len(self._pending)
        data = f[DATA]
        data.resize(n + 1, axis=0)
        data.id.write_direct_chunk((n, 0, 0), frame)
        self._pending.append((x, y, t))

    def _flush(self) -> None:
        """Write the pending positions and flush (SWMR): frames become readable, counted."""
        f = self.file
        if f is None or not self._pending:
            return
        n0, rows = self.written, np.asarray(self._pending, dtype="<f8")
        n1 = n0 + rows.shape[0]
        for col, name in enumerate((X, Y, TIME)):
            ds = f[name]
            ds.resize(n1, axis=0)
            ds[n0:n1] = rows[:, col]
            ds.flush()
        f[DATA].flush()
        self._pending.clear()
        self.written = n1
        self._flushed_at = time.monotonic()

    # -- acquisition -------------------------------------------------------------------------
    def start(self) -> None:
        """Start taking ``frames`` frames, one every ``period`` s, into the open file."""
        if self.file is None:
            raise ScpiError(SETTINGS_CONFLICT, "Settings conflict; open a file first")
        if self.task is not None and not self.task.done():
            raise ScpiError(SETTINGS_CONFLICT, "Settings conflict; already acquiring")
        self.acquired = 0
        self.missed = 0
        self.error = ""
        if self.trigger_source == "EXT" and self._stage() is None:
            raise ScpiError(SETTINGS_CONFLICT, "Settings conflict; no stage wired for EXT")
        acquire = self._acquire_ext if self.trigger_source == "EXT" else self._acquire
        self.task = asyncio.get_running_loop().create_task(acquire(self.world.now))

    def stop(self) -> None:
        """Stop acquiring (frames already written stay)."""
        if self.task is not None:
            self.task.cancel()
            self.task = None

    def busy(self) -> bool:
        """Return whether frames are being taken."""
        return self.task is not None and not self.task.done()

    async def _wait_until(self, due: float) -> None:
        while True:
            self.world.sync()
            left = (due - self.world.now) / self.world.speedup
            if left <= 0:
                return
            await asyncio.sleep(left if left > 1e-3 else 0)

    def _take(self, k: int, start: float) -> None:
        frame, x, y = self.frame(start + self.exposure / 2)
        self.acquired = k + 1
        self._write(frame, start + self.exposure / 2, x, y)
        if k == self.frames - 1 or time.monotonic() - self._flushed_at > FLUSH_S:
            self._flush()

    async def _acquire_ext(self, armed: float) -> None:
        """One frame per stage pulse after ``armed``; pulses during an exposure or readout
        are missed (counted in ``missed``)."""
        stage = self._stage()
        assert stage is not None
        busy_until = -math.inf
        k = 0
        seen = 0
        try:
            while k < self.frames:
                pulses = stage.pulse_times(armed) if hasattr(stage, "pulse_times") else []
                if seen >= len(pulses):
                    await asyncio.sleep(1e-3)
                    self.world.sync()
                    continue
                start = pulses[seen]
                seen += 1
                if start < busy_until:
                    self.missed += 1
                    continue
                await self._wait_until(start + self.exposure)
                self._take(k, start)
                busy_until = start + self.exposure + self.config.readout_s
                k += 1
                await asyncio.sleep(0)
        except (OSError, ValueError, RuntimeError) as exc:
            self.error = str(exc)
            log.error("camera acquisition failed: %s", exc)

    async def _acquire(self, t0: float) -> None:
        try:
            for k in range(self.frames):
                start = t0 + k * self.period
                await self._wait_until(start + self.exposure)
                self._take(k, start)
                if self.written == k + 1:
                    await asyncio.sleep(0)  # flushed: let the other twins (and the driver) in
        except (OSError, ValueError, RuntimeError) as exc:
            self.error = str(exc)
            log.error("camera acquisition failed: %s", exc)


def make_dispatcher(model: CameraModel) -> OpcDispatcher:
    """Build the camera's command set."""
    cfg = model.config

    def pending() -> float:
        if not model.busy():
            return 0.0
        return max(1e-9, (model.frames - model.written) * model.period)

    d = OpcDispatcher(cfg.idn, model.world, pending)

    def set_exposure(args: list[str]) -> None:
        v = parse_float(args, 0, "exposure")
        lo, hi = cfg.exposure_range_s
        if not lo <= v <= hi:
            raise ScpiError(
                DATA_OUT_OF_RANGE, f"Data out of range; exposure {v:g} not in [{lo:g},{hi:g}]"
            )
        model.exposure = v
        model.period = max(model.period, v + cfg.readout_s)

    def set_period(args: list[str]) -> None:
        v = parse_float(args, 0, "period")
        low = model.exposure + cfg.readout_s
        if not low - 1e-12 <= v <= 3600:
            raise ScpiError(DATA_OUT_OF_RANGE, f"Data out of range; period {v:g} below {low:g}")
        model.period = v

    def set_frames(args: list[str]) -> None:
        v = parse_float(args, 0, "frames")
        if v != int(v) or not 1 <= v <= MAX_FRAMES:
            raise ScpiError(DATA_OUT_OF_RANGE, f"Data out of range; frames {v:g}")
        model.frames = int(v)

    def set_path(args: list[str]) -> None:
        if model.file is not None:
            raise ScpiError(SETTINGS_CONFLICT, "Settings conflict; close the file first")
        directory = quoted(args[0]) if args else ""
        if directory:
            check_under_root(directory, model.data_root)
        model.directory = directory

    def set_name(args: list[str]) -> None:
        if model.file is not None:
            raise ScpiError(SETTINGS_CONFLICT, "Settings conflict; close the file first")
        name = quoted(args[0]) if args else ""
        if not name or "/" in name or name.startswith("."):
            raise ScpiError(DATA_OUT_OF_RANGE, f"Data out of range; file name {name!r}")
        model.name = name

    def status() -> str:
        state = "ERROR" if model.error else "BUSY" if model.busy() else "IDLE"
        return f"{state},{model.acquired},{model.written}"

    d.register("CONF:EXP", set_exposure)
    d.register("CONF:EXP?", lambda a: f"{model.exposure:g}")
    d.register("CONF:EXP:LIM?", lambda a: "{:g},{:g}".format(*cfg.exposure_range_s))
    d.register("CONF:PER", set_period)
    d.register("CONF:PER?", lambda a: f"{model.period:g}")
    d.register("CONF:READ?", lambda a: f"{cfg.readout_s:g}")

    def set_source(args: list[str]) -> None:
        if model.busy():
            raise ScpiError(SETTINGS_CONFLICT, "Settings conflict; acquiring")
        if len(args) != 1 or args[0].upper() not in ("INT", "EXT"):
            raise ScpiError(ILLEGAL_PARAMETER, "Illegal parameter value; TRIG:SOUR INT|EXT")
        model.trigger_source = args[0].upper()

    d.register("TRIG:SOUR", set_source)
    d.register("TRIG:SOUR?", lambda a: model.trigger_source)
    d.register("TRIG:MISS?", lambda a: str(model.missed))
    d.register("CONF:FRAM", set_frames)
    d.register("CONF:FRAM?", lambda a: str(model.frames))
    d.register("SENS:SIZE?", lambda a: f"{cfg.height},{cfg.width}")
    d.register("SENS:PIX?", lambda a: f"{cfg.pixel_size_um:g}")
    d.register("FILE:PATH", set_path)
    d.register("FILE:NAME", set_name)
    d.register("FILE:OPEN", lambda a: model.open_file())
    d.register("FILE:CLOS", lambda a: model.close_file())
    d.register("FILE:FULL?", lambda a: f'"{model.full_name}"')
    d.register("FILE:NUMC?", lambda a: str(model.written))
    d.register("ACQ:STAR", lambda a: model.start())
    d.register("ACQ:STOP", lambda a: model.stop())
    d.register("ACQ:STAT?", lambda a: status())
    d.register("ACQ:ERR?", lambda a: f'"{model.error}"')
    d.register("FRAM:DATA?", lambda a: ieee_block(model.last.astype("<u2").tobytes()))

    def reset() -> None:
        model.close_file()
        model.exposure = cfg.default_exposure_s
        model.period = cfg.default_exposure_s + cfg.readout_s
        model.frames = 1
        model.trigger_source = "INT"

    d.reset = reset  # type: ignore[method-assign]
    return d


class CameraTwin(ScpiTwin):
    """The camera twin: closes its file when stopped."""

    model: CameraModel

    async def stop(self) -> None:
        """Stop acquiring, close the file and stop serving."""
        self.model.close_file()
        await super().stop()


async def start_twin(world: World, entry: DeviceEntry) -> ScpiTwin:
    """Start the camera twin of ``entry`` (``twin_config.stage`` names its stage; it writes
    under ``twin_config.data_root``, else :func:`default_data_root` of ``entry``)."""
    config = load_config(CameraConfig, entry)
    if config.data_root is None:
        config = config.model_copy(update={"data_root": default_data_root(entry)})
    model = CameraModel(world, config, entry.name)
    twin = CameraTwin(world, entry, make_dispatcher(model), model)
    await twin.start()
    return twin


TWIN = TwinSpec(start_twin, CameraConfig, ("TCPIP", "socket"))
"""The camera twin, as the ``couponlab.twins`` entry point names it."""


__all__ = [
    "TWIN",
    "CameraConfig",
    "CameraModel",
    "CameraTwin",
    "default_data_root",
    "make_dispatcher",
    "start_twin",
]
