"""couponlab's pytest plugin: leak checks, free ports, and the ``--lab`` option.

Loaded by the repository's root ``conftest.py``; a driver developer's own project can load
it with ``-p couponlab.testing.pytest_plugin``.

- ``no_leaked_threads`` / ``no_leaked_tasks`` (autouse): fail a test that leaves a thread or
  an asyncio task running.
- ``free_port``: a TCP port on 127.0.0.1 that is free now.
- ``--lab LABFILE``: the lab file for the hardware-in-the-loop suite (``hil/``).
- ``--thorough``: property tests draw their full example counts
  (:mod:`couponlab.testing.thoroughness`).
- The garbage collector in a long test run: what collection left alive is frozen once the
  tests are collected, and a full collection runs between tests after one that made many
  objects and after each file's last test: see :func:`pytest_runtest_teardown`.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import threading
from collections.abc import AsyncIterator, Generator, Iterator

import pytest

from couponlab.testing.thoroughness import THOROUGH_ENV, set_thorough, thorough


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--lab`` and ``--thorough``."""
    parser.addoption(
        "--lab",
        action="store",
        default=None,
        metavar="LABFILE",
        help="lab file for the HIL suite (hil/); twins in it are started by "
        "`couponlab twin serve` in a separate process. Without it the HIL checks skip.",
    )
    parser.addoption(
        "--thorough",
        action="store_true",
        default=False,
        help=f"property tests draw their full example counts (also {THOROUGH_ENV}=1); "
        "the default run draws a share of them (docs/howto/run-the-tests.md)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Pass ``--thorough`` on before the test modules (and their example counts) load."""
    set_thorough(bool(config.getoption("--thorough")))


def pytest_report_header(config: pytest.Config) -> str:
    """Say which example counts the property tests draw."""
    return f"couponlab: property tests draw {'thorough' if thorough() else 'default'} counts"


def pytest_collection_finish(session: pytest.Session) -> None:
    """Collect, then freeze what is alive: the imported modules and collected tests live as
    long as the run, and full collections need not scan them again (``gc.freeze``)."""
    gc.collect()
    gc.freeze()


GEN1_RUNS_BEFORE_FULL = 3
"""A full collection after a test once the young generations were collected this many times
since the last one (a test that made and dropped many objects, such as twins)."""


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None]:
    """After a test that made many objects, and after a test file's last test (its module
    fixtures torn down), collect the garbage, between tests.

    Twins stopped in a test leave large reference cycles (an OPC UA server's address space
    alone is about 400,000 objects). Left to the collector's own schedule (a full collection
    only once a quarter more objects have survived) they piled up to 2.4 million objects in
    tests/unit/simulators, and each full collection then stopped every thread of the test
    process for 1-3.6 s: long enough for a twin in the process to miss a 2 s reply deadline
    (decision 0073).
    """
    result = yield
    if (
        nextitem is None
        or nextitem.path != item.path
        or gc.get_count()[2] >= GEN1_RUNS_BEFORE_FULL
    ):
        gc.collect()
    return result


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves a new non-daemon thread running."""
    before = set(threading.enumerate())
    yield
    leaked = [
        t for t in threading.enumerate() if t not in before and t.is_alive() and not t.daemon
    ]
    for t in leaked:
        t.join(timeout=2.0)
    still = [t.name for t in leaked if t.is_alive()]
    assert not still, f"test leaked threads: {still}"


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    """Fail an async test that leaves asyncio tasks running on its loop."""
    before = asyncio.all_tasks()
    yield
    current = asyncio.current_task()
    pending = [
        t for t in asyncio.all_tasks() if t not in before and t is not current and not t.done()
    ]
    if pending:
        await asyncio.sleep(0.05)  # let cancellations finish
        pending = [t for t in pending if not t.done()]
    assert not pending, f"test leaked asyncio tasks: {[t.get_name() for t in pending]}"


@pytest.fixture
def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
