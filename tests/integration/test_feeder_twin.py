"""Feeder and cell drivers against their twins (twins on their own thread, drivers on the
test's loop): conformance, one exchange per read, bad input never on the line, faults
mid-print end in the safe state with a clear error."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from couponlab.drivers.deposition import AsciiDepositionCell, AsciiPowderFeeder
from couponlab.errors import InterlockTrippedError, OutOfLimitsError, ProtocolError, UnitError
from couponlab.interfaces.feeder import PrintJob
from couponlab.lab import make_device
from couponlab.testing.feeder import check_deposition_cell, check_powder_feeder, deposition_lab
from couponlab.twins import BackgroundTwins


class Rig:
    """Twins of one feeder and one cell, and connected drivers."""

    def __init__(
        self, twins: BackgroundTwins, feeder: AsciiPowderFeeder, cell: AsciiDepositionCell
    ) -> None:
        self.twins, self.feeder, self.cell = twins, feeder, cell

    def on_twin(self, fn: Callable[[Any], Any]) -> Any:
        """Run ``fn(world)`` on the twins' thread."""
        return self.twins.call(fn, self.twins.world)


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    twins = BackgroundTwins(deposition_lab(1, speedup=20.0, seed=5))
    feeder: Any = make_device(twins.lab.device("feeder1"))
    cell: Any = make_device(twins.lab.device("cell1"))
    try:
        await feeder.connect()
        await cell.connect()
        yield Rig(twins, feeder, cell)
    finally:
        await feeder.close()
        await cell.close()
        twins.stop()


async def test_feeder_conforms(rig: Rig) -> None:
    await check_powder_feeder(rig.feeder)


async def test_cell_conforms(rig: Rig) -> None:
    await check_deposition_cell(rig.cell)


async def test_powders_come_from_the_twin_config(rig: Rig) -> None:
    assert rig.feeder.powder(2).name == "Ni-50Cr"
    assert dict(rig.feeder.powder(2).composition) == {"Cr": 0.5, "Ni": 0.5}
    assert list(rig.cell.channels) == [("feeder1", i) for i in range(1, 5)]


async def test_read_is_one_exchange_and_tracks_the_flow(rig: Rig) -> None:
    await rig.feeder.set_gas(1, "4 L/min")
    await rig.feeder.set_rate(1, "12 g/min")
    before = rig.feeder.transport.bytes_written
    reading = await rig.feeder.read()
    assert rig.feeder.transport.bytes_written - before == len(b"STAT?\n")
    assert reading["feeder1-hoppers-1-setpoint"]["value"] == pytest.approx(12.0)
    assert reading["feeder1-feeder_state"]["value"] == "feeding"
    # after delay + lag (2 s + 5 x 0.6 s of twin time) the nozzle flow is near 12 g/min
    rig.on_twin(lambda w: w.advance(6.0))
    rate = await rig.feeder.hoppers[1].measured_rate.get_value()
    assert rate == pytest.approx(12.0, rel=0.15)
    await rig.feeder.stop()


async def test_later_reads_give_the_gathered_readings_from_one_exchange(rig: Rig) -> None:
    """After the first (gathered) read, signals are read in turn from the held reply:
    the same keys, the same values, still one ``STAT?`` per read."""
    await rig.feeder.set_rate(2, "7 g/min")
    first = await rig.feeder.read()
    for _ in range(2):
        before = rig.feeder.transport.bytes_written
        again = await rig.feeder.read()
        assert rig.feeder.transport.bytes_written - before == len(b"STAT?\n")
        assert list(again) == list(first)
    gathered = {}
    for name, hopper in rig.feeder.hoppers.items():
        gathered.update(await hopper.setpoint.read())
        assert again[f"feeder1-hoppers-{name}-setpoint"]["value"] == (7.0 if name == 2 else 0.0)
    assert {k: v["value"] for k, v in gathered.items()} == {k: again[k]["value"] for k in gathered}
    await rig.feeder.stop()


async def test_refused_input_never_reaches_the_line(rig: Rig) -> None:
    before = rig.feeder.transport.bytes_written
    with pytest.raises(
        OutOfLimitsError, match=r"feeder1: feed rate of hopper 1 = 31 g/min .*\[0, 30\]"
    ):
        await rig.feeder.set_rate(1, 31)
    with pytest.raises(OutOfLimitsError):
        await rig.feeder.hoppers[2].set("-1 g/min")
    with pytest.raises(OutOfLimitsError):
        await rig.feeder.hoppers[2].setpoint.set(45.0)
    with pytest.raises(UnitError):
        await rig.feeder.set_gas(2, "4 g/min")
    assert rig.feeder.transport.bytes_written == before
    setpoints = rig.on_twin(lambda w: [h.setpoint for h in w.instrument("feeder1").hoppers])
    assert setpoints == [0.0, 0.0, 0.0, 0.0]


