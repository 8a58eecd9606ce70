"""The furnace twin of the furnace integration tests: its model and how to undo a test."""

from __future__ import annotations

from couponlab.simulators.furnace import FurnaceModel
from couponlab.twins import BackgroundTwins

NAME = "furnace1"


def furnace_model(twins: BackgroundTwins, name: str = NAME) -> FurnaceModel:
    """Return the twin's model (touch it only on the twins' thread)."""
    model = twins.world.instruments[name]
    assert isinstance(model, FurnaceModel)
    return model


def restore(model: FurnaceModel) -> None:
    """Undo what a test did to the twin: interlock default and reset, standby."""
    model.set_interlock_limit(model.config.interlock_default_c)
    if model.tripped:
        model.reset_interlock()
    model.standby()
