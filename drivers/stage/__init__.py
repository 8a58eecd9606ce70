"""Drivers of x-y stages that carry detector heads over a coupon."""

from couponlab.drivers.stage.xy_stage import ScpiXyStage, StageAxisDevice

__all__ = ["ScpiXyStage", "StageAxisDevice"]
