"""The one simulated world that every twin of a lab shares.

The world owns the SimPy environment (virtual time, in seconds), the random generator, and
the coupons. Instruments act on coupons: the printer writes a composition map into a coupon,
a furnace exposes it to its temperature field (oxide grows where it is hot), the profiler and
probe read it, the frame pulls specimens whose strength depends on composition.
Ground-truth parameters (for example the activation energy of each element's oxide) live in
:class:`WorldConfig`, so a test can check that a campaign recovers them.

Time
----
Virtual time runs ``speedup`` times faster than the wall clock: :meth:`World.sync` advances
SimPy towards ``t0 + speedup * (wall - wall0)`` and every protocol server calls it before it
answers, so a reply reflects "now". :meth:`World.run_clock` keeps advancing it in the
background. Tests can instead step the world deterministically with :meth:`World.advance`.

A sync never works for more than :attr:`World.work_budget_s` of wall time (2 ms): a reply
waits at most that long on simulation work. A backlog of up to :attr:`World.max_lag_s` of
wall time (a short stall) is caught up by later syncs; when the simulation cannot keep up
with the requested speed-up, the rest is dropped instead of carried (virtual time slows
down), and :meth:`World.achieved_speedup` reports the rate actually reached (decision 0050).

Randomness
----------
Each instrument draws its noise from a stream of its own, :meth:`World.rng_for`, spawned from
the world seed by the instrument's name (numpy ``SeedSequence``): the same seed gives the
same instrument errors whatever the order or timing of the draws of other instruments.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
import simpy
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from couponlab.simulators.faults import FaultBoard
from couponlab.simulators.oxidation_regimes import RegimeParameters, ScaleState, grow, spall

R_GAS = 8.314462618
"""Gas constant, J/(mol K)."""
WORK_BUDGET_S = 0.002
"""Longest one :meth:`World.sync` works on the simulation, wall s."""
MAX_LAG_S = 0.25
"""Backlog carried between syncs, in wall seconds at the requested speed-up; the rest is shed."""
WORK_LOG_SIZE = 100_000
"""How many syncs' work times :meth:`World.work_stats` looks at."""
SAMPLE_PERIOD_S = 0.05
ACHIEVED_WINDOW_S = 2.0
"""The achieved speed-up is measured over this many wall seconds."""

FloatArray = NDArray[np.float64]


