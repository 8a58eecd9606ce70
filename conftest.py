"""Root conftest: load couponlab's pytest plugin (leak checks, free ports, ``--lab``)."""

pytest_plugins = ["couponlab.testing.pytest_plugin"]
