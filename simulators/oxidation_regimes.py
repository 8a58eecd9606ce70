"""Oxidation regimes of Ni-Cr and Ni-Al coupons: the world's oxide physics (parameters, growth).

What the world grows on every node of a coupon, integrated in time by
:meth:`couponlab.simulators.world.World` (sources and defaults: docs/science/oxidation-world.md):

- **Two scales.** A fast, non-protective NiO scale (with internal Cr2O3 beneath it, not seen
  by the profiler) and a slow, protective Cr2O3 scale, each parabolic with Arrhenius
  ``kp = kp_ref exp(-Q/R (1/T - 1/T_ref))``; chromia's Q and kp depend on the Cr content
  (more Cr, slower growth).
- **Critical Cr content.** The surface fraction covered by a continuous chromia scale is
  ``f = Phi((c_Cr - c_crit) / spread)`` (Phi: the normal CDF: the local Cr content at the
  surface scatters about the nominal one). The profiler's spot averages the two scales:
  ``x = f x_chromia + (1 - f) x_NiO``.
- **Ni-Al.** Likewise a slow, protective alumina scale (no volatilisation) covers
  ``f_Al = Phi((c_Al - c_crit,Al(T)) / spread)``; below it NiO with internal Al2O3. Its
  critical content follows Wagner's criterion in temperature,
  ``c_crit(T) = c_ref exp(dQ / 2R (1/T - 1/T_ref))``, taken at the hottest temperature the
  node saw (where the scale formed). Where both elements are present chromia has the first
  claim: ``x = f_Cr x_chromia + (1 - f_Cr) (f_Al x_alumina + (1 - f_Al) x_NiO)``. Nodes of
  a coupon without Al grow exactly as the Ni-Cr law alone.
- **Transient.** Before the chromia becomes continuous every element oxidises: the chromia
  part first grows at the NiO rate, for a time ``t_tr(T)`` (Arrhenius: shorter when hot).
- **Volatilisation.** Cr2O3 + 3/2 O2 -> 2 CrO3(g) thins the chromia at ``kv(T)`` (Arrhenius),
  so ``dx/dt = kp / (2x) - kv`` (Tedmon's paralinear law).
- **Spallation on cooling.** A scale of thickness x cooled by dT from the hottest temperature
  it saw stores ``E (da dT)**2 x / (1 - nu)`` of elastic energy per area; where that exceeds
  the interface's fracture energy (a per-node scatter factor times ``G_c``) the scale spalls,
  leaving ``residual_fraction`` of it.

Every function here is vectorised over node arrays, so a coverage test can grow hundreds of
coupons at once with the same code the world runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field
from scipy.special import ndtr

R_GAS = 8.314462618
"""Gas constant, J/(mol K)."""

FloatArray = NDArray[np.float64]


def _arrhenius(ref: float, q_j: FloatArray | float, t_ref: float, t_k: FloatArray) -> FloatArray:
    """Return ``ref * exp(-Q/R (1/T - 1/T_ref))``."""
    out: FloatArray = ref * np.exp(-np.asarray(q_j) / R_GAS * (1.0 / t_k - 1.0 / t_ref))
    return out


class ScaleKinetics(BaseModel):
    """Parabolic growth of one scale: ``x**2 = kp t``, ``kp = k0 exp(-Q / (R T))``.

    Q and ``ln kp_ref`` may vary linearly with the Cr mass fraction about
    ``reference_cr`` (slopes per unit fraction, 0..1).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    activation_energy_kj_per_mol: float = Field(gt=0, le=600)
    """Q at ``reference_cr``, kJ/mol."""
    kp_ref_m2_per_s: float = Field(gt=0)
    """kp at ``reference_temperature_k`` and ``reference_cr``, m^2/s."""
    reference_temperature_k: float = Field(default=1173.15, gt=0)
    reference_cr: float = Field(default=0.3, ge=0, le=1)
    q_slope_kj_per_mol: float = 0.0
    """dQ / d(Cr fraction), kJ/mol per unit fraction."""
    ln_kp_slope: float = 0.0
    """d ln(kp_ref) / d(Cr fraction), per unit fraction."""
    pilling_bedworth: float = Field(default=2.0, ge=1.0, le=5.0)
    """Pilling-Bedworth ratio, oxide volume per volume of metal consumed: a scale of
    thickness x consumed x / ratio of metal (NiO 1.65, Cr2O3 2.07, Al2O3 1.28)."""

    def activation_energy_j(self, cr: FloatArray | float) -> FloatArray:
        """Return Q (J/mol) at Cr fraction ``cr``."""
        dc = np.asarray(cr, float) - self.reference_cr
        return np.asarray((self.activation_energy_kj_per_mol + self.q_slope_kj_per_mol * dc) * 1e3)

    def ln_kp_ref(self, cr: FloatArray | float) -> FloatArray:
        """Return ln(kp / (m^2/s)) at the reference temperature and Cr fraction ``cr``."""
        dc = np.asarray(cr, float) - self.reference_cr
        return np.asarray(math.log(self.kp_ref_m2_per_s) + self.ln_kp_slope * dc)

    def ln_k0(self, cr: FloatArray | float) -> FloatArray:
        """Return ln(k0 / (m^2/s)), the pre-exponential factor at Cr fraction ``cr``."""
        return np.asarray(
            self.ln_kp_ref(cr)
            + self.activation_energy_j(cr) / (R_GAS * self.reference_temperature_k)
        )

    def kp(self, cr: FloatArray | float, temperature_k: FloatArray) -> FloatArray:
        """Return kp (m^2/s) at Cr fraction ``cr`` and ``temperature_k`` (K)."""
        t = np.asarray(temperature_k, float)
        return np.exp(self.ln_k0(cr) - self.activation_energy_j(cr) / (R_GAS * t))


