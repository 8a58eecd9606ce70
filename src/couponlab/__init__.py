"""couponlab: a hardware abstraction layer for high-throughput alloy coupon experiments.

Core package: units, errors, transports, typed instrument interfaces and the lab file.
Drivers live in :mod:`couponlab.drivers`, twins in :mod:`couponlab.simulators` and plans in
:mod:`couponlab.plans`.
"""

from importlib.metadata import version

from couponlab.errors import (
    ConnectionLostError,
    CouponlabError,
    InputError,
    InstrumentTimeoutError,
    InterlockTrippedError,
    OutOfLimitsError,
    ProtocolError,
    UnitError,
)
from couponlab.units import Q_, ureg

__all__ = [
    "Q_",
    "ConnectionLostError",
    "CouponlabError",
    "InputError",
    "InstrumentTimeoutError",
    "InterlockTrippedError",
    "OutOfLimitsError",
    "ProtocolError",
    "UnitError",
    "ureg",
]
__version__ = version("couponlab")
"""The installed distribution's version (importlib.metadata: one source, pyproject.toml)."""
