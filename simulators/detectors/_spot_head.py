"""The command set shared by heads that measure a spot under the stage (oxide profiler, XRF
probe): dwell, a single acquisition with a status-and-result query, and a hardware-timed
line of samples for fly scans. See docs/protocols/oxide-profiler-scpi.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from couponlab.simulators.detectors._acquisition import (
    LineAcquisition,
    Sample,
    SingleAcquisition,
    StageLike,
    check_line,
    find_stage,
    rows_block,
)
from couponlab.simulators.detectors._opc_server import OpcDispatcher
from couponlab.simulators.scpi import (
    DATA_OUT_OF_RANGE,
    ScpiError,
    ieee_block,
    parse_float,
)
from couponlab.simulators.world import World


class SpotHeadDispatcher(OpcDispatcher):
    """SCPI command set of a spot-measuring head riding on a stage.

    Parameters
    ----------
    world
        The shared world (clock, instruments).
    idn
        ``*IDN?`` reply.
    stage
        Name of the stage twin in the world.
    dwell_range
        Allowed dwell (integration) time, s.
    default_dwell
        Dwell after ``*RST``, s.
    n_values
        Number of values one sample returns.
    sample
        The measurement: ``(t, x_mm, y_mm, dwell_s) -> values`` at the head's spot.
    ready
        Called before a measurement starts; raises :class:`ScpiError` to refuse it.
    """

    def __init__(
        self,
        world: World,
        idn: str,
        *,
        stage: str,
        dwell_range: tuple[float, float],
        default_dwell: float,
        n_values: int,
        sample: Sample,
        ready: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__(idn, world, self._pending)
        self.world = world
        self.stage_name = stage
        self.dwell_range = dwell_range
        self.default_dwell = default_dwell
        self.dwell = default_dwell
        self.n_values = n_values
        self.sample = sample
        self.ready = ready
        self.single: SingleAcquisition | None = None
        self.line: LineAcquisition | None = None
        self.line_config = (1, default_dwell)
        self.register("CONF:DWEL", self._set_dwell)
        self.register("CONF:DWEL?", lambda a: f"{self.dwell:g}")
        self.register("CONF:DWEL:LIM?", lambda a: "{:g},{:g}".format(*self.dwell_range))
        self.register("INIT", lambda a: self._init())
        self.register("ACQ?", lambda a: self._acq())
        self.register("ABOR", lambda a: self.abort())
        self.register("LINE:CONF", self._line_conf)
        self.register("LINE:CONF?", lambda a: "{},{:g}".format(*self.line_config))
        self.register("LINE:ARM", lambda a: self._line_arm())
        self.register("LINE:STAT?", lambda a: self._line_stat())
        self.register("LINE:DATA?", lambda a: self._line_data())

    def _pending(self) -> float:
        if self.single is None:
            return 0.0
        return self.single.remaining(self.world.now)

    def stage(self) -> StageLike:
        """Return the stage twin this head rides on."""
        return find_stage(self.world, self.stage_name)

    def abort(self) -> None:
        """Stop any acquisition (the safe state)."""
        self.single = None
        self.line = None

    def reset(self) -> None:
        """``*RST``: abort and restore the default dwell."""
        self.abort()
        self.dwell = self.default_dwell

    def _set_dwell(self, args: list[str]) -> None:
        v = parse_float(args, 0, "dwell")
        lo, hi = self.dwell_range
        if not lo <= v <= hi:
            raise ScpiError(
                DATA_OUT_OF_RANGE, f"Data out of range; dwell {v:g} not in [{lo:g},{hi:g}]"
            )
        self.dwell = v

    def _init(self) -> None:
        self.ready()
        stage = self.stage()
        now = self.world.now
        x, y = stage.position_at(now)
        self.single = SingleAcquisition(now, self.dwell, self.sample(now, x, y, self.dwell))

    def _acq(self) -> str:
        nan = ",".join(["nan"] * self.n_values)
        if self.single is None:
            return f"IDLE,0,{nan}"
        rem = self.single.remaining(self.world.now)
        if rem > 0:
            return f"BUSY,{rem:.6g},{nan}"
        vals = ",".join(_fmt(v) for v in self.single.values)
        return f"DONE,0,{vals}"

    def _line_conf(self, args: list[str]) -> None:
        n = check_line(
            parse_float(args, 0, "points"), parse_float(args, 1, "period"), self.dwell_range
        )
        self.line_config = (n, parse_float(args, 1, "period"))

    def _line_arm(self) -> None:
        self.ready()
        self.stage()  # refuse arming without a stage
        n, period = self.line_config
        self.line = LineAcquisition(n, period, self.world.now)

    def _update_line(self) -> LineAcquisition | None:
        if self.line is not None:
            self.line.update(self.world.now, self.stage(), self.sample)
        return self.line

    def _line_stat(self) -> str:
        line = self._update_line()
        if line is None:
            return f"IDLE,0,{self.line_config[0]}"
        return f"{line.state(self.world.now)},{len(line.rows)},{line.n}"

    def _line_data(self) -> bytes:
        line = self._update_line()
        rows = [] if line is None else line.rows
        return ieee_block(rows_block(rows, 3 + self.n_values))


def _fmt(v: float) -> str:
    return "nan" if math.isnan(v) else f"{v:.9g}"


__all__ = ["SpotHeadDispatcher"]
