"""Twins of the detectors that read a coupon: thermocouple scanner, oxide profiler, XRF
probe and surface camera, each served over SCPI on a TCP socket (see docs/protocols/)."""
