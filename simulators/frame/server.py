"""The frame twin's SCPI-over-TCP server (docs/protocols/frame-scpi.md) and ``start_twin``."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from couponlab.labfile import DeviceEntry
from couponlab.registry import TwinSpec
from couponlab.simulators.frame.model import (
    FrameConfig,
    FrameError,
    FrameModel,
    mechanics_from_world,
)
from couponlab.simulators.line_faults import FamilyFaults, LineFaultTarget
from couponlab.simulators.line_server import LineServer
from couponlab.simulators.scpi import (
    ILLEGAL_PARAMETER,
    MISSING_PARAMETER,
    ScpiDispatcher,
    ScpiError,
    ieee_block,
    parse_float,
)
from couponlab.simulators.world import World

_VISA_SOCKET = re.compile(r"^TCPIP\d*::([^:]+)::(\d+)::SOCKET$", re.IGNORECASE)


class FrameScpi(ScpiDispatcher):
    """SCPI command set of the test frame twin, dispatched onto a :class:`FrameModel`."""

    def __init__(self, model: FrameModel) -> None:
        cfg = model.cfg
        super().__init__(f"couponlab,TF-{cfg.capacity_n / 1000:g}KN,{cfg.serial},1.0")
        self.model = model
        m = model
        reg = self.register

        reg("CONF:SAMP", lambda a: self._do(m.set_sample_rate, parse_float(a, 0, "rate")))
        reg("CONF:SAMP?", lambda a: f"{m.sample_rate:g}")
        reg("CONF:XRAT", lambda a: self._do(m.set_crosshead_rate, parse_float(a, 0, "rate")))
        reg("CONF:XRAT?", lambda a: f"{m.crosshead_rate:g}")
        reg("CONF:SRAT", lambda a: self._do(m.set_strain_rate, parse_float(a, 0, "rate")))
        reg("CONF:SRAT?", lambda a: f"{m.strain_rate:g}")
        reg("CONF:MODE", lambda a: self._do(m.set_control, _word(a, 0, "mode")))
        reg("CONF:MODE?", lambda a: m.control.value)
        reg("CONF:FLIM", lambda a: self._do(m.set_force_limit, parse_float(a, 0, "limit")))
        reg("CONF:FLIM?", lambda a: f"{m.force_limit:g}")
        reg(
            "CONF:TRAV",
            lambda a: self._do(m.set_travel, parse_float(a, 0, "low"), parse_float(a, 1, "high")),
        )
        reg("CONF:TRAV?", lambda a: f"{m.travel_low:g},{m.travel_high:g}")
        reg(
            "SPEC:DIM",
            lambda a: self._do(
                m.set_geometry,
                parse_float(a, 0, "gauge"),
                parse_float(a, 1, "width"),
                parse_float(a, 2, "thickness"),
                parse_float(a, 3, "reduced"),
            ),
        )
        reg(
            "SPEC:DIM?",
            lambda a: f"{m.gauge_length:g},{m.width:g},{m.thickness:g},{m.reduced_length:g}",
        )
        reg(
            "SPEC:LOAD",
            lambda a: self._do(
                m.mount,
                _quoted(a, 0),
                parse_float(a, 1, "x"),
                parse_float(a, 2, "y") if len(a) > 2 else None,
            ),
        )
        reg("SPEC:REM", lambda a: self._do(m.remove))
        reg("SPEC?", lambda a: self._specimen())
        reg("SPEC:POS?", lambda a: self._specimen_position())
        reg("SPEC:COMP?", lambda a: f'"{m.composition_text()}"')
        reg("CTRL:STAR", lambda a: self._do(m.start_test))
        reg("CTRL:STOP", lambda a: self._do(m.stop))
        reg("CTRL:RET", lambda a: self._do(m.return_home))
        reg("CTRL:UNL", lambda a: self._do(m.unload))
        reg("CTRL:PREL", lambda a: self._do(m.preload, parse_float(a, 0, "force")))
        reg("CTRL:MOVE", lambda a: self._do(m.move_to, parse_float(a, 0, "position")))
        reg("STAT?", lambda a: m.state_name())
        reg("STAT:MOT?", lambda a: m.mode.value)
        reg("STAT:FAUL?", lambda a: m.fault.value)
        reg("STAT:END?", lambda a: m.end_reason)
        reg("STAT:SLIP?", lambda a: str(m.slips))
        reg("STAT:RES", lambda a: self._do(m.reset_fault))
        reg("MEAS:FORC?", lambda a: f"{m.last[1]:.6g}")
        reg("MEAS:POS?", lambda a: f"{m.last[2]:.6g}")
        reg("MEAS:STR?", lambda a: f"{m.last[3]:.6g}")
        reg("MEAS:ALL?", lambda a: ",".join(f"{v:.6g}" for v in m.last[1:]))
        reg("DATA:STAT?", lambda a: self._data_status())
        reg("DATA:FETC?", lambda a: self._fetch(a))
        reg("DATA:CAP?", lambda a: str(m.cfg.buffer_samples))
        reg("SYST:LIM?", lambda a: self._limits())
        reg("SYST:TIME?", lambda a: f"{m.world.now:.6f}")
        reg("SYST:CLOC:RATE?", lambda a: f"{m.world.speedup:g}")

    def reset(self) -> None:
        """Handle ``*RST``: stop the crosshead, end a test, restore default settings."""
        self.model.stop()
        self.model.reset()

    @staticmethod
    def _do(fn: Callable[..., None], *args: object) -> None:
        try:
            fn(*args)
        except FrameError as exc:
            raise ScpiError(exc.code, exc.message) from None

    def _specimen(self) -> str:
        spec = self.model.specimen
        if spec is None:
            return '"",0,NONE'
        state = "BROKEN" if spec.fractured else "INTACT"
        return f'"{spec.coupon_id}",{spec.x_mm:g},{state}'

    def _specimen_position(self) -> str:
        spec = self.model.specimen
        if spec is None:
            return "NAN,NAN"
        y = "NAN" if spec.y_mm is None else f"{spec.y_mm:g}"
        return f"{spec.x_mm:g},{y}"

    def _data_status(self) -> str:
        m = self.model
        oldest = max(0, m.produced - m.cfg.buffer_samples)
        return f"{int(m.acquiring)},{m.produced},{oldest},{m.sample_rate:g}"

    def _fetch(self, args: list[str]) -> bytes:
        start = _int(args, 0, "start")
        count = _int(args, 1, "count")
        try:
            rows = self.model.fetch(start, count)
        except FrameError as exc:
            raise ScpiError(exc.code, exc.message) from None
        return ieee_block(np.ascontiguousarray(rows, dtype="<f8").tobytes())

    def _limits(self) -> str:
        c = self.model.cfg
        values = (
            c.capacity_n,
            c.crosshead_rate_min_mm_per_min,
            c.crosshead_rate_max_mm_per_min,
            c.strain_rate_min_per_min,
            c.strain_rate_max_per_min,
            c.sample_rate_min_hz,
            c.sample_rate_max_hz,
            c.travel_min_mm,
            c.travel_max_mm,
            c.buffer_samples,
            c.fetch_max_samples,
        )
        return ",".join(f"{v:g}" for v in values)


def _word(args: list[str], index: int, name: str) -> str:
    if index >= len(args) or not args[index]:
        raise ScpiError(MISSING_PARAMETER, f"Missing parameter; {name}")
    return args[index]


def _quoted(args: list[str], index: int) -> str:
    text = _word(args, index, "coupon")
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        raise ScpiError(ILLEGAL_PARAMETER, "Illegal parameter value; expected a quoted string")
    return text[1:-1]


def _int(args: list[str], index: int, name: str) -> int:
    if index >= len(args):
        raise ScpiError(MISSING_PARAMETER, f"Missing parameter; {name}")
    try:
        return int(args[index])
    except ValueError:
        raise ScpiError(
            ILLEGAL_PARAMETER, f"Illegal parameter value; {name}={args[index]}"
        ) from None


@dataclass
class FrameTwin:
    """A running frame twin: its model, SCPI dispatcher and server."""

    model: FrameModel
    scpi: FrameScpi
    server: LineServer
    host: str

    @property
    def address(self) -> str:
        """Return the VISA resource a driver opens (``TCPIP::host::port::SOCKET``)."""
        return f"TCPIP::{self.host}::{self.server.port}::SOCKET"

    async def stop(self) -> None:
        """Stop serving and end the twin's SimPy process (and its faults)."""
        self.model.world.faults.unregister(self.model.name)
        self.model.stop_process()
        await self.server.stop()


