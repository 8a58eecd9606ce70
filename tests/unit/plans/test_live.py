"""Live feedback from run documents (no instrument, Agg backend): the table prints each
reading, the furnace profile redraws per reading, a map fills point by point, the tensile
curve grows block by block from the frame's HDF5 file, and the Arrhenius plot fits each
completed row with the activation energy the synthetic thicknesses were made with."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import matplotlib
import numpy as np
import pytest

from couponlab.plans.live import LiveFeedback

matplotlib.use("Agg")

R = 8.314462618
Q_KJ = 250.0
HOLD_S = 36000.0
TC_MM = [0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0]


class Run:
    """Documents of one run, made by hand (as a RunEngine would emit them)."""

    def __init__(self, feed: LiveFeedback, **md: Any) -> None:
        self.feed, self.uid = feed, str(uuid.uuid4())
        self.seq: dict[str, Iterator[int]] = {}
        start = {"uid": self.uid, "time": 0.0, "scan_id": 1, "plan_type": "generator", **md}
        feed("start", start)

    def descriptor(self, name: str, data_keys: dict[str, Any], hints: Any = None) -> str:
        uid = str(uuid.uuid4())
        doc = {"uid": uid, "run_start": self.uid, "name": name, "data_keys": data_keys}
        doc["hints"] = hints or {}
        self.feed("descriptor", doc)
        self.seq[uid] = itertools.count(1)
        return uid

    def event(self, descriptor: str, **data: Any) -> None:
        doc = {
            "uid": str(uuid.uuid4()),
            "descriptor": descriptor,
            "seq_num": next(self.seq[descriptor]),
            "time": 0.0,
            "data": data,
            "timestamps": dict.fromkeys(data, 0.0),
            "filled": {},
        }
        self.feed("event", doc)

    def stop(self) -> None:
        self.feed(
            "stop",
            {
                "uid": str(uuid.uuid4()),
                "run_start": self.uid,
                "time": 0.0,
                "exit_status": "success",
            },
        )


def key(dtype: str = "number", shape: list[int] | None = None, units: str = "") -> Any:
    return {"dtype": dtype, "shape": shape or [], "source": "test", "units": units}


@pytest.fixture
def feed() -> Iterator[tuple[LiveFeedback, list[str]]]:
    lines: list[str] = []
    live = LiveFeedback(out=lines.append)
    yield live, lines
    live.close()


def expose(live: LiveFeedback, coupon: str) -> None:
    """A gradient hold of ``coupon``: three readings of the furnace and the thermocouples."""
    lab = {"devices": [{"name": "tcs1", "settings": {"positions_mm": TC_MM}}]}
    run = Run(
        live,
        plan_name="gradient_oxidation_hold",
        coupon_id=coupon,
        lab_file=lab,
        hold_duration_s=HOLD_S,
    )
    desc = run.descriptor(
        "primary",
        {
            "furnace1-profile": key("array", [8], "degC"),
            "furnace1-setpoint_profile": key("array", [8], "degC"),
            "furnace1-clock-sim_time": key(units="s"),
            "tcs1-temperatures": key("array", [7], "degC"),
        },
        {"furnace1": {"fields": ["furnace1-profile", "furnace1-clock-sim_time"]}},
    )
    zones = np.linspace(1100.0, 800.0, 8)
    for k in range(3):
        run.event(
            desc,
            **{
                "furnace1-profile": (zones - 5 * (2 - k)).tolist(),
                "furnace1-setpoint_profile": zones.tolist(),
                "furnace1-clock-sim_time": k * HOLD_S / 2,
                "tcs1-temperatures": np.linspace(1100.0, 800.0, 7).tolist(),
            },
        )
    run.stop()


def test_a_table_and_the_furnace_profile_follow_each_reading(
    feed: tuple[LiveFeedback, list[str]],
) -> None:
    live, lines = feed
    expose(live, "C-1")
    fig = live.figures["furnace profile"]
    left, right = fig.axes[:2]
    (zones, _setpoints) = left.lines
    assert zones.get_ydata()[0] == pytest.approx(1100.0)  # the last reading, on the line
    hot = right.lines[0]
    assert list(hot.get_xdata()) == pytest.approx([0.0, 5.0, 10.0])  # instrument hours
    table = "\n".join(lines)
    assert "furnace1-clock-sim_time" in table and "36000" in table
    assert len(live.exposures["C-1"].scans_c) == 3


def thickness_nm(temperature_k: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    kp = 1e-4 * np.exp(-Q_KJ * 1e3 / (R * temperature_k))
    return np.asarray(np.sqrt(kp * HOLD_S) * 1e9)


def test_a_map_fills_point_by_point_and_each_row_gets_its_arrhenius_fit(
    feed: tuple[LiveFeedback, list[str]],
) -> None:
    live, _ = feed
    expose(live, "C-2")
    rows, cols = 3, 7
    run = Run(
        live,
        plan_name="raster_map",
        coupon_id="C-2",
        shape=[rows, cols],
        extents=[[1.0, 9.0], [0.0, 60.0]],
        motors=["stage1-y", "stage1-x"],
    )
    desc = run.descriptor(
        "primary",
        {
            "profiler1-thickness": key(units="nm"),
            "xrf1-fraction_cr": key(units="dimensionless"),
            "stage1-x": key(units="mm"),
            "stage1-y": key(units="mm"),
        },
        {
            "profiler1": {"fields": ["profiler1-thickness"]},
            "xrf1": {"fields": ["xrf1-fraction_cr"]},
            "stage1-x": {"fields": ["stage1-x"]},
        },
    )
    x = np.linspace(0.0, 60.0, cols)
    temperature_k = np.interp(x, TC_MM, np.linspace(1100.0, 800.0, 7)) + 273.15
    made = thickness_nm(temperature_k)
    for r in range(rows):
        for c in range(cols):
            run.event(
                desc,
                **{
                    "profiler1-thickness": float(made[c]),
                    "xrf1-fraction_cr": 0.1 + 0.05 * r,
                    "stage1-x": float(x[c]),
                    "stage1-y": 1.0 + 4.0 * r,
                },
            )
            image = live.figures["maps"].axes[0].images[0].get_array()
            assert int(np.isfinite(image).sum()) == r * cols + c + 1  # filled point by point
        arrhenius, by_row = live.figures["arrhenius"].axes[:2]
        assert len([ln for ln in arrhenius.lines if ln.get_marker() == "o"]) == r + 1
        q_line = by_row.lines[0]  # (the error bars' caps are lines too)
        assert list(q_line.get_xdata()) == pytest.approx([1.0, 5.0, 9.0][: r + 1])  # row y, mm
    run.stop()
    assert list(q_line.get_ydata()) == pytest.approx([Q_KJ] * rows)  # kJ/mol, as made
    maps = live.figures["maps"]
    assert [ax.get_title() for ax in maps.axes if ax.images] == [
        "profiler1-thickness",
        "xrf1-fraction_cr",
    ]


def test_the_tensile_curve_grows_as_blocks_reach_the_file(
    feed: tuple[LiveFeedback, list[str]], tmp_path: Path
) -> None:
    live, _ = feed
    path = tmp_path / "frame1.h5"
    strain = np.linspace(0.0, 0.2, 100)
    force = 600.0 * np.tanh(strain * 40)
    with h5py.File(path, "w") as f:
        f["/force"] = force
        f["/strain"] = strain
    specimen = {
        "width": {"value": 1.2, "units": "mm"},
        "thickness": {"value": 0.5, "units": "mm"},
    }
    run = Run(live, plan_name="tensile_test", specimen=specimen, specimen_id="C-3-T1")
    run.descriptor(
        "curve",
        {
            "frame1-force": {**key(units="N"), "external": "STREAM:"},
            "frame1-strain": {**key(units="mm/mm"), "external": "STREAM:"},
        },
    )
    resources = {}
    for name in ("force", "strain"):
        uid = str(uuid.uuid4())
        resources[name] = uid
        live(
            "stream_resource",
            {
                "uid": uid,
                "run_start": run.uid,
                "data_key": f"frame1-{name}",
                "mimetype": "application/x-hdf5",
                "uri": path.as_uri(),
                "parameters": {"dataset": f"/{name}"},
            },
        )
    for block, (lo, hi) in enumerate([(0, 40), (40, 100)]):
        for name in ("force", "strain"):
            live(
                "stream_datum",
                {
                    "uid": f"{resources[name]}/{block}",
                    "stream_resource": resources[name],
                    "descriptor": "",
                    "indices": {"start": lo, "stop": hi},
                    "seq_nums": {"start": lo + 1, "stop": hi + 1},
                },
            )
        (curve,) = live.figures["tensile curve"].axes[0].lines
        assert len(curve.get_xdata()) == hi
    stress = curve.get_ydata()
    assert max(stress) == pytest.approx(force.max() / 0.6)  # MPa: N / (1.2 mm x 0.5 mm)
    run.stop()


def test_figures_are_saved_as_png(feed: tuple[LiveFeedback, list[str]], tmp_path: Path) -> None:
    live, _ = feed
    expose(live, "C-4")
    (png,) = live.save(tmp_path)
    assert png.name == "furnace-profile.png" and png.read_bytes()[:4] == b"\x89PNG"
