"""A declarative SCPI device builds when typing's cache of ``Annotated[...]`` forms was
emptied between the two reads of its annotations (as in a long test run: the modules use
string annotations, so each read may evaluate them anew into equal, distinct objects)."""

from __future__ import annotations

import typing
from typing import Any

import pytest

import couponlab.drivers._scpi_device as scpi_device
from couponlab.drivers.stage import ScpiXyStage

ADDR = "TCPIP::127.0.0.1::1::SOCKET"


def test_signals_are_named_when_the_annotations_are_evaluated_anew(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = typing.get_type_hints

    def fresh(obj: Any, *args: Any, **kwargs: Any) -> Any:
        for clear in typing._cleanups:  # empty typing's caches: new Scpi(...) objects
            clear()
        return real(obj, *args, **kwargs)

    monkeypatch.setattr(scpi_device, "get_type_hints", fresh)
    stage = ScpiXyStage(ADDR, name="stage")
    assert stage.velocity.name == "stage-velocity"
    assert {"velocity", "pulse_spacing"} <= set(stage._connector.binding.backends)
