"""Typed interfaces that plans depend on: one per instrument family.

A plan types its arguments with these protocols, never with a vendor class; every vendor
driver implements them, and :mod:`couponlab.testing` holds the conformance suites that
prove it.
"""

from couponlab.interfaces._lab_device import LabDevice
from couponlab.interfaces.feeder import DepositionCell, PowderFeeder
from couponlab.interfaces.frame import TestFrame
from couponlab.interfaces.furnace import GradientFurnace

__all__ = ["DepositionCell", "GradientFurnace", "LabDevice", "PowderFeeder", "TestFrame"]
