"""Composition-dependent elastic-plastic response of a tensile specimen (the frame twin's physics).

The strengthening model (documented in docs/protocols/frame-scpi.md, "Specimen model"), with
*typical* defaults chosen so that a 316L-like composition (Fe 0.70, Cr 0.18, Ni 0.12) and an
IN625-like one (Ni 0.68, Cr 0.22, Fe 0.05, Al 0.05) land in the as-built ranges of
../shared/DOMAIN.md:

- Young's modulus: rule of mixtures, ``E = sum c_i E_i``.
- Initial yield stress: rule of mixtures plus pairwise solid-solution terms (a regular-solution
  form that peaks for equal mixtures), ``sy = sum c_i s_i + sum_{i<j} W_ij c_i c_j``.
- Work hardening of the true stress with true plastic strain ``p`` (Voce plus a linear term):
  ``sigma(p) = sy + Q (1 - exp(-b p)) + H p``; ``Q``, ``b``, ``H`` by rule of mixtures.
- Necking starts where the engineering stress peaks (Considere); after it the engineering
  stress falls as a parabola ``S = UTS - (UTS - S_f) ((e - e_u) / d)**2`` to fracture at
  ``e_u + d``, with ``d`` (the post-uniform strain) and ``S_f / UTS`` by rule of mixtures.
- Scatter: each specimen draws multiplicative factors ``1 + N(0, s)`` (clipped to 3 s) for
  E, yield, hardening and ductility from the world's seeded generator.

The engineering curve is tabulated once per specimen; elastic unloading has slope E, and the
plastic engineering strain is ``e_p = e - S / E``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

FloatArray = NDArray[np.float64]


class ElementMechanics(BaseModel):
    """Mechanical parameters that one element contributes (rule-of-mixtures end member).

    These are *effective* values of an element in an as-built AM solid solution, not the
    properties of the pure element; they are *typical* and tuned to the ranges in DOMAIN.md.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    modulus_gpa: float = Field(gt=0, le=1000)
    """Contribution to Young's modulus, GPa."""
    yield_mpa: float = Field(gt=0, le=5000)
    """Contribution to the initial yield stress, MPa."""
    voce_q_mpa: float = Field(ge=0, le=5000)
    """Voce saturation stress increase Q, MPa."""
    voce_b: float = Field(gt=0, le=200)
    """Voce rate b (dimensionless)."""
    linear_h_mpa: float = Field(ge=0, le=10000)
    """Linear hardening modulus H in true stress per true plastic strain, MPa."""
    neck_strain: float = Field(gt=0, le=2)
    """Engineering strain from the onset of necking to fracture."""
    fracture_ratio: float = Field(gt=0, le=1)
    """Engineering stress at fracture as a fraction of UTS."""


def _default_elements() -> dict[str, ElementMechanics]:
    def el(
        e: float, y: float, q: float, b: float, h: float, d: float, f: float
    ) -> ElementMechanics:
        return ElementMechanics(
            modulus_gpa=e,
            yield_mpa=y,
            voce_q_mpa=q,
            voce_b=b,
            linear_h_mpa=h,
            neck_strain=d,
            fracture_ratio=f,
        )

    return {
        "Fe": el(190.0, 400.0, 260.0, 8.0, 280.0, 0.15, 0.72),
        "Cr": el(200.0, 440.0, 200.0, 10.0, 200.0, 0.09, 0.75),
        "Ni": el(205.0, 300.0, 540.0, 6.5, 450.0, 0.10, 0.78),
        "Al": el(120.0, 500.0, 300.0, 10.0, 200.0, 0.04, 0.85),
    }


def _default_interactions() -> dict[str, float]:
    return {"Cr-Fe": 300.0, "Fe-Ni": 350.0, "Cr-Ni": 500.0, "Al-Ni": 1500.0, "Al-Fe": 800.0}


