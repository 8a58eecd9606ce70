"""Live feedback for a lab session: a table and a plot suited to each stream.

:func:`live_feedback` returns one RunEngine subscriber (an event-model ``RunRouter``) that
gives every run, as its documents arrive:

- a **table** (bluesky's ``LiveTable``) of the hinted scalar fields of its ``primary`` stream
  (every scalar field if none is hinted), and of every scalar field of its ``results``,
  ``decision`` and ``exposure`` streams;
- the **furnace profile** (a stream with a ``<furnace>-profile`` array, degC): the zones'
  temperatures (line), their setpoints (dashed) and the hottest and coldest zone against
  instrument time, updated at each reading;
- **maps** (a raster run: ``shape`` and ``extents`` in its start document): one image per
  hinted detector field (oxide thickness, each element's fraction), filled point by point;
- the **tensile curve** (stream ``curve``, written by the frame to HDF5 and announced by
  stream datum documents): stress (or force, without a cross-section) against strain, as
  the specimen is pulled;
- the **Arrhenius fit** of a map of a coupon whose exposure ran in this session: each
  completed row of the thickness map, ln(x^2/t) against 1000/T with its fitted line and Q,
  the temperatures from the exposure's thermocouple scans (:mod:`.coupon_temperature`).

The figures are matplotlib figures named after what they show (:attr:`LiveFeedback.figures`);
a run of the same kind redraws the same figure. Nothing here talks to an instrument.
See docs/howto/watch-a-run-live.md.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import h5py
import numpy as np
from bluesky.callbacks import LiveTable
from bluesky.callbacks.mpl_plotting import QtAwareCallback
from event_model import RunRouter

from couponlab.plans.coupon_temperature import temperatures_at
from couponlab.plans.oxidation_analysis import R_GAS, fit_activation_energy

log = logging.getLogger(__name__)

TABLE_STREAMS = ("primary", "results", "decision", "exposure")
"""Streams a live table is made for (their scalar fields; ``primary``: the hinted ones)."""
MAX_TABLE_COLUMNS = 8
"""Most columns of one live table (the first fields, in the descriptor's order)."""
SCALAR_DTYPES = ("number", "integer")

Figure = Any  # matplotlib.figure.Figure (imported lazily: pyplot is slow to import)


def _figure(figures: dict[str, Figure], name: str, ncols: int = 1, nrows: int = 1) -> Figure:
    """Return the figure ``name`` cleared, with ``nrows`` x ``ncols`` axes (made once)."""
    import matplotlib.pyplot as plt

    fig = figures.get(name)
    if fig is None or not plt.fignum_exists(fig.number):
        fig = plt.figure(num=name, figsize=(4.2 * ncols, 3.4 * nrows), layout="constrained")
        figures[name] = fig
    fig.clear()
    fig.subplots(nrows, ncols, squeeze=False)
    return fig


def _redraw(fig: Figure) -> None:
    """Ask a figure on screen to redraw when the GUI is idle. An off-screen canvas (Agg:
    tests, screenshots) draws only when saved: drawing it at every event costs seconds."""
    from matplotlib.backend_bases import FigureCanvasBase

    if type(fig.canvas).draw_idle is not FigureCanvasBase.draw_idle:
        fig.canvas.draw_idle()


def _scalar_fields(descriptor: dict[str, Any], hinted_only: bool) -> list[str]:
    keys = descriptor["data_keys"]
    if hinted_only:
        names = [
            f for hint in descriptor.get("hints", {}).values() for f in hint.get("fields", [])
        ]
    else:
        names = list(keys)
    return [
        n
        for n in names
        if n in keys
        and keys[n].get("dtype") in SCALAR_DTYPES
        and not keys[n].get("shape")
        and not keys[n].get("external")
    ]


# -- furnace profile ----------------------------------------------------------------------
class FurnaceProfilePlot(QtAwareCallback):
    """The furnace's zone temperatures (line), setpoints (dashed) and its hottest and
    coldest zone against instrument time (h), redrawn at each reading of one stream."""

    def __init__(self, figures: dict[str, Figure], profile_key: str, stream: str) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.figures, self.key, self.stream = figures, profile_key, stream
        self.furnace = profile_key.rsplit("-profile", 1)[0]
        self.desc_uid: str | None = None
        self.times_h: list[float] = []
        self.hot: list[float] = []
        self.cold: list[float] = []

    def start(self, doc: Any) -> None:
        self.title = f"{self.furnace} profile (scan {doc.get('scan_id', '?')})"

    def descriptor(self, doc: Any) -> None:
        if doc["name"] == self.stream and self.key in doc["data_keys"]:
            self.desc_uid = doc["uid"]

    def event(self, doc: Any) -> Any:
        if doc["descriptor"] != self.desc_uid:
            return doc
        data = doc["data"]
        profile = np.asarray(data[self.key], float)
        setpoints = data.get(f"{self.furnace}-setpoint_profile")
        clock = data.get(f"{self.furnace}-clock-sim_time")
        self.times_h.append(float(clock) / 3600.0 if clock is not None else len(self.times_h))
        self.hot.append(float(np.nanmax(profile)))
        self.cold.append(float(np.nanmin(profile)))
        fig = _figure(self.figures, "furnace profile", ncols=2)
        left, right = fig.axes
        zones = np.arange(1, profile.size + 1)
        left.plot(zones, profile, "o-", color="C3", label="zones")
        if setpoints is not None:
            left.plot(zones, np.asarray(setpoints, float), "--", color="0.4", label="setpoints")
        left.set(xlabel="zone", ylabel="temperature (degC)", title=self.title)
        left.legend(loc="best", fontsize="small")
        right.plot(self.times_h, self.hot, "-", color="C3", label="hottest zone")
        right.plot(self.times_h, self.cold, "-", color="C0", label="coldest zone")
        xlabel = "instrument time (h)" if clock is not None else "reading"
        right.set(xlabel=xlabel, ylabel="temperature (degC)", title="over the hold")
        right.legend(loc="best", fontsize="small")
        _redraw(fig)
        return doc


# -- maps ---------------------------------------------------------------------------------
class MapPlot(QtAwareCallback):
    """One image per detector field of a raster run, filled point by point."""

    def __init__(
        self, figures: dict[str, Figure], fields: list[str], units: dict[str, str]
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.figures, self.fields, self.units = figures, fields, units
        self.desc_uid: str | None = None
        self.images: dict[str, np.ndarray[Any, Any]] = {}

    def start(self, doc: Any) -> None:
        self.shape = tuple(int(n) for n in doc["shape"])
        self.extents = [tuple(float(v) for v in e) for e in doc["extents"]]
        self.snaking = list(doc.get("snaking") or [False] * len(self.shape))
        self.title = f"scan {doc.get('scan_id', '?')} {doc.get('coupon_id', '')}".strip()
        self.images = {f: np.full(self.shape, np.nan) for f in self.fields}
        self.shown: dict[str, Any] = {}

    def descriptor(self, doc: Any) -> None:
        if doc["name"] == "primary":
            self.desc_uid = doc["uid"]

    def varying(self) -> list[str]:
        """Return the fields to show: those with a non-zero value so far (an element the
        coupon does not hold reads 0 everywhere), at least the first field."""
        shown = [f for f in self.fields if np.nanmax(np.abs(self.images[f]), initial=0.0) > 0]
        return shown or self.fields[:1]

    def layout(self, fields: list[str]) -> None:
        """Make the figure: one image (and colour bar) per field of ``fields``."""
        n = len(fields)
        ncols = min(n, 3)
        fig = _figure(self.figures, "maps", ncols=ncols, nrows=(n + ncols - 1) // ncols)
        fig.suptitle(f"maps: {self.title}")
        (y0, y1), (x0, x1) = self.extents
        grid = list(fig.axes)
        for ax in grid[n:]:
            ax.set_visible(False)
        self.shown = {}
        for ax, f in zip(grid, fields, strict=False):
            shown = ax.imshow(
                self.images[f],
                origin="lower",
                aspect="auto",
                extent=(x0, x1, y0, y1),
                interpolation="nearest",
                cmap="viridis",
            )
            unit = self.units.get(f) or ""
            fig.colorbar(shown, ax=ax, label=unit)
            ax.set(xlabel="x (mm)", ylabel="y (mm)", title=f)
            self.shown[f] = shown

    def index(self, seq_num: int) -> tuple[int, int]:
        """Return (row, column) of the point ``seq_num`` (1-based) on the raster."""
        cols = self.shape[1]
        row, col = divmod(seq_num - 1, cols)
        if len(self.snaking) > 1 and self.snaking[1] and row % 2 == 1:
            col = cols - 1 - col
        return row, col

    def event(self, doc: Any) -> Any:
        if doc["descriptor"] != self.desc_uid:
            return doc
        row, col = self.index(int(doc["seq_num"]))
        if row >= self.shape[0]:
            return doc
        for f in self.fields:
            value = doc["data"].get(f)
            if isinstance(value, int | float):
                self.images[f][row, col] = float(value)
        fields = self.varying()
        if list(self.shown) != fields:
            self.layout(fields)
        for f, shown in self.shown.items():
            shown.set_data(self.images[f])
            if np.isfinite(self.images[f]).any():
                shown.autoscale()
        fig = self.figures["maps"]
        _redraw(fig)
        return doc


# -- the tensile curve --------------------------------------------------------------------
class TensilePlot(QtAwareCallback):
    """Stress (MPa; force in N without a known cross-section) against strain of the
    ``curve`` stream, read from the frame's HDF5 file block by block as it is pulled."""

    def __init__(self, figures: dict[str, Figure]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.figures = figures
        self.resources: dict[str, dict[str, Any]] = {}
        self.strain: list[float] = []
        self.load: list[float] = []
        self.area_mm2: float | None = None
        self.title = "tensile curve"

    def start(self, doc: Any) -> None:
        specimen = doc.get("specimen") or {}
        width, thickness = specimen.get("width"), specimen.get("thickness")
        if isinstance(width, dict) and isinstance(thickness, dict):
            self.area_mm2 = float(width["value"]) * float(thickness["value"])
        sample = doc.get("sample") or {}
        who = doc.get("specimen_id") or sample.get("coupon_id") or doc.get("coupon_id") or ""
        self.title = f"scan {doc.get('scan_id', '?')} {who}".strip()

    def stream_resource(self, doc: Any) -> None:
        self.resources[doc["uid"]] = doc

    def stream_datum(self, doc: Any) -> None:
        resource = self.resources.get(doc["stream_resource"])
        if resource is None or not resource["data_key"].endswith(("-force", "-strain")):
            return
        start, stop = int(doc["indices"]["start"]), int(doc["indices"]["stop"])
        path = Path(urlparse(resource["uri"]).path)
        try:
            with h5py.File(path, "r") as f:
                values = np.asarray(f[resource["parameters"]["dataset"]][start:stop], float)
        except OSError as exc:  # the file is the frame's: a plot never fails a run
            log.warning("live tensile plot: cannot read %s: %s", path, exc)
            return
        column = self.load if resource["data_key"].endswith("-force") else self.strain
        column.extend(values.tolist())
        if len(self.load) == len(self.strain):
            self.draw()

    def draw(self) -> None:
        """Redraw the curve from every sample read so far."""
        fig = _figure(self.figures, "tensile curve")
        (ax,) = fig.axes
        load = np.asarray(self.load)
        if self.area_mm2:
            ax.plot(self.strain, load / self.area_mm2, color="C1")
            ax.set_ylabel("engineering stress (MPa)")
        else:
            ax.plot(self.strain, load, color="C1")
            ax.set_ylabel("force (N)")
        ax.set(xlabel="strain (mm/mm)", title=self.title)
        _redraw(fig)


# -- the Arrhenius fit --------------------------------------------------------------------
@dataclass
class Exposure:
    """What a coupon's exposure in this session gave: hold time and thermocouple scans."""

    hold_s: float
    tc_positions_mm: np.ndarray[Any, Any]
    scans_c: list[np.ndarray[Any, Any]] = field(default_factory=list)


class ExposureRecorder(QtAwareCallback):
    """Keeps the thermocouple scans of a gradient exposure, by coupon id."""

    def __init__(self, exposures: dict[str, Exposure], key: str, positions: Any) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.exposures, self.key = exposures, key
        self.positions = np.asarray(positions, float)
        self.coupon = ""

    def start(self, doc: Any) -> None:
        self.coupon = str(doc.get("coupon_id") or "")
        if self.coupon:
            self.exposures[self.coupon] = Exposure(float(doc["hold_duration_s"]), self.positions)

    def event(self, doc: Any) -> Any:
        scan = doc["data"].get(self.key)
        if self.coupon and scan is not None:
            self.exposures[self.coupon].scans_c.append(np.asarray(scan, float))
        return doc


class ArrheniusPlot(QtAwareCallback):
    """Each completed row of a thickness map: ln(x^2/t) against 1000/T, its line and Q."""

    def __init__(self, figures: dict[str, Figure], exposure: Exposure, thickness: str) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.figures, self.exposure, self.key = figures, exposure, thickness
        self.desc_uid: str | None = None
        self.rows: list[tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], Any]] = []

    def start(self, doc: Any) -> None:
        self.shape = tuple(int(n) for n in doc["shape"])
        (y0, y1), (x0, x1) = doc["extents"]
        self.y = np.linspace(float(y0), float(y1), self.shape[0])
        self.x = np.linspace(float(x0), float(x1), self.shape[1])
        self.current: list[float] = []
        self.title = f"scan {doc.get('scan_id', '?')} {doc.get('coupon_id', '')}".strip()
        self.temperature_k = temperatures_at(
            self.x,
            self.exposure.tc_positions_mm,
            np.vstack(self.exposure.scans_c),
            self.exposure.hold_s,
        ).temperature_k

    def descriptor(self, doc: Any) -> None:
        if doc["name"] == "primary":
            self.desc_uid = doc["uid"]

    def event(self, doc: Any) -> Any:
        if doc["descriptor"] != self.desc_uid:
            return doc
        value = doc["data"].get(self.key)
        self.current.append(float(value) if isinstance(value, int | float) else np.nan)
        if len(self.current) == self.shape[1]:
            thickness_m = np.asarray(self.current) * 1e-9
            self.current = []
            try:
                fit = fit_activation_energy(thickness_m, self.temperature_k, self.exposure.hold_s)
            except ValueError:  # too few usable points in this row
                fit = None
            self.rows.append((thickness_m, self.temperature_k, fit))
            self.draw()
        return doc

    def draw(self) -> None:
        """Redraw every completed row (points and fitted line, coloured by its y) and the
        activation energy of each row against y."""
        import matplotlib as mpl

        fig = _figure(self.figures, "arrhenius", ncols=2)
        left, right = fig.axes
        t = self.exposure.hold_s
        y0, y1 = float(self.y[0]), float(self.y[-1])
        norm = mpl.colors.Normalize(min(y0, y1), max(y0, y1) if y1 != y0 else y0 + 1.0)
        cmap = mpl.colormaps["viridis"]
        done: list[tuple[float, float, float]] = []
        for k, (x, temp, fit) in enumerate(self.rows):
            colour = cmap(norm(self.y[k]))
            ok = np.isfinite(x) & (x > 0)
            inv = 1000.0 / temp
            left.plot(inv[ok], np.log(x[ok] ** 2 / t), "o", color=colour, ms=3)
            if fit is not None:
                slope = -fit.activation_energy_kj_per_mol * 1e3 / R_GAS / 1000.0
                left.plot(inv, fit.ln_k0 + slope * inv, "-", color=colour, lw=1)
                done.append(
                    (float(self.y[k]), fit.activation_energy_kj_per_mol, fit.stderr_kj_per_mol)
                )
        left.set(xlabel="1000 / T (1/K)", ylabel="ln(x^2 / t)  (x in m, t in s)")
        left.set_title(f"rows done: {len(self.rows)} of {self.shape[0]}")
        fig.colorbar(mpl.cm.ScalarMappable(norm=norm, cmap=cmap), ax=left, label="row y (mm)")
        if done:
            y, q, err = (np.asarray(v) for v in zip(*done, strict=True))
            right.errorbar(y, q, yerr=np.nan_to_num(err), fmt="o-", color="C3", ms=4, capsize=2)
        right.set(
            xlabel="row y (mm)",
            ylabel="Q (kJ/mol), bare parabolic fit",
            title=f"activation energy: {self.title}",
        )
        _redraw(fig)


# -- the router ---------------------------------------------------------------------------
class LiveFeedback:
    """Live tables and figures for every run (module docstring); a RunEngine subscriber.

    Parameters
    ----------
    table
        Print a live table of each run's scalar streams.
    plots
        Draw the figures (matplotlib; with no display, the Agg backend draws off screen).
    out
        Where table lines go (default ``print``).
    """

    def __init__(
        self, *, table: bool = True, plots: bool = True, out: Callable[[str], None] = print
    ) -> None:
        self.table, self.plots, self.out = table, plots, out
        self.figures: dict[str, Figure] = {}
        """Figure name (``"furnace profile"``, ``"maps"``, ``"tensile curve"``,
        ``"arrhenius"``) -> its matplotlib figure."""
        self.exposures: dict[str, Exposure] = {}
        """Coupon id -> its exposure in this session (for the Arrhenius fit)."""
        self.router = RunRouter([self._factory])

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        """Route one document (RunEngine subscriber signature)."""
        self.router(name, doc)

    def _factory(self, name: str, start: dict[str, Any]) -> tuple[list[Any], list[Any]]:
        def per_stream(name: str, descriptor: dict[str, Any]) -> list[Any]:
            try:
                return self._for_stream(start, descriptor)
            except Exception:  # live feedback never fails a run
                log.exception("no live feedback for stream %r", descriptor.get("name"))
                return []

        return [], [per_stream]

    def _for_stream(self, start: dict[str, Any], desc: dict[str, Any]) -> list[Any]:
        callbacks: list[Any] = []
        stream, keys = desc["name"], desc["data_keys"]
        if self.table and stream in TABLE_STREAMS:
            fields = _scalar_fields(desc, hinted_only=stream == "primary")
            fields = (fields or _scalar_fields(desc, hinted_only=False))[:MAX_TABLE_COLUMNS]
            if fields:
                callbacks.append(LiveTable(fields, stream_name=stream, out=self.out))
        if not self.plots:
            return callbacks
        profile = next((k for k in keys if k.endswith("-profile")), None)
        if profile is not None and keys[profile].get("units") == "degC":
            callbacks.append(FurnaceProfilePlot(self.figures, profile, stream))
        if stream == "primary" and len(start.get("shape") or ()) == 2 and start.get("extents"):
            motors = set(start.get("motors") or ())
            fields = [f for f in _scalar_fields(desc, hinted_only=True) if f not in motors]
            if fields:
                units = {f: keys[f].get("units") or "" for f in fields}
                callbacks.append(MapPlot(self.figures, fields[:6], units))
            thickness = next((f for f in fields if f.endswith("-thickness")), None)
            exposure = self.exposures.get(str(start.get("coupon_id") or ""))
            if thickness and exposure is not None and exposure.scans_c:
                callbacks.append(ArrheniusPlot(self.figures, exposure, thickness))
        if stream == "curve" and any(k.endswith("-force") for k in keys):
            callbacks.append(TensilePlot(self.figures))
        if start.get("hold_duration_s") and stream == "primary":
            callbacks.extend(self._exposure_recorder(start, keys))
        return callbacks

    def _exposure_recorder(self, start: dict[str, Any], keys: dict[str, Any]) -> list[Any]:
        devices = {d["name"]: d for d in (start.get("lab_file") or {}).get("devices", [])}
        for key in keys:
            scanner = key.rsplit("-", 1)[0]
            positions = (devices.get(scanner) or {}).get("settings", {}).get("positions_mm")
            if key.endswith("-temperatures") and positions:
                return [ExposureRecorder(self.exposures, key, positions)]
        return []

    def save(self, folder: str | Path, dpi: int = 110) -> list[Path]:
        """Write every figure to ``folder/<name>.png`` (created); return the paths."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, fig in self.figures.items():
            path = out / f"{name.replace(' ', '-')}.png"
            fig.savefig(path, dpi=dpi)
            paths.append(path)
        return paths

    def close(self) -> None:
        """Close every figure."""
        import matplotlib.pyplot as plt

        for fig in self.figures.values():
            with contextlib.suppress(Exception):
                plt.close(fig)
        self.figures.clear()


def live_feedback(**kwargs: Any) -> LiveFeedback:
    """Return a :class:`LiveFeedback` (keyword arguments as its own)."""
    return LiveFeedback(**kwargs)


__all__ = [
    "ArrheniusPlot",
    "FurnaceProfilePlot",
    "LiveFeedback",
    "MapPlot",
    "TensilePlot",
    "live_feedback",
]
