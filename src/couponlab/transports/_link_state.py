"""Whether a transport can reach its instrument: a small signal the policy layer watches.

Every transport (:class:`~couponlab.transports.LineTransport`,
:class:`~couponlab.transports.OpcUaConnection`) owns one :class:`LinkState`. It goes *down*
when an attempt to open the link fails (the instrument does not accept a connection: a
pulled cable, a powered-off controller) and *up* when a link is open again. A link that
drops and re-opens at the next attempt (a one-off reset) never shows as down.

The value is what bluesky's suspenders watch (``bluesky.suspenders.SuspendBoolLow``):
:meth:`LinkState.subscribe` and :meth:`LinkState.clear_sub` follow the ophyd signal
interface they call (``callback(value=..., ...)``), so no adapter is needed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

LinkCallback = Callable[..., Any]


class LinkState:
    """Up (True) or down (False), with the reason of the last change.

    Parameters
    ----------
    device
        Device name of the transport (the signal is named ``<device>_link_up``).
    """

    def __init__(self, device: str) -> None:
        self.device = device
        self.up = True
        """True while the link is open or was not yet found unreachable."""
        self.reason = ""
        """Why the link went down ("" while up)."""
        self.changed_at = time.time()
        """Wall time of the last change (Unix s)."""
        self.downs = 0
        """How many times the link went down."""
        self._listeners: list[LinkCallback] = []

    @property
    def name(self) -> str:
        """Return the signal's name, ``<device>_link_up``."""
        return f"{self.device}_link_up"

    def get(self) -> bool:
        """Return whether the link is up."""
        return self.up

    def set(self, up: bool, reason: str = "") -> None:
        """Record the link up or down (``reason`` says why it went down); tell the listeners
        of a change only."""
        if up == self.up:
            return
        self.up = up
        self.reason = "" if up else reason
        self.changed_at = time.time()
        if not up:
            self.downs += 1
        for callback in list(self._listeners):
            callback(value=up, old_value=not up, timestamp=self.changed_at, obj=self)

    def subscribe(
        self, callback: LinkCallback, event_type: str | None = None, run: bool = True
    ) -> None:
        """Call ``callback(value=up, ...)`` at every change (and now, if ``run``)."""
        self._listeners.append(callback)
        if run:
            callback(value=self.up, old_value=self.up, timestamp=self.changed_at, obj=self)

    def clear_sub(self, callback: LinkCallback, event_type: str | None = None) -> None:
        """Stop calling ``callback`` (no error if it was not subscribed)."""
        if callback in self._listeners:
            self._listeners.remove(callback)

    def __repr__(self) -> str:
        return f"LinkState({self.name}={'up' if self.up else 'down: ' + self.reason})"


__all__ = ["LinkState"]
