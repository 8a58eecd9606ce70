"""The cell driver's multi-track side against twins (twins on their own thread, the driver on
the test's loop): geometry at connect, a multi-track job loaded and printed, the extended
status in one exchange, and backward compatibility with a cell that knows no tracks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import numpy as np
import pytest

from couponlab.drivers.deposition import AsciiDepositionCell
from couponlab.errors import InputError
from couponlab.interfaces.feeder import PrintJob, Track
from couponlab.lab import make_device
from couponlab.simulators.background import BackgroundLoop
from couponlab.simulators.deposition.cell_model import CellConfig, CellModel
from couponlab.simulators.deposition.cell_twin import CellProtocol
from couponlab.simulators.deposition.feeder_model import FeederConfig, FeederModel
from couponlab.simulators.line_server import LineServer
from couponlab.simulators.world import World, WorldConfig
from couponlab.testing.feeder import deposition_lab
from couponlab.transports import SerialLineTransport
from couponlab.twins import BackgroundTwins

NEW_HEADERS = (
    "LIM:TRK?",
    "STAT:EXT?",
    "PRNT:TRK",
    "PRNT:TRK:COUN?",
    "MOT:POS:Y?",
    "SIM:MAP:Y?",
    "SIM:MAP:XY?",
)


@pytest.fixture
async def twins() -> AsyncIterator[tuple[BackgroundTwins, Any]]:
    tw = BackgroundTwins(deposition_lab(1, speedup=20.0, seed=9))
    cell: Any = make_device(tw.lab.device("cell1"))
    try:
        await cell.connect()
        yield tw, cell
    finally:
        await cell.close()
        tw.stop()


def _tracks(rates: list[float]) -> list[Track]:
    """Three tracks of one mix; the first has a run-in long enough for the powder to arrive
    (delay + 5 tau from rest), the others start while it still flows."""
    return [
        Track(y, start, 22.0, [(start, rates)])
        for y, start in ((2.0, -60.0), (5.0, -10.0), (8.0, -10.0))
    ]


async def test_a_multi_track_job_prints_and_reads_back_in_2d(
    twins: tuple[BackgroundTwins, Any],
) -> None:
    tw, cell = twins
    geo = cell.track_geometry
    assert geo is not None and (geo.bead_width_mm, geo.hatch_mm) == (1.6, 1.0)
    tw.call(lambda: [tw.world.instrument("feeder1").set_gas(i, 4.0) for i in (1, 2)])
    await cell.set_shield_gas(15.0)
    job = PrintJob.from_tracks("XY-1", 20.0, 10.0, 10.0, 400.0, _tracks([5.0, 5.0, 0.0, 0.0]))
    await cell.load_print(job)
    await cell.start_print()
    assert await cell.wait_print(timeout=30) == "done"
    reading = await cell.read()
    assert reading["cell1-track"]["value"] == 3
    assert reading["cell1-position_y"]["value"] == pytest.approx(8.0)
    desc = await cell.describe()
    assert desc["cell1-position_y"]["units"] == "mm"
    m = await cell.as_built_map_xy()
    assert m is not None and m.y_mm is not None
    assert m.fractions["Cr"].shape == (21, 41)
    rows = m.fractions["Cr"][[4, 10, 16], 10:-4]  # the three tracks, x from 5 mm
    assert rows == pytest.approx(np.full(rows.shape, 0.25), abs=0.03)
    truth = tw.call(lambda: tw.world.coupon("XY-1").composition["Cr"])
    assert m.fractions["Cr"] == pytest.approx(truth, abs=1e-6)


async def test_move_with_y_and_bad_tracks_refused_before_sending(
    twins: tuple[BackgroundTwins, Any],
) -> None:
    tw, cell = twins
    await cell.move_to(5.0, y=3.0, timeout=10)
    assert tw.call(lambda: (tw.world.instrument("cell1").x, tw.world.instrument("cell1").y)) == (
        5.0,
        3.0,
    )
    before = cell.transport.bytes_written
    bad = {
        "y off the axis": [Track(500.0, -10.0, 22.0, [(-10.0, [1.0] * 4)])],
        "y off the coupon": [Track(14.0, -10.0, 22.0, [(-10.0, [1.0] * 4)])],
        "a track not covering the coupon": [Track(2.0, 1.0, 22.0, [(1.0, [1.0] * 4)])],
        "a track without points": [Track(2.0, -10.0, 22.0, [])],
        "a rate above the limit": [Track(2.0, -10.0, 22.0, [(-10.0, [99.0] * 4)])],
    }
    for what, tracks in bad.items():
        with pytest.raises(InputError, match="track 1"):
            await cell.load_print(PrintJob.from_tracks("B-1", 20.0, 10.0, 10.0, 400.0, tracks))
        assert cell.transport.bytes_written == before, what
    too_many = [Track(0.0, -10.0, 22.0, [(-10.0, [1.0] * 4)])] * 201
    with pytest.raises(InputError, match="201 tracks, at most 200"):
        await cell.load_print(PrintJob.from_tracks("B-2", 20.0, 10.0, 10.0, 400.0, too_many))
    assert cell.transport.bytes_written == before


class LegacyCellProtocol(CellProtocol):
    """The cell protocol as it was before tracks (decision 0013): no track headers; with
    ``sim=False`` no twin-only map queries either, as a real cell."""

    def __init__(self, model: CellModel, sim: bool = True) -> None:
        super().__init__(model)
        gone = NEW_HEADERS if sim else (*NEW_HEADERS, "SIM:MAP:ELEM?", "SIM:MAP:X?", "SIM:MAP?")
        for header in gone:
            del self._handlers[header]


@pytest.fixture(params=[True, False], ids=["legacy-twin", "legacy-hardware"])
def legacy_cell(request: pytest.FixtureRequest) -> Iterator[tuple[World, int, bool]]:
    bg = BackgroundLoop("legacy-cell")
    world = World(WorldConfig(speedup=20.0, seed=4))
    FeederModel(world, FeederConfig(), "feeder1")
    model = CellModel(world, CellConfig(feeders=["feeder1"]), "cell1")
    server = LineServer(world, LegacyCellProtocol(model, sim=request.param).handle)
    try:
        bg.run(server.start())
        yield world, server.port, request.param
        bg.run(server.stop())
    finally:
        bg.stop()


async def test_the_driver_still_drives_a_cell_without_tracks(
    legacy_cell: tuple[World, int, bool],
) -> None:
    _, port, sim = legacy_cell
    cell = AsciiDepositionCell(
        SerialLineTransport("old", f"socket://127.0.0.1:{port}"), name="old"
    )
    try:
        await cell.connect()
        assert cell.track_geometry is None
        reading = await cell.read()  # STAT? with y = 0 and track 0
        assert reading["old-track"]["value"] == 0 and reading["old-position_y"]["value"] == 0.0
        await cell.load_print(
            PrintJob("OLD-1", 20.0, -10.0, 22.0, 10.0, 400.0, [(-10.0, [1.0] * 4)])
        )
        before = cell.transport.bytes_written
        with pytest.raises(InputError, match="does not print tracks"):
            await cell.load_print(
                PrintJob.from_tracks("OLD-2", 20.0, 10.0, 10.0, 400.0, _tracks([1.0] * 4))
            )
        assert cell.transport.bytes_written == before
        # no 2-D map from a cell without tracks; no map at all from a real cell
        assert await cell.as_built_map_xy() is None
        if not sim:
            assert await cell.as_built_map() is None
    finally:
        await cell.close()