def _nio() -> ScaleKinetics:
    return ScaleKinetics(
        activation_energy_kj_per_mol=112.0, kp_ref_m2_per_s=5.0e-16, pilling_bedworth=1.65
    )


def _chromia() -> ScaleKinetics:
    return ScaleKinetics(
        activation_energy_kj_per_mol=250.0,
        kp_ref_m2_per_s=3.6e-17,
        q_slope_kj_per_mol=100.0,
        ln_kp_slope=-5.0,
        pilling_bedworth=2.07,
    )


class CriticalContent(BaseModel):
    """Where a continuous protective scale forms: ``f = Phi((c - c_crit(T)) / spread)``.

    ``c_crit(T) = fraction * exp(wagner_energy / 2R * (1/T - 1/reference_temperature_k))``:
    Wagner's criterion, ``c_crit ~ sqrt(oxygen permeability / solute diffusivity)``, with
    ``wagner_energy`` the solute's diffusion activation energy minus the oxygen
    permeability's (positive: less solute needed when hot). 0 (the Cr default): no
    temperature dependence.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    fraction: float = Field(default=0.20, gt=0, lt=1)
    """Critical mass fraction (f = 0.5) at ``reference_temperature_k``, 0..1."""
    spread: float = Field(default=0.015, gt=0, le=0.2)
    """Standard deviation of the local surface content, mass fraction."""
    wagner_energy_kj_per_mol: float = Field(default=0.0, ge=-200, le=200)
    """Solute diffusion minus oxygen permeability activation energy, kJ/mol."""
    reference_temperature_k: float = Field(default=1273.15, gt=0)

    def fraction_at(self, temperature_k: FloatArray | float) -> FloatArray:
        """Return the critical mass fraction at ``temperature_k`` (K)."""
        inv = 1.0 / np.asarray(temperature_k, float) - 1.0 / self.reference_temperature_k
        slope = self.wagner_energy_kj_per_mol * 1e3 / (2 * R_GAS)
        return np.asarray(self.fraction * np.exp(slope * inv))

    def protective_fraction(
        self, content: FloatArray | float, temperature_k: FloatArray | float | None = None
    ) -> FloatArray:
        """Return the surface fraction covered by the protective scale (0..1).

        ``temperature_k`` (K) matters only with a ``wagner_energy_kj_per_mol``.
        """
        c = np.asarray(content, float)
        if self.wagner_energy_kj_per_mol == 0.0 or temperature_k is None:
            return np.asarray(ndtr((c - self.fraction) / self.spread))
        return np.asarray(ndtr((c - self.fraction_at(temperature_k)) / self.spread))


CriticalChromium = CriticalContent
"""The critical Cr content (the same model; its name before Ni-Al)."""


def _critical_al() -> CriticalContent:
    return CriticalContent(fraction=0.10, spread=0.01, wagner_energy_kj_per_mol=40.0)


def _alumina() -> ScaleKinetics:
    return ScaleKinetics(
        activation_energy_kj_per_mol=340.0, kp_ref_m2_per_s=2.0e-19, pilling_bedworth=1.28
    )


class Transient(BaseModel):
    """Transient oxidation: the chromia part grows at the NiO rate for ``t_tr(T)``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    duration_ref_s: float = Field(default=60.0, ge=0)
    """Transient duration at ``reference_temperature_k``, s."""
    reference_temperature_k: float = Field(default=1173.15, gt=0)
    activation_energy_kj_per_mol: float = Field(default=112.0, ge=0)
    """Q of 1 / t_tr (Cr supply to the surface), kJ/mol."""

    def duration_s(self, temperature_k: FloatArray) -> FloatArray:
        """Return the transient duration (s) at ``temperature_k`` (K)."""
        return _arrhenius(
            self.duration_ref_s,
            -self.activation_energy_kj_per_mol * 1e3,
            self.reference_temperature_k,
            temperature_k,
        )


