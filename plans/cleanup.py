"""A plan's clean-up that never hides the plan's own error.

bluesky's ``finalize_wrapper`` runs the clean-up whatever happens, but if the clean-up fails
too (a furnace that lost its link does not answer ``Standby()`` either), the clean-up's error
replaces the plan's: the user is told "Standby() timed out" instead of what went wrong.
:func:`finalize_keeping_cause` keeps the plan's error as the one raised and attaches the
clean-up's failure to it (:func:`couponlab.failure.cleanup_failures`, and a note).
"""

from __future__ import annotations

import logging
from typing import TypeVar

from bluesky.utils import MsgGenerator

from couponlab.errors import describe_error
from couponlab.failure import add_cleanup_failure

T = TypeVar("T")
log = logging.getLogger(__name__)


def finalize_keeping_cause(plan: MsgGenerator[T], cleanup: MsgGenerator[None]) -> MsgGenerator[T]:
    """Run ``plan``, then ``cleanup`` whatever happens (as bluesky's ``finalize_wrapper``).

    If ``plan`` failed and ``cleanup`` fails too, ``plan``'s error is raised with the
    clean-up's failure attached; if only ``cleanup`` fails, its error is raised. A plan that
    is closed (``GeneratorExit``) is not cleaned up, as in bluesky.

    Yields
    ------
    Msg
        ``plan``'s messages, then ``cleanup``'s.
    """
    try:
        result: T = yield from plan
    except GeneratorExit:
        raise
    except BaseException as error:
        try:
            yield from cleanup
        except Exception as failure:
            log.error(
                "clean-up after %s failed: %s", describe_error(error), describe_error(failure)
            )
            add_cleanup_failure(error, failure)
        raise
    yield from cleanup
    return result


__all__ = ["finalize_keeping_cause"]