class ElementOxidation(BaseModel):
    """Parabolic-oxidation parameters of the scale that one element forms.

    ``kp = k0 * exp(-Q / (R T))`` with ``x**2 = kp * t`` (x: oxide thickness).
    The default values are *typical*, chosen from ../shared/DOMAIN.md: chromia forms 3.6 um
    in 100 h near 900 degC.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    activation_energy_kj_per_mol: float = Field(gt=0)
    """Q, kJ/mol (50..600)."""
    kp_ref_m2_per_s: float = Field(gt=0)
    """kp at ``reference_temperature_k``, m^2/s."""
    reference_temperature_k: float = Field(default=1173.15, gt=0)

    def k0(self) -> float:
        """Return the pre-exponential factor k0, m^2/s."""
        q = self.activation_energy_kj_per_mol * 1e3
        return self.kp_ref_m2_per_s * math.exp(q / (R_GAS * self.reference_temperature_k))


def _default_elements() -> dict[str, ElementOxidation]:
    return {
        "Cr": ElementOxidation(activation_energy_kj_per_mol=250.0, kp_ref_m2_per_s=3.6e-17),
        "Ni": ElementOxidation(activation_energy_kj_per_mol=112.0, kp_ref_m2_per_s=4.0e-16),
        "Fe": ElementOxidation(activation_energy_kj_per_mol=160.0, kp_ref_m2_per_s=2.0e-15),
        "Al": ElementOxidation(activation_energy_kj_per_mol=340.0, kp_ref_m2_per_s=2.0e-18),
    }


class OxidationModel(BaseModel):
    """Oxide growth on the world's coupons: which law, and its parameters.

    ``law="regimes"`` (the default) is the Ni-Cr and Ni-Al physics of
    :mod:`couponlab.simulators.oxidation_regimes`: a critical Cr (Al) content between a fast
    NiO scale and a slow chromia (alumina) scale, a transient, chromia volatilisation and
    spallation on cooling (ground truth: :mod:`couponlab.simulators.oxidation_truth`).

    ``law="mixing"`` is plain parabolic growth with a mixing rule over the elements: for
    element fractions ``c_i`` (summing to 1), ``Q = sum c_i Q_i`` and
    ``ln k0 = sum c_i ln k0_i``. It is the same law the simplest analysis fits, so it tests
    an instrument chain, never a method.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    law: Literal["regimes", "mixing"] = "regimes"
    regimes: RegimeParameters = Field(default_factory=RegimeParameters)
    """Parameters of the regime law (``law="regimes"``)."""
    elements: dict[str, ElementOxidation] = Field(default_factory=_default_elements)
    """Per-element parameters of the mixing law (``law="mixing"``)."""
    step_s: float = Field(default=60.0, gt=0)
    """Integration step of oxide growth, s of virtual time."""
    pilling_bedworth: float = Field(default=2.0, ge=1.0, le=5.0)
    """Oxide volume per volume of metal consumed under the mixing law (the regime law has
    one per scale)."""

    def _check(self, composition: Mapping[str, FloatArray | float]) -> None:
        unknown = set(composition) - set(self.elements)
        if unknown:
            raise KeyError(f"no oxidation parameters for element(s) {sorted(unknown)}")

    def activation_energy(self, composition: Mapping[str, FloatArray | float]) -> FloatArray:
        """Return Q of a composition under the mixing law (per node), J/mol."""
        self._check(composition)
        return np.asarray(
            sum(
                np.asarray(c, float) * self.elements[e].activation_energy_kj_per_mol * 1e3
                for e, c in composition.items()
            ),
            float,
        )

    def ln_k0(self, composition: Mapping[str, FloatArray | float]) -> FloatArray:
        """Return ln(k0 / (m^2/s)) of a composition under the mixing law (per node)."""
        self._check(composition)
        return np.asarray(
            sum(
                np.asarray(c, float) * math.log(self.elements[e].k0())
                for e, c in composition.items()
            ),
            float,
        )

    def kp(
        self, composition: Mapping[str, FloatArray | float], temperature_k: FloatArray
    ) -> FloatArray:
        """Return the mixing law's parabolic rate constant (m^2/s) at ``temperature_k`` (K)."""
        t = np.asarray(temperature_k, float)
        return np.exp(self.ln_k0(composition) - self.activation_energy(composition) / (R_GAS * t))


class WorldConfig(BaseModel):
    """Configuration of the simulated world (the ``world:`` section of a lab file).

    Sections that belong to one instrument family (``printing``, ``mechanics`` ...) are kept
    as plain mappings here and validated by that family's twin.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    speedup: float = Field(default=1.0, gt=0, le=1e6)
    """Virtual seconds per wall-clock second."""
    seed: int = 0
    """Seed of the world's random generator (noise of every twin)."""
    ambient_temperature_c: float = Field(default=25.0, ge=-50, le=60)
    """Room temperature, degC."""
    oxidation: OxidationModel = Field(default_factory=OxidationModel)

    def section(self, name: str) -> dict[str, object]:
        """Return an extra section (e.g. ``"printing"``) as a dict, empty if absent."""
        extra = self.model_extra or {}
        value = extra.get(name, {})
        if not isinstance(value, dict):
            raise ValueError(f"world section {name!r} must be a mapping")
        return dict(value)


class TemperatureField(Protocol):
    """Anything that can hold a coupon and tell the temperature along it (a furnace)."""

    def temperature_along(self, x_mm: FloatArray) -> FloatArray:
        """Return the temperature (K) at positions ``x_mm`` along the holder's axis (mm)."""
        ...


