"""Target compositions of a coupon graded in two dimensions, in the forms a plan accepts,
brought to one form: a :class:`~couponlab.interfaces.feeder.CompositionMap` on the coupon's
(y, x) grid, and the y positions of the tracks that print it.

Forms (x along the coupon's length, the furnace axis; y across its width, in mm):

- a 2-D ``CompositionMap`` (``y_mm`` given, fractions shaped (ny, nx), grid from 0);
- a function ``f(x_mm, y_mm) -> {element: fractions}`` of arrays of points;
- "composition per track": a sequence of ``{element: fraction}``, one per track, each
  uniform along x; the tracks are spread evenly across the width and the target between
  two tracks is the linear blend of theirs (what overlapping tracks give, decision 0013).

Maps along x only (``y_mm`` None) are the single-pass form and are not handled here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from couponlab.errors import InputError
from couponlab.interfaces.feeder import CompositionMap

FloatArray = NDArray[np.float64]
TargetFunction = Callable[[FloatArray, FloatArray], Mapping[str, FloatArray]]
"""``f(x_mm, y_mm)``: element mass fractions at points (arrays of the same shape)."""
TrackCompositions = Sequence[Mapping[str, float]]
"""One ``{element: fraction}`` per track, uniform along x."""
GradedTarget = CompositionMap | TargetFunction | TrackCompositions


@dataclass(frozen=True)
class TrackedTarget:
    """A 2-D target and the tracks that print it.

    Attributes
    ----------
    target
        Element fractions on the coupon's (y, x) grid.
    tracks_y_mm
        y of each track's centre line, mm, in printing order.
    """

    target: CompositionMap
    tracks_y_mm: FloatArray

    @property
    def length_mm(self) -> float:
        """Return the coupon length, mm."""
        return float(self.target.x_mm[-1])

    @property
    def width_mm(self) -> float:
        """Return the coupon width, mm."""
        assert self.target.y_mm is not None
        return float(self.target.y_mm[-1])

    def along_track(self, y_mm: float) -> CompositionMap:
        """Return the target along x at ``y_mm`` (linear between grid rows)."""
        y = self.target.y_mm
        assert y is not None
        return CompositionMap(
            self.target.x_mm,
            {
                e: np.array([np.interp(y_mm, y, col) for col in np.asarray(f, float).T])
                for e, f in self.target.fractions.items()
            },
        )


def grid(length_mm: float, width_mm: float, resolution_mm: float) -> tuple[FloatArray, FloatArray]:
    """Return the nodes (x, y) of a coupon grid, as :class:`~couponlab.simulators.world.Coupon`
    lays them (0..length and 0..width, ``resolution_mm`` apart)."""
    x = np.linspace(0.0, length_mm, round(length_mm / resolution_mm) + 1)
    y = np.linspace(0.0, width_mm, round(width_mm / resolution_mm) + 1)
    return x, y


def _check_fractions(device: str, fractions: Mapping[str, FloatArray], what: str) -> None:
    if not fractions:
        raise InputError(device, f"{what}: no elements")
    arrays = [np.asarray(f, float) for f in fractions.values()]
    total = np.sum(arrays, axis=0)
    if not all(np.isfinite(a).all() and (a >= -1e-9).all() for a in arrays):
        raise InputError(device, f"{what}: fractions must be finite and non-negative")
    if not np.allclose(total, 1.0, atol=1e-3):
        worst = float(np.max(np.abs(total - 1.0)))
        raise InputError(
            device, f"{what}: fractions must sum to 1 at every point (off by up to {worst:.3g})"
        )


def track_positions(width_mm: float, hatch_mm: float) -> FloatArray:
    """Return track centre lines from y = 0 to y = ``width_mm``, as close to ``hatch_mm``
    apart as whole tracks allow (10 mm at a 1 mm hatch: 11 tracks)."""
    n = max(2, round(width_mm / hatch_mm) + 1)
    return np.linspace(0.0, width_mm, n)


def tracked_target(
    target: GradedTarget,
    *,
    length_mm: float | None,
    width_mm: float | None,
    hatch_mm: float,
    resolution_mm: float = 0.5,
    device: str = "",
) -> TrackedTarget:
    """Bring a 2-D target (any form above) to a map on the coupon grid and its tracks.

    Parameters
    ----------
    target
        The target, in one of the forms of this module.
    length_mm, width_mm
        Coupon size, mm (a 2-D map gives its own; a function needs them, defaults 60 x 10;
        a per-track list needs the width, default 10).
    hatch_mm
        Spacing of the tracks, mm (> 0); ignored for the per-track form, whose tracks are
        spread evenly across the width.
    resolution_mm
        Grid spacing of the map built from a function or a per-track list, mm.
    device
        Name for error messages.

    Raises
    ------
    InputError
        A malformed target: fractions not summing to 1, negative, a map along x only, a
        grid not starting at 0, a per-track list of fewer than two tracks.
    """
    if hatch_mm <= 0:
        raise InputError(device, f"hatch = {hatch_mm} mm must be > 0")
    if isinstance(target, CompositionMap):
        if target.y_mm is None:
            raise InputError(device, "a map along x only is the single-pass form, not tracks")
        x, y = np.asarray(target.x_mm, float), np.asarray(target.y_mm, float)
        if x[0] != 0.0 or y[0] != 0.0 or (np.diff(x) <= 0).any() or (np.diff(y) <= 0).any():
            raise InputError(device, "a target map's grid must rise from x = 0 and y = 0")
        for e, f in target.fractions.items():
            if np.shape(f) != (y.size, x.size):
                raise InputError(
                    device, f"target {e} has shape {np.shape(f)}, the grid {(y.size, x.size)}"
                )
        _check_fractions(device, target.fractions, "target map")
        return TrackedTarget(target, track_positions(float(y[-1]), hatch_mm))
    if callable(target):
        length = 60.0 if length_mm is None else length_mm
        width = 10.0 if width_mm is None else width_mm
        x, y = grid(length, width, resolution_mm)
        xx, yy = np.meshgrid(x, y)
        values = {
            e: np.broadcast_to(np.asarray(f, float), xx.shape).copy()
            for e, f in target(xx, yy).items()
        }
        _check_fractions(device, values, "target function")
        return TrackedTarget(CompositionMap(x, values, y), track_positions(width, hatch_mm))
    rows = list(target)
    if len(rows) < 2:
        raise InputError(device, "composition per track needs at least two tracks")
    elements = sorted({e for r in rows for e in r})
    per_track = {e: np.array([float(r.get(e, 0.0)) for r in rows]) for e in elements}
    _check_fractions(device, per_track, "composition per track")
    length = 60.0 if length_mm is None else length_mm
    width = 10.0 if width_mm is None else width_mm
    x, y = grid(length, width, resolution_mm)
    tracks_y = np.linspace(0.0, width, len(rows))
    values = {
        e: np.repeat(np.interp(y, tracks_y, v)[:, None], x.size, axis=1)
        for e, v in per_track.items()
    }
    return TrackedTarget(CompositionMap(x, values, y), tracks_y)


def resample(m: CompositionMap, x_mm: FloatArray, y_mm: FloatArray) -> dict[str, FloatArray]:
    """Return ``m``'s fractions on the grid ``y_mm`` x ``x_mm`` (bilinear, ends held); a map
    along x only is taken as uniform across y."""
    out: dict[str, FloatArray] = {}
    for e, f in m.fractions.items():
        values = np.asarray(f, float)
        if m.y_mm is None:
            out[e] = np.repeat(np.interp(x_mm, m.x_mm, values)[None, :], y_mm.size, axis=0)
            continue
        rows = np.array([np.interp(x_mm, m.x_mm, row) for row in values])  # (ny_m, nx)
        out[e] = np.array([np.interp(y_mm, m.y_mm, col) for col in rows.T]).T
    return out


def row_errors(target: CompositionMap, other: CompositionMap) -> FloatArray:
    """Return the rms difference of ``other`` from a 2-D ``target`` in each row (one per y
    node of the target, over x and every element), mass fraction."""
    assert target.y_mm is not None
    theirs = resample(other, target.x_mm, target.y_mm)
    shape = (target.y_mm.size, target.x_mm.size)
    sq = [
        np.square(np.asarray(target.fractions.get(e, np.zeros(shape)), float) - theirs.get(e, 0.0))
        for e in set(target.fractions) | set(theirs)
    ]
    rms: FloatArray = np.sqrt(np.mean(sq, axis=(0, 2)))
    return rms


__all__ = [
    "GradedTarget",
    "TargetFunction",
    "TrackCompositions",
    "TrackedTarget",
    "grid",
    "resample",
    "row_errors",
    "track_positions",
    "tracked_target",
]
