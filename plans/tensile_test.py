"""ASTM E8/E8M tension test of one specimen: mount, preload, pull to fracture, return.

The curve reaches the documents as an HDF5 file referenced by StreamResource/StreamDatum
documents in the ``curve`` stream (docs/decisions/0020-frame-bulk-data-path.md), collected
while the test runs; the analysis (:mod:`couponlab.plans.tensile_analysis`) is attached to
the run as one event of the ``results`` stream, with units in its descriptor.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Coroutine
from dataclasses import asdict
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
from bluesky.utils import MsgGenerator
from ophyd_async.core import StandardReadable, soft_signal_rw

from couponlab.errors import InputError
from couponlab.interfaces import frame as iframe
from couponlab.plans.cleanup import finalize_keeping_cause
from couponlab.plans.tensile_analysis import UNITS, AnalysisError, TensileResult, analyse_tensile
from couponlab.plans.watch import watch, watch_slice
from couponlab.units import QuantityLike, quantity_metadata, to_magnitude

CURVE_STREAM = "curve"
"""Stream whose data keys reference the samples in the test's HDF5 file."""
RESULTS_STREAM = "results"
"""Stream with one event: the tensile properties."""
PULL_GROUP = "tensile_test.pull"
"""Status group of the pull (the frame's ``complete``)."""


class TensileResults(StandardReadable):
    """Soft device that carries the analysis of one test into a ``results`` event.

    Signals: ``modulus`` (GPa), ``yield_strength`` (MPa), ``uts`` (MPa),
    ``uniform_elongation`` (%), ``total_elongation`` (%), ``elongation_after_fracture``
    (%), ``toe_strain`` (mm/mm), ``modulus_r2``, ``fractured``, ``samples``,
    ``end_reason``, ``slips``, ``note`` (why the curve could not be analysed, if so).
    """

    def __init__(self, name: str = "tensile") -> None:
        with self.add_children_as_readables():
            self.modulus = soft_signal_rw(float, math.nan, units=UNITS["modulus"])
            self.yield_strength = soft_signal_rw(float, math.nan, units=UNITS["yield_strength"])
            self.uts = soft_signal_rw(float, math.nan, units=UNITS["uts"])
            self.uniform_elongation = soft_signal_rw(
                float, math.nan, units=UNITS["uniform_elongation"]
            )
            self.total_elongation = soft_signal_rw(
                float, math.nan, units=UNITS["total_elongation"]
            )
            self.elongation_after_fracture = soft_signal_rw(
                float, math.nan, units=UNITS["elongation_after_fracture"]
            )
            self.toe_strain = soft_signal_rw(float, math.nan, units=UNITS["toe_strain"])
            self.modulus_r2 = soft_signal_rw(float, math.nan)
            self.fractured = soft_signal_rw(bool, False)
            self.samples = soft_signal_rw(int, 0)
            self.end_reason = soft_signal_rw(str, "")
            self.slips = soft_signal_rw(int, 0)
            self.note = soft_signal_rw(str, "")
        super().__init__(name=name)

    async def load(
        self, result: TensileResult, outcome: iframe.TestOutcome, note: str = ""
    ) -> None:
        """Set every signal from an analysis, a test outcome and a note (why not analysed)."""
        for key, value in result.as_dict().items():
            await getattr(self, key).set(value)
        await self.end_reason.set(outcome.end)
        await self.slips.set(outcome.slips)
        await self.note.set(note)


def _task(factory: Callable[[], Any]) -> Callable[[], Coroutine[Any, Any, Any]]:
    """Wrap a status- or coroutine-returning call for ``bps.wait_for``."""

    async def run() -> Any:
        return await factory()

    return run


def _call(factory: Callable[[], Any]) -> MsgGenerator[Any]:
    """Run one awaitable action of a device and return its result."""
    (fut,) = yield from bps.wait_for([_task(factory)])
    return fut.result()