@dataclass
class Coupon:
    """A printed coupon: geometry, a 2-D composition map, and the oxide grown on it.

    x runs along the coupon's length (the furnace axis: the temperature varies along x),
    y across its width. A coupon graded across y and heated with a gradient along x puts
    every (composition, temperature) pair on one coupon. Positions are in mm from the
    coupon's corner; the maps live on the grid ``y_mm`` x ``x_mm`` (arrays shaped (ny, nx)).
    """

    coupon_id: str
    length_mm: float = 60.0
    width_mm: float = 10.0
    thickness_mm: float = 2.0
    resolution_mm: float = 0.5
    composition: dict[str, FloatArray] = field(default_factory=dict)
    """Element fractions per node, arrays shaped (ny, nx); they sum to 1 at every node."""
    metadata: dict[str, object] = field(default_factory=dict)
    holder: TemperatureField | None = None
    holder_name: str = ""
    offset_mm: float = 0.0
    """Position of the coupon's x = 0 along the holder's axis, mm."""
    x_mm: FloatArray = field(init=False)
    y_mm: FloatArray = field(init=False)
    oxide_x2_m2: FloatArray = field(init=False)
    """Square of the oxide thickness a spot sees per node, m^2, shaped (ny, nx)."""
    exposure_s: float = 0.0
    """Virtual seconds spent in a hot holder."""
    scales: ScaleState | None = None
    """State of the regime law's scales (None until first exposed)."""
    settled: bool = True
    """True once the coupon, out of any holder, has been checked for spallation."""
    recession_m: FloatArray = field(init=False)
    """Metal consumed by oxidation under the exposed surface per node, m, shaped (ny, nx):
    the oxide grown in all (spalled or evaporated included) over its Pilling-Bedworth
    ratio. The frame twin takes it off a specimen's load-bearing section."""

    def __post_init__(self) -> None:
        nx = round(self.length_mm / self.resolution_mm) + 1
        ny = round(self.width_mm / self.resolution_mm) + 1
        self.x_mm = np.linspace(0.0, self.length_mm, nx)
        self.y_mm = np.linspace(0.0, self.width_mm, ny)
        self.oxide_x2_m2 = np.zeros((ny, nx))
        self.recession_m = np.zeros((ny, nx))

    @property
    def shape(self) -> tuple[int, int]:
        """Return the map shape (ny, nx)."""
        return (self.y_mm.size, self.x_mm.size)

    def set_composition(self, composition: Mapping[str, FloatArray | float]) -> None:
        """Set the composition map; fractions must sum to 1 at every node.

        Each value may be a constant, an array along x (shape (nx,), uniform across y), or
        a full map (shape (ny, nx)).
        """
        comp = {
            e: np.broadcast_to(np.asarray(c, float), self.shape).copy()
            for e, c in composition.items()
        }
        total = sum(comp.values())
        if not np.allclose(total, 1.0, atol=1e-6):
            raise ValueError(f"coupon {self.coupon_id}: fractions must sum to 1 at every node")
        self.composition = comp

    def _interp(
        self, field_: FloatArray, x_mm: float | FloatArray, y_mm: float | FloatArray | None
    ) -> FloatArray:
        x = np.atleast_1d(np.asarray(x_mm, float))
        y = (
            np.full_like(x, self.width_mm / 2)
            if y_mm is None
            else np.broadcast_to(np.atleast_1d(np.asarray(y_mm, float)), x.shape)
        )
        fx = np.clip(np.interp(x, self.x_mm, np.arange(self.x_mm.size)), 0, self.x_mm.size - 1)
        fy = np.clip(np.interp(y, self.y_mm, np.arange(self.y_mm.size)), 0, self.y_mm.size - 1)
        x0 = np.minimum(np.floor(fx).astype(int), self.x_mm.size - 2)
        y0 = np.minimum(np.floor(fy).astype(int), self.y_mm.size - 2)
        tx, ty = fx - x0, fy - y0
        f = field_
        out: FloatArray = (
            f[y0, x0] * (1 - tx) * (1 - ty)
            + f[y0, x0 + 1] * tx * (1 - ty)
            + f[y0 + 1, x0] * (1 - tx) * ty
            + f[y0 + 1, x0 + 1] * tx * ty
        )
        return out

    def _interp_grid(self, field_: FloatArray, x_mm: FloatArray, y_mm: FloatArray) -> FloatArray:
        """Bilinear lookup of ``field_`` on the grid ``y_mm`` x ``x_mm`` (separable, so a
        camera-sized grid costs a few array operations, not one lookup per point)."""
        fx = np.clip(np.interp(x_mm, self.x_mm, np.arange(self.x_mm.size)), 0, self.x_mm.size - 1)
        fy = np.clip(np.interp(y_mm, self.y_mm, np.arange(self.y_mm.size)), 0, self.y_mm.size - 1)
        x0 = np.minimum(np.floor(fx).astype(int), self.x_mm.size - 2)
        y0 = np.minimum(np.floor(fy).astype(int), self.y_mm.size - 2)
        tx, ty = (fx - x0)[None, :], (fy - y0)[:, None]
        low = field_[y0][:, x0] * (1 - tx) + field_[y0][:, x0 + 1] * tx
        high = field_[y0 + 1][:, x0] * (1 - tx) + field_[y0 + 1][:, x0 + 1] * tx
        out: FloatArray = low * (1 - ty) + high * ty
        return out

    def composition_grid(self, x_mm: FloatArray, y_mm: FloatArray) -> dict[str, FloatArray]:
        """Return element fractions on the grid ``y_mm`` x ``x_mm`` (arrays (ny, nx))."""
        x, y = np.asarray(x_mm, float), np.asarray(y_mm, float)
        return {e: self._interp_grid(c, x, y) for e, c in self.composition.items()}

    def oxide_thickness_grid(self, x_mm: FloatArray, y_mm: FloatArray) -> FloatArray:
        """Return the oxide thickness (m) on the grid ``y_mm`` x ``x_mm`` (array (ny, nx))."""
        x, y = np.asarray(x_mm, float), np.asarray(y_mm, float)
        thickness: FloatArray = np.sqrt(self._interp_grid(self.oxide_x2_m2, x, y))
        return thickness

    def composition_at(
        self, x_mm: float | FloatArray, y_mm: float | FloatArray | None = None
    ) -> dict[str, FloatArray]:
        """Return element fractions at points (``x_mm``, ``y_mm``) (bilinear interpolation).

        ``y_mm`` defaults to the centre line of the coupon.
        """
        return {e: self._interp(c, x_mm, y_mm) for e, c in self.composition.items()}

    def oxide_thickness_at(
        self, x_mm: float | FloatArray, y_mm: float | FloatArray | None = None
    ) -> FloatArray:
        """Return the oxide thickness (m) at points (``x_mm``, ``y_mm``; y: centre line)."""
        thickness: FloatArray = np.sqrt(self._interp(self.oxide_x2_m2, x_mm, y_mm))
        return thickness

    def recession_at(
        self, x_mm: float | FloatArray, y_mm: float | FloatArray | None = None
    ) -> FloatArray:
        """Return the metal recession (m) at points (``x_mm``, ``y_mm``; y: centre line)."""
        return self._interp(self.recession_m, x_mm, y_mm)

    def recession_grid(self, x_mm: FloatArray, y_mm: FloatArray) -> FloatArray:
        """Return the metal recession (m) on the grid ``y_mm`` x ``x_mm`` (array (ny, nx))."""
        return self._interp_grid(
            self.recession_m, np.asarray(x_mm, float), np.asarray(y_mm, float)
        )

    def temperature_k(self) -> FloatArray | None:
        """Return the temperature (K) along x, or None when not in a holder."""
        if self.holder is None:
            return None
        return self.holder.temperature_along(self.offset_mm + self.x_mm)


