"""Fixtures for the default test run come from couponlab's pytest plugin (loaded by the root
conftest.py): leak checks for threads and asyncio tasks, and ``free_port``."""
