"""Pure parts of multi-track printing: target forms, the saturated lag inversion, and the
track planner's schedule and prediction (no devices)."""

from __future__ import annotations

import numpy as np
import pytest

from couponlab.errors import InputError
from couponlab.interfaces.feeder import CompositionMap, Powder, TrackGeometry
from couponlab.plans.calibrate_feeder import HopperCalibration
from couponlab.plans.feed_model import Channel, lead_and_invert, simulate_channel
from couponlab.plans.graded_target import resample, row_errors, tracked_target
from couponlab.plans.print_graded import map_error
from couponlab.plans.track_schedule import plan_tracks

GEOMETRY = TrackGeometry(1.6, 1.0, 50.0, -50.0, 150.0, 200)


def channels() -> list[Channel]:
    def cal(h: int, delay: float, tau: float) -> HopperCalibration:
        return HopperCalibration(h, "", delay, tau, 1.0, 5.0, 0.0)

    return [
        Channel("f1", 1, Powder("Ni", {"Ni": 1.0}), cal(1, 2.0, 0.6)),
        Channel("f1", 2, Powder("Ni-50Cr", {"Ni": 0.5, "Cr": 0.5}), cal(2, 2.8, 1.1)),
        Channel("f1", 3, Powder("Fe", {"Fe": 1.0}), cal(3, 3.4, 0.9)),
    ]


def across(x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    cr = 0.05 * y + 0.0 * x
    return {"Cr": cr, "Ni": 1.0 - cr}


def test_every_target_form_becomes_a_map_and_tracks() -> None:
    f = tracked_target(across, length_mm=60, width_mm=10, hatch_mm=1.0)
    assert f.target.fractions["Cr"].shape == (21, 121)
    assert f.tracks_y_mm == pytest.approx(np.arange(0.0, 10.5, 1.0))
    per_track = tracked_target(
        [{"Ni": 1.0}, {"Ni": 0.6, "Cr": 0.4}], length_mm=None, width_mm=4.0, hatch_mm=1.0
    )
    assert per_track.tracks_y_mm == pytest.approx([0.0, 4.0])  # spread across the width
    assert per_track.target.fractions["Cr"][:, 0] == pytest.approx(np.linspace(0, 0.4, 9))
    as_map = tracked_target(f.target, length_mm=None, width_mm=None, hatch_mm=2.0)
    assert as_map.tracks_y_mm == pytest.approx([0, 2, 4, 6, 8, 10])
    assert as_map.along_track(2.5).fractions["Cr"] == pytest.approx(np.full(121, 0.125))


@pytest.mark.parametrize(
    ("target", "match"),
    [
        (lambda x, y: {"Cr": 0.2 + 0 * x}, "sum to 1"),
        (lambda x, y: {"Cr": -0.1 + 0 * x, "Ni": 1.1 + 0 * y}, "non-negative"),
        ([{"Ni": 1.0}], "at least two tracks"),
        (CompositionMap(np.linspace(0, 10, 3), {"Ni": np.ones(3)}), "single-pass form"),
        (
            CompositionMap(np.linspace(0, 10, 3), {"Ni": np.ones((2, 2))}, np.array([0.0, 1.0])),
            "shape",
        ),
    ],
)
def test_malformed_targets_are_refused(target: object, match: str) -> None:
    with pytest.raises(InputError, match=match):
        tracked_target(target, length_mm=10, width_mm=2, hatch_mm=1.0)  # type: ignore[arg-type]


def test_resampling_and_row_errors() -> None:
    x, y = np.linspace(0, 10, 11), np.linspace(0, 4, 5)
    m = CompositionMap(x, {"Cr": np.outer(y, np.ones(11)) / 10}, y)
    fine = resample(m, np.linspace(0, 10, 21), np.linspace(0, 4, 9))["Cr"]
    assert fine[:, 3] == pytest.approx(np.linspace(0, 0.4, 9))
    along = CompositionMap(x, {"Cr": np.full(11, 0.2)})  # uniform across y
    assert row_errors(m, along) == pytest.approx(np.abs(y / 10 - 0.2) / np.sqrt(1), abs=1e-12)
    assert map_error(m, m) == 0.0


def test_saturated_inversion_catches_up_after_the_limit() -> None:
    h, q = 0.05, np.concatenate([np.full(100, 2.0), np.full(200, 9.0)])
    cal = HopperCalibration(1, "", 1.0, 0.8, 1.0, 5.0, 0.0)
    u = lead_and_invert(q, cal, h, max_rate=12.0)
    assert u.max() == 12.0 and u.min() >= 0.0  # the step asks more than the limit allows
    y = simulate_channel(u, cal.delay_s, cal.tau_s, cal.gain, h)
    # the flow reaches the new level soon after it is wanted, and holds it
    assert np.abs(y[120:] - 9.0).max() < 1e-6
    assert np.abs(y[40:100] - 2.0).max() < 1e-6


def test_feedforward_plan_switches_before_the_track_ends_and_predicts_better() -> None:
    tracked = tracked_target(across, length_mm=60, width_mm=10, hatch_mm=1.0)
    common = {
        "coupon_id": "P-1",
        "speed_mm_s": 10.0,
        "power_w": 400.0,
        "total_rate_g_min": 10.0,
        "max_rate_g_min": 30.0,
        "geometry": GEOMETRY,
    }
    naive = plan_tracks(channels(), tracked, feedforward=False, **common)  # type: ignore[arg-type]
    ff = plan_tracks(channels(), tracked, feedforward=True, **common)  # type: ignore[arg-type]
    assert len(ff.job.tracks) == 11 and ff.job.width_mm == 10.0
    assert ff.first_run_in_mm >= 10.0 * (2.8 + 5 * 1.1)  # settles from rest before x = 0
    assert ff.job.tracks[1].x_start_mm == -2.0  # the others need only a short run-in
    assert all(t > 1.0 for t in ff.transitions_s)  # back along the coupon at 50 mm/s
    # naive: a track's first point already holds its own mix, later points never change
    t5 = naive.job.tracks[5]
    assert len(t5.points) == 1 and t5.points[0][1][1] == pytest.approx(10 * 2 * 0.25)
    # feed-forward: the next track's mix is commanded a delay before this track ends
    f4 = ff.job.tracks[4]
    switch = [x for x, r in f4.points if r[1] > 10 * 2 * 0.2 + 1e-3]
    assert switch and switch[0] == pytest.approx(62.0 - 10.0 * 2.8, abs=1.0)
    assert not any(r[2] > 0 for t in ff.job.tracks for _, r in t.points)  # no Fe
    assert map_error(tracked.target, ff.predicted) < 0.2 * map_error(
        tracked.target, naive.predicted
    )
    bare = [Channel(c.feeder, c.hopper, c.powder, None) for c in channels()]
    with pytest.raises(InputError, match="needs a calibration"):
        plan_tracks(bare, tracked, feedforward=True, **common)  # type: ignore[arg-type]