class World:
    """The shared simulated world: SimPy environment, clock, random generator and coupons.

    Parameters
    ----------
    config
        World configuration; defaults to :class:`WorldConfig` defaults.
    paused
        Start with virtual time stopped at 0 (tests then step it with :meth:`advance`);
        pausing right after construction instead would let a little wall time slip in.
    """

    def __init__(self, config: WorldConfig | None = None, *, paused: bool = False) -> None:
        self.config = config or WorldConfig()
        self.env = simpy.Environment()
        self._rngs: dict[str, np.random.Generator] = {}
        self.rng = self.rng_for("world")
        """The world's own stream (not an instrument's: those use :meth:`rng_for`)."""
        self.coupons: dict[str, Coupon] = {}
        self.instruments: dict[str, object] = {}
        """Twin models by device name, so that one twin can find another (a thermocouple
        scanner finds the furnace whose carrier it instruments; a profiler finds its stage)."""
        self.faults = FaultBoard(self)
        """Fault injection into the twins, by device name (:mod:`couponlab.simulators.faults`)."""
        self._speedup = self.config.speedup
        self._wall0 = time.monotonic()
        self._virt0 = 0.0
        self._paused = paused
        self._listeners: list[Callable[[], None]] = []
        self.work_budget_s = WORK_BUDGET_S
        """Longest a :meth:`sync` works on the simulation, wall s (> 0)."""
        self.max_lag_s = MAX_LAG_S
        """Largest backlog carried from one sync to the next, wall s of virtual time (>= 0)."""
        self.slowed_s = 0.0
        """Virtual seconds of backlog dropped because the simulation could not keep up."""
        self._samples: deque[tuple[float, float]] = deque()
        self._work: deque[float] = deque(maxlen=WORK_LOG_SIZE)
        self._oxidation_wake: simpy.Event | None = None
        self.env.process(self._oxidise())

    # -- randomness ------------------------------------------------------------------------
    def rng_for(self, name: str) -> np.random.Generator:
        """Return the random stream of instrument ``name`` (the same object on every call).

        The stream is spawned from the world seed and the name alone, so it does not depend
        on which other instruments exist or when they draw.
        """
        rng = self._rngs.get(name)
        if rng is None:
            seq = np.random.SeedSequence(self.config.seed, spawn_key=tuple(name.encode()))
            rng = self._rngs[name] = np.random.default_rng(seq)
        return rng

    # -- time ------------------------------------------------------------------------------
    @property
    def now(self) -> float:
        """Return virtual time, s since the world started."""
        return float(self.env.now)

    @property
    def speedup(self) -> float:
        """Return virtual seconds per wall-clock second."""
        return self._speedup

    def set_speedup(self, speedup: float) -> None:
        """Change the speed-up (> 0, <= 1e6) from now on, without a jump in virtual time."""
        if not 0 < speedup <= 1e6:
            raise ValueError(f"speedup must be in (0, 1e6], got {speedup}")
        self.sync()
        self._virt0, self._wall0, self._speedup = self.now, time.monotonic(), speedup
        self._samples.clear()

    def pause(self) -> None:
        """Stop virtual time following the wall clock (tests step it with :meth:`advance`)."""
        self.sync()
        self._paused = True

    def resume(self) -> None:
        """Let virtual time follow the wall clock again, from where it is."""
        self._virt0, self._wall0, self._paused = self.now, time.monotonic(), False
        self._samples.clear()

    def target_time(self) -> float:
        """Return the virtual time that corresponds to the wall clock now."""
        if self._paused:
            return self.now
        return self._virt0 + self._speedup * (time.monotonic() - self._wall0)

    def sync(self, budget_s: float | None = None) -> bool:
        """Advance the simulation towards the virtual time that matches the wall clock.

        Works at most ``budget_s`` wall seconds (default :attr:`work_budget_s`). If the
        target is not reached by then, the backlog beyond :attr:`max_lag_s` is dropped:
        virtual time then runs slower than requested (see :meth:`achieved_speedup`).
        Return whether the target was reached.
        """
        target = self.target_time()
        if target <= self.env.now:
            return True
        budget = self.work_budget_s if budget_s is None else budget_s
        start = time.perf_counter()
        reached = self._run_until(target, start + budget)
        self._work.append(time.perf_counter() - start)
        if not reached:
            self._shed_backlog()
        self._sample()
        for listener in self._listeners:
            listener()
        return reached

    @property
    def paused(self) -> bool:
        """Return whether virtual time is stopped (stepped only by :meth:`advance`)."""
        return self._paused

    def work_stats(self, reset: bool = False) -> dict[str, float | int]:
        """Return the wall time of recent syncs' simulation work: count, p50, p99, max (ms).

        This is the longest a reply can wait on simulation work (its own sync, or the clock's
        slice in progress). ``reset`` forgets the record after reading it.
        """
        work = np.asarray(self._work, float) * 1e3
        if reset:
            self._work.clear()
        if work.size == 0:
            return {"count": 0, "p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}
        p50, p99 = np.percentile(work, [50, 99])
        return {
            "count": int(work.size),
            "p50_ms": float(p50),
            "p99_ms": float(p99),
            "max_ms": float(work.max()),
        }

    def _shed_backlog(self) -> None:
        """Drop the part of the backlog beyond :attr:`max_lag_s` of wall time.

        A short stall (the process was not scheduled for a while) is caught up by the next
        slices; a simulation that cannot keep up sheds the excess, so virtual time slows down
        instead of running up a debt that would starve replies later.
        """
        wall = time.monotonic()
        allowed = self._speedup * self.max_lag_s
        excess = self._virt0 + self._speedup * (wall - self._wall0) - self.now - allowed
        if excess > 0:
            self.slowed_s += excess
            self._virt0, self._wall0 = self.now + allowed, wall

    def behind(self) -> bool:
        """Return whether virtual time is behind the wall clock's target (work is due)."""
        return self.target_time() > self.env.now

    def _run_until(self, target: float, deadline: float) -> bool:
        env, clock = self.env, time.perf_counter
        while env.peek() < target:
            env.step()
            if clock() >= deadline:
                return False
        if target > env.now:
            # a timeout at the target, stepped to, brings the clock there: what
            # env.run(until=target) does, without its stop exception and the leftover event
            # it leaves queued (about half of an idle sync's cost; decision 0075)
            mark = env.timeout(target - env.now)
            while not mark.processed:
                env.step()
        return True

    def _sample(self) -> None:
        wall = time.monotonic()
        samples = self._samples
        # the clock's target, not the simulated time: a carried backlog (up to max_lag_s)
        # is not lost, and catching it up is not a speed-up beyond the requested one
        sample = (wall, self._virt0 + self._speedup * (wall - self._wall0))
        if len(samples) > 1 and wall - samples[-2][0] < SAMPLE_PERIOD_S:
            samples[-1] = sample  # the newest sample is always now (a shed shows at once)
            return
        samples.append(sample)
        while samples and wall - samples[0][0] > ACHIEVED_WINDOW_S:
            samples.popleft()

    def achieved_speedup(self) -> float:
        """Return virtual s per wall s over the last few wall seconds (0 if paused), net
        of the virtual time shed (:attr:`slowed_s`).

        Equal to :attr:`speedup` while the simulation keeps up, lower when it cannot, never
        higher: a backlog carried and then caught up is not counted as extra speed.
        """
        if self._paused:
            return 0.0
        self._sample()
        samples = self._samples
        if len(samples) < 2 or samples[-1][0] - samples[0][0] < 2 * SAMPLE_PERIOD_S:
            return self._speedup
        (w0, v0), (w1, v1) = samples[0], samples[-1]
        return (v1 - v0) / (w1 - w0)

    def advance(self, seconds: float) -> None:
        """Advance virtual time by ``seconds`` (>= 0) regardless of the wall clock."""
        if seconds < 0:
            raise ValueError(f"cannot advance by {seconds} s")
        self.env.run(until=self.env.now + seconds)
        self._virt0, self._wall0 = self.now, time.monotonic()
        for listener in self._listeners:
            listener()

    def on_sync(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` after every advance of virtual time (e.g. to publish values)."""
        self._listeners.append(listener)

    async def run_clock(self, tick_s: float = 0.01) -> None:
        """Keep the simulation in step with the wall clock until cancelled.

        Works in slices of at most :attr:`work_budget_s` and rests as long between them, so
        replies are never held back by more than one slice and a simulation that cannot keep
        up takes at most about half a core (virtual time slows down instead).

        Parameters
        ----------
        tick_s
            Wall-clock period of the updates when the simulation keeps up, s (> 0).
        """
        while True:
            caught_up = self.sync()
            # out of budget: rest as long as it worked (at most half a core, so the plans'
            # process and the replies get their share), then go on; else wait a tick
            await asyncio.sleep(tick_s if caught_up else self.work_budget_s)

    async def advance_async(self, seconds: float) -> None:
        """Advance virtual time by ``seconds`` (>= 0), yielding to the loop between slices."""
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"cannot advance by {seconds} s")
        target = self.env.now + seconds
        while True:
            if self._run_until(target, time.perf_counter() + self.work_budget_s):
                break
            await asyncio.sleep(0)  # let replies through between slices
        self._virt0, self._wall0 = self.now, time.monotonic()
        for listener in self._listeners:
            listener()

    # -- instruments -----------------------------------------------------------------------
    def register_instrument(self, name: str, model: object) -> None:
        """Register a twin's model under its device name so that other twins can find it."""
        if name in self.instruments and self.instruments[name] is not model:
            raise ValueError(f"an instrument called {name!r} is already registered")
        self.instruments[name] = model

    def unregister_instrument(self, name: str) -> None:
        """Forget the instrument called ``name`` (no error if absent)."""
        self.instruments.pop(name, None)

    def instrument(self, name: str) -> object:
        """Return the model registered as ``name``; raise ``KeyError`` naming the known ones."""
        try:
            return self.instruments[name]
        except KeyError:
            raise KeyError(
                f"no instrument {name!r} in the world; have {sorted(self.instruments)}"
            ) from None

    # -- coupons ---------------------------------------------------------------------------
    def add_coupon(self, coupon: Coupon) -> Coupon:
        """Register a coupon; its id must be new."""
        if coupon.coupon_id in self.coupons:
            raise ValueError(f"coupon {coupon.coupon_id!r} already exists")
        self.coupons[coupon.coupon_id] = coupon
        self._wake_oxidation()
        return coupon

    def coupon(self, coupon_id: str) -> Coupon:
        """Return the coupon with this id; raise ``KeyError`` naming the known ones."""
        try:
            return self.coupons[coupon_id]
        except KeyError:
            raise KeyError(f"no coupon {coupon_id!r}; have {sorted(self.coupons)}") from None

    def place(
        self,
        coupon_id: str,
        holder: TemperatureField | None,
        holder_name: str = "",
        offset_mm: float = 0.0,
    ) -> None:
        """Put a coupon into a holder (a furnace) at ``offset_mm`` along it, or take it out."""
        c = self.coupon(coupon_id)
        c.holder, c.holder_name, c.offset_mm = holder, holder_name, offset_mm
        c.settled = False
        self._wake_oxidation()

    def _wake_oxidation(self) -> None:
        """Resume the oxidation steps if they rest (a coupon was added or placed)."""
        wake, self._oxidation_wake = self._oxidation_wake, None
        if wake is not None:
            wake.succeed()

    def _oxidise(self) -> Generator[simpy.Event, None, None]:
        """SimPy process: grow oxide on held coupons every ``step_s`` (the configured law).

        A step after which no coupon is in a holder and every coupon is settled changes
        nothing until a coupon is added or placed (the only ways into a holder): the steps
        then rest and resume on the same time grid when :meth:`add_coupon` or :meth:`place`
        wakes them, so an idle world costs no SimPy event per step (a twin syncs its world
        before every reply; decision 0075)."""
        model = self.config.oxidation
        dt = model.step_s
        ambient_k = self.config.ambient_temperature_c + 273.15
        while True:
            yield self.env.timeout(dt)
            if self._oxidation_step(model, dt, ambient_k):
                continue
            last = self.env.now
            self._oxidation_wake = self.env.event()
            yield self._oxidation_wake
            due = last + dt  # the grid of the steps skipped meanwhile, summed as they were
            while due < self.env.now:
                due += dt
            if due > self.env.now:
                yield self.env.timeout(due - self.env.now)
            self._oxidation_step(model, dt, ambient_k)
            # the loop's next timeout(dt) follows from this step, as without a rest

    def _oxidation_step(self, model: OxidationModel, dt: float, ambient_k: float) -> bool:
        """Grow oxide on every held coupon for ``dt`` s; return whether any coupon was (or
        may yet be) affected: False when none is in a holder and all are settled."""
        active = False
        for c in self.coupons.values():
            if not c.composition:
                continue
            t = c.temperature_k()
            if model.law == "mixing":
                if t is not None:
                    active = True
                    c.oxide_x2_m2 += model.kp(c.composition, t) * dt
                    c.recession_m = np.sqrt(c.oxide_x2_m2) / model.pilling_bedworth
                    c.exposure_s += dt
                continue
            if t is None and (c.settled or c.scales is None):
                c.settled = True
                continue
            active = True
            self._grow_regimes(c, t, ambient_k, dt)
        return active

    def _grow_regimes(self, c: Coupon, t: FloatArray | None, ambient_k: float, dt: float) -> None:
        """Advance one coupon under the regime law (``t``: K along x, None out of a holder)."""
        params = self.config.oxidation.regimes
        cr = c.composition.get("Cr", np.zeros(c.shape))
        al = c.composition.get("Al")
        if al is not None and not np.any(al > 0):
            al = None  # no Al anywhere: the Ni-Cr law alone, exactly
        if c.scales is None:
            c.scales = ScaleState.new(c.shape, params, self.rng)
        if t is None:  # out of the holder: cooled to ambient, check once for spallation
            spall(c.scales, np.full(c.shape, ambient_k), params)
            c.settled = True
        else:
            temps = np.broadcast_to(t, c.shape)
            if float(np.max(temps)) > ambient_k + 50.0:  # growth below that is negligible
                grow(c.scales, cr, temps, dt, params, al)
                c.exposure_s += dt
            spall(c.scales, temps, params)
        c.oxide_x2_m2 = c.scales.thickness_m(cr, params, al) ** 2
        c.recession_m = c.scales.metal_recession_m(cr, params, al)


__all__ = [
    "R_GAS",
    "Coupon",
    "ElementOxidation",
    "OxidationModel",
    "TemperatureField",
    "World",
    "WorldConfig",
]
