"""Where twins listen: 127.0.0.1 unless the operator says otherwise on the command line.

A lab file names a twin's port (0: a free one); the host in its address is not trusted.
:func:`~couponlab.simulators.lab_twins.start_lab_twins` rewrites every twin address to the
bind host (``couponlab twin serve --bind HOST``, default 127.0.0.1) before the twin starts,
so a lab file cannot make a twin, which has no authentication, listen on another network.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from contextvars import ContextVar

LOOPBACK = "127.0.0.1"
"""The default bind host of every twin and of the twin control channel."""

WILDCARDS = frozenset({"0.0.0.0", "::", ""})
"""Bind hosts that mean "every interface"; a resolved address names 127.0.0.1 instead."""

_FORMS = (
    re.compile(r"^(?P<pre>(?:socket|tcp|opc\.tcp)://)(?P<host>[^:/]+)(?P<post>:\d+/?)$"),
    re.compile(r"^(?P<pre>TCPIP0?::)(?P<host>[^:]+)(?P<post>::\d+::SOCKET)$", re.IGNORECASE),
)


_LOOPBACK_NAMES = frozenset({LOOPBACK, "localhost"})
_operator_bind: ContextVar[str | None] = ContextVar("couponlab_twin_bind", default=None)


@contextlib.contextmanager
def operator_bind(host: str) -> Iterator[None]:
    """Allow twins started in this context to bind ``host`` (the operator's ``--bind``)."""
    token = _operator_bind.set(host)
    try:
        yield
    finally:
        _operator_bind.reset(token)


def check_bind_host(host: str, what: str) -> None:
    """Refuse to let ``what`` listen on ``host`` unless it is loopback or the operator's bind.

    Every twin server calls this before it binds, so a twin started directly from a lab
    entry (not through ``start_lab_twins``) cannot listen on another network either.

    Raises
    ------
    ValueError
        ``host`` is neither 127.0.0.1/localhost nor the host given by :func:`operator_bind`.
    """
    if host in _LOOPBACK_NAMES or host == _operator_bind.get():
        return
    raise ValueError(
        f"{what}: twins listen on 127.0.0.1 only, not {host!r} "
        "(couponlab twin serve --bind HOST to serve another interface)"
    )


def with_host(address: str, host: str) -> str:
    """Return ``address`` with its host replaced by ``host`` (same notation and port).

    Understands ``socket://``, ``tcp://`` and ``opc.tcp://HOST:PORT`` and
    ``TCPIP::HOST::PORT::SOCKET``; any other address is returned unchanged (the twin then
    refuses it with its own message).
    """
    for form in _FORMS:
        m = form.match(address.strip())
        if m is not None:
            return f"{m['pre']}{host}{m['post']}"
    return address


def reachable_host(bind: str) -> str:
    """Return the host a client on this machine connects to for a twin bound to ``bind``."""
    return LOOPBACK if bind in WILDCARDS else bind


__all__ = [
    "LOOPBACK",
    "WILDCARDS",
    "check_bind_host",
    "operator_bind",
    "reachable_host",
    "with_host",
]