def parse_address(address: str) -> tuple[str, int]:
    """Return ``(host, port)`` of a ``TCPIP::host::port::SOCKET`` resource name."""
    match = _VISA_SOCKET.match(address.strip())
    if match is None:
        raise ValueError(f"frame address {address!r} is not TCPIP::host::port::SOCKET")
    return match.group(1), int(match.group(2))


def frame_faults(model: FrameModel) -> FamilyFaults:
    """The frame's own faults: ``jam`` is a stuck crosshead (fault ``STUCK`` latched, the
    test ends ``FAULT``, motion refused with -240 until the fault ends and ``STAT:RES``).
    Power loss stops the crosshead and ends a test (``*RST``)."""
    return FamilyFaults(
        jam=(lambda f: model.jam(True), lambda f: model.jam(False)), power_off=model.stop
    )


async def start_twin(world: World, entry: DeviceEntry) -> FrameTwin:
    """Start the frame twin for ``entry`` (its address names the port; 0 picks a free one)."""
    host, port = parse_address(entry.address)
    config = FrameConfig.model_validate(entry.twin_config)
    model = FrameModel(world, config, mechanics_from_world(world), name=entry.name)
    scpi = FrameScpi(model)
    server = LineServer(world, scpi.handle, host=host, port=port)
    await server.start()
    target = LineFaultTarget(server.faults, server.drop_clients_now, scpi, frame_faults(model))
    world.faults.register(entry.name, target)
    return FrameTwin(model, scpi, server, host)


TWIN = TwinSpec(start_twin, FrameConfig, ("TCPIP",))
"""The frame twin, as the ``couponlab.twins`` entry point names it."""


__all__ = ["TWIN", "FrameScpi", "FrameTwin", "parse_address", "start_twin"]