async def test_instrument_refusal_is_a_typed_error(rig: Rig) -> None:
    # hopper 3 ran empty: the twin reports the conflict, the driver raises it typed
    rig.on_twin(lambda w: setattr(w.instrument("feeder1").hopper(3), "alarms", 1))
    with pytest.raises(ProtocolError, match="hopper 3 is empty"):
        await rig.feeder.set_rate(3, 5.0)


async def test_laser_interlock_is_mirrored_before_sending(rig: Rig) -> None:
    await rig.cell.set_shield_gas(1.0)
    before = rig.cell.transport.bytes_written
    with pytest.raises(InterlockTrippedError, match="shielding gas 1 L/min is below 5 L/min"):
        await rig.cell.set_laser(True)
    sent = rig.cell.transport.bytes_written - before
    assert sent == len(b"SHLD:FLOW?;:SYST:ERR?\n")  # only the check, never LAS ON
    assert not await rig.cell.laser_on.get_value()


def _job(cid: str, rates: list[float]) -> PrintJob:
    return PrintJob(cid, 40.0, -20.0, 80.0, 10.0, 400.0, [(-20.0, rates)])


async def _start(rig: Rig, job: PrintJob, *, pause: bool = False) -> None:
    """Start ``job``; with ``pause``, the world's clock stands still from just before the
    start (the test steps it, then resumes it), so a fault lands at a set point of the print
    whatever this process's stalls."""
    await rig.feeder.set_gas(1, 4.0)
    await rig.feeder.set_gas(2, 4.0)
    await rig.cell.set_shield_gas(15.0)
    if pause:
        rig.on_twin(lambda w: w.pause())
    await rig.cell.load_print(job)
    await rig.cell.start_print()


async def _assert_safe(rig: Rig) -> None:
    status = await rig.feeder.status()
    assert all(h.setpoint == 0.0 for h in status.hoppers), status
    assert not await rig.cell.laser_on.get_value()
    assert await rig.cell.state() == "standby"


async def test_empty_hopper_mid_print_stops_safely(rig: Rig) -> None:
    # 0.8 g of Ni at 10 g/min lasts under 5 s of the print's 10 s of travel
    rig.on_twin(lambda w: w.instrument("feeder1").set_fill(1, 0.8))
    await _start(rig, _job("EMPTY-1", [10.0, 0.0, 0.0, 0.0]))
    with pytest.raises(InterlockTrippedError, match="print aborted: feeder1 hopper 1: empty"):
        await rig.cell.wait_print(timeout=30)
    await _assert_safe(rig)
    status = rig.on_twin(lambda w: w.coupon("EMPTY-1").metadata["print_status"])
    assert status == "aborted: feeder1 hopper 1: empty"
    assert rig.on_twin(lambda w: w.coupon("EMPTY-1").composition) == {}


async def test_clog_mid_print_stops_safely(rig: Rig) -> None:
    await _start(rig, _job("CLOG-1", [5.0, 5.0, 0.0, 0.0]), pause=True)
    rig.on_twin(lambda w: w.advance(4.0))  # 4 s into the print's 10 s of travel
    rig.on_twin(lambda w: w.instrument("feeder1").inject_clog(2, 0.1))
    rig.on_twin(lambda w: w.resume())
    with pytest.raises(InterlockTrippedError, match="feeder1 hopper 2: clog"):
        await rig.cell.wait_print(timeout=30)
    await _assert_safe(rig)


async def test_shielding_gas_loss_mid_print_stops_safely(rig: Rig) -> None:
    await _start(rig, _job("SHIELD-1", [5.0, 5.0, 0.0, 0.0]), pause=True)
    rig.on_twin(lambda w: w.advance(3.0))
    rig.on_twin(lambda w: w.instrument("cell1").inject_shield_loss())
    rig.on_twin(lambda w: w.resume())
    with pytest.raises(InterlockTrippedError, match="shielding gas lost"):
        await rig.cell.wait_print(timeout=30)
    await _assert_safe(rig)


async def test_stop_aborts_a_print(rig: Rig) -> None:
    await _start(rig, _job("STOP-1", [5.0, 0.0, 0.0, 0.0]))
    await rig.cell.stop()
    state, reason = await rig.cell.print_status()
    assert (state, reason) == ("aborted", "stopped by command")
    await _assert_safe(rig)


async def test_map_before_printing_is_an_error(rig: Rig) -> None:
    # a twin that has printed nothing answers SIM:MAP with an execution error
    with pytest.raises(ProtocolError, match="no coupon selected"):
        await rig.cell.as_built_map()
    assert math.isfinite(await rig.cell.position.get_value())
