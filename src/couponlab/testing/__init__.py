"""Reusable test support: conformance suites per instrument family and a pytest plugin.

- :mod:`couponlab.testing.furnace`: the gradient-furnace conformance suite
  (``FURNACE_CHECKS``, ``FurnaceConformance``, ``run_conformance``, ``furnace_lab``).
- :mod:`couponlab.testing.detectors`: the detector and x-y stage conformance suites
  (``CHECKS[family]``, ``run_conformance``).
"""