class Scatter(BaseModel):
    """Relative standard deviations of specimen-to-specimen scatter (*typical*)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    modulus: float = Field(default=0.01, ge=0, le=0.3)
    yield_stress: float = Field(default=0.03, ge=0, le=0.3)
    hardening: float = Field(default=0.03, ge=0, le=0.3)
    ductility: float = Field(default=0.08, ge=0, le=0.3)


class MechanicsModel(BaseModel):
    """The world's strengthening model (the ``mechanics:`` section of the lab file's world).

    ``interactions`` maps ``"A-B"`` (element symbols, any order) to the solid-solution
    coefficient ``W_AB`` in MPa.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    elements: dict[str, ElementMechanics] = Field(default_factory=_default_elements)
    interactions: dict[str, float] = Field(default_factory=_default_interactions)
    scatter: Scatter = Field(default_factory=Scatter)
    exposed_faces: int = Field(default=1, ge=0, le=2)
    """Broad faces of a specimen that are the coupon's exposed surface (0..2): the lab cuts
    specimens as the top slice of the coupon, keeping the oxidised face (1, default); 0
    models specimens machined clear of the oxidised layer."""

    def _check(self, composition: Mapping[str, float]) -> None:
        unknown = set(composition) - set(self.elements)
        if unknown:
            raise KeyError(f"no mechanical parameters for element(s) {sorted(unknown)}")
        total = sum(composition.values())
        if not math.isclose(total, 1.0, abs_tol=1e-6):
            raise ValueError(f"element fractions must sum to 1, got {total:.6f}")

    def _mix(self, composition: Mapping[str, float], attr: str) -> float:
        return float(sum(c * getattr(self.elements[e], attr) for e, c in composition.items()))

    def solid_solution_mpa(self, composition: Mapping[str, float]) -> float:
        """Return the solid-solution term ``sum_{i<j} W_ij c_i c_j`` of the yield stress, MPa."""
        total = 0.0
        for key, w in self.interactions.items():
            a, _, b = key.partition("-")
            total += w * composition.get(a, 0.0) * composition.get(b, 0.0)
        return total

    def nominal(self, composition: Mapping[str, float]) -> MaterialParams:
        """Return the scatter-free parameters of a composition (fractions summing to 1)."""
        self._check(composition)
        return MaterialParams(
            modulus_mpa=self._mix(composition, "modulus_gpa") * 1e3,
            yield_mpa=self._mix(composition, "yield_mpa") + self.solid_solution_mpa(composition),
            voce_q_mpa=self._mix(composition, "voce_q_mpa"),
            voce_b=self._mix(composition, "voce_b"),
            linear_h_mpa=self._mix(composition, "linear_h_mpa"),
            neck_strain=self._mix(composition, "neck_strain"),
            fracture_ratio=self._mix(composition, "fracture_ratio"),
        )

    def specimen(
        self, composition: Mapping[str, float], rng: np.random.Generator
    ) -> MaterialParams:
        """Return the parameters of one specimen: nominal values times seeded scatter."""
        nom = self.nominal(composition)
        s = self.scatter

        def factor(sd: float) -> float:
            return 1.0 + sd * float(np.clip(rng.standard_normal(), -3.0, 3.0))

        f_e, f_y, f_h, f_d = (
            factor(s.modulus),
            factor(s.yield_stress),
            factor(s.hardening),
            factor(s.ductility),
        )
        return MaterialParams(
            modulus_mpa=nom.modulus_mpa * f_e,
            yield_mpa=nom.yield_mpa * f_y,
            voce_q_mpa=nom.voce_q_mpa * f_h,
            voce_b=nom.voce_b,
            linear_h_mpa=nom.linear_h_mpa * f_h,
            neck_strain=nom.neck_strain * f_d,
            fracture_ratio=nom.fracture_ratio,
        )


@dataclass(frozen=True)
class MaterialParams:
    """Constitutive parameters of one specimen (units in the names)."""

    modulus_mpa: float
    yield_mpa: float
    voce_q_mpa: float
    voce_b: float
    linear_h_mpa: float
    neck_strain: float
    fracture_ratio: float

    def true_stress(self, p: FloatArray) -> FloatArray:
        """Return the true flow stress (MPa) at true plastic strains ``p``."""
        out: FloatArray = (
            self.yield_mpa
            + self.voce_q_mpa * (1.0 - np.exp(-self.voce_b * p))
            + self.linear_h_mpa * p
        )
        return out


