"""Which twin stands in for a lab-file device: the one its driver names.

A driver's ``lab_spec`` (:class:`couponlab.registry.DriverSpec`) names its twin; twins are
registered in the ``couponlab.twins`` entry points as :class:`couponlab.registry.TwinSpec`
(``start``, ``config`` model, address ``schemes``). So two drivers of one family, speaking
different protocols, each have their own twin, and a new family or vendor adds entry points
rather than editing this module. A twin module is imported only when a lab asks for it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from pydantic import ValidationError

from couponlab import registry
from couponlab.errors import CouponlabError, InputError
from couponlab.labfile import DeviceEntry
from couponlab.simulators.world import World


class RunningTwin(Protocol):
    """A twin serving its wire protocol."""

    address: str
    """The resolved address a driver connects to (with the real port)."""

    async def stop(self) -> None:
        """Stop serving and release the port."""
        ...


StartTwin = Callable[[World, DeviceEntry], Awaitable[RunningTwin]]


def twin_spec_of(entry: DeviceEntry) -> registry.TwinSpec:
    """Return the spec of the twin that ``entry``'s driver names.

    Raises
    ------
    InputError
        The driver is not registered, has no twin, or its twin is not registered.
    """
    try:
        spec = registry.driver_spec(registry.driver_class(entry.driver))
        if spec.twin is None:
            raise registry.RegistryError(f"driver {entry.driver} has no twin")
        return registry.twin_spec(spec.twin)
    except (registry.RegistryError, ImportError, AttributeError) as exc:
        raise InputError(entry.name, str(exc)) from None


def twin_starter(entry: DeviceEntry) -> StartTwin:
    """Return the function that starts ``entry``'s twin.

    A twin that refuses its entry (a ``ValueError`` or pydantic error, e.g. a twin_config
    the lab-file check did not see) raises :class:`~couponlab.errors.InputError` naming the
    device, never a bare traceback.
    """
    start = twin_spec_of(entry).start

    async def started(world: World, e: DeviceEntry) -> RunningTwin:
        try:
            twin: RunningTwin = await start(world, e)
        except CouponlabError:
            raise
        except (ValidationError, ValueError, KeyError) as exc:
            message = " ".join(str(exc).split())
            raise InputError(e.name, f"its twin refused the lab entry: {message}") from exc
        return twin

    return started


__all__ = ["RunningTwin", "StartTwin", "twin_spec_of", "twin_starter"]