class Volatilisation(BaseModel):
    """CrO3 evaporation from chromia: a linear loss ``kv(T)``, m/s."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    kv_ref_m_per_s: float = Field(default=3.0e-12, ge=0)
    """kv at ``reference_temperature_k``, m/s."""
    reference_temperature_k: float = Field(default=1273.15, gt=0)
    activation_energy_kj_per_mol: float = Field(default=400.0, ge=0)

    def kv(self, temperature_k: FloatArray) -> FloatArray:
        """Return the linear loss rate (m/s) at ``temperature_k`` (K)."""
        if not self.enabled:
            return np.zeros_like(np.asarray(temperature_k, float))
        return _arrhenius(
            self.kv_ref_m_per_s,
            self.activation_energy_kj_per_mol * 1e3,
            self.reference_temperature_k,
            np.asarray(temperature_k, float),
        )


class ScaleMechanics(BaseModel):
    """Thermal-mismatch spallation of one scale."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    modulus_gpa: float = Field(gt=0)
    poisson: float = Field(default=0.3, ge=0, lt=0.5)
    mismatch_per_k: float = Field(ge=0)
    """Difference of thermal expansion coefficients, alloy minus oxide, 1/K."""
    fracture_energy_j_per_m2: float = Field(gt=0)
    """Interface fracture energy G_c, J/m^2 (median)."""

    def critical_thickness_m(self, cooling_k: FloatArray) -> FloatArray:
        """Return the thickness (m) that spalls after cooling by ``cooling_k`` (K)."""
        strain = self.mismatch_per_k * np.maximum(np.asarray(cooling_k, float), 1e-9)
        out: FloatArray = (
            self.fracture_energy_j_per_m2
            * (1 - self.poisson)
            / (self.modulus_gpa * 1e9 * strain**2)
        )
        return out


