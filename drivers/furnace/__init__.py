"""Gradient-furnace drivers: the OPC UA furnace of docs/protocols/furnace-opcua.md.

``OpcUaGradientFurnace`` implements :class:`couponlab.interfaces.furnace.GradientFurnace`:
a declaration of the furnace's nodes (filled by the OPC UA connector of
``couponlab.drivers._opcua``) plus a logic object for gradients, programs and clock waits.
"""

from couponlab.drivers.furnace._states import FurnaceState, ProgramState
from couponlab.drivers.furnace.gradient_furnace import (
    NAMESPACE_URI,
    CarrierSlot,
    FurnaceCarrier,
    FurnaceClock,
    FurnaceIdentity,
    FurnaceInterlock,
    FurnaceProgrammer,
    FurnaceWatchdog,
    FurnaceZone,
    OpcUaGradientFurnace,
)
from couponlab.transports import OpcUaConnection, OpcUaStatusError

__all__ = [
    "NAMESPACE_URI",
    "CarrierSlot",
    "FurnaceCarrier",
    "FurnaceClock",
    "FurnaceIdentity",
    "FurnaceInterlock",
    "FurnaceProgrammer",
    "FurnaceState",
    "FurnaceWatchdog",
    "FurnaceZone",
    "OpcUaConnection",
    "OpcUaGradientFurnace",
    "OpcUaStatusError",
    "ProgramState",
]
