"""Lab-file entries of a stage and a feeder served by twins, shared by the fault, suspender
and recovery tests (each names its own lab, world seed and addresses)."""

from __future__ import annotations

from typing import Any

STAGE_TWIN: dict[str, Any] = {
    "name": "stage1",
    "family": "xy_stage",
    "driver": "couponlab.drivers.stage:ScpiXyStage",
    "address": "socket://127.0.0.1:0",
    "twin": True,
    "limits": {"x": ["-10 mm", "150 mm"], "max_velocity": "40 mm/s"},
}
"""An x-y stage twin on a TCP line link (a free port)."""

FEEDER_TWIN: dict[str, Any] = {
    "name": "feeder1",
    "family": "powder_feeder",
    "driver": "couponlab.drivers.deposition:AsciiPowderFeeder",
    "address": "socket://127.0.0.1:0",
    "twin": True,
    "limits": {"max_feed_rate": "30 g/min", "max_gas_flow": "10 L/min"},
    "settings": {"hoppers": 4, "baudrate": 115200},
}
"""A four-hopper powder feeder twin on a serial-over-TCP link (a free port)."""


FURNACE_TWIN: dict[str, Any] = {
    "name": "furnace1",
    "family": "gradient_furnace",
    "driver": "couponlab.drivers.furnace:OpcUaGradientFurnace",
    "address": "opc.tcp://127.0.0.1:0",
    "twin": True,
    "settings": {"zones": 8},
    "twin_config": {"max_temperature_c": 400.0},
}
"""An eight-zone furnace twin on OPC UA (no security; a free port) whose MaxTemperature is
400 degC, so its interlock limit is 425 degC and a session's over-temperature alarm 400 degC:
a test heats it for minutes of furnace time, not hours."""


def twin_lab(name: str, seed: int, *devices: dict[str, Any]) -> dict[str, Any]:
    """Return a lab file (as a dict) of ``devices`` at speed-up 100 with world ``seed``."""
    return {"name": name, "world": {"speedup": 100, "seed": seed}, "devices": list(devices)}
