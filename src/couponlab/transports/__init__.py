"""Async request/reply transports with a timeout on every exchange and bounded reconnection,
and the one SCPI/line client the line-protocol drivers use over them.

:class:`OpcUaConnection` is the OPC UA client (one per device, shared by its signals).
Every line-based instrument link (TCP socket, serial port, VISA resource) implements
:class:`LineTransport`; :class:`ScpiClient` adds the error-status checks, typed replies and
instrument-timed waits on top. Drivers depend on those two only, so the same driver reaches
a twin on 127.0.0.1 and an instrument on a real port (:func:`make_transport` picks the
transport from the address).
"""

from couponlab.transports._address import make_transport
from couponlab.transports._base import Backoff, LineTransport, RestartProbe
from couponlab.transports._link_state import LinkState
from couponlab.transports._opcua import OpcUaConnection, OpcUaStatusError
from couponlab.transports._opcua_security import (
    CLIENT_APP_URI,
    PKI_DIR_ENV,
    ClientSecurity,
    OpcUaSecuritySettings,
    Pki,
    pki_dir,
)
from couponlab.transports._scpi import (
    ESR_POWER_ON,
    ScpiClient,
    raise_for_status,
    split_status,
)
from couponlab.transports._serial import SerialLineTransport
from couponlab.transports._tcp import TcpLineTransport
from couponlab.transports._visa import VisaLineTransport

__all__ = [
    "CLIENT_APP_URI",
    "ESR_POWER_ON",
    "PKI_DIR_ENV",
    "Backoff",
    "ClientSecurity",
    "LineTransport",
    "LinkState",
    "OpcUaConnection",
    "OpcUaSecuritySettings",
    "OpcUaStatusError",
    "Pki",
    "RestartProbe",
    "ScpiClient",
    "SerialLineTransport",
    "TcpLineTransport",
    "VisaLineTransport",
    "make_transport",
    "pki_dir",
    "raise_for_status",
    "split_status",
]
