"""Conformance suite of the L-DED deposition family, reusable by any new driver.

``await check_powder_feeder(feeder)`` and ``await check_deposition_cell(cell)`` take a
connected device and raise ``AssertionError`` naming what does not conform. They are safe on
hardware: the feeder check commands 1 g/min for one exchange and stops; the cell check never
fires the laser (it proves the shielding-gas interlock refuses it).

:func:`deposition_lab` builds a lab file of feeder and cell twins for tests and demos.
"""

from __future__ import annotations

import math
from typing import Any

from couponlab.errors import InputError, InterlockTrippedError
from couponlab.interfaces.feeder import DepositionCell, PowderFeeder, PrintJob, Track
from couponlab.labfile import DeviceEntry, LabFile
from couponlab.units import Q_

FEEDER_DRIVER = "couponlab.drivers.deposition:AsciiPowderFeeder"
CELL_DRIVER = "couponlab.drivers.deposition:AsciiDepositionCell"


def deposition_lab(
    feeders: int = 1,
    *,
    speedup: float = 20.0,
    seed: int = 0,
    feeder_config: dict[str, Any] | None = None,
    cell_config: dict[str, Any] | None = None,
) -> LabFile:
    """Return a lab of ``feeders`` feeder twins and one cell twin serving them.

    Devices are ``feeder1..N`` and ``cell1`` on ``socket://127.0.0.1:0`` (free ports).
    """
    names = [f"feeder{i}" for i in range(1, feeders + 1)]
    devices = [
        DeviceEntry(
            name=n,
            family="powder_feeder",
            driver=FEEDER_DRIVER,
            address="socket://127.0.0.1:0",
            twin=True,
            twin_config=dict(feeder_config or {}),
        )
        for n in names
    ]
    devices.append(
        DeviceEntry(
            name="cell1",
            family="deposition_cell",
            driver=CELL_DRIVER,
            address="socket://127.0.0.1:0",
            twin=True,
            twin_config={"feeders": names, **(cell_config or {})},
        )
    )
    return LabFile(
        name="deposition-lab", world={"speedup": speedup, "seed": seed}, devices=devices
    )


def _bytes_sent(device: Any) -> int | None:
    transport = getattr(device, "transport", None)
    value = getattr(transport, "bytes_written", None)
    return int(value) if value is not None else None


async def _refused(device: Any, coro_fn: Any, what: str) -> None:
    """Check that ``coro_fn()`` raises InputError and sent no byte (the driver must expose
    its transport's byte counter, ``device.transport.bytes_written``, to prove that)."""
    before = _bytes_sent(device)
    assert before is not None, (
        f"{device.name}: cannot prove that refused input sends nothing: the driver exposes no "
        "transport.bytes_written"
    )
    try:
        await coro_fn()
    except InputError:
        pass
    else:
        raise AssertionError(f"{device.name}: {what} was accepted")
    after = _bytes_sent(device)
    assert after is not None and before == after, (
        f"{device.name}: {what} sent {(after or 0) - before} bytes before refusing"
    )


async def _check_describe(device: Any, expected_units: dict[str, str]) -> None:
    desc = await device.describe()
    reading = await device.read()
    assert set(desc) == set(reading), f"{device.name}: read() and describe() keys differ"
    for key, dk in desc.items():
        if dk["dtype"] == "number":
            assert dk.get("units"), f"{device.name}: {key} has no units"
        for suffix, unit in expected_units.items():
            if key.endswith(suffix):
                assert dk.get("units") == unit, f"{key}: units {dk.get('units')!r} != {unit!r}"


async def check_powder_feeder(feeder: PowderFeeder) -> None:
    """Check a connected feeder against the :class:`PowderFeeder` interface."""
    assert isinstance(feeder, PowderFeeder), f"{feeder!r} does not implement PowderFeeder"
    assert (await feeder.identify()).strip(), "empty identity"
    n = feeder.hopper_count
    assert n >= 1, "no hoppers"
    for h in range(1, n + 1):
        powder = feeder.powder(h)
        assert powder.name, f"hopper {h} has no powder name"
        assert math.isclose(sum(powder.composition.values()), 1.0, abs_tol=1e-3), (
            f"hopper {h}: composition {powder.composition} does not sum to 1"
        )
    await _check_describe(
        feeder,
        {"-setpoint": "g/min", "-measured_rate": "g/min", "-fill_mass": "g", "-gas_flow": "L/min"},
    )
    top = feeder.max_rate
    await _refused(feeder, lambda: feeder.set_rate(1, -1.0), "a negative feed rate")
    await _refused(feeder, lambda: feeder.set_rate(1, top * 1.01 + 0.1), "a rate above max")
    await _refused(feeder, lambda: feeder.set_rate(1, "5 L/min"), "a rate in L/min")
    await _refused(feeder, lambda: feeder.set_rate(1, float("nan")), "a NaN rate")
    await _refused(feeder, lambda: feeder.set_rate(1, "fast"), "an unparseable rate")
    await _refused(feeder, lambda: feeder.set_rate(0, 1.0), "hopper 0")
    await _refused(feeder, lambda: feeder.set_rate(n + 1, 1.0), f"hopper {n + 1}")
    await _refused(feeder, lambda: feeder.set_gas(1, "3 g/min"), "a gas flow in g/min")
    await _refused(feeder, lambda: feeder.set_gas(1, -2.0), "a negative gas flow")
    await feeder.set_rate(1, Q_(60.0, "g/h"))
    status = await feeder.status()
    assert math.isclose(status.hoppers[0].setpoint, 1.0, abs_tol=1e-3), (
        f"60 g/h should read back as 1 g/min, got {status.hoppers[0].setpoint}"
    )
    await feeder.stop()
    status = await feeder.status()
    assert all(h.setpoint == 0.0 for h in status.hoppers), "stop() left a hopper feeding"
    await feeder.safe_state()
    assert await feeder.state() in ("idle", "alarm"), "safe state is not idle"


