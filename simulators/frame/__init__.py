"""Twin of a screw-driven universal test frame with load cell and extensometer (SCPI over TCP).

See docs/protocols/frame-scpi.md for the wire protocol and the specimen model.
"""

from couponlab.simulators.frame.material import (
    ElementMechanics,
    MaterialParams,
    MechanicsModel,
    SpecimenCurve,
    TensileTruth,
)
from couponlab.simulators.frame.model import FrameConfig, FrameError, FrameModel
from couponlab.simulators.frame.server import FrameScpi, FrameTwin, start_twin

__all__ = [
    "ElementMechanics",
    "FrameConfig",
    "FrameError",
    "FrameModel",
    "FrameScpi",
    "FrameTwin",
    "MaterialParams",
    "MechanicsModel",
    "SpecimenCurve",
    "TensileTruth",
    "start_twin",
]