def tensile_test(
    frame: iframe.TestFrame,
    coupon_id: str,
    position: QuantityLike,
    *,
    across: QuantityLike | None = None,
    coupon_width: QuantityLike | None = None,
    coupon_length: QuantityLike | None = None,
    geometry: iframe.SpecimenGeometry | None = None,
    settings: iframe.TestSettings | None = None,
    preload: QuantityLike = "50 N",
    flush_period: float = 0.5,
    md: dict[str, Any] | None = None,
) -> MsgGenerator[TensileResult]:
    """Pull one specimen to fracture following ASTM E8/E8M and analyse its curve.

    The plan (1) mounts the specimen cut from ``coupon_id`` at (``position``, ``across``) on
    the coupon and sends the test settings (every value validated before a byte is sent),
    (2) opens a run, (3) preloads to ``preload`` to take up slack, (4) starts the test and
    collects the samples while it runs (StreamResource/StreamDatum of the frame's HDF5 file,
    stream ``curve``), until the frame detects the break, is stopped or faults, (5) checks
    that every sample the frame produced is in the file, analyses the curve and emits the
    properties in the ``results`` stream, and (6) always unloads and returns the crosshead,
    whatever happened.

    Parameters
    ----------
    frame
        Any :class:`~couponlab.interfaces.frame.TestFrame`.
    coupon_id
        Identity of the coupon the specimen was cut from (recorded, and sent to the frame).
    position
        Centre of the gauge length along the coupon (x), mm.
    across
        Centre of the specimen across the coupon's width (y), mm from the coupon's edge;
        ``None`` is the coupon's centre line. The gauge length runs along x and the
        specimen's width spans ``across`` +/- width/2 (clipped to the coupon), so on a coupon
        graded across its width each ``across`` tests a different composition.
    coupon_width
        Width of the coupon, mm, when the plan knows it: ``across`` and the specimen's
        outline are then checked against it before a byte is sent (otherwise the frame
        refuses an ``across`` off the coupon).
    coupon_length
        Length of the coupon, mm, when the plan knows it: the specimen's outline centred
        at ``position`` must lie inside it (checked before a byte is sent).
    geometry
        Specimen dimensions; E8M sub-size sheet (25 x 6 mm, 100 mm overall, thickness from
        the lab file) by default; :data:`couponlab.specimens.SS_J3` fits a coupon. Where
        several specimens come from one coupon, lay them out with
        :func:`couponlab.specimens.layout_specimens` (no overlap, inside the coupon).
    settings
        Control mode, rates, sampling rate, force limit; E8 method C crosshead rate
        (0.48 mm/min for a 32 mm reduced section) at 100 Hz by default.
    preload
        Preload force, N (> 0).
    flush_period
        Wall-clock period of ``collect`` while the test runs, s (> 0).
    md
        Extra run metadata, merged over the plan's own. The plan records ``coupon_id``,
        ``sample = {position, across}`` and ``specimen`` (the given dimensions), each length
        as ``{"value": <float>, "units": "mm"}`` (``across`` ``None``: centre line).

    Yields
    ------
    Msg
        Bluesky messages.

    Returns
    -------
    TensileResult
        The properties (also in the ``results`` stream).

    Raises
    ------
    TestAbortedError
        The test ended on a fault (over-force, travel limit); the curve, the outcome and
        whatever could be analysed are still recorded.
    AnalysisError
        The curve does not allow the analysis (recorded in the ``note`` of the results).
    SamplesLostError
        Fewer samples reached the file than the frame produced.

    See Also
    --------
    couponlab.plans.tensile_analysis.analyse_tensile
    """
    geometry = geometry or iframe.SpecimenGeometry()
    settings = settings or iframe.TestSettings()
    preload_n = to_magnitude(preload, "N", device=frame.name, what="preload", low=1e-3)
    if not flush_period > 0:
        raise InputError(frame.name, f"flush_period = {flush_period} must be > 0 s")
    results = TensileResults(name=f"{frame.name}_tensile")
    plan_md: dict[str, Any] = {
        "plan_name": "tensile_test",
        "plan_args": {
            "frame": repr(frame.name),
            "coupon_id": coupon_id,
            "position": str(position),
            "across": None if across is None else str(across),
            "coupon_width": None if coupon_width is None else str(coupon_width),
            "coupon_length": None if coupon_length is None else str(coupon_length),
            "geometry": iframe.describe_geometry(geometry),
            "settings": {k: str(v) for k, v in asdict(settings).items()},
            "preload": str(preload),
        },
        "standard": "ASTM E8/E8M",
        "coupon_id": coupon_id,
        "sample": {
            "position": quantity_metadata(position, "mm", device=frame.name, what="position"),
            "across": None
            if across is None
            else quantity_metadata(across, "mm", device=frame.name, what="across"),
        },
        "specimen": iframe.describe_geometry(geometry),
        "detectors": [frame.name],
    }
    plan_md.update(md or {})

    found: list[TensileResult] = []

    def test() -> MsgGenerator[None]:
        yield from bps.clear_checkpoint()  # set-up, preload and start are never replayed
        yield from _call(lambda: results.connect())
        yield from _call(lambda: frame.preload(preload_n))
        yield from bps.declare_stream(frame, name=CURVE_STREAM, collect=True)
        yield from bps.kickoff(frame, wait=True)
        # the frame pulls by itself; the plan collects the curve every flush period with a
        # checkpoint before each: Ctrl-C pauses the run within one period. The frame has no
        # paused state (a held pull would spoil the test): it pulls to the end; RE.resume()
        # collects on, RE.abort() stops the crosshead and unloads (frame safe state)
        pulled = yield from bps.complete(frame, group=PULL_GROUP)
        while True:
            yield from bps.checkpoint()
            done = pulled is None or pulled.done
            if not done:
                yield from watch_slice(pulled, flush_period)
            yield from bps.collect(frame, name=CURVE_STREAM)
            if done:
                break
        if pulled is not None and not pulled.success:
            yield from watch(pulled)  # raises the pull's own error
        outcome: iframe.TestOutcome = yield from _call(frame.outcome)
        if outcome.written != outcome.samples:
            raise iframe.SamplesLostError(
                frame.name,
                f"{outcome.samples} samples produced but {outcome.written} written",
            )
        curve = frame.curve()
        error: AnalysisError | None = None
        try:
            result = analyse_tensile(curve.strain, curve.force, curve.area)
        except AnalysisError as exc:
            error = exc
            nan = math.nan
            result = TensileResult(nan, nan, nan, nan, nan, nan, nan, nan, False, len(curve.time))
        yield from _call(
            lambda: results.load(result, outcome, "" if error is None else str(error))
        )
        yield from bps.create(RESULTS_STREAM)
        yield from bps.read(results)
        yield from bps.save()
        found.append(result)
        if outcome.end == "FAULT":
            raise iframe.TestAbortedError(
                frame.name, f"test ended on fault {outcome.fault}; curve and outcome recorded"
            )
        if error is not None:
            raise error

    def run() -> MsgGenerator[TensileResult]:
        yield from _call(
            lambda: frame.mount(
                coupon_id,
                position,
                geometry,
                across=across,
                coupon_width=coupon_width,
                coupon_length=coupon_length,
            )
        )
        yield from _call(lambda: frame.configure_test(settings))
        yield from bpp.run_wrapper(test(), md=plan_md)
        return found[0]

    def finish() -> MsgGenerator[None]:
        yield from _call(frame.unload)
        yield from _call(frame.return_home)

    result: TensileResult = yield from finalize_keeping_cause(run(), finish())
    return result


__all__ = ["CURVE_STREAM", "RESULTS_STREAM", "TensileResults", "tensile_test"]
