"""Test frame drivers: ophyd-async devices implementing
:class:`couponlab.interfaces.frame.TestFrame`."""

from couponlab.drivers.frame.test_frame import ControlMode, ScpiTestFrame

__all__ = ["ControlMode", "ScpiTestFrame"]
