"""Multi-track print schedules: the feed schedule of every track of a coupon graded across
its width, with or without feed-forward, and the 2-D map the calibration predicts.

The cell prints track after track along +x; between tracks the laser is off, the nozzle
makes a rapid move to the next track's start, and the feeders hold the last rates of the
finished track (docs/decisions/0013-multi-track-printing.md). The planner lays the whole
program on one time line of steps ``h = step_mm / speed`` (tracks, then transitions of
``distance / rapid speed``), puts the wanted nozzle flow of every channel on it and then:

- naive switching commands each track's own flow from that track's first point on (the
  feeders hold the finished track's rates through the transition), so the powder of the
  previous track is still in the lines for ``delay + a few tau`` after the next track starts;
- feed-forward wants the next track's flow from the moment the finished track ends (nothing
  is deposited during the move), leads every channel by its calibrated delay and inverts its
  lag against its simulated state (:func:`~couponlab.plans.feed_model.lead_and_invert`), so
  the new composition is commanded ``delay`` before the finished track ends and settles
  during the transition.

Only what the cell can play is commanded: each track's schedule points by position, the
last one held through the transition. The prediction simulates exactly that.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from couponlab.errors import InputError
from couponlab.interfaces.feeder import CompositionMap, PrintJob, Track, TrackGeometry
from couponlab.plans.feed_model import Channel, lead_and_invert, mix_fractions, simulate_channel
from couponlab.plans.graded_target import TrackedTarget

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class TrackPlan:
    """A planned multi-track print.

    Attributes
    ----------
    job
        The print job (tracks, paths, schedules).
    predicted
        The map the calibration predicts, on the target's (y, x) grid.
    first_run_in_mm, track_run_in_mm
        Path before x = 0 of the first track (long enough for every channel to settle from
        rest) and of the others, mm.
    transitions_s
        Duration of each laser-off move between tracks, s.
    """

    job: PrintJob
    predicted: CompositionMap
    first_run_in_mm: float
    track_run_in_mm: float
    transitions_s: tuple[float, ...]


def bead_density(y_nodes: FloatArray, y_track: float, bead_width_mm: float) -> FloatArray:
    """Return the fraction of a track's mass per mm of y at ``y_nodes`` (1/mm): a Gaussian
    of standard deviation ``bead_width_mm / 4`` about the track (decision 0013)."""
    sigma = bead_width_mm / 4.0
    density: FloatArray = np.exp(-0.5 * ((y_nodes - y_track) / sigma) ** 2) / (
        sigma * math.sqrt(2.0 * math.pi)
    )
    return density


def _compress(
    xs: FloatArray, rates: FloatArray, tol: float = 1e-4
) -> list[tuple[float, list[float]]]:
    """Return schedule points where the rates change (the first always), rates (nch, n)."""
    points: list[tuple[float, list[float]]] = []
    last: FloatArray | None = None
    for j in range(xs.size):
        r = rates[:, j]
        if last is None or np.max(np.abs(r - last)) > tol:
            points.append((float(xs[j]), [float(v) for v in r]))
            last = r
    return points


def plan_tracks(
    channels: Sequence[Channel],
    tracked: TrackedTarget,
    *,
    coupon_id: str,
    speed_mm_s: float,
    power_w: float,
    total_rate_g_min: float,
    max_rate_g_min: float,
    feedforward: bool,
    geometry: TrackGeometry,
    track_run_in_mm: float = 2.0,
    step_mm: float = 0.5,
    run_out_mm: float = 2.0,
) -> TrackPlan:
    """Compute the multi-track job and the 2-D map its calibration predicts.

    Parameters
    ----------
    channels
        The cell's feed channels, in schedule order, with their calibrations.
    tracked
        Target map and track positions.
    coupon_id
        Coupon identity.
    speed_mm_s, power_w
        Travel speed (mm/s) and laser power (W) of every track.
    total_rate_g_min
        Total powder flow, g/min, shared among the channels by the powder mix.
    max_rate_g_min
        Largest command of any channel, g/min.
    feedforward
        Lead and lag-invert (True) or switch naively at each track's start (False).
    geometry
        The cell's track geometry (bead width, rapid speed).
    track_run_in_mm
        Path before x = 0 of every track after the first, mm (>= 0).
    step_mm
        Spacing of the schedule's time line along a track, mm.
    run_out_mm
        Path past the coupon's end of every track, mm.

    Raises
    ------
    InputError
        Feed-forward without a calibration of a used channel, a negative run-in.
    """
    if track_run_in_mm < 0:
        raise InputError("", f"track run-in = {track_run_in_mm} mm must be >= 0")
    target = tracked.target
    assert target.y_mm is not None
    nch = len(channels)
    powders = [c.powder for c in channels]
    mixes = [
        mix_fractions(tracked.along_track(float(y)).fractions, powders)
        for y in tracked.tracks_y_mm
    ]
    used = [k for k in range(nch) if max(float(m[:, k].max()) for m in mixes) > 1e-6]
    missing = [
        f"{channels[k].feeder}:{channels[k].hopper}" for k in used if not channels[k].calibration
    ]
    if feedforward and missing:
        raise InputError("", f"feed-forward needs a calibration of {missing}")
    length = tracked.length_mm
    h = step_mm / speed_mm_s
    settle = max(
        (
            cal.delay_s + 5 * cal.tau_s
            for k in used
            if (cal := channels[k].calibration) is not None
        ),
        default=5.0,
    )
    first_run_in = math.ceil(speed_mm_s * settle / step_mm + 2) * step_mm
    run_in = math.ceil(track_run_in_mm / step_mm - 1e-9) * step_mm
    ys = [float(y) for y in tracked.tracks_y_mm]
    paths = [
        np.arange(-(first_run_in if k == 0 else run_in), length + run_out_mm + 1e-9, step_mm)
        for k in range(len(ys))
    ]
    # the time line: each track's print steps (one per path interval), then its transition
    wanted: list[FloatArray] = []
    track_steps: list[NDArray[np.int_]] = []
    hold_index: list[int] = []
    transitions: list[float] = []
    n = 0
    for k, x in enumerate(paths):
        q = np.stack([np.interp(x, target.x_mm, mixes[k][:, c]) for c in range(nch)])
        q *= total_rate_g_min
        steps = x.size - 1
        wanted.append(q[:, :steps])
        track_steps.append(np.arange(n, n + steps))
        n += steps
        hold_index.append(n)  # the command at x_end, held through the transition
        if k + 1 < len(paths):
            nxt = paths[k + 1]
            t_move = math.hypot(x[-1] - nxt[0], ys[k + 1] - ys[k]) / geometry.rapid_speed_mm_s
            transitions.append(t_move)
            n_move = max(1, round(t_move / h))
            # nothing is deposited during the move: feed-forward wants the next track's
            # flow from the moment this track ends, naive switching keeps this track's
            if feedforward:
                q_move = total_rate_g_min * np.array(
                    [np.interp(nxt[0], target.x_mm, mixes[k + 1][:, c]) for c in range(nch)]
                )
            else:
                q_move = q[:, -1]
            wanted.append(np.repeat(q_move[:, None], n_move, axis=1))
            n += n_move
        else:
            wanted.append(q[:, steps:])  # the end point, so the last command has a slot
            n += 1
    q_all = np.concatenate(wanted, axis=1)
    u = np.zeros_like(q_all)
    for c in used:
        cal = channels[c].calibration
        if feedforward and cal is not None:
            u[c] = lead_and_invert(q_all[c], cal, h, max_rate_g_min)
        else:
            u[c] = np.clip(q_all[c], 0.0, max_rate_g_min)
    # what the cell plays: track steps as commanded, each transition holds the x_end command
    played = np.zeros_like(u)
    tracks: list[Track] = []
    for k, x in enumerate(paths):
        idx = track_steps[k]
        hold = hold_index[k]
        played[:, idx] = u[:, idx]
        end = int(track_steps[k + 1][0]) if k + 1 < len(paths) else hold + 1
        played[:, hold:end] = u[:, hold : hold + 1]
        rates = np.concatenate([u[:, idx], u[:, hold : hold + 1]], axis=1)
        tracks.append(Track(ys[k], float(x[0]), float(x[-1]), _compress(x, rates)))
    job = PrintJob.from_tracks(coupon_id, length, tracked.width_mm, speed_mm_s, power_w, tracks)
    predicted = _predict(channels, played, h, paths, track_steps, target, ys, geometry)
    return TrackPlan(job, predicted, first_run_in, run_in, tuple(transitions))


def _predict(
    channels: Sequence[Channel],
    played: FloatArray,
    h: float,
    paths: Sequence[FloatArray],
    track_steps: Sequence[NDArray[np.int_]],
    target: CompositionMap,
    ys: Sequence[float],
    geometry: TrackGeometry,
) -> CompositionMap:
    """Return the 2-D map that ``played`` commands deposit, by the calibrated model."""
    assert target.y_mm is not None
    flows = np.zeros_like(played)
    for c, ch in enumerate(channels):
        cal = ch.calibration
        flows[c] = (
            simulate_channel(played[c], cal.delay_s, cal.tau_s, cal.gain, h)
            if cal is not None
            else played[c]
        )
    elements = sorted({e for ch in channels for e in ch.powder.composition})
    mass = {e: np.zeros((target.y_mm.size, target.x_mm.size)) for e in elements}
    for k, x in enumerate(paths):
        mid = 0.5 * (x[:-1] + x[1:])  # each step deposits around its midpoint
        on = (mid >= -1e-9) & (mid <= target.x_mm[-1] + 1e-9)
        rho = bead_density(target.y_mm, ys[k], geometry.bead_width_mm)
        for e in elements:
            rate = sum(
                ch.powder.composition.get(e, 0.0) * flows[c, track_steps[k]]
                for c, ch in enumerate(channels)
            )
            along = np.interp(target.x_mm, mid[on], np.asarray(rate, float)[on])
            mass[e] += np.outer(rho, along)
    total = sum(mass.values())
    total_arr = np.where(np.asarray(total) > 1e-12, total, 1.0)
    return CompositionMap(
        target.x_mm.copy(), {e: m / total_arr for e, m in mass.items()}, target.y_mm.copy()
    )


__all__ = ["TrackPlan", "bead_density", "plan_tracks"]
