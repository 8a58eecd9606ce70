"""Digital twin of a multi-zone gradient tube furnace, served over OPC UA.

See ``docs/protocols/furnace-opcua.md`` for the address space and the model equations.
"""

from couponlab.simulators.furnace.config import FurnaceConfig
from couponlab.simulators.furnace.model import CommandRefusedError, FurnaceModel
from couponlab.simulators.furnace.program import ProgramState
from couponlab.simulators.furnace.server import NAMESPACE_URI, FurnaceServer
from couponlab.simulators.furnace.twin import FurnaceTwin, start_twin

__all__ = [
    "NAMESPACE_URI",
    "CommandRefusedError",
    "FurnaceConfig",
    "FurnaceModel",
    "FurnaceServer",
    "FurnaceTwin",
    "ProgramState",
    "start_twin",
]
