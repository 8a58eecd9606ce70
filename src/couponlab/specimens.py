"""Tensile specimens that a coupon can give: a miniature geometry and a checked cut plan.

A gradient coupon (60 x 10 mm by default) cannot give an ASTM E8M sub-size specimen
(100 mm overall). :data:`SS_J3` is the miniature flat specimen of the fusion-materials
SS-J3 class (16 x 4 mm overall, gauge 5 x 1.2 x 0.5 mm; docs/howto/choose-specimens.md).

A :class:`CutPlan` says where each specimen lies on the coupon, in coupon coordinates (mm
from the coupon's corner: x along its length, y across its width), and refuses
(:class:`CutPlanError`, before anything is cut or sent) a specimen whose outline sticks out
of the coupon or two whose outlines come closer than the saw's kerf.
:func:`layout_specimens` places one specimen per composition band; :func:`bands_from_rows`
makes the bands from labelled composition rows (for example the oxidation regime of each
row of a map).

Outlines are the bounding rectangles of the specimens (overall length by grip width), so
the check is conservative: dog-bones are never nested.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from couponlab.errors import InputError
from couponlab.interfaces.frame import SpecimenGeometry
from couponlab.units import QuantityLike, to_magnitude

SS_J3 = SpecimenGeometry(
    gauge_length="5 mm",
    width="1.2 mm",
    thickness="0.5 mm",
    reduced_length="5 mm",
    overall_length="16 mm",
    grip_width="4 mm",
    designation="SS-J3 class miniature flat (16 x 4 mm; gauge 5 x 1.2 x 0.5 mm)",
)
"""The miniature specimen that fits a coupon: SS-J3 class (*approximate* dimensions of the
class; the gauge section is the parallel section). Its crosshead rate by ASTM E8 method C is
0.015/min x 5 mm = 0.075 mm/min."""

DEFAULT_KERF = "0.3 mm"
"""Default cutting allowance between outlines (and from the coupon's edge): a wire-EDM
kerf of about 0.25-0.3 mm (*typical*)."""

Orientation = Literal["along", "across"]
"""``"along"``: the gauge length runs along x (the coupon's length); ``"across"``: along y."""


class CutPlanError(InputError):
    """A cut plan refused: a specimen sticks out of the coupon, two overlap (kerf
    included), or a band has no room for its specimen. Nothing was cut or sent."""


@dataclass(frozen=True)
class Band:
    """A composition band of a coupon: the strip ``y_low .. y_high`` (mm) across its width.

    ``name`` says what the band is (for example its oxidation regime).
    """

    name: str
    y_low_mm: float
    y_high_mm: float


@dataclass(frozen=True)
class PlacedSpecimen:
    """One specimen of a cut plan.

    Attributes
    ----------
    index
        k of the specimen, 1..N in the plan (its id is ``<coupon>-T<k>``).
    x_mm, y_mm
        Centre of the gauge on the coupon, mm (x along, y across).
    orientation
        Direction of the gauge length (``"along"`` x or ``"across"``).
    band
        Name of the composition band it tests ("" when none).
    """

    index: int
    x_mm: float
    y_mm: float
    orientation: Orientation = "along"
    band: str = ""

    def specimen_id(self, coupon_id: str) -> str:
        """Return the specimen's sample id, ``<coupon_id>-T<index>``."""
        return f"{coupon_id}-T{self.index}"

    def label(self) -> str:
        """Return ``T<k>`` with the band and site, for messages."""
        band = f" (band {self.band!r})" if self.band else ""
        return f"T{self.index}{band} at x = {self.x_mm:g}, y = {self.y_mm:g} mm"


def outline_mm(geometry: SpecimenGeometry) -> tuple[float, float]:
    """Return (length along the gauge, width across it) of a specimen's outline, mm.

    The overall length and grip width when the geometry gives them, else the reduced
    section (reduced length by width).

    Raises
    ------
    UnitError
        A dimension is not a length.
    """
    length = geometry.overall_length
    if length is None:
        length = geometry.reduced_length
    width = geometry.grip_width
    if width is None:
        width = geometry.width
    return (
        to_magnitude(length, "mm", what="specimen length", low=0.0),
        to_magnitude(width, "mm", what="specimen width", low=0.0),
    )


def _gauge_width_mm(geometry: SpecimenGeometry) -> float:
    return to_magnitude(geometry.width, "mm", what="gauge width", low=0.0)


@dataclass(frozen=True)
class CutPlan:
    """Where each specimen is cut from one coupon; checked when made.

    Attributes
    ----------
    length_mm, width_mm
        The coupon's length (x) and width (y), mm (> 0).
    geometry
        Every specimen's geometry.
    specimens
        The specimens, indices 1..N in order.
    kerf_mm
        Least distance between two outlines and between an outline and the coupon's
        edge, mm (>= 0).

    Raises
    ------
    CutPlanError
        A specimen sticks out of the coupon (edge allowance included), two outlines come
        closer than the kerf, or the indices are not 1..N; the message names them.
    """

    length_mm: float
    width_mm: float
    geometry: SpecimenGeometry
    specimens: tuple[PlacedSpecimen, ...]
    kerf_mm: float = 0.3

    def __post_init__(self) -> None:
        check_cut(self.length_mm, self.width_mm, self.geometry, self.specimens, self.kerf_mm)

    def footprint(self, specimen: PlacedSpecimen) -> tuple[float, float, float, float]:
        """Return the outline of ``specimen`` as ``(x0, x1, y0, y1)``, mm."""
        return _footprint(self.geometry, specimen)

    def describe(self) -> dict[str, object]:
        """Return the plan as plain data (mm) for run metadata or a sample registry."""
        return {
            "coupon_mm": [self.length_mm, self.width_mm],
            "kerf_mm": self.kerf_mm,
            "designation": self.geometry.designation,
            "specimens": [
                {
                    "index": s.index,
                    "x_mm": s.x_mm,
                    "y_mm": s.y_mm,
                    "orientation": s.orientation,
                    "band": s.band,
                }
                for s in self.specimens
            ],
        }


def _footprint(
    geometry: SpecimenGeometry, specimen: PlacedSpecimen
) -> tuple[float, float, float, float]:
    along, across = outline_mm(geometry)
    if specimen.orientation == "across":
        along, across = across, along
    return (
        specimen.x_mm - along / 2,
        specimen.x_mm + along / 2,
        specimen.y_mm - across / 2,
        specimen.y_mm + across / 2,
    )


_EPS = 1e-9


def check_cut(
    length_mm: float,
    width_mm: float,
    geometry: SpecimenGeometry,
    specimens: Sequence[PlacedSpecimen],
    kerf_mm: float = 0.3,
) -> None:
    """Refuse a cut whose specimens stick out of the coupon or overlap (kerf included).

    Parameters are those of :class:`CutPlan` (mm).

    Raises
    ------
    CutPlanError
        Naming the specimen that sticks out (and where) or the two that overlap.
    """
    dev = "cut plan"
    for what, v in (("coupon length", length_mm), ("coupon width", width_mm)):
        if not v > 0:
            raise CutPlanError(dev, f"{what} = {v} mm must be > 0")
    if not kerf_mm >= 0:
        raise CutPlanError(dev, f"kerf = {kerf_mm} mm must be >= 0")
    indices = [s.index for s in specimens]
    if indices != list(range(1, len(specimens) + 1)):
        raise CutPlanError(dev, f"specimen indices {indices} must be 1..{len(specimens)} in order")
    boxes = [_footprint(geometry, s) for s in specimens]
    for s, box in zip(specimens, boxes, strict=True):
        out = _sticking_out(box, length_mm, width_mm, kerf_mm)
        if out:
            raise CutPlanError(
                dev,
                f"{s.label()} sticks out of the {length_mm:g} x {width_mm:g} mm coupon "
                f"(outline x {box[0]:g}..{box[1]:g}, y {box[2]:g}..{box[3]:g} mm; "
                f"{kerf_mm:g} mm edge allowance): {out}",
            )
    for i, a in enumerate(boxes):
        for j in range(i + 1, len(boxes)):
            gap = _gap(a, boxes[j])
            if gap < kerf_mm - _EPS:
                raise CutPlanError(
                    dev,
                    f"{specimens[i].label()} and {specimens[j].label()} overlap: their "
                    f"outlines are {gap:g} mm apart, the kerf needs {kerf_mm:g} mm",
                )


def _sticking_out(
    box: tuple[float, float, float, float],
    length_mm: float | None,
    width_mm: float | None,
    edge_mm: float,
) -> str:
    """Return where ``box`` (x0, x1, y0, y1) leaves the coupon ("" if it does not); a side
    of size ``None`` is not checked."""
    x0, x1, y0, y1 = box
    out = []
    if length_mm is not None:
        if x0 < edge_mm - _EPS:
            out.append(f"x {x0:g} < {edge_mm:g}")
        if x1 > length_mm - edge_mm + _EPS:
            out.append(f"x {x1:g} > {length_mm - edge_mm:g}")
    if width_mm is not None:
        if y0 < edge_mm - _EPS:
            out.append(f"y {y0:g} < {edge_mm:g}")
        if y1 > width_mm - edge_mm + _EPS:
            out.append(f"y {y1:g} > {width_mm - edge_mm:g}")
    return ", ".join(out)


def check_inside(
    device: str,
    coupon_id: str,
    geometry: SpecimenGeometry,
    x_mm: float,
    y_mm: float | None,
    length_mm: float | None,
    width_mm: float | None,
) -> None:
    """Refuse a specimen (gauge along x, centred at ``x_mm``, ``y_mm``) whose outline sticks
    out of a coupon of ``length_mm`` x ``width_mm``; a size of ``None`` (unknown) is not
    checked, and ``y_mm`` ``None`` is the centre line.

    Raises
    ------
    CutPlanError
        Naming the device, the coupon, the outline and the side it crosses.
    """
    y = (width_mm / 2 if width_mm is not None else 0.0) if y_mm is None else y_mm
    box = _footprint(geometry, PlacedSpecimen(1, x_mm, y))
    out = _sticking_out(box, length_mm, width_mm, 0.0)
    if out:
        along, across = outline_mm(geometry)
        size = f"{'?' if length_mm is None else f'{length_mm:g}'} x " + (
            "?" if width_mm is None else f"{width_mm:g}"
        )
        raise CutPlanError(
            device,
            f"a {along:g} x {across:g} mm specimen ({geometry.designation}) at x = {x_mm:g}"
            + ("" if y_mm is None else f", y = {y_mm:g}")
            + f" mm sticks out of coupon {coupon_id!r} ({size} mm): {out}",
        )


def _gap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Return the clearance between two rectangles, mm (negative: they intersect)."""
    dx = max(b[0] - a[1], a[0] - b[1])
    dy = max(b[2] - a[3], a[2] - b[3])
    if dx < 0 and dy < 0:
        return float(max(dx, dy))
    return float(math.hypot(max(dx, 0.0), max(dy, 0.0)))


def bands_from_rows(
    y_mm: Sequence[float], labels: Sequence[str], width: QuantityLike
) -> tuple[Band, ...]:
    """Return the composition bands of labelled rows: each run of equal labels is a band.

    A band reaches halfway to the neighbouring rows; the first and last reach half a row
    pitch beyond their rows, clipped to 0 .. ``width``.

    Parameters
    ----------
    y_mm
        Row positions across the coupon, mm, increasing.
    labels
        One label per row (for example the oxidation regime).
    width
        The coupon's width, mm (> 0).

    Raises
    ------
    InputError
        Rows not increasing, lengths differ, or fewer than one row.
    """
    w = to_magnitude(width, "mm", device="cut plan", what="coupon width", low=0.0)
    ys = [float(y) for y in y_mm]
    if len(ys) != len(labels) or not ys:
        raise InputError("cut plan", f"{len(ys)} rows but {len(labels)} labels (need >= 1)")
    if any(b <= a for a, b in itertools.pairwise(ys)):
        raise InputError("cut plan", f"row positions {ys} must increase")
    half = (ys[1] - ys[0]) / 2 if len(ys) > 1 else w / 2
    edges = [max(0.0, ys[0] - half)]
    edges += [(a + b) / 2 for a, b in itertools.pairwise(ys)]
    edges.append(min(w, ys[-1] + (ys[-1] - ys[-2]) / 2 if len(ys) > 1 else w))
    bands: list[Band] = []
    start = 0
    for i in range(1, len(ys) + 1):
        if i == len(ys) or labels[i] != labels[start]:
            bands.append(Band(str(labels[start]), edges[start], edges[i]))
            start = i
    return tuple(bands)


def layout_specimens(
    length: QuantityLike,
    width: QuantityLike,
    bands: Sequence[Band],
    *,
    geometry: SpecimenGeometry = SS_J3,
    kerf: QuantityLike = DEFAULT_KERF,
) -> CutPlan:
    """Place one specimen per composition band, gauge along x, and return the checked plan.

    Each specimen's centre line lies in its band: at the band's middle, moved just enough
    to keep the outline inside the coupon, and its whole gauge width inside the band when
    the band is at least that wide. Along x each goes to the lowest position where it
    overlaps no specimen placed before it (kerf included); specimen k tests band k.

    Parameters
    ----------
    length, width
        The coupon, mm (> 0): x along its length, y across its width.
    bands
        The composition bands across y (:class:`Band`, mm), one specimen each.
    geometry
        The specimens' geometry (:data:`SS_J3` by default).
    kerf
        Cutting allowance between outlines and from the edge, mm (>= 0).

    Returns
    -------
    CutPlan
        Specimen ``k`` (1..N) for ``bands[k-1]``; its id is ``<coupon>-T<k>``.

    Raises
    ------
    CutPlanError
        A band lies where no outline fits inside the coupon, or the coupon is too short
        for every specimen: the message names the band.
    UnitError
        A value is not a length.
    """
    dev = "cut plan"
    length_mm = to_magnitude(length, "mm", device=dev, what="coupon length", low=0.0)
    width_mm = to_magnitude(width, "mm", device=dev, what="coupon width", low=0.0)
    kerf_mm = to_magnitude(kerf, "mm", device=dev, what="kerf", low=0.0, high=10.0)
    along, across = outline_mm(geometry)
    gauge_w = _gauge_width_mm(geometry)
    fit_lo, fit_hi = kerf_mm + across / 2, width_mm - kerf_mm - across / 2
    x_lo, x_hi = kerf_mm + along / 2, length_mm - kerf_mm - along / 2
    if fit_lo > fit_hi + _EPS or x_lo > x_hi + _EPS:
        raise CutPlanError(
            dev,
            f"a {along:g} x {across:g} mm specimen outline does not fit the {length_mm:g} x "
            f"{width_mm:g} mm coupon with {kerf_mm:g} mm edge allowance",
        )
    placed: list[PlacedSpecimen] = []
    for k, band in enumerate(bands, start=1):
        lo, hi = sorted((band.y_low_mm, band.y_high_mm))
        middle = (lo + hi) / 2
        c_lo, c_hi = (lo + gauge_w / 2, hi - gauge_w / 2) if hi - lo >= gauge_w else (middle,) * 2
        y_lo, y_hi = max(c_lo, fit_lo), min(c_hi, fit_hi)
        if y_lo > y_hi + _EPS:
            raise CutPlanError(
                dev,
                f"band {band.name!r} (y {lo:g}..{hi:g} mm) has no room for a specimen: its "
                f"gauge centre must lie in y {c_lo:g}..{c_hi:g} mm but a {across:g} mm wide "
                f"outline fits only y {fit_lo:g}..{fit_hi:g} mm of the {width_mm:g} mm coupon",
            )
        y = min(max(middle, y_lo), y_hi)
        x = _first_free_x(geometry, placed, y, x_lo, x_hi, along, kerf_mm)
        if x is None:
            raise CutPlanError(
                dev,
                f"band {band.name!r}: no room left along the {length_mm:g} mm coupon for "
                f"specimen T{k} at y = {y:g} mm beside {len(placed)} others "
                f"({along:g} mm long, {kerf_mm:g} mm kerf)",
            )
        placed.append(PlacedSpecimen(k, round(x, 6), round(y, 6), "along", band.name))
    return CutPlan(length_mm, width_mm, geometry, tuple(placed), kerf_mm)


def _first_free_x(
    geometry: SpecimenGeometry,
    placed: Sequence[PlacedSpecimen],
    y: float,
    x_lo: float,
    x_hi: float,
    along: float,
    kerf_mm: float,
) -> float | None:
    """Return the lowest x in ``x_lo .. x_hi`` where a specimen at ``y`` overlaps none."""
    candidates = [x_lo] + [_footprint(geometry, p)[1] + kerf_mm + along / 2 for p in placed]
    for x in sorted(candidates):
        if x > x_hi + _EPS:
            break
        box = _footprint(geometry, PlacedSpecimen(1, x, y))
        if all(_gap(box, _footprint(geometry, p)) >= kerf_mm - _EPS for p in placed):
            return x
    return None


__all__ = [
    "DEFAULT_KERF",
    "SS_J3",
    "Band",
    "CutPlan",
    "CutPlanError",
    "Orientation",
    "PlacedSpecimen",
    "bands_from_rows",
    "check_cut",
    "check_inside",
    "layout_specimens",
    "outline_mm",
]
