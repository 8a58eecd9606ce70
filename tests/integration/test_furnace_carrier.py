"""The furnace carrier's slots over OPC UA: the driver places coupons side by side in the
twin's carrier (the world's coupons sit at one offset), refuses a slot the carrier lacks or
an offset that would move the others, and a lab file whose slot count differs from the
instrument's fails at connect."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from furnace_twin import furnace_model

from couponlab.drivers.furnace import OpcUaGradientFurnace
from couponlab.errors import CouponlabError, InputError, ProtocolError
from couponlab.interfaces.furnace import CouponPlacement
from couponlab.simulators.furnace import FurnaceModel
from couponlab.simulators.world import Coupon
from couponlab.testing.furnace import furnace_lab
from couponlab.twins import BackgroundTwins

NAME = "furnace1"


@pytest.fixture(scope="module")
def twins() -> Iterator[BackgroundTwins]:
    with BackgroundTwins(furnace_lab(speedup=1000.0, name=NAME, carrier_slots=4)) as running:

        def add(model: FurnaceModel) -> None:
            for k in range(1, 5):
                model.world.add_coupon(Coupon(f"K{k}")).set_composition({"Ni": 1.0})

        running.call(add, furnace_model(running))
        yield running


@pytest.fixture
async def furnace(twins: BackgroundTwins) -> AsyncIterator[OpcUaGradientFurnace]:
    device = OpcUaGradientFurnace.from_lab_entry(twins.lab.device(NAME))
    await device.connect(timeout=10.0)
    try:
        yield device
    finally:
        await device.disconnect()


def _carrier(model: FurnaceModel) -> tuple[list[str], list[tuple[str, float]]]:
    """The twin's slots and, per world coupon, (holder name, offset mm)."""
    coupons = [model.world.coupon(f"K{k}") for k in range(1, 5)]
    return list(model.slots), [(c.holder_name if c.holder else "", c.offset_mm) for c in coupons]


async def test_coupons_side_by_side_in_the_twin(
    furnace: OpcUaGradientFurnace, twins: BackgroundTwins
) -> None:
    assert furnace.num_slots == 4 and await furnace.carrier.num_slots.get_value() == 4
    await furnace.set(CouponPlacement("K2", 110.0, slot=2))
    await furnace.set(CouponPlacement("K4", 110.0, slot=4))
    slots, held = await twins.acall(_carrier, furnace_model(twins))
    assert slots == ["", "K2", "", "K4"]
    assert held == [("", 0.0), (NAME, 110.0), ("", 0.0), (NAME, 110.0)]
    assert await furnace.carrier.coupon_id.get_value() == ""  # slot 1's, empty
    with pytest.raises(InputError, match="one offset"):
        await furnace.set(CouponPlacement("K1", 90.0, slot=1))
    with pytest.raises(InputError, match="carrier slot"):
        await furnace.set(CouponPlacement("K1", 110.0, slot=5))
    with pytest.raises(CouponlabError):  # the instrument refuses: K2 already sits in slot 2
        await furnace.set(CouponPlacement("K2", 110.0, slot=3))
    for k in (2, 4):
        await furnace.set(CouponPlacement("", 0.0, slot=k))
    slots, held = await twins.acall(_carrier, furnace_model(twins))
    assert slots == ["", "", "", ""] and [h for h, _ in held] == ["", "", "", ""]
    assert await furnace.carrier.offset.get_value() == 110.0  # emptying did not move it


async def test_a_lab_file_with_another_slot_count_fails_at_connect(
    twins: BackgroundTwins,
) -> None:
    entry = twins.lab.device(NAME)
    wrong = entry.model_copy(update={"settings": {**entry.settings, "carrier_slots": 2}})
    device = OpcUaGradientFurnace.from_lab_entry(wrong)
    with pytest.raises(ProtocolError, match="carrier has 4 slots; the lab file says 2"):
        await device.connect(timeout=10.0)
