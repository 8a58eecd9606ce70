"""Ground truth of the world's oxidation, as plain functions of the world's configuration.

What a campaign should recover, per composition: the regime, the activation energy Q and
the pre-exponential factor k0 of the scale that grows, and the critical Cr content for a
protective chromia scale (the critical Al content for alumina, which depends on
temperature: Wagner's criterion). Inputs and outputs are plain data (numbers, dicts of numbers and
strings), so a twin control channel can serve them; nothing here needs a running world.

Regimes (law ``"regimes"``, see :mod:`couponlab.simulators.oxidation_regimes`), from the
protective fraction ``f`` of the surface:

- ``"NiO"``: ``f < 0.01``: NiO with internal oxidation;
- ``"chromia"`` (``"alumina"`` on Ni-Al): ``f > 1 - 1e-3`` (NiO patches grow up to about 5
  times thicker, so they must cover less than 1e-3 of the surface to add less than about
  0.5 % to the thickness);
- ``"transition"`` between them: a mixed scale with no single Q.

Q and k0 are those of the scale that covers most of the surface (NiO for ``f < 0.5``).

Under law ``"mixing"`` every composition is in regime ``"mixing"`` with the mixing rule's Q.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from couponlab.simulators.oxidation_regimes import CriticalContent
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


def critical_fraction(
    config: WorldConfig, element: str = "Cr", temperature_k: float | None = None
) -> float:
    """Return the world's critical mass fraction of ``element`` (``"Cr"`` or ``"Al"``).

    At ``temperature_k`` (K; None: the model's reference temperature, 1000 degC by
    default). NaN under the mixing law.
    """
    if config.oxidation.law != "regimes":
        return float("nan")
    model = _critical(config, element)
    if temperature_k is None:
        return float(model.fraction)
    return float(model.fraction_at(temperature_k))


def _critical(config: WorldConfig, element: str) -> CriticalContent:
    p = config.oxidation.regimes
    if element == "Cr":
        return p.critical_cr
    if element == "Al":
        return p.critical_al
    raise KeyError(f"no critical content of {element!r}; have ['Al', 'Cr']")


def oxidation_truth(
    config: WorldConfig, composition: Mapping[str, float], temperature_k: float | None = None
) -> dict[str, Any]:
    """Return the truth of one composition (element mass fractions summing to 1).

    ``temperature_k`` (K) is where the scale formed; it matters where the critical content
    depends on temperature (Al), None: the model's reference temperature.

    Returns
    -------
    dict
        ``regime`` (``"NiO"``, ``"transition"``, ``"chromia"``, ``"alumina"`` or
        ``"mixing"``), ``activation_energy_kj_per_mol`` and ``ln_k0`` (ln(k0 / (m^2/s))) of
        the scale that covers most of the surface, ``protective_fraction`` (0..1; NaN under
        the mixing law) and ``cr_fraction``; with Al also ``al_fraction``.
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
    al = float(composition.get("Al", 0.0))
    if al > 0:
        return _truth_with_al(config, cr, al, temperature_k)
    f = float(p.critical_cr.protective_fraction(cr, temperature_k))
    regime = "NiO" if f < NIO_BELOW else "chromia" if f > CHROMIA_ABOVE else "transition"
    scale = p.chromia if f >= 0.5 else p.nio
    return {
        "regime": regime,
        "cr_fraction": cr,
        "protective_fraction": f,
        "activation_energy_kj_per_mol": float(scale.activation_energy_j(cr)) / 1e3,
        "ln_k0": float(scale.ln_k0(cr)),
    }


def _truth_with_al(
    config: WorldConfig, cr: float, al: float, temperature_k: float | None
) -> dict[str, Any]:
    """Truth where Al is present: chromia has the first claim, alumina covers the rest."""
    p = config.oxidation.regimes
    f_cr = float(p.critical_cr.protective_fraction(cr, temperature_k))
    f_al = (1.0 - f_cr) * float(p.critical_al.protective_fraction(al, temperature_k))
    f = f_cr + f_al
    protective = "chromia" if f_cr >= f_al else "alumina"
    regime = "NiO" if f < NIO_BELOW else protective if f > CHROMIA_ABOVE else "transition"
    cover = max((f_cr, "chromia"), (f_al, "alumina"), (1.0 - f, "NiO"))[1]
    scale, content = {
        "chromia": (p.chromia, cr),
        "alumina": (p.alumina, al),
        "NiO": (p.nio, cr),
    }[cover]
    return {
        "regime": regime,
        "cr_fraction": cr,
        "al_fraction": al,
        "protective_fraction": f,
        "activation_energy_kj_per_mol": float(scale.activation_energy_j(content)) / 1e3,
        "ln_k0": float(scale.ln_k0(content)),
    }


