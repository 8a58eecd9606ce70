"""Async request/reply transports with a timeout on every exchange and bounded reconnection.

Every line-based instrument link (TCP socket, serial port, VISA resource) implements
:class:`LineTransport`; drivers depend on that class only, so the same driver reaches a
twin on 127.0.0.1 and an instrument on a real port.
"""

from couponlab.transports._base import Backoff, LineTransport
from couponlab.transports._serial import SerialLineTransport
from couponlab.transports._tcp import TcpLineTransport
from couponlab.transports._visa import VisaLineTransport

__all__ = [
    "Backoff",
    "LineTransport",
    "SerialLineTransport",
    "TcpLineTransport",
    "VisaLineTransport",
]
