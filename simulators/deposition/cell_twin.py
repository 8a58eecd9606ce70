"""The deposition-cell twin: :class:`CellModel` served over the cell's ASCII serial protocol
(docs/protocols/deposition-cell-serial.md) on TCP, reached by pyserial as
``socket://host:port``."""

from __future__ import annotations

import re

import numpy as np

from couponlab.labfile import DeviceEntry
from couponlab.registry import TwinSpec
from couponlab.simulators.deposition.cell_model import (
    CellConfig,
    CellModel,
    PrintProgram,
    TrackProgram,
)
from couponlab.simulators.deposition.feeder_twin import (
    SocketTwin,
    WatchedDispatcher,
    parse_socket_address,
)
from couponlab.simulators.deposition.line_watchdog import LineWatchdog
from couponlab.simulators.scpi import (
    DATA_OUT_OF_RANGE,
    EXECUTION_ERROR,
    ILLEGAL_PARAMETER,
    MISSING_PARAMETER,
    SETTINGS_CONFLICT,
    ScpiError,
    parse_float,
)
from couponlab.simulators.world import Coupon, World

COUPON_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,39}$")
"""Coupon ids the cell accepts: 1-40 characters, letters, digits, ``_.-``."""


def _fmt(x: float) -> str:
    return f"{x:.4f}"


def _in(value: float, low: float, high: float, what: str, unit: str) -> float:
    if not low <= value <= high:
        raise ScpiError(
            DATA_OUT_OF_RANGE,
            f"Data out of range; {what}={value:g} (allowed {low:g}..{high:g} {unit})",
        )
    return value


