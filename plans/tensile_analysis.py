"""Tensile properties from an engineering stress-strain curve (ASTM E8/E8M), pure numpy.

Given the extensometer strain and the force of one test and the specimen's initial area,
:func:`analyse_tensile` reports:

- **modulus** E, GPa: least-squares line through the loading curve between
  ``elastic_window`` fractions of the ultimate strength (default 10 % .. 40 %); its strain
  intercept ``e0`` corrects for toe (preload, seating) in everything below.
- **0.2 % offset yield strength**, MPa: where the curve first crosses the line of slope E
  offset by ``offset`` (0.002) in strain from ``e0`` (linear interpolation between samples).
- **ultimate tensile strength**, MPa: largest engineering stress (of the lightly smoothed
  curve, so a single noise spike does not count).
- **uniform elongation**, %: plastic engineering strain at maximum force (of the smoothed
  curve, elastic part ``UTS / E`` removed; ISO 6892's Ag). On the flat top of a ductile
  curve this is the least precise property: force noise moves the maximum along the plateau
  (about +/- 0.5 % elongation for a 316L-like curve with 0.03 % force noise).
- **total elongation**, %: engineering strain at fracture, elastic and plastic (the last
  sample before the force falls below ``break_fraction`` of its maximum; ISO's At).
- **elongation after fracture**, %: the plastic part of that (``- S_fracture / E``; the
  elongation measured on the broken specimen, ISO's A).

Strains are measured from ``e0``. The curve must include the drop at fracture for the two
fracture elongations; otherwise they are NaN and ``fractured`` is False.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]

UNITS: dict[str, str] = {
    "modulus": "GPa",
    "yield_strength": "MPa",
    "uts": "MPa",
    "uniform_elongation": "%",
    "total_elongation": "%",
    "elongation_after_fracture": "%",
    "toe_strain": "mm/mm",
    "modulus_r2": "",
}
"""Unit of every numeric field of :class:`TensileResult`."""


class AnalysisError(ValueError):
    """The curve does not allow a property to be determined (too short, no elastic part)."""


@dataclass(frozen=True)
class TensileResult:
    """Tensile properties of one test; units in :data:`UNITS`."""

    modulus: float
    yield_strength: float
    uts: float
    uniform_elongation: float
    total_elongation: float
    elongation_after_fracture: float
    toe_strain: float
    modulus_r2: float
    fractured: bool
    samples: int

    def as_dict(self) -> dict[str, Any]:
        """Return the fields as a plain dict."""
        return asdict(self)


def _moving_average(x: FloatArray, window: int) -> FloatArray:
    if window <= 1:
        return x
    kernel = np.ones(window) / window
    padded = np.pad(x, (window // 2, window - 1 - window // 2), mode="edge")
    out: FloatArray = np.convolve(padded, kernel, mode="valid")
    return out


def analyse_tensile(
    strain: ArrayLike,
    force: ArrayLike,
    area_mm2: float,
    *,
    offset: float = 0.002,
    elastic_window: tuple[float, float] = (0.1, 0.4),
    break_fraction: float = 0.5,
    smooth_samples: int | None = None,
) -> TensileResult:
    """Return the tensile properties of one engineering curve.

    Parameters
    ----------
    strain
        Extensometer engineering strain, mm/mm, in time order.
    force
        Force, N, same length.
    area_mm2
        Initial cross-section of the reduced section, mm^2 (> 0).
    offset
        Strain offset of the yield line (0.002 for 0.2 %).
    elastic_window
        Fractions of the ultimate strength that bound the modulus fit (0 < lo < hi < 1).
    break_fraction
        Fracture is the last sample before the force falls below this fraction of its
        maximum after the maximum (0 < f < 1).
    smooth_samples
        Moving-average window used to find the maximum and the yield crossing; by default
        about 1/500 of the samples (at least 1).

    Raises
    ------
    AnalysisError
        Too few samples, no rising elastic part, or no crossing of the offset line.
    """
    eps = np.asarray(strain, dtype=np.float64)
    f = np.asarray(force, dtype=np.float64)
    if eps.shape != f.shape or eps.ndim != 1:
        raise AnalysisError("strain and force must be 1-D arrays of the same length")
    if not area_mm2 > 0:
        raise AnalysisError(f"area must be > 0 mm^2, got {area_mm2}")
    lo, hi = elastic_window
    if not 0 < lo < hi < 1:
        raise AnalysisError(f"elastic window {elastic_window} must satisfy 0 < lo < hi < 1")
    n = len(eps)
    if n < 20:
        raise AnalysisError(f"{n} samples are too few for an analysis")
    stress = f / area_mm2
    window = smooth_samples if smooth_samples is not None else max(1, n // 500)
    smooth = _moving_average(stress, window)

    i_max = int(np.argmax(smooth))
    uts = float(smooth[i_max])
    if not uts > 0:
        raise AnalysisError("the force never rises above zero")

    # Elastic fit on the loading part before the maximum.
    rising = smooth[: i_max + 1]
    above_lo = np.nonzero(rising >= lo * uts)[0]
    above_hi = np.nonzero(rising >= hi * uts)[0]
    if len(above_lo) == 0 or len(above_hi) == 0:
        raise AnalysisError("no elastic loading segment before the maximum")
    i0, i1 = int(above_lo[0]), int(above_hi[0])
    if i1 - i0 < 5:
        raise AnalysisError(
            f"only {i1 - i0} samples in the elastic window: sample faster or load slower"
        )
    x, y = eps[i0:i1], stress[i0:i1]
    slope, intercept = np.polyfit(x, y, 1)
    if not slope > 0:
        raise AnalysisError("the elastic segment does not rise")
    e_mod = float(slope)
    e0 = float(-intercept / slope)
    resid = y - (slope * x + intercept)
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum(resid**2)) / ss_tot if ss_tot > 0 else float("nan")

    # 0.2 % offset yield: first crossing below the offset line after the elastic window.
    d = smooth[i1 : i_max + 1] - e_mod * (eps[i1 : i_max + 1] - e0 - offset)
    below = np.nonzero(d <= 0)[0]
    if len(below) == 0:
        raise AnalysisError("the curve never crosses the offset line before the maximum")
    j = int(below[0]) + i1
    if j == i1:
        raise AnalysisError("the curve is below the offset line at the end of the elastic fit")
    d0, d1 = float(d[j - 1 - i1]), float(d[j - i1])
    frac = d0 / (d0 - d1) if d0 != d1 else 0.0
    ys = float(smooth[j - 1] + frac * (smooth[j] - smooth[j - 1]))

    # Uniform elongation: strain at the maximum of the smoothed curve.
    e_u = float(eps[i_max])
    uniform = (e_u - e0) - uts / e_mod

    # Fracture: last sample before the final drop.
    after = np.nonzero(stress[i_max:] < break_fraction * uts)[0]
    if len(after) and after[0] > 0:
        k = i_max + int(after[0]) - 1
        total = float(eps[k] - e0)
        after_fracture = total - float(stress[k]) / e_mod
        fractured = True
    else:
        total = after_fracture = math.nan
        fractured = False

    return TensileResult(
        modulus=e_mod / 1000.0,
        yield_strength=ys,
        uts=uts,
        uniform_elongation=100.0 * uniform,
        total_elongation=100.0 * total,
        elongation_after_fracture=100.0 * after_fracture,
        toe_strain=e0,
        modulus_r2=r2,
        fractured=fractured,
        samples=n,
    )


__all__ = ["UNITS", "AnalysisError", "TensileResult", "analyse_tensile"]
