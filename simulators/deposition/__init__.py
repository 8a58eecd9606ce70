"""Twins of the L-DED deposition family: powder feeders and the deposition cell they serve.

Both speak a line-based ASCII serial protocol (docs/protocols/feeder-serial.md,
docs/protocols/deposition-cell-serial.md), served over TCP so that pyserial reaches them
with ``socket://host:port``. The cell finds its feeders in the world by device name.
"""

from couponlab.simulators.deposition.cell_model import (
    CellConfig,
    CellModel,
    PrintProgram,
    TrackProgram,
)
from couponlab.simulators.deposition.feeder_model import (
    ALARM_CLOG,
    ALARM_EMPTY,
    ALARM_GAS,
    FeederConfig,
    FeederModel,
    HopperConfig,
)

__all__ = [
    "ALARM_CLOG",
    "ALARM_EMPTY",
    "ALARM_GAS",
    "CellConfig",
    "CellModel",
    "FeederConfig",
    "FeederModel",
    "HopperConfig",
    "PrintProgram",
    "TrackProgram",
]