async def check_deposition_cell(cell: DepositionCell) -> None:
    """Check a connected cell against :class:`DepositionCell` (never fires the laser)."""
    assert isinstance(cell, DepositionCell), f"{cell!r} does not implement DepositionCell"
    assert (await cell.identify()).strip(), "empty identity"
    chans = list(cell.channels)
    assert chans, "the cell has no feed channels"
    await _check_describe(
        cell,
        {"-laser_power": "W", "-shield_flow": "L/min", "-position": "mm", "-position_y": "mm"},
    )
    await _refused(cell, lambda: cell.set_shield_gas("5 W"), "a shielding gas in W")
    await _refused(cell, lambda: cell.set_shield_gas(-1.0), "a negative shielding gas")
    await _refused(cell, lambda: cell.set_laser(False, 1e9), "a laser power of 1 GW")
    await _refused(cell, lambda: cell.move_to("10 s"), "a position in s")
    good = PrintJob("CONF-1", 20.0, -10.0, 25.0, 10.0, 300.0, [(-10.0, [0.0] * len(chans))])
    bad_jobs = {
        "a coupon id with a comma": PrintJob("a,b", 20, -10, 25, 10, 300, good.points),
        "a path not covering the coupon": PrintJob("C1", 20, 5, 25, 10, 300, good.points),
        "a zero speed": PrintJob("C1", 20, -10, 25, 0, 300, good.points),
        "a rate count unlike the channels": PrintJob(
            "C1", 20, -10, 25, 10, 300, [(-10.0, [0.0] * (len(chans) + 1))]
        ),
        "a negative rate": PrintJob("C1", 20, -10, 25, 10, 300, [(-10.0, [-1.0] * len(chans))]),
        "points going backwards": PrintJob(
            "C1", 20, -10, 25, 10, 300, [(0.0, [0.0] * len(chans)), (-5.0, [0.0] * len(chans))]
        ),
    }
    for what, job in bad_jobs.items():
        await _refused(cell, lambda job=job: cell.load_print(job), what)
    await _check_tracks(cell, len(chans))
    await cell.set_shield_gas(0.0)
    try:
        await cell.set_laser(True)
    except InterlockTrippedError:
        pass
    else:
        await cell.stop()
        raise AssertionError("the laser fired without shielding gas")
    await cell.stop()
    await cell.safe_state()
    assert await cell.state() == "standby", "safe state is not standby"


async def _check_tracks(cell: DepositionCell, nchan: int) -> None:
    """Check the track geometry and that bad multi-track jobs are refused before a byte."""
    geo = cell.track_geometry
    rates = [0.0] * nchan

    def job(*tracks: Track) -> PrintJob:
        return PrintJob.from_tracks("TRK-1", 20.0, 10.0, 10.0, 300.0, tracks)

    good = Track(5.0, -10.0, 25.0, [(-10.0, rates)])
    if geo is None:  # a cell that prints one full-width pass: tracks are refused
        await _refused(cell, lambda: cell.load_print(job(good)), "tracks on a single-pass cell")
        return
    assert geo.bead_width_mm > 0 and geo.hatch_mm > 0 and geo.rapid_speed_mm_s > 0, geo
    assert geo.y_min_mm < geo.y_max_mm and geo.max_tracks >= 1, geo
    bad = {
        "a track off the y axis": job(Track(geo.y_max_mm + 1.0, -10.0, 25.0, good.points)),
        "a track off the coupon": job(Track(10.0 + 3 * geo.bead_width_mm, -10, 25, good.points)),
        "a track not covering the coupon": job(Track(5.0, 2.0, 25.0, [(2.0, rates)])),
        "a track without points": job(good, Track(6.0, -10.0, 25.0, [])),
        "more tracks than the cell holds": job(*[good] * (geo.max_tracks + 1)),
    }
    for what, bad_job in bad.items():
        await _refused(cell, lambda bad_job=bad_job: cell.load_print(bad_job), what)


__all__ = ["check_deposition_cell", "check_powder_feeder", "deposition_lab"]
