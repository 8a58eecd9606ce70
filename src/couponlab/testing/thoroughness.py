"""How many examples a property test draws: fewer in the default run, the full count when
asked for a thorough run.

The default run (README's test command) has to stay under about 10 minutes on 2 cores, so
the property tests draw a share of their examples there; ``pytest --thorough`` (or the
environment variable ``COUPONLAB_THOROUGH=1``) draws the full counts, for a run before a
release or after a change to a parser. The counts of every property test are listed in
docs/howto/run-the-tests.md.
"""

from __future__ import annotations

import os

THOROUGH_ENV = "COUPONLAB_THOROUGH"
"""Environment variable that asks for the thorough counts (``1``; anything else: default)."""

_thorough = False


def set_thorough(on: bool) -> None:
    """Ask for the thorough counts (``pytest --thorough`` calls this before collection)."""
    global _thorough
    _thorough = on


def thorough() -> bool:
    """Return whether this is a thorough run (``--thorough`` or ``COUPONLAB_THOROUGH=1``)."""
    return _thorough or os.environ.get(THOROUGH_ENV, "") == "1"


def examples(default: int, thorough_count: int) -> int:
    """Return the number of examples a property test draws: ``default`` in the default run,
    ``thorough_count`` in a thorough one (both >= 1, ``default`` <= ``thorough_count``)."""
    if not 1 <= default <= thorough_count:
        raise ValueError(f"need 1 <= default <= thorough, got {default} and {thorough_count}")
    return thorough_count if thorough() else default


__all__ = ["THOROUGH_ENV", "examples", "set_thorough", "thorough"]
