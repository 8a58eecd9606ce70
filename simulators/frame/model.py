"""The screw-driven test frame twin: crosshead control, compliance, sampling buffer, limits.

Physics (all in virtual time of the shared world):

- The crosshead moves at a commanded velocity (crosshead-rate control) or so that the
  extensometer strain follows a commanded strain rate (strain control). Its position ``u``
  (mm) relative to where the specimen was gripped, less any grip slip ``s``, is taken up by
  the machine's compliance ``C`` (mm/N) and the specimen's reduced section ``L`` (mm):
  ``u - s = F C + e L`` with ``F = S(e) A`` (engineering stress S, area A).
- The specimen follows :class:`~couponlab.simulators.frame.material.SpecimenCurve`: on the
  monotonic curve when loading beyond its history, elastic (slope E) otherwise. Because the
  relation above is monotonic, it is inverted by table interpolation, vectorised over a block
  of samples (no SimPy event per sample).
- Samples (time, force, position, strain) are taken on a fixed clock at the configured rate
  (1 Hz .. 10 kHz) and, while a test runs, appended to a ring buffer that the driver reads by
  sample index. Over-force, travel limits, preload reached, unload done, fracture and break
  detection act at the exact sample where they happen.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import simpy
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from couponlab.simulators.frame.material import MechanicsModel, SpecimenCurve
from couponlab.simulators.world import Coupon, World

FloatArray = NDArray[np.float64]
COLUMNS = 4
GENERIC_PREFIX = "generic:"
"""A coupon id with this prefix asks for a generic specimen of ``default_material``."""
"""Columns of a buffered sample: test time (s), force (N), crosshead position (mm), strain."""


class FrameConfig(BaseModel):
    """Parameters of the frame twin (the lab entry's ``twin_config``); *typical* defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    serial: str = "TF0001"
    capacity_n: float = Field(default=50_000.0, gt=0)
    """Load cell capacity, N."""
    compliance_mm_per_n: float = Field(default=1.5e-5, ge=0)
    """Machine compliance (load train and frame), mm/N (about 67 kN/mm stiffness)."""
    travel_min_mm: float = -100.0
    """Lowest crosshead position the frame allows, mm."""
    travel_max_mm: float = 500.0
    """Highest crosshead position the frame allows, mm."""
    crosshead_rate_min_mm_per_min: float = Field(default=0.001, gt=0)
    crosshead_rate_max_mm_per_min: float = Field(default=500.0, gt=0)
    strain_rate_min_per_min: float = Field(default=1e-4, gt=0)
    strain_rate_max_per_min: float = Field(default=5.0, gt=0)
    sample_rate_min_hz: float = Field(default=1.0, gt=0)
    sample_rate_max_hz: float = Field(default=10_000.0, gt=0)
    sample_rate_hz: float = Field(default=100.0, gt=0)
    """Default sampling rate, Hz."""
    buffer_samples: int = Field(default=1 << 20, ge=1024)
    """Ring buffer capacity, samples (about 210 s at 5 kHz by default)."""
    fetch_max_samples: int = Field(default=100_000, ge=1)
    """Most samples one block transfer returns."""
    return_rate_mm_per_min: float = Field(default=50.0, gt=0)
    unload_threshold_n: float = Field(default=20.0, gt=0)
    """Unloading stops once the force is at or below this, N."""
    protect_force_n: float = Field(default=100.0, gt=0)
    """Specimen protection: a return stops (no fault) once the specimen is in compression
    beyond this, N, so returning never crushes an intact specimen."""
    force_noise_n: float = Field(default=2.0, ge=0)
    position_noise_mm: float = Field(default=5e-4, ge=0)
    strain_noise: float = Field(default=2e-6, ge=0)
    break_fraction: float = Field(default=0.4, gt=0, lt=1)
    """A break is detected when the force falls below this fraction of the test's peak."""
    post_trigger_samples: int = Field(default=10, ge=1, le=100_000)
    """Samples still buffered after a test ends on a break or a fault (the drop is on record)."""
    break_min_force_n: float = Field(default=200.0, gt=0)
    """Break detection is armed once the peak force exceeds this, N."""
    slip_drop_fraction: float = Field(default=0.03, gt=0, lt=1)
    """A grip slip is flagged when the force drops by more than this fraction in one control
    step (and by more than the noise floor, ``slip_noise_sigmas``)."""
    slip_noise_sigmas: float = Field(default=6.0, ge=3.0, le=100.0)
    """...and by more than this many standard deviations of the difference of two force
    readings (``sqrt(2) * force_noise_n``), so that noise alone is never a slip: at a few
    hundred newtons, 3 % of the force is only about two such deviations."""
    gauge_length_mm: float = 25.0
    width_mm: float = 6.0
    thickness_mm: float = 2.0
    reduced_length_mm: float = 32.0
    default_material: dict[str, float] = Field(
        default_factory=lambda: {"Fe": 0.70, "Cr": 0.18, "Ni": 0.12}
    )
    """Composition of a generic specimen (coupon id ``generic:<name>``; 316L-like)."""
    step_s: float = Field(default=0.1, gt=0)
    """Virtual-time period of the twin's SimPy process, s."""
    control_rate_hz: float = Field(default=1000.0, gt=0)
    """Least rate of the frame's control loop, Hz: below it, the loop runs at a whole
    multiple of the sampling rate and only every k-th control step is buffered."""


class Mode(StrEnum):
    """What the crosshead is doing."""

    IDLE = "IDLE"
    MOVE = "MOVE"
    PRELOAD = "PRELOAD"
    TEST = "TEST"
    RETURN = "RETURN"
    UNLOAD = "UNLOAD"


class Fault(StrEnum):
    """A latched fault (the crosshead stopped and refuses motion but return/unload)."""

    NONE = "NONE"
    OVERFORCE = "OVERFORCE"
    TRAVEL = "TRAVEL"
    STUCK = "STUCK"


class Control(StrEnum):
    """Control mode used during a test."""

    POS = "POS"
    STR = "STR"


class FrameError(Exception):
    """A command the frame refuses (mapped to a SCPI error by the server)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Specimen:
    """A mounted specimen: identity, geometry, response and deformation state."""

    coupon_id: str
    x_mm: float
    y_mm: float | None
    """Centre of the gauge across the coupon, mm (``None``: unknown coupon, centre line)."""
    composition: dict[str, float]
    from_coupon: bool
    curve: SpecimenCurve
    area_mm2: float
    """Load-bearing cross-section, mm^2: the nominal one less what oxidation consumed."""
    nominal_area_mm2: float
    """Cross-section of the declared geometry (``SPEC:DIM``), mm^2."""
    recession_mm: float
    """Mean metal recession of the coupon over the gauge section, mm (per exposed face)."""
    reduced_length_mm: float
    grip_position_mm: float
    """Crosshead position when gripped (zero force), mm."""
    slip_mm: float = 0.0
    u_max: float = 0.0
    """Largest effective crosshead displacement reached so far, mm."""
    fractured: bool = False
    table_u: FloatArray = field(default_factory=lambda: np.zeros(0))


class FrameModel:
    """The frame twin's state and physics, advanced in blocks of samples.

    Parameters
    ----------
    world
        The shared world (clock, random generator, coupons).
    config
        Frame parameters.
    mechanics
        The world's strengthening model.
    name
        Device name (for the world's instrument registry).
    """

    def __init__(
        self,
        world: World,
        config: FrameConfig | None = None,
        mechanics: MechanicsModel | None = None,
        name: str = "frame",
    ) -> None:
        self.world = world
        self.cfg = config or FrameConfig()
        self.mechanics = mechanics or MechanicsModel()
        self.name = name
        c = self.cfg
        self.buffer: FloatArray = np.zeros((c.buffer_samples, COLUMNS))
        self._running = True
        self._wake: simpy.Event | None = None
        self._mode = Mode.IDLE
        self._acquiring = False
        self.jammed = False
        """The crosshead drive is jammed (fault injection): a *RST does not free it."""
        self.reset()
        world.instruments[name] = self
        world.env.process(self._run())

    # -- state --------------------------------------------------------------------------
    def reset(self) -> None:
        """Restore power-on settings (``*RST``): stopped, no fault, default rates."""
        c = self.cfg
        self.sample_rate = c.sample_rate_hz
        self.control = Control.POS
        self.crosshead_rate = 1.0  # mm/min
        self.strain_rate = 0.015  # 1/min
        self.force_limit = c.capacity_n
        self.travel_low, self.travel_high = c.travel_min_mm, c.travel_max_mm
        self.gauge_length, self.width = c.gauge_length_mm, c.width_mm
        self.thickness, self.reduced_length = c.thickness_mm, c.reduced_length_mm
        self.position = getattr(self, "position", 0.0)
        self.mode = Mode.IDLE
        self.velocity = 0.0  # mm/s
        self.target: float | None = None
        self.preload_target = 0.0
        self.fault = Fault.NONE
        self.fault_reason = ""
        self.specimen: Specimen | None = getattr(self, "specimen", None)
        self.acquiring = False
        self._post: int | None = None
        self.produced = 0
        self.end_reason = "NONE"
        self.peak_force = 0.0
        self.slips = 0
        self.strain_target0 = 0.0
        self.t_test0 = 0.0
        self.t_next = self.world.now
        self.t_pos = self.world.now
        """Virtual time at which :attr:`position` is valid, s."""
        self.last = np.zeros(COLUMNS)
        self.last[2] = self.position
        self._prev_force = 0.0
        self.generated = 0
        """Control steps run since power-on (buffered or not)."""
        self.step_index = 0
        """Control steps since the test started (every ``oversample``-th is buffered)."""

    def stop_process(self) -> None:
        """End the SimPy process (the twin is shutting down)."""
        self._running = False
        self._wake_process()

    # -- what sets the control loop going ---------------------------------------------------
    @property
    def mode(self) -> Mode:
        """Return what the crosshead does (IDLE: nothing moves)."""
        return self._mode

    @mode.setter
    def mode(self, value: Mode) -> None:
        self._mode = value
        if value is not Mode.IDLE:
            self._wake_process()

    @property
    def acquiring(self) -> bool:
        """Return True while samples go into the buffer (a test, and its post-trigger)."""
        return self._acquiring

    @acquiring.setter
    def acquiring(self, value: bool) -> None:
        self._acquiring = value
        if value:
            self._wake_process()

    def _wake_process(self) -> None:
        wake = self._wake
        if wake is not None and not wake.triggered:
            wake.succeed()

    def _run(self) -> Generator[simpy.Event, None, None]:
        env, step = self.world.env, self.cfg.step_s
        last = env.now  # time of the last control step (on the grid start + k * step)
        while self._running:
            if self._mode is Mode.IDLE and not self._acquiring:
                # Nothing moves and nothing is buffered: rest until a command sets the
                # frame going (the mode and acquiring setters wake it), then go on on the
                # same grid of control steps. The next query's catch-up takes the idle
                # sample, exactly as update() would (it skips to the last one due), so an
                # idle step did nothing: resting keeps an idle frame free, and a shared
                # world can run at high speed-ups while the furnace holds for days.
                self._wake = env.event()
                yield self._wake
                self._wake = None
                last += math.floor((env.now - last) / step) * step
                continue  # stopped meanwhile, or going: the loop's test and this one decide
            delay = step if env.now == last else max(0.0, last + step - env.now)
            yield env.timeout(delay)
            last = env.now
            if self._mode is Mode.IDLE and not self._acquiring:
                continue
            self.update(env.now)

    @property
    def area_mm2(self) -> float:
        """Return the cross-section of the configured specimen geometry, mm^2."""
        return self.width * self.thickness

    # -- commands -----------------------------------------------------------------------
    def set_sample_rate(self, hz: float) -> None:
        """Set the sampling rate in Hz; refused while a test runs."""
        c = self.cfg
        self._check_range("sample rate", hz, c.sample_rate_min_hz, c.sample_rate_max_hz)
        if self.acquiring:
            raise FrameError(-221, "Settings conflict; sample rate cannot change during a test")
        self._catch_up()
        self.sample_rate = hz
        self.t_next = self.world.now

    def set_crosshead_rate(self, mm_per_min: float) -> None:
        """Set the crosshead rate (mm/min) used by tests, preload and moves."""
        c = self.cfg
        self._check_range(
            "crosshead rate",
            mm_per_min,
            c.crosshead_rate_min_mm_per_min,
            c.crosshead_rate_max_mm_per_min,
        )
        self.crosshead_rate = mm_per_min

    def set_strain_rate(self, per_min: float) -> None:
        """Set the strain rate (1/min) used by tests in strain control."""
        c = self.cfg
        self._check_range(
            "strain rate", per_min, c.strain_rate_min_per_min, c.strain_rate_max_per_min
        )
        self.strain_rate = per_min

    def set_control(self, mode: str) -> None:
        """Set the control mode of tests (``POS`` crosshead rate, ``STR`` strain rate)."""
        try:
            ctl = Control(mode.upper())
        except ValueError:
            raise FrameError(-224, f"Illegal parameter value; mode={mode}") from None
        if self.mode is not Mode.IDLE:
            raise FrameError(-221, "Settings conflict; control mode cannot change while moving")
        self.control = ctl

    def set_force_limit(self, newton: float) -> None:
        """Set the over-force limit (N), at most the load cell capacity."""
        self._check_range("force limit", newton, 1.0, self.cfg.capacity_n)
        self.force_limit = newton

    def set_travel(self, low: float, high: float) -> None:
        """Set the soft travel limits (mm) inside the frame's travel."""
        c = self.cfg
        self._check_range("travel low", low, c.travel_min_mm, c.travel_max_mm)
        self._check_range("travel high", high, c.travel_min_mm, c.travel_max_mm)
        if not low < high:
            raise FrameError(-222, f"Data out of range; travel low {low} >= high {high}")
        self._catch_up()
        if not low <= self.position <= high:
            raise FrameError(-221, f"Settings conflict; crosshead at {self.position:.4f} mm")
        self.travel_low, self.travel_high = low, high

    def set_geometry(self, gauge: float, width: float, thickness: float, reduced: float) -> None:
        """Set the specimen geometry (mm) used for the next mounted specimen."""
        self._check_range("gauge length", gauge, 5.0, 200.0)
        self._check_range("width", width, 0.5, 50.0)
        self._check_range("thickness", thickness, 0.1, 20.0)
        self._check_range("reduced length", reduced, gauge, 400.0)
        if self.specimen is not None:
            raise FrameError(-221, "Settings conflict; remove the specimen first")
        self.gauge_length, self.width, self.thickness = gauge, width, thickness
        self.reduced_length = reduced

    def mount(self, coupon_id: str, x_mm: float, y_mm: float | None = None) -> None:
        """Grip a specimen cut from ``coupon_id`` with its gauge centred at ``(x_mm, y_mm)``.

        Coupon coordinates are mm from the coupon's corner: x along its length
        (0 .. length), y across its width (0 .. width); ``y_mm`` ``None`` is the centre line.
        The specimen's gauge length runs along x. Its material is the mean composition over
        the gauge section: x within +/- gauge/2 and y within +/- specimen width/2 of the
        centre, clipped to the coupon. Its load-bearing section is the nominal one less
        the metal the coupon's oxidation consumed under its exposed face(s) (the mean
        recession over the gauge section, :attr:`Coupon.recession_m`, times the
        mechanics' ``exposed_faces``): the frame still reports force, and the analysis
        stress on the nominal section.

        A reduced section (``SPEC:DIM``) longer or wider than the coupon, or centred so that
        part of it lies off the coupon, is refused (-222): no such specimen can be cut.
        An id the world does not know (or a coupon never printed) is refused (-224),
        unless it starts with :data:`GENERIC_PREFIX` (``generic:``): the lab's explicit
        request for a specimen of the configured ``default_material`` (``y_mm`` is then
        only checked to be finite and >= 0).
        """
        self._catch_up()
        if self.mode is not Mode.IDLE or self.acquiring:
            raise FrameError(-221, "Settings conflict; frame is moving")
        if self.specimen is not None:
            raise FrameError(-221, "Settings conflict; a specimen is already mounted")
        if y_mm is not None and not (math.isfinite(y_mm) and y_mm >= 0.0):
            raise FrameError(-222, f"Data out of range; y={y_mm} must be >= 0 mm")
        coupon = self.world.coupons.get(coupon_id)
        y_at: float | None = y_mm
        recession_mm = 0.0
        if (coupon is None or not coupon.composition) and not coupon_id.startswith(GENERIC_PREFIX):
            known = "unknown to the world" if coupon is None else "not printed (no composition)"
            raise FrameError(
                -224,
                f"Illegal parameter value; coupon '{coupon_id}' is {known} (a generic "
                f"specimen is asked for as '{GENERIC_PREFIX}<name>')",
            )
        if coupon is not None and coupon.composition:
            if self.reduced_length > coupon.length_mm or self.width > coupon.width_mm:
                raise FrameError(
                    -222,
                    f"Data out of range; the {self.reduced_length:g} x {self.width:g} mm reduced "
                    f"section (SPEC:DIM) does not fit coupon '{coupon_id}' "
                    f"({coupon.length_mm:g} x {coupon.width_mm:g} mm)",
                )
            if not 0.0 <= x_mm <= coupon.length_mm:
                raise FrameError(
                    -222, f"Data out of range; x={x_mm} outside coupon 0..{coupon.length_mm} mm"
                )
            if y_mm is not None and not y_mm <= coupon.width_mm:
                raise FrameError(
                    -222, f"Data out of range; y={y_mm} outside coupon 0..{coupon.width_mm} mm"
                )
            y_at = coupon.width_mm / 2 if y_mm is None else y_mm
            half_l, half_w = self.reduced_length / 2, self.width / 2
            if not (
                half_l <= x_mm <= coupon.length_mm - half_l
                and half_w <= y_at <= coupon.width_mm - half_w
            ):
                raise FrameError(
                    -222,
                    f"Data out of range; a {self.reduced_length:g} x {self.width:g} mm reduced "
                    f"section centred at ({x_mm:g}, {y_at:g}) mm lies partly off coupon "
                    f"'{coupon_id}' ({coupon.length_mm:g} x {coupon.width_mm:g} mm): no such "
                    f"specimen can be cut",
                )
            comp = _gauge_mean(coupon, x_mm, y_at, self.gauge_length / 2, self.width / 2)
            recession_mm = 1e3 * _gauge_section_mean(
                coupon, coupon.recession_grid, x_mm, y_at, self.gauge_length / 2, self.width / 2
            )
            from_coupon = True
        else:
            comp = dict(self.cfg.default_material)
            from_coupon = False
        try:
            params = self.mechanics.specimen(comp, self.world.rng_for(f"{self.name}.material"))
        except (KeyError, ValueError) as exc:
            raise FrameError(-200, f"Execution error; {exc}") from None
        curve = SpecimenCurve(params)
        lost_mm = self.mechanics.exposed_faces * recession_mm
        if not lost_mm < self.thickness:
            raise FrameError(
                -200,
                f"Execution error; oxidation consumed {lost_mm:.4g} mm of the "
                f"{self.thickness:g} mm thick specimen",
            )
        spec = Specimen(
            coupon_id=coupon_id,
            x_mm=x_mm,
            y_mm=y_at,
            composition=comp,
            from_coupon=from_coupon,
            curve=curve,
            area_mm2=self.width * (self.thickness - lost_mm),
            nominal_area_mm2=self.area_mm2,
            recession_mm=recession_mm,
            reduced_length_mm=self.reduced_length,
            grip_position_mm=self.position,
        )
        spec.table_u = (
            curve.stress * spec.area_mm2 * self.cfg.compliance_mm_per_n
            + curve.strain * spec.reduced_length_mm
        )
        spec.u_max = 0.0
        self.specimen = spec
        self.slips = 0
        self._prev_force = 0.0

    def remove(self) -> None:
        """Take the specimen out of the grips."""
        self._catch_up()
        if self.mode is not Mode.IDLE or self.acquiring:
            raise FrameError(-221, "Settings conflict; frame is moving")
        self.specimen = None

    def start_test(self) -> None:
        """Clear the buffer, start sampling into it and pull at the configured rate."""
        self._catch_up()
        self._refuse_if_faulted()
        if self.mode is not Mode.IDLE or self.acquiring:
            raise FrameError(-221, "Settings conflict; frame is busy")
        if self.specimen is not None and self.specimen.fractured:
            raise FrameError(-221, "Settings conflict; the mounted specimen is broken")
        self.produced = 0
        self.acquiring = True
        self.end_reason = "NONE"
        self.peak_force = 0.0
        self.slips = 0
        self.t_next = self.world.now
        self.t_test0 = self.world.now
        self.step_index = 0
        self.mode = Mode.TEST
        if self.control is Control.STR:
            self.strain_target0 = float(self.last[3]) if self.specimen else 0.0
            self.velocity = 0.0
        else:
            self.velocity = self.crosshead_rate / 60.0
        self.target = None

    def preload(self, newton: float) -> None:
        """Pull at the crosshead rate until the force reaches ``newton``, then hold."""
        self._check_range("preload", newton, 1.0, self.force_limit)
        self._catch_up()
        self._refuse_if_faulted()
        if self.mode is not Mode.IDLE or self.acquiring:
            raise FrameError(-221, "Settings conflict; frame is busy")
        if self.specimen is None:
            raise FrameError(-221, "Settings conflict; no specimen mounted")
        if float(self.last[1]) >= newton:
            return
        self.preload_target = newton
        self.mode = Mode.PRELOAD
        self.velocity = self.crosshead_rate / 60.0
        self.target = None

    def move_to(self, position: float) -> None:
        """Move the crosshead to ``position`` (mm) at the crosshead rate."""
        self._check_range("position", position, self.travel_low, self.travel_high)
        self._catch_up()
        self._refuse_if_faulted()
        if self.acquiring:
            raise FrameError(-221, "Settings conflict; a test is running")
        self._go(Mode.MOVE, position, self.crosshead_rate)

    def return_home(self) -> None:
        """Move the crosshead back to position 0 at the return rate (allowed after a fault,
        but not while the drive is jammed)."""
        self._catch_up()
        self._refuse_if_jammed()
        self._end_test("STOP")
        self._go(Mode.RETURN, 0.0, self.cfg.return_rate_mm_per_min)

    def unload(self) -> None:
        """Move in compression at the return rate until the force is at the threshold."""
        self._catch_up()
        self._refuse_if_jammed()
        self._end_test("STOP")
        if self.specimen is None or float(self.last[1]) <= self.cfg.unload_threshold_n:
            self._stop()
            return
        self.mode = Mode.UNLOAD
        self.velocity = -self.cfg.return_rate_mm_per_min / 60.0
        self.target = None

    def stop(self) -> None:
        """Stop the crosshead and hold position; a running test ends."""
        self._catch_up()
        self._end_test("STOP")
        self._stop()

    def reset_fault(self) -> None:
        """Clear a latched fault if the cause is gone."""
        self._catch_up()
        if self.fault is Fault.OVERFORCE and abs(float(self.last[1])) > self.force_limit:
            raise FrameError(-200, "Execution error; force still above the limit")
        if self.fault is Fault.TRAVEL and not (
            self.travel_low <= self.position <= self.travel_high
        ):
            raise FrameError(-200, "Execution error; crosshead still outside travel limits")
        if self.fault is Fault.STUCK and self.jammed:
            raise FrameError(-200, "Execution error; crosshead drive still jammed")
        self.fault, self.fault_reason = Fault.NONE, ""

    def jam(self, on: bool = True) -> None:
        """Fault injection: the crosshead drive jams (``on``: a running test ends ``FAULT``,
        fault ``STUCK`` latches and every motion is refused) or is freed (the latched fault
        stays until ``STAT:RES``, as after any fault)."""
        self._catch_up()
        self.jammed = on
        if on:
            self.fault, self.fault_reason = Fault.STUCK, "crosshead stuck (drive jammed)"
            self._end_test("FAULT", post_trigger=True)
            self._stop()

    def inject_slip(self, mm: float) -> None:
        """Fault injection: the specimen slips ``mm`` in the grips at the next sample."""
        self._catch_up()
        if self.specimen is not None:
            self.specimen.slip_mm += mm

    def fetch(self, start: int, count: int) -> FloatArray:
        """Return buffered samples ``start .. start+count`` (fewer if not produced yet)."""
        self._catch_up()
        if start < 0 or count < 0:
            raise FrameError(-222, "Data out of range; negative index or count")
        count = min(count, self.cfg.fetch_max_samples)
        oldest = max(0, self.produced - self.cfg.buffer_samples)
        if start < oldest:
            raise FrameError(-230, f"Data stale; samples before {oldest} were overwritten")
        stop = min(self.produced, start + count)
        if stop <= start:
            return np.zeros((0, COLUMNS))
        cap = self.cfg.buffer_samples
        idx = np.arange(start, stop) % cap
        out: FloatArray = self.buffer[idx]
        return out

    def state_name(self) -> str:
        """Return ``FAULT`` when a fault is latched, else the crosshead mode."""
        return "FAULT" if self.fault is not Fault.NONE else self.mode.value

    # -- physics ------------------------------------------------------------------------
    @property
    def oversample(self) -> int:
        """Return k: control steps per buffered sample (control rate >= ``control_rate_hz``)."""
        return max(1, math.ceil(self.cfg.control_rate_hz / self.sample_rate - 1e-9))

    @property
    def period(self) -> float:
        """Return the control loop's period, s."""
        return 1.0 / (self.sample_rate * self.oversample)

    def update(self, now: float) -> None:
        """Run every control step (and take every sample) due up to virtual time ``now``."""
        period = self.period
        while self.t_next <= now + 1e-12:
            if self.mode is Mode.IDLE and not self.acquiring:
                # Nothing moves: skip to the last sample due, take it (noise included).
                k = max(0, math.floor((now - self.t_next) / period + 1e-9))
                self.t_next += k * period
                self._block(1)
                continue
            n = min(8192, max(0, math.floor((now - self.t_next) / period + 1e-9)) + 1)
            self._block(n)

    def _block(self, n: int) -> None:
        """Run up to ``n`` control steps from ``t_next``; stop early at the first event."""
        period = self.period
        t = self.t_next + np.arange(n, dtype=np.float64) * period
        u, strain_cmd = self._positions(t - self.t_pos)
        force, strain, frac_idx = self._respond(u)
        cfg = self.cfg
        rng = self.world.rng_for(self.name)
        f_meas = force + rng.normal(0.0, cfg.force_noise_n, n) if cfg.force_noise_n else force
        events: list[tuple[int, str]] = []
        if frac_idx is not None:
            events.append((frac_idx, "fracture"))
        if self.target is not None:
            reached = np.nonzero((u - self.target) * np.sign(self.velocity) >= 0)[0]
            if len(reached):
                events.append((int(reached[0]), "target"))
        out = np.nonzero((u < self.travel_low) | (u > self.travel_high))[0]
        if len(out):
            events.append((int(out[0]), "travel"))
        # Over-force trips on loading; moving so as to reduce the load (unloading or
        # returning after a trip) is allowed.
        relieving = self.mode in (Mode.UNLOAD, Mode.RETURN) and self.velocity != 0.0
        over_mask = np.abs(f_meas) > self.force_limit
        if relieving:
            over_mask &= f_meas * self.velocity > 0
        over = np.nonzero(over_mask)[0]
        if len(over):
            events.append((int(over[0]), "overforce"))
        if self.mode is Mode.PRELOAD:
            hit = np.nonzero(f_meas >= self.preload_target)[0]
            if len(hit):
                events.append((int(hit[0]), "preload"))
        if self.mode is Mode.UNLOAD:
            hit = np.nonzero(f_meas <= cfg.unload_threshold_n)[0]
            if len(hit):
                events.append((int(hit[0]), "unloaded"))
        if self.mode is Mode.RETURN:
            hit = np.nonzero(f_meas * np.sign(self.velocity) > cfg.protect_force_n)[0]
            if len(hit):
                events.append((int(hit[0]), "protect"))
        if self.mode is Mode.TEST:
            peak = np.maximum.accumulate(np.concatenate(([self.peak_force], f_meas)))[:-1]
            broke = np.nonzero(
                (peak > cfg.break_min_force_n) & (f_meas < cfg.break_fraction * peak)
            )[0]
            if len(broke):
                events.append((int(broke[0]), "break"))
        end = n
        first: list[str] = []
        if events:
            i0 = min(i for i, _ in events)
            first = [name for i, name in events if i == i0]
            end = i0 + 1
        u, force, strain, f_meas = u[:end], force[:end], strain[:end], f_meas[:end]
        if "travel" in first:
            u[-1] = min(max(u[-1], self.travel_low), self.travel_high)
        if "target" in first and self.target is not None:
            u[-1] = self.target
        # commit deformation state up to the last kept sample
        spec = self.specimen
        if spec is not None:
            spec.u_max = max(spec.u_max, float(np.max(u - spec.grip_position_mm - spec.slip_mm)))
            if "fracture" in first or (frac_idx is not None and frac_idx < end):
                spec.fractured = True
        self.position = float(u[-1])
        self.t_pos = float(t[end - 1])
        if self.mode is Mode.TEST and self.control is Control.STR:
            self.strain_target0 = float(strain_cmd[end - 1])
        t_kept = t[:end]
        pos_meas = u + self.world.rng_for(self.name).normal(0.0, cfg.position_noise_mm, end)
        str_meas = strain + self.world.rng_for(self.name).normal(0.0, cfg.strain_noise, end)
        # slip detection: a sudden drop in force between consecutive control steps, larger
        # than the noise can make, that is not the break
        prev = np.concatenate(([self._prev_force], f_meas[:-1]))
        noise_floor = cfg.slip_noise_sigmas * math.sqrt(2.0) * cfg.force_noise_n
        drops = (prev - f_meas) > np.maximum(cfg.slip_drop_fraction * prev, noise_floor)
        drops &= prev > cfg.break_min_force_n
        drops &= f_meas > cfg.break_fraction * np.maximum(prev, 1.0)
        if "break" in first:
            drops[-1] = False
        if self.mode is Mode.TEST and spec is not None and not spec.fractured:
            self.slips += int(np.count_nonzero(drops))
        self._prev_force = float(f_meas[-1])
        if self.mode is Mode.TEST:
            self.peak_force = max(self.peak_force, float(np.max(f_meas)))
        if self.acquiring:
            k = self.oversample
            keep = (self.step_index + np.arange(end)) % k == 0
            self._append(t_kept[keep] - self.t_test0, f_meas[keep], pos_meas[keep], str_meas[keep])
            if self._post is not None:
                self._post -= int(np.count_nonzero(keep))
                if self._post <= 0:
                    self._post = None
                    self.acquiring = False
        self.step_index += end
        self.last = np.array([t_kept[-1] - self.t_test0, f_meas[-1], pos_meas[-1], str_meas[-1]])
        self.generated += end
        self.t_next = float(t_kept[-1]) + period
        for name in first:
            self._on_event(name)

    def _positions(self, dt: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Return crosshead positions (mm) and commanded strains at elapsed times ``dt``."""
        spec = self.specimen
        if self.mode is Mode.TEST and self.control is Control.STR and spec is not None:
            eps = self.strain_target0 + self.strain_rate / 60.0 * dt
            u_eff = self._u_for_strain(spec, eps)
            return u_eff + spec.grip_position_mm + spec.slip_mm, eps
        if self.mode is Mode.IDLE:
            return np.full_like(dt, self.position), dt * 0.0
        u = self.position + self.velocity * dt
        if self.target is not None:
            u = np.minimum(u, self.target) if self.velocity > 0 else np.maximum(u, self.target)
        return u, dt * 0.0

    def _u_for_strain(self, spec: Specimen, eps: FloatArray) -> FloatArray:
        """Invert the load train: effective crosshead displacement (mm) for strains ``eps``."""
        curve = spec.curve
        e_mod = curve.params.modulus_mpa
        ac = spec.area_mm2 * self.cfg.compliance_mm_per_n
        length = spec.reduced_length_mm
        eps_p_hist = float(curve.plastic_at(np.array([self._eps_of_u(spec, spec.u_max)]))[0])
        eps_p = np.maximum(eps_p_hist, curve.plastic_at(np.maximum.accumulate(eps)))
        u_el = e_mod * (eps - eps_p) * ac + eps * length
        u_mono = curve.stress_at(eps) * ac + eps * length
        out: FloatArray = np.minimum(u_el, u_mono)
        return out

    @staticmethod
    def _eps_of_u(spec: Specimen, u_eff: float) -> float:
        return float(np.interp(u_eff, spec.table_u, spec.curve.strain))

    def _respond(self, u: FloatArray) -> tuple[FloatArray, FloatArray, int | None]:
        """Return force (N), strain and the index of fracture (or None) for positions ``u``."""
        spec = self.specimen
        if spec is None:
            return np.zeros_like(u), np.zeros_like(u), None
        curve = spec.curve
        e_mod = curve.params.modulus_mpa
        ac = spec.area_mm2 * self.cfg.compliance_mm_per_n
        length = spec.reduced_length_mm
        u_eff = u - spec.grip_position_mm - spec.slip_mm
        if spec.fractured:
            rest = curve.fracture_strain - curve.stress[-1] / e_mod
            return np.zeros_like(u), np.full_like(u, rest), None
        u_max = np.maximum.accumulate(np.maximum(u_eff, spec.u_max))
        eps_p = curve.plastic_at(np.interp(u_max, spec.table_u, curve.strain))
        eps_el = (u_eff + e_mod * ac * eps_p) / (e_mod * ac + length)
        eps_mono = np.interp(u_eff, spec.table_u, curve.strain)
        on_curve = eps_mono >= eps_el
        eps = np.where(on_curve, eps_mono, eps_el)
        stress = np.where(on_curve, curve.stress_at(eps_mono), e_mod * (eps_el - eps_p))
        force = stress * spec.area_mm2
        frac = np.nonzero(u_max >= spec.table_u[-1])[0]
        frac_idx = int(frac[0]) if len(frac) else None
        if frac_idx is not None:
            rest = curve.fracture_strain - curve.stress[-1] / e_mod
            force[frac_idx:] = 0.0
            eps[frac_idx:] = rest
        return force, eps, frac_idx

    def _append(self, t: FloatArray, f: FloatArray, x: FloatArray, e: FloatArray) -> None:
        cap = self.cfg.buffer_samples
        n = len(t)
        idx = np.arange(self.produced, self.produced + n) % cap
        self.buffer[idx, 0] = t
        self.buffer[idx, 1] = f
        self.buffer[idx, 2] = x
        self.buffer[idx, 3] = e
        self.produced += n

    def _on_event(self, name: str) -> None:
        if name == "overforce":
            self.fault, self.fault_reason = Fault.OVERFORCE, "force above limit"
            self._end_test("FAULT", post_trigger=True)
            self._stop()
        elif name == "travel":
            self.fault, self.fault_reason = Fault.TRAVEL, "crosshead at a travel limit"
            self._end_test("FAULT", post_trigger=True)
            self._stop()
        elif name == "break":
            self._end_test("BREAK", post_trigger=True)
            self._stop()
        elif name in ("preload", "unloaded", "target", "protect"):
            self._stop()

    # -- helpers ------------------------------------------------------------------------
    def _catch_up(self) -> None:
        """Take the samples due now and bring the crosshead state to exactly now."""
        now = self.world.now
        self.update(now)
        dt = now - self.t_pos
        if dt > 0 and self.mode is not Mode.IDLE:
            if self.mode is Mode.TEST and self.control is Control.STR:
                self.strain_target0 += self.strain_rate / 60.0 * dt
            else:
                u = self.position + self.velocity * dt
                if self.target is not None:
                    u = min(u, self.target) if self.velocity > 0 else max(u, self.target)
                self.position = u
        self.t_pos = now

    def _go(self, mode: Mode, position: float, rate_mm_per_min: float) -> None:
        if math.isclose(position, self.position, abs_tol=1e-12):
            self._stop()
            return
        self.mode = mode
        self.target = position
        self.velocity = math.copysign(rate_mm_per_min / 60.0, position - self.position)

    def _stop(self) -> None:
        self.mode = Mode.IDLE
        self.velocity = 0.0
        self.target = None

    def _end_test(self, reason: str, post_trigger: bool = False) -> None:
        """End a running test; with ``post_trigger`` keep buffering a few samples first."""
        if self.acquiring and self.end_reason == "NONE":
            self.end_reason = reason
            if post_trigger:
                self._post = self.cfg.post_trigger_samples
            else:
                self._post = None
                self.acquiring = False
        elif self.acquiring and not post_trigger:
            self._post = None
            self.acquiring = False

    def _refuse_if_jammed(self) -> None:
        if self.jammed:
            raise FrameError(-240, "Hardware error; crosshead drive jammed")

    def _refuse_if_faulted(self) -> None:
        if self.fault is not Fault.NONE:
            raise FrameError(-200, f"Execution error; fault {self.fault.value} latched")

    @staticmethod
    def _check_range(what: str, value: float, low: float, high: float) -> None:
        if not math.isfinite(value) or not low <= value <= high:
            raise FrameError(-222, f"Data out of range; {what}={value:g} not in {low:g}..{high:g}")

    def composition_text(self) -> str:
        """Return the mounted specimen's composition as ``El=frac,...`` ("" if none)."""
        spec = self.specimen
        if spec is None:
            return ""
        return ",".join(f"{e}={c:.4f}" for e, c in sorted(spec.composition.items()))


def _section_grid(
    coupon: Coupon, x_mm: float, y_mm: float, half_gauge: float, half_width: float
) -> tuple[FloatArray, FloatArray]:
    """Return the 51 x-samples and 25 y-samples of the gauge section, clipped to the coupon."""
    xs = np.linspace(max(0.0, x_mm - half_gauge), min(coupon.length_mm, x_mm + half_gauge), 51)
    ys = np.linspace(max(0.0, y_mm - half_width), min(coupon.width_mm, y_mm + half_width), 25)
    return xs, ys


def _gauge_section_mean(
    coupon: Coupon,
    grid: Callable[[FloatArray, FloatArray], FloatArray],
    x_mm: float,
    y_mm: float,
    half_gauge: float,
    half_width: float,
) -> float:
    """Return the mean of a coupon map (``grid(xs, ys)``) over the gauge section."""
    xs, ys = _section_grid(coupon, x_mm, y_mm, half_gauge, half_width)
    return float(np.mean(grid(xs, ys)))


def _gauge_mean(
    coupon: Coupon, x_mm: float, y_mm: float, half_gauge: float, half_width: float
) -> dict[str, float]:
    """Return the mean composition (fractions summing to 1) over the gauge section.

    The section is x in ``x_mm`` +/- ``half_gauge`` and y in ``y_mm`` +/- ``half_width``
    (mm), clipped to the coupon, sampled on a 51 x 25 grid of bilinear interpolations.
    """
    xs, ys = _section_grid(coupon, x_mm, y_mm, half_gauge, half_width)
    gx, gy = np.meshgrid(xs, ys)
    at = coupon.composition_at(gx.ravel(), gy.ravel())
    comp = {e: float(np.mean(v)) for e, v in at.items()}
    total = sum(comp.values())
    return {e: v / total for e, v in comp.items() if v > 0}


def mechanics_from_world(world: World) -> MechanicsModel:
    """Return the world's strengthening model (its ``mechanics`` section, or defaults)."""
    section: Mapping[str, object] = world.config.section("mechanics")
    return MechanicsModel.model_validate(section)


__all__ = [
    "COLUMNS",
    "GENERIC_PREFIX",
    "Control",
    "Fault",
    "FrameConfig",
    "FrameError",
    "FrameModel",
    "Mode",
    "Specimen",
    "mechanics_from_world",
]
