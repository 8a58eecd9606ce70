"""Reusable test support: conformance suites per instrument family and a pytest plugin."""
