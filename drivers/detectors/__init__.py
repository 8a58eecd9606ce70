"""Drivers of the detectors that read a coupon: thermocouple scanner, oxide profiler, XRF
probe and surface camera (one module per device)."""

from couponlab.drivers.detectors.camera import ScpiCamera
from couponlab.drivers.detectors.oxide_profiler import ScpiOxideProfiler
from couponlab.drivers.detectors.thermocouple_scanner import ScpiThermocoupleScanner
from couponlab.drivers.detectors.xrf_probe import ScpiXrfProbe

__all__ = ["ScpiCamera", "ScpiOxideProfiler", "ScpiThermocoupleScanner", "ScpiXrfProbe"]