class Spallation(BaseModel):
    """Spallation on cooling of both scales."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    chromia: ScaleMechanics = Field(
        default_factory=lambda: ScaleMechanics(
            modulus_gpa=280.0, mismatch_per_k=6.0e-6, fracture_energy_j_per_m2=150.0
        )
    )
    nio: ScaleMechanics = Field(
        default_factory=lambda: ScaleMechanics(
            modulus_gpa=200.0, mismatch_per_k=2.5e-6, fracture_energy_j_per_m2=100.0
        )
    )
    alumina: ScaleMechanics = Field(
        default_factory=lambda: ScaleMechanics(
            modulus_gpa=380.0, mismatch_per_k=8.0e-6, fracture_energy_j_per_m2=150.0
        )
    )
    scatter: float = Field(default=0.3, ge=0, le=2)
    """Standard deviation of ln(G_c) from node to node."""
    residual_fraction: float = Field(default=0.15, ge=0, le=1)
    """Fraction of a spalled scale left on the alloy."""


class RegimeParameters(BaseModel):
    """Everything the regime model needs (a part of the world's ``oxidation`` section)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    nio: ScaleKinetics = Field(default_factory=_nio)
    chromia: ScaleKinetics = Field(default_factory=_chromia)
    critical_cr: CriticalContent = Field(default_factory=CriticalContent)
    alumina: ScaleKinetics = Field(default_factory=_alumina)
    """Alumina on Ni-Al (its composition slopes are per unit Al fraction)."""
    critical_al: CriticalContent = Field(default_factory=_critical_al)
    transient: Transient = Field(default_factory=Transient)
    volatilisation: Volatilisation = Field(default_factory=Volatilisation)
    spallation: Spallation = Field(default_factory=Spallation)


@dataclass
class ScaleState:
    """Oxide state of every node of a coupon (arrays of one shape)."""

    nio_m: FloatArray
    """NiO thickness on the non-protected area, m."""
    chromia_m: FloatArray
    """Thickness on the protected area (transient oxide, then chromia), m."""
    transient_progress: FloatArray
    """Fraction of the transient done (0..1)."""
    hottest_k: FloatArray
    """Hottest temperature seen since the last spallation check at it, K."""
    toughness: FloatArray
    """Per-node factor on G_c (log-normal scatter)."""
    spalled: NDArray[np.bool_]
    """True where a scale has spalled."""
    alumina_m: FloatArray | None = None
    """Thickness on the alumina-protected area (transient oxide, then alumina), m; None
    until a node with Al grows."""
    nio_grown_m: FloatArray = field(default_factory=lambda: np.zeros(0))
    """NiO grown in all (spalled scale included), m: what consumed metal (the current
    thickness when not given)."""
    chromia_grown_m: FloatArray = field(default_factory=lambda: np.zeros(0))
    """Oxide grown on the chromia-protected area in all (transient oxide, chromia, and what
    spalled or evaporated as CrO3 included), m."""
    alumina_grown_m: FloatArray | None = None
    """Oxide grown on the alumina-protected area in all, m (None while ``alumina_m`` is)."""

    def __post_init__(self) -> None:
        if self.nio_grown_m.shape != self.nio_m.shape:
            self.nio_grown_m = np.array(self.nio_m, float)
        if self.chromia_grown_m.shape != self.chromia_m.shape:
            self.chromia_grown_m = np.array(self.chromia_m, float)
        if self.alumina_grown_m is None and self.alumina_m is not None:
            self.alumina_grown_m = np.array(self.alumina_m, float)

    @classmethod
    def new(
        cls, shape: tuple[int, ...], params: RegimeParameters, rng: np.random.Generator
    ) -> ScaleState:
        """Return a bare state (no oxide) drawing each node's interface toughness."""
        return cls(
            nio_m=np.zeros(shape),
            chromia_m=np.zeros(shape),
            transient_progress=np.zeros(shape) if params.transient.enabled else np.ones(shape),
            hottest_k=np.zeros(shape),
            toughness=np.exp(params.spallation.scatter * rng.standard_normal(shape)),
            spalled=np.zeros(shape, bool),
        )

    def thickness_m(
        self, cr: FloatArray, params: RegimeParameters, al: FloatArray | None = None
    ) -> FloatArray:
        """Return the thickness (m) a spot averages: ``f x_chromia + (1 - f) x_NiO``, the
        NiO part ``f_Al x_alumina + (1 - f_Al) x_NiO`` where ``al`` (Al fraction) is given."""
        # the regime is set where the scale formed: at the hottest temperature seen
        formed_k = np.where(self.hottest_k > 0, self.hottest_k, 1273.15)
        f = params.critical_cr.protective_fraction(cr, formed_k)
        unprotected = self.nio_m
        if al is not None and self.alumina_m is not None:
            f_al = params.critical_al.protective_fraction(al, formed_k)
            unprotected = f_al * self.alumina_m + (1.0 - f_al) * self.nio_m
        out: FloatArray = f * self.chromia_m + (1.0 - f) * unprotected
        return out

    def metal_recession_m(
        self, cr: FloatArray, params: RegimeParameters, al: FloatArray | None = None
    ) -> FloatArray:
        """Return the metal consumed by oxidation under the surface, m, area-weighted as in
        :meth:`thickness_m`: each scale's oxide grown in all over its Pilling-Bedworth
        ratio. Spalled and evaporated oxide consumed metal too, so recession only grows."""
        formed_k = np.where(self.hottest_k > 0, self.hottest_k, 1273.15)
        f = params.critical_cr.protective_fraction(cr, formed_k)
        unprotected = self.nio_grown_m / params.nio.pilling_bedworth
        if al is not None and self.alumina_grown_m is not None:
            f_al = params.critical_al.protective_fraction(al, formed_k)
            alumina = self.alumina_grown_m / params.alumina.pilling_bedworth
            unprotected = f_al * alumina + (1.0 - f_al) * unprotected
        out: FloatArray = (
            f * self.chromia_grown_m / params.chromia.pilling_bedworth + (1.0 - f) * unprotected
        )
        return out


def grow(
    state: ScaleState,
    cr: FloatArray,
    temperature_k: FloatArray,
    dt_s: float | FloatArray,
    params: RegimeParameters,
    al: FloatArray | None = None,
) -> None:
    """Grow the scales for ``dt_s`` (s; scalar or per node) at ``temperature_k`` (K).

    ``cr`` is the Cr fraction per node; ``al`` the Al fraction (None: no alumina grows).

    Explicit in time: use steps that are short against the transient (the world uses 60 s).
    """
    t = np.asarray(temperature_k, float)
    k_nio = params.nio.kp(cr, t)
    k_cr = params.chromia.kp(cr, t)
    nio_new = np.sqrt(state.nio_m**2 + k_nio * dt_s)
    state.nio_grown_m = state.nio_grown_m + (nio_new - state.nio_m)
    state.nio_m = nio_new
    in_transient = state.transient_progress < 1.0
    if params.transient.enabled and np.any(in_transient):
        state.transient_progress = np.where(
            in_transient,
            state.transient_progress + dt_s / params.transient.duration_s(t),
            state.transient_progress,
        )
    kv = params.volatilisation.kv(t)
    x = state.chromia_m
    steady = x**2 + k_cr * dt_s - 2.0 * kv * x * dt_s
    grown = np.where(in_transient, np.sqrt(x**2 + k_nio * dt_s), np.sqrt(x**2 + k_cr * dt_s))
    state.chromia_grown_m = state.chromia_grown_m + (grown - x)
    state.chromia_m = np.where(in_transient, grown, np.sqrt(np.maximum(steady, 0.0)))
    if al is not None:
        xa = np.zeros_like(state.nio_m) if state.alumina_m is None else state.alumina_m
        k_al = params.alumina.kp(al, t)
        state.alumina_m = np.sqrt(xa**2 + np.where(in_transient, k_nio, k_al) * dt_s)
        before = np.zeros_like(xa) if state.alumina_grown_m is None else state.alumina_grown_m
        state.alumina_grown_m = before + (state.alumina_m - xa)
    state.hottest_k = np.maximum(state.hottest_k, t)


def spall(state: ScaleState, temperature_k: FloatArray, params: RegimeParameters) -> None:
    """Spall the scales that cooling from their hottest temperature to ``temperature_k`` breaks."""
    sp = params.spallation
    if not sp.enabled:
        return
    cooling = state.hottest_k - np.asarray(temperature_k, float)
    if not np.any(cooling > 20.0):  # a scale that spalls on 20 K of cooling is > 1 mm thick
        return
    scales = [("chromia_m", sp.chromia), ("nio_m", sp.nio)]
    if state.alumina_m is not None:
        scales.append(("alumina_m", sp.alumina))
    for attr, mech in scales:
        x = getattr(state, attr)
        breaks = (cooling > 20.0) & (x > mech.critical_thickness_m(cooling) * state.toughness)
        if np.any(breaks):
            setattr(state, attr, np.where(breaks, x * sp.residual_fraction, x))
            state.spalled |= breaks


__all__ = [
    "R_GAS",
    "CriticalChromium",
    "CriticalContent",
    "RegimeParameters",
    "ScaleKinetics",
    "ScaleMechanics",
    "ScaleState",
    "Spallation",
    "Transient",
    "Volatilisation",
    "grow",
    "spall",
]
