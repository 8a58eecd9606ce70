"""Drivers of the L-DED deposition family: powder feeders and the deposition cell, over the
couponlab ASCII serial protocols (docs/protocols/feeder-serial.md,
docs/protocols/deposition-cell-serial.md)."""

from couponlab.drivers.deposition.deposition_cell import AsciiDepositionCell
from couponlab.drivers.deposition.powder_feeder import AsciiPowderFeeder, Hopper

__all__ = ["AsciiDepositionCell", "AsciiPowderFeeder", "Hopper"]
