"""Reusable test support: conformance suites per instrument family and a pytest plugin.

- :mod:`couponlab.testing.furnace`: the gradient-furnace conformance suite
  (``FURNACE_CHECKS``, ``FurnaceConformance``, ``run_conformance``, ``furnace_lab``).
"""
