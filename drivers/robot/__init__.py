"""Drivers of sample-transfer robots (family ``transfer_robot``)."""

from couponlab.drivers.robot.transfer_robot import RobotLimits, RobotSettings, ScpiTransferRobot

__all__ = ["RobotLimits", "RobotSettings", "ScpiTransferRobot"]
