"""Gradient-furnace drivers: the OPC UA furnace of docs/protocols/furnace-opcua.md.

``OpcUaGradientFurnace`` implements :class:`couponlab.interfaces.furnace.GradientFurnace`
over asyncua, with one client per device; its signals use :class:`OpcUaSignalBackend`, an
ophyd-async ``SignalBackend`` that any other OPC UA instrument can reuse.
"""

from couponlab.drivers.furnace._opcua_backend import (
    OpcUaMethodBackend,
    OpcUaSignalBackend,
    read_values,
)
from couponlab.drivers.furnace.gradient_furnace import (
    NAMESPACE_URI,
    FurnaceCarrier,
    FurnaceClock,
    FurnaceIdentity,
    FurnaceInterlock,
    FurnaceProgrammer,
    FurnaceState,
    FurnaceZone,
    OpcUaGradientFurnace,
    ProgramState,
)
from couponlab.transports._opcua import OpcUaConnection, OpcUaStatusError

__all__ = [
    "NAMESPACE_URI",
    "FurnaceCarrier",
    "FurnaceClock",
    "FurnaceIdentity",
    "FurnaceInterlock",
    "FurnaceProgrammer",
    "FurnaceState",
    "FurnaceZone",
    "OpcUaConnection",
    "OpcUaGradientFurnace",
    "OpcUaMethodBackend",
    "OpcUaSignalBackend",
    "OpcUaStatusError",
    "ProgramState",
    "read_values",
]
