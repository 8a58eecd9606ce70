"""Root conftest: load couponlab's pytest plugin (leak checks, free ports, ``--lab``,
``--thorough``) and pytest's ``pytester`` (tests of that plugin)."""

pytest_plugins = ["couponlab.testing.pytest_plugin", "pytester"]