class CellProtocol(WatchedDispatcher):
    """The cell's command set on top of the SCPI-style dispatcher (error queue, ``;``)."""

    def __init__(self, model: CellModel) -> None:
        c = model.config
        super().__init__(f"{c.manufacturer},{c.model},{c.serial_number},{c.firmware_version}")
        self.model = model
        reg = self.register
        reg("LIM?", lambda a: self._limits())
        reg("LIM:TRK?", lambda a: self._track_limits())
        reg("STAT?", lambda a: self._status())
        reg("STAT:EXT?", lambda a: self._status_ext())
        reg("LAS", self._laser)
        reg("LAS?", lambda a: "1" if model.laser_on else "0")
        reg("LAS:POW", self._power)
        reg("LAS:POW?", lambda a: _fmt(model.power))
        reg("SHLD:FLOW", self._shield)
        reg("SHLD:FLOW?", lambda a: _fmt(model.shield_flow))
        reg("MOT:SPD", self._speed)
        reg("MOT:SPD?", lambda a: _fmt(model.speed))
        reg("MOT:MOVE", self._move)
        reg("MOT:POS?", lambda a: _fmt(model.x))
        reg("MOT:POS:Y?", lambda a: _fmt(model.y))
        reg("COUP", self._coupon)
        reg("COUP?", lambda a: model.coupon_id)
        reg("PRNT:CHAN?", lambda a: ",".join(f"{f}:{i}" for f, i in model.channels()))
        reg("PRNT:CLR", lambda a: self._clear())
        reg("PRNT:PATH", self._path)
        reg("PRNT:PT", self._point)
        reg("PRNT:TRK", self._track)
        reg("PRNT:TRK:COUN?", lambda a: str(len(model.program.tracks)))
        reg("PRNT:COUN?", lambda a: str(model.program.point_count()))
        reg("PRNT:STRT", lambda a: self._start())
        reg("PRNT:STAT?", lambda a: model.print_state)
        reg("PRNT:REAS?", lambda a: model.reason)
        reg("PRNT:ABOR", lambda a: model.stop("print aborted by command"))
        reg("STOP", lambda a: model.stop())
        reg("SIM:MAP:ELEM?", lambda a: ",".join(sorted(self._coupon_map())))
        reg("SIM:MAP:X?", lambda a: self._map_x())
        reg("SIM:MAP:Y?", lambda a: self._map_y())
        reg("SIM:MAP?", self._map)
        reg("SIM:MAP:XY?", self._map_xy)
        self.watchdog = LineWatchdog(
            model.world, self, lambda: model.active, model.stop, model.config.watchdog_timeout_s
        )
        """Communication watchdog (``SYST:WDOG``); every line feeds it."""

    def handle(self, line: str) -> str | bytes | None:
        """Feed the watchdog, then handle the line."""
        self.watchdog.feed()
        return super().handle(line)

    def reset(self) -> None:
        """``*RST``: the safe state (laser off, axis stopped, feeders off), program cleared."""
        self.model.stop("reset")
        self._clear()

    def _limits(self) -> str:
        c = self.model.config
        return (
            ",".join(
                _fmt(v)
                for v in (
                    c.max_power_w,
                    c.max_speed_mm_s,
                    c.min_shield_l_min,
                    c.max_shield_l_min,
                    c.x_min_mm,
                    c.x_max_mm,
                )
            )
            + f",{c.max_points}"
        )

    def _track_limits(self) -> str:
        c = self.model.config
        values = (c.bead_width_mm, c.hatch_mm, c.rapid_speed_mm_s, c.y_min_mm, c.y_max_mm)
        return ",".join(_fmt(v) for v in values) + f",{c.max_tracks}"

    def _status_ext(self) -> str:
        m = self.model
        return f"{self._status()},{_fmt(m.y)},{m.track},{len(m.program.tracks)}"

    def _status(self) -> str:
        m = self.model
        return ",".join(
            [
                "1" if m.laser_on else "0",
                _fmt(m.power),
                _fmt(m.shield_flow),
                _fmt(m.x),
                "1" if m.moving else "0",
                m.print_state,
                _fmt(m.progress),
            ]
        )

    def _laser(self, args: list[str]) -> None:
        if not args or args[0].upper() not in ("ON", "OFF", "1", "0"):
            raise ScpiError(ILLEGAL_PARAMETER, "Illegal parameter value; LAS takes ON or OFF")
        on = args[0].upper() in ("ON", "1")
        try:
            self.model.set_laser(on)
        except RuntimeError as exc:
            raise ScpiError(SETTINGS_CONFLICT, f"Settings conflict; {exc}") from None

    def _power(self, args: list[str]) -> None:
        c = self.model.config
        self.model.power = _in(parse_float(args, 0, "power"), 0.0, c.max_power_w, "power", "W")

    def _shield(self, args: list[str]) -> None:
        c = self.model.config
        flow = _in(parse_float(args, 0, "flow"), 0.0, c.max_shield_l_min, "flow", "L/min")
        self.model.set_shield(flow)

    def _speed(self, args: list[str]) -> None:
        c = self.model.config
        speed = _in(parse_float(args, 0, "speed"), 0.0, c.max_speed_mm_s, "speed", "mm/s")
        if speed <= 0:
            raise ScpiError(DATA_OUT_OF_RANGE, "Data out of range; speed must be > 0 mm/s")
        self.model.speed = speed

    def _move(self, args: list[str]) -> None:
        c = self.model.config
        x = _in(parse_float(args, 0, "x"), c.x_min_mm, c.x_max_mm, "x", "mm")
        y = None
        if len(args) > 1:
            y = _in(parse_float(args, 1, "y"), c.y_min_mm, c.y_max_mm, "y", "mm")
        try:
            self.model.move(x, y)
        except RuntimeError as exc:
            raise ScpiError(SETTINGS_CONFLICT, f"Settings conflict; {exc}") from None

    def _coupon(self, args: list[str]) -> None:
        if len(args) < 2:
            raise ScpiError(MISSING_PARAMETER, "Missing parameter; COUP id,length_mm[,width_mm]")
        cid = args[0]
        if not COUPON_ID.match(cid):
            raise ScpiError(ILLEGAL_PARAMETER, f"Illegal parameter value; coupon id {cid!r}")
        length = _in(parse_float(args, 1, "length"), 1.0, 300.0, "length", "mm")
        width = 10.0
        if len(args) > 2:
            width = _in(parse_float(args, 2, "width"), 1.0, 100.0, "width", "mm")
        try:
            self.model.select_coupon(cid, length, width)
        except (RuntimeError, ValueError) as exc:
            raise ScpiError(SETTINGS_CONFLICT, f"Settings conflict; {exc}") from None

    def _clear(self) -> None:
        if self.model.busy():
            raise ScpiError(SETTINGS_CONFLICT, "Settings conflict; busy")
        self.model.program = PrintProgram()

    def _path(self, args: list[str]) -> None:
        c = self.model.config
        xs = _in(parse_float(args, 0, "x_start"), c.x_min_mm, c.x_max_mm, "x_start", "mm")
        xe = _in(parse_float(args, 1, "x_end"), c.x_min_mm, c.x_max_mm, "x_end", "mm")
        v = _in(parse_float(args, 2, "speed"), 0.0, c.max_speed_mm_s, "speed", "mm/s")
        p = _in(parse_float(args, 3, "power"), 0.0, c.max_power_w, "power", "W")
        if xe <= xs or v <= 0 or p <= 0:
            raise ScpiError(
                DATA_OUT_OF_RANGE, "Data out of range; need x_end > x_start, speed > 0, power > 0"
            )
        if self.model.busy():
            raise ScpiError(SETTINGS_CONFLICT, "Settings conflict; busy")
        track = self.model.program.current()
        track.x_start, track.x_end, track.speed, track.power = xs, xe, v, p

    def _track(self, args: list[str]) -> None:
        m = self.model
        c = m.config
        y = _in(parse_float(args, 0, "y"), c.y_min_mm, c.y_max_mm, "y", "mm")
        if m.busy():
            raise ScpiError(SETTINGS_CONFLICT, "Settings conflict; busy")
        if len(m.program.tracks) >= c.max_tracks:
            raise ScpiError(EXECUTION_ERROR, f"Execution error; more than {c.max_tracks} tracks")
        m.program.tracks.append(TrackProgram(y=y))

    def _point(self, args: list[str]) -> None:
        m = self.model
        chans = m.channels()
        if len(args) != 1 + len(chans):
            raise ScpiError(
                MISSING_PARAMETER,
                f"Missing parameter; PRNT:PT takes x and {len(chans)} rates, got {len(args)}",
            )
        if m.busy():
            raise ScpiError(SETTINGS_CONFLICT, "Settings conflict; busy")
        if m.program.point_count() >= m.config.max_points:
            raise ScpiError(
                EXECUTION_ERROR, f"Execution error; more than {m.config.max_points} points"
            )
        x = parse_float(args, 0, "x")
        track = m.program.current()
        if track.points and x < track.points[-1][0]:
            raise ScpiError(DATA_OUT_OF_RANGE, f"Data out of range; x={x:g} mm goes backwards")
        rates = []
        for k, (f, i) in enumerate(chans, start=1):
            top = m.feeder(f).config.max_rate_g_min
            rates.append(_in(parse_float(args, k, "rate"), 0.0, top, f"{f}:{i} rate", "g/min"))
        track.points.append((x, tuple(rates)))

    def _start(self) -> None:
        try:
            self.model.start_print()
        except (RuntimeError, ValueError, KeyError) as exc:
            raise ScpiError(SETTINGS_CONFLICT, f"Settings conflict; {exc}") from None

    def _printed(self) -> Coupon:
        m = self.model
        if not m.coupon_id:
            raise ScpiError(EXECUTION_ERROR, "Execution error; no coupon selected")
        coupon = m.world.coupon(m.coupon_id)
        if not coupon.composition:
            raise ScpiError(EXECUTION_ERROR, f"Execution error; coupon {m.coupon_id} not printed")
        return coupon

    def _coupon_map(self) -> dict[str, list[float]]:
        # SIM:MAP? reports the map along x: the mean across the width (as before tracks)
        coupon = self._printed()
        nx = coupon.x_mm.size
        return {
            e: np.asarray(c, float).reshape(-1, nx).mean(axis=0).tolist()
            for e, c in coupon.composition.items()
        }

    def _map_y(self) -> str:
        return ",".join(f"{y:.3f}" for y in self._printed().y_mm)

    def _map_xy(self, args: list[str]) -> str:
        comp = self._printed().composition
        if not args or args[0] not in comp:
            raise ScpiError(ILLEGAL_PARAMETER, f"Illegal parameter value; element {args[:1]}")
        return ",".join(f"{v:.6f}" for v in np.asarray(comp[args[0]], float).ravel())

    def _map_x(self) -> str:
        self._coupon_map()
        return ",".join(f"{x:.3f}" for x in self.model.world.coupon(self.model.coupon_id).x_mm)

    def _map(self, args: list[str]) -> str:
        comp = self._coupon_map()
        if not args or args[0] not in comp:
            raise ScpiError(ILLEGAL_PARAMETER, f"Illegal parameter value; element {args[:1]}")
        return ",".join(f"{v:.6f}" for v in comp[args[0]])


class CellTwin(SocketTwin[CellModel, CellProtocol]):
    """A running cell twin: its model, protocol, server and resolved address."""


async def start_twin(world: World, entry: DeviceEntry) -> CellTwin:
    """Start the cell twin of ``entry`` (address ``socket://127.0.0.1:PORT``, 0: free)."""
    host, port = parse_socket_address(entry.name, entry.address)
    config = CellConfig.model_validate(entry.twin_config)
    model = CellModel(world, config, entry.name)
    twin = CellTwin(model, CellProtocol(model), host, port)
    await twin.start()
    return twin


TWIN = TwinSpec(start_twin, CellConfig, ("socket",))
"""The cell twin, as the ``couponlab.twins`` entry point names it."""


__all__ = ["COUPON_ID", "TWIN", "CellProtocol", "CellTwin", "start_twin"]
