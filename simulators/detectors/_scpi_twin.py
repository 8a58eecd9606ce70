"""What every SCPI twin of this family shares: address parsing, the server, the clock
queries and a typed config loader.

Every twin answers ``SYST:CLOC?`` (its clock: virtual seconds since the world started) and
``SYST:CLOC:RATE?`` (virtual seconds per wall second; 1 on real hardware), so a driver can
scale its polling to the instrument's own time.
"""

from __future__ import annotations

import re
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from couponlab.labfile import DeviceEntry
from couponlab.simulators._line_twin import LineTwin
from couponlab.simulators.line_faults import FamilyFaults
from couponlab.simulators.scpi import ScpiDispatcher
from couponlab.simulators.world import World

_VISA_SOCKET = re.compile(r"^TCPIP0?::(?P<host>[^:]+)::(?P<port>\d+)::SOCKET$", re.IGNORECASE)
_SOCKET_URL = re.compile(r"^(?:socket|tcp)://(?P<host>[^:/]+):(?P<port>\d+)/?$")

C = TypeVar("C", bound=BaseModel)


def parse_socket_address(address: str) -> tuple[str, int]:
    """Return ``(host, port)`` of ``TCPIP::host::port::SOCKET`` or ``socket://host:port``."""
    m = _VISA_SOCKET.match(address) or _SOCKET_URL.match(address)
    if m is None:
        raise ValueError(
            f"address {address!r} is not TCPIP::host::port::SOCKET or socket://host:port"
        )
    return m["host"], int(m["port"])


def format_like(address: str, host: str, port: int) -> str:
    """Return ``address`` with its port replaced by ``port`` (same notation)."""
    if _VISA_SOCKET.match(address):
        return f"TCPIP::{host}::{port}::SOCKET"
    return f"socket://{host}:{port}"


def load_config(model: type[C], entry: DeviceEntry, **defaults: object) -> C:
    """Validate ``entry.twin_config`` (with ``defaults`` for absent keys) as ``model``."""
    data = {**defaults, **entry.twin_config}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValueError(f"{entry.name}: invalid twin_config:\n{exc}") from exc


class ScpiTwin(LineTwin[object]):
    """A running SCPI twin: a :class:`LineTwin` serving a dispatcher on 127.0.0.1.

    Parameters
    ----------
    world
        The shared world (clock).
    entry
        The lab entry; its address gives host and port (0 = a free port).
    dispatcher
        The twin's command set.
    model
        The model registered in the world as ``entry.name`` on :meth:`start` (None: none).
    family
        The family's own faults (sensors, actuators) and power-off action; every SCPI twin
        takes the link faults, ``error`` and ``power_loss`` (``world.faults``).
    """

    def __init__(
        self,
        world: World,
        entry: DeviceEntry,
        dispatcher: ScpiDispatcher,
        model: object | None = None,
        family: FamilyFaults | None = None,
    ) -> None:
        host, port = parse_socket_address(entry.address)
        dispatcher.register("SYST:CLOC?", lambda a: f"{world.now:.6f}")
        dispatcher.register("SYST:CLOC:RATE?", lambda a: f"{world.speedup:g}")
        super().__init__(
            world,
            entry.name,
            model,
            dispatcher.handle,
            host=host,
            port=port,
            address=entry.address,
            dispatcher=dispatcher,
            family=family,
        )
        self.entry = entry
        self.dispatcher = dispatcher

    def resolved_address(self) -> str:
        """Return the entry's address with the bound port (same notation)."""
        return format_like(self.entry.address, self.server.host, self.server.port)


def quoted(arg: str) -> str:
    """Return a SCPI string argument without its quotes (``"c1"`` or ``'c1'`` -> ``c1``)."""
    s = arg.strip()
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "\"'":
        return s[1:-1]
    return s


__all__ = ["ScpiTwin", "format_like", "load_config", "parse_socket_address", "quoted"]