@dataclass(frozen=True)
class TensileTruth:
    """The exact properties of a specimen's engineering curve (what an analysis should find).

    Strains are engineering strains (mm/mm), stresses engineering stresses in MPa.
    """

    modulus_mpa: float
    yield_strength_mpa: float
    """0.2 % offset yield strength."""
    uts_mpa: float
    uniform_elongation: float
    """Plastic engineering strain at maximum force."""
    fracture_strain: float
    """Total (elastic + plastic) engineering strain at fracture."""
    elongation_after_fracture: float
    """Plastic engineering strain at fracture (elastic part removed)."""

    def as_dict(self) -> dict[str, float]:
        """Return the properties as a plain dict (for logs and tests)."""
        return dict(self.__dict__)


class SpecimenCurve:
    """The tabulated monotonic engineering curve of one specimen and its unloading rule.

    Parameters
    ----------
    params
        Constitutive parameters.
    points
        Number of table points up to the onset of necking (>= 100).
    """

    def __init__(self, params: MaterialParams, points: int = 4000) -> None:
        self.params = params
        e_mod = params.modulus_mpa
        # Hardening branch, parametrised by true plastic strain p (dense near yield).
        p = np.concatenate(([0.0], np.geomspace(1e-6, 1.5, points)))
        sig_t = params.true_stress(p)
        ep_eng = np.expm1(p)  # engineering plastic strain
        s_eng = sig_t / (1.0 + ep_eng)
        i_u = int(np.argmax(s_eng))
        if i_u >= len(p) - 1:
            raise ValueError("hardening never saturates before p = 1.5: no necking point")
        uts = float(s_eng[i_u])
        e_u = float(ep_eng[i_u] + uts / e_mod)
        # Post-uniform branch: parabolic drop to fracture.
        d = params.neck_strain
        s_f = params.fracture_ratio * uts
        e_neck = np.linspace(e_u, e_u + d, max(points // 4, 50))[1:]
        s_neck = uts - (uts - s_f) * ((e_neck - e_u) / d) ** 2
        e_hard = ep_eng[: i_u + 1] + s_eng[: i_u + 1] / e_mod
        # Elastic branch from compression (-2 %) to first yield.
        e_el = np.array([-0.02, 0.0])
        s_el = e_el * e_mod
        self.strain: FloatArray = np.concatenate((e_el, e_hard, e_neck))
        self.stress: FloatArray = np.concatenate((s_el, s_eng[: i_u + 1], s_neck))
        if np.any(np.diff(self.strain) <= 0):
            raise ValueError("engineering strain table is not increasing")
        self.plastic: FloatArray = np.maximum(self.strain - self.stress / e_mod, 0.0)
        self.fracture_strain = float(e_u + d)
        ys = float(params.true_stress(np.array([math.log1p(0.002)]))[0] / 1.002)
        self.truth = TensileTruth(
            modulus_mpa=e_mod,
            yield_strength_mpa=ys,
            uts_mpa=uts,
            uniform_elongation=float(ep_eng[i_u]),
            fracture_strain=self.fracture_strain,
            elongation_after_fracture=self.fracture_strain - s_f / e_mod,
        )

    def stress_at(self, strain: FloatArray) -> FloatArray:
        """Return the monotonic engineering stress (MPa) at engineering strains ``strain``."""
        out: FloatArray = np.interp(strain, self.strain, self.stress)
        return out

    def plastic_at(self, strain: FloatArray) -> FloatArray:
        """Return the plastic engineering strain on the monotonic curve at ``strain``."""
        out: FloatArray = np.interp(strain, self.strain, self.plastic)
        return out


__all__ = [
    "ElementMechanics",
    "MaterialParams",
    "MechanicsModel",
    "Scatter",
    "SpecimenCurve",
    "TensileTruth",
]
