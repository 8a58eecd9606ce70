"""A twin that serves one instrument of the world over a :class:`LineServer`.

What every line-protocol twin does around its protocol handler: register its model in the
world under the device name (so other twins find it), serve the handler on 127.0.0.1 and
the requested port (0 = a free port), resolve its address to the bound port, and on stop
close the server and take the model out of the world again (also when starting fails).
"""

from __future__ import annotations

from typing import Generic, TypeVar

from couponlab.simulators.line_faults import FamilyFaults, LineFaultTarget
from couponlab.simulators.line_server import LineHandler, LineServer
from couponlab.simulators.scpi import ScpiDispatcher
from couponlab.simulators.world import World

M = TypeVar("M")


class LineTwin(Generic[M]):
    """A running line twin: ``model`` served by ``handler`` as instrument ``name``.

    Parameters
    ----------
    world
        The shared world (the server brings it up to date before every line).
    name
        Device name the model is registered under in ``world.instruments``.
    model
        The twin's model, registered on :meth:`start`; None registers nothing (``name`` is
        still taken out of the world on :meth:`stop`).
    handler
        The line handler (a dispatcher's ``handle``).
    host, port
        Where to listen (port 0: a free port).
    address
        The address before :meth:`start` (the lab entry's); :meth:`start` replaces it by
        :meth:`resolved_address`.
    dispatcher
        The command set behind ``handler``: with it the twin takes faults
        (``world.faults``, :mod:`couponlab.simulators.faults`) from :meth:`start` on.
    family
        The family's own faults (sensors, actuators) and power-off action.
    """

    def __init__(
        self,
        world: World,
        name: str,
        model: M,
        handler: LineHandler,
        *,
        host: str,
        port: int,
        address: str,
        dispatcher: ScpiDispatcher | None = None,
        family: FamilyFaults | None = None,
    ) -> None:
        self.world = world
        self.name = name
        self.model = model
        self.server = LineServer(world, handler, host=host, port=port)
        self.address = address
        self.faults = (
            None
            if dispatcher is None
            else LineFaultTarget(
                self.server.faults, self.server.drop_clients_now, dispatcher, family
            )
        )
        """The twin's fault target (None: it takes no faults)."""

    def resolved_address(self) -> str:
        """Return the address a driver connects to once listening (``socket://host:port``)."""
        return f"socket://{self.server.host}:{self.server.port}"

    async def start(self) -> None:
        """Register the model and start listening; undo the registration if that fails.

        Raises
        ------
        ValueError
            Another model is already registered as ``name`` (nothing is started).
        """
        if self.model is not None:
            self.world.register_instrument(self.name, self.model)
        try:
            await self.server.start()
        except BaseException:
            if self.model is not None:
                self.world.unregister_instrument(self.name)
            raise
        self.address = self.resolved_address()
        if self.faults is not None:
            self.world.faults.register(self.name, self.faults)

    async def stop(self) -> None:
        """Stop listening, close the clients and take the model (and its faults) out of the
        world."""
        self.world.faults.unregister(self.name)
        await self.server.stop()
        self.world.unregister_instrument(self.name)


__all__ = ["LineTwin"]
