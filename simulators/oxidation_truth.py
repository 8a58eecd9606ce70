"""Ground truth of the world's oxidation, as plain functions of the world's configuration.

What a campaign should recover, per composition: the regime, the activation energy Q and
the pre-exponential factor k0 of the scale that grows, and the critical Cr content for a
protective chromia scale. Inputs and outputs are plain data (numbers, dicts of numbers and
strings), so a twin control channel can serve them; nothing here needs a running world.

Regimes (law ``"regimes"``, see :mod:`couponlab.simulators.oxidation_regimes`), from the
protective fraction ``f`` of the surface:

- ``"NiO"``: ``f < 0.01``: NiO with internal oxidation;
- ``"chromia"``: ``f > 1 - 1e-3`` (NiO patches grow up to about 5 times thicker, so they
  must cover less than 1e-3 of the surface to add less than about 0.5 % to the thickness);
- ``"transition"`` between them: a mixed scale with no single Q.

Q and k0 are those of the scale that covers most of the surface (NiO for ``f < 0.5``).

Under law ``"mixing"`` every composition is in regime ``"mixing"`` with the mixing rule's Q.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from couponlab.simulators.world import World, WorldConfig

NIO_BELOW = 0.01
"""A composition is in the NiO regime when its protective fraction is below this."""
CHROMIA_ABOVE = 1.0 - 1e-3
"""A composition is in the chromia regime when its protective fraction is above this."""


def critical_cr_fraction(config: WorldConfig) -> float:
    """Return the world's critical Cr mass fraction (protective fraction 0.5), 0..1.

    NaN under the mixing law (it has no regimes).
    """
    if config.oxidation.law != "regimes":
        return float("nan")
    return float(config.oxidation.regimes.critical_cr.fraction)


def oxidation_truth(config: WorldConfig, composition: Mapping[str, float]) -> dict[str, Any]:
    """Return the truth of one composition (element mass fractions summing to 1).

    Returns
    -------
    dict
        ``regime`` (``"NiO"``, ``"transition"``, ``"chromia"`` or ``"mixing"``),
        ``activation_energy_kj_per_mol`` and ``ln_k0`` (ln(k0 / (m^2/s))) of the scale that
        covers most of the surface, ``protective_fraction`` (0..1; NaN under the mixing law) and
        ``cr_fraction``.
    """
    model = config.oxidation
    cr = float(composition.get("Cr", 0.0))
    if model.law == "mixing":
        comp = {e: float(c) for e, c in composition.items()}
        return {
            "regime": "mixing",
            "cr_fraction": cr,
            "protective_fraction": float("nan"),
            "activation_energy_kj_per_mol": float(model.activation_energy(comp)) / 1e3,
            "ln_k0": float(model.ln_k0(comp)),
        }
    p = model.regimes
    f = float(p.critical_cr.protective_fraction(cr))
    regime = "NiO" if f < NIO_BELOW else "chromia" if f > CHROMIA_ABOVE else "transition"
    scale = p.chromia if f >= 0.5 else p.nio
    return {
        "regime": regime,
        "cr_fraction": cr,
        "protective_fraction": f,
        "activation_energy_kj_per_mol": float(scale.activation_energy_j(cr)) / 1e3,
        "ln_k0": float(scale.ln_k0(cr)),
    }


def row_truth(
    config: WorldConfig, composition_at_points: Mapping[str, Sequence[float]]
) -> dict[str, object]:
    """Return the truth of a row of points: :func:`oxidation_truth` of their mean composition.

    ``composition_at_points`` maps each element to its fractions at the row's points (the
    row a profiler measured); Q and ln k0 are linear in composition within a regime.
    """
    mean = {e: float(np.mean(np.asarray(v, float))) for e, v in composition_at_points.items()}
    return oxidation_truth(config, mean)


def coupon_rows_truth(
    world: World, coupon_id: str, x_mm: Sequence[float], y_mm: Sequence[float]
) -> dict[str, object]:
    """Return the truth for rows of points of a coupon (run on the twins' thread).

    ``critical_cr_fraction`` and ``rows``: one :func:`row_truth` per ``y`` (mm) of the
    as-built composition at the points ``x_mm`` (mm) of that row.
    """
    c = world.coupon(coupon_id)
    x = np.asarray(x_mm, float)
    rows = []
    for y in y_mm:
        comp = c.composition_at(x, np.full_like(x, float(y)))
        rows.append(row_truth(world.config, {e: v.tolist() for e, v in comp.items()}))
    return {"critical_cr_fraction": critical_cr_fraction(world.config), "rows": rows}


__all__ = [
    "CHROMIA_ABOVE",
    "NIO_BELOW",
    "coupon_rows_truth",
    "critical_cr_fraction",
    "oxidation_truth",
    "row_truth",
]