def row_truth(
    config: WorldConfig,
    composition_at_points: Mapping[str, Sequence[float]],
    temperature_k: Sequence[float] | None = None,
) -> dict[str, object]:
    """Return the truth of a row of points: :func:`oxidation_truth` of their mean composition.

    ``composition_at_points`` maps each element to its fractions at the row's points (the
    row a profiler measured); Q and ln k0 are linear in composition within a regime. With
    Al and the points' ``temperature_k`` (K, where each point's scale formed), the regime
    is NiO (or the protective scale) only if it is at every point, else ``transition``; Q
    and k0 are taken at the points' mean 1/T.
    """
    mean = {e: float(np.mean(np.asarray(v, float))) for e, v in composition_at_points.items()}
    if temperature_k is None or mean.get("Al", 0.0) <= 0:
        return oxidation_truth(config, mean)
    t = np.asarray(temperature_k, float)
    t_ref = float(t.size / np.sum(1.0 / t))
    out = oxidation_truth(config, mean, t_ref)
    regimes = {oxidation_truth(config, mean, float(tk))["regime"] for tk in t}
    out["regime"] = regimes.pop() if len(regimes) == 1 else "transition"
    return out


def coupon_rows_truth(
    world: World, coupon_id: str, x_mm: Sequence[float], y_mm: Sequence[float]
) -> dict[str, object]:
    """Return the truth for rows of points of a coupon (run on the twins' thread).

    ``critical_cr_fraction`` and ``rows``: one :func:`row_truth` per ``y`` (mm) of the
    as-built composition at the points ``x_mm`` (mm) of that row. A coupon with Al adds
    ``temperature_k`` (the hottest each point ``x_mm`` saw: where its scale formed, K),
    ``critical_al_fraction`` at each of those temperatures, and ``critical_al`` (the
    model: ``fraction`` at ``reference_temperature_k``, ``wagner_energy_kj_per_mol``), so
    the critical Al content can be had at any temperature.
    """
    c = world.coupon(coupon_id)
    x = np.asarray(x_mm, float)
    has_al = "Al" in c.composition and bool(np.any(c.composition["Al"] > 0))
    temps: list[float] | None = None
    if has_al and c.scales is not None and np.any(c.scales.hottest_k > 0):
        hottest = np.where(c.scales.hottest_k > 0, c.scales.hottest_k, np.nan)
        along = np.nanmean(hottest, axis=0)  # the furnace's temperature varies along x only
        temps = np.interp(x, c.x_mm, along).tolist()
    rows = []
    for y in y_mm:
        comp = c.composition_at(x, np.full_like(x, float(y)))
        rows.append(row_truth(world.config, {e: v.tolist() for e, v in comp.items()}, temps))
    out: dict[str, object] = {
        "critical_cr_fraction": critical_cr_fraction(world.config),
        "rows": rows,
    }
    if has_al and world.config.oxidation.law == "regimes":
        model = world.config.oxidation.regimes.critical_al
        out["critical_al"] = {
            "fraction": model.fraction,
            "reference_temperature_k": model.reference_temperature_k,
            "wagner_energy_kj_per_mol": model.wagner_energy_kj_per_mol,
        }
        out["temperature_k"] = temps
        out["critical_al_fraction"] = (
            None if temps is None else [critical_fraction(world.config, "Al", t) for t in temps]
        )
    return out


__all__ = [
    "CHROMIA_ABOVE",
    "NIO_BELOW",
    "coupon_rows_truth",
    "critical_cr_fraction",
    "critical_fraction",
    "oxidation_truth",
    "row_truth",
]
