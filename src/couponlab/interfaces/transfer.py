"""Sample transfer: moving a coupon from one named station to another.

Stations are named after the device that holds the sample (docs/protocols/transfer-robot.md):
``build_plate``, ``furnace1.slot1`` .. ``furnace1.slotN`` (a furnace carrier's slots),
``stage1``, ``frame1``, ``rack.1`` .. ``rack.12``. A plan moves one sample with
``bps.mv(transfer, Transfer(sample_id, source, destination))``: the status completes when the
sample is placed at the destination.

Two implementations share the interface :class:`SampleTransfer`: a transfer robot's driver
(``couponlab.drivers.robot``) and :class:`OperatorTransfer`, which asks the person at the
prompt to move the sample and keeps its own record of the stations. Both refuse unknown
stations, a source equal to the destination, an occupied destination and a source that does
not hold the sample, with a typed :class:`~couponlab.errors.InputError` before anything is
sent or asked; both are idempotent, so a resumed campaign can repeat a transfer: a sample
already at its destination completes at once, a sample in the gripper is placed.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from bluesky.protocols import Movable
from ophyd_async.core import AsyncStatus

from couponlab.errors import CouponlabError, InputError

STATION_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,48}(\.[A-Za-z0-9_-]{1,15})?$")
"""A station name: a device name, optionally ``.slot<k>`` or ``.<k>`` (``rack.3``)."""
SAMPLE_PATTERN = re.compile(r"^[A-Za-z0-9_.:+-]{1,64}$")
"""A sample id: 1-64 letters, digits and ``_ . : + -`` (no blanks, commas or quotes)."""
DONE = "done"
"""What the operator types once the sample is moved."""
ABORT = "abort"
"""What the operator types to refuse the transfer (raises :class:`TransferAbortedError`)."""


class TransferAbortedError(CouponlabError):
    """The operator answered ``abort``: the sample was not moved."""


@dataclass(frozen=True)
class Transfer:
    """Move one sample from one station to another.

    Attributes
    ----------
    sample_id
        Id of the sample (coupon or specimen), as the campaign names it (``camp-C01``).
    source
        Station the sample is taken from (``rack.1``).
    destination
        Station it is placed at (``furnace1.slot2``); must be empty.
    """

    sample_id: str
    source: str
    destination: str


def check_station(device: str, station: Any, known: Iterable[str]) -> str:
    """Return ``station`` if it is one of the ``known`` stations, else raise InputError."""
    names = list(known)
    if not isinstance(station, str) or station not in names:
        raise InputError(
            device, f"unknown station {station!r:.80}; known: {', '.join(names) or 'none'}"
        )
    return station


def check_sample_id(device: str, sample_id: Any) -> str:
    """Return ``sample_id`` if it is a well-formed id (:data:`SAMPLE_PATTERN`)."""
    if not isinstance(sample_id, str) or not SAMPLE_PATTERN.match(sample_id):
        raise InputError(
            device,
            f"sample id {sample_id!r:.80} must be 1-64 letters, digits or _ . : + - "
            "(no blanks, commas or quotes)",
        )
    return sample_id


def check_station_names(device: str, stations: Iterable[Any]) -> list[str]:
    """Return the station names if each is well formed (:data:`STATION_PATTERN`) and unique."""
    names = list(stations)
    bad = [s for s in names if not isinstance(s, str) or not STATION_PATTERN.match(s)]
    if bad:
        raise InputError(
            device, f"station names {bad!r:.120} must be <device>[.<slot>] (letters, digits, _-)"
        )
    if len(set(names)) != len(names) or not names:
        raise InputError(device, f"stations {names!r:.120} must be unique and at least one")
    return names


def check_transfer(device: str, value: Any, known: Iterable[str]) -> Transfer:
    """Return ``value`` if it is a :class:`Transfer` between two different known stations.

    Raises
    ------
    InputError
        Not a Transfer, a malformed sample id, an unknown station, or source == destination.
    """
    if not isinstance(value, Transfer):
        raise InputError(
            device, f"{value!r:.80} is not a Transfer(sample_id, source, destination)"
        )
    names = list(known)
    check_sample_id(device, value.sample_id)
    check_station(device, value.source, names)
    check_station(device, value.destination, names)
    if value.source == value.destination:
        raise InputError(
            device, f"{value.sample_id}: source and destination are both {value.source!r}"
        )
    return value


def check_occupancy(
    device: str, value: Transfer, stations: Mapping[str, str | None], held: str | None
) -> bool:
    """Check a transfer against what the stations and the gripper hold now.

    Returns
    -------
    bool
        True when the sample must be moved; False when it is already at its destination
        (nothing to do: the transfer is idempotent).

    Raises
    ------
    InputError
        The destination holds another sample, the gripper holds another sample, or the
        sample is neither at the source nor in the gripper.
    """
    sid, src, dst = value.sample_id, value.source, value.destination
    if stations.get(dst) == sid:
        return False
    if stations.get(dst):
        raise InputError(device, f"destination {dst} is occupied by {stations[dst]}")
    if held == sid:
        return True
    if held:
        raise InputError(device, f"the gripper holds {held}; place it before moving {sid}")
    if stations.get(src) != sid:
        there = stations.get(src) or "nothing"
        raise InputError(device, f"source {src} holds {there}, not {sid}")
    return True


@runtime_checkable
class SampleTransfer(Movable[Transfer], Protocol):
    """Whatever moves samples between stations: a transfer robot, or a person.

    ``set(Transfer(...))`` returns a status that completes when the sample is placed at the
    destination (a robot's move takes instrument time); it refuses bad transfers with a
    typed :class:`~couponlab.errors.InputError` before anything moves.
    """

    def set(self, value: Transfer) -> AsyncStatus[None]:
        """Move ``value.sample_id`` from ``value.source`` to ``value.destination``."""
        ...

    async def stations(self) -> dict[str, str | None]:
        """Return station -> id of the sample there (None: empty)."""
        ...

    async def holding(self) -> str | None:
        """Return the id of the sample in the gripper (None: empty)."""
        ...

    async def record(self, station: str, sample_id: str | None) -> None:
        """Record that ``sample_id`` now sits at ``station`` (None: empty) because another
        instrument or a person put it there (a print on the build plate)."""
        ...


Ask = Callable[[str], "str | Awaitable[str]"]
"""Asks the operator a question and returns the answer (``input`` or a coroutine function)."""


def _ask_in_thread(ask: Callable[[str], Any], prompt: str) -> asyncio.Future[Any]:
    """Run a blocking ``ask`` in a daemon thread, so the event loop (other instruments'
    statuses, watchdog keep-alives) goes on while the person works."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(result: Any, exc: BaseException | None) -> None:
        if future.done():
            return
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)

    def run() -> None:
        try:
            answer = ask(prompt)
        except BaseException as exc:  # EOFError, KeyboardInterrupt: the caller decides
            loop.call_soon_threadsafe(settle, None, exc)
        else:
            loop.call_soon_threadsafe(settle, answer, None)

    threading.Thread(target=run, name="operator-ask", daemon=True).start()
    return future


class OperatorTransfer:
    """Sample transfer by a person: asks at the prompt, and keeps the station record.

    Parameters
    ----------
    stations
        The stations (names), or a mapping station -> sample id there (None: empty).
    ask
        Asks a question and returns the answer: ``input`` (the default; run in a daemon
        thread, so other instruments keep running while the person works) or a coroutine
        function. The answer ``done`` (exactly, blanks around it ignored) confirms the
        move, ``abort`` raises :class:`TransferAbortedError`, anything else asks again.
    name
        Name in messages and documents.
    """

    def __init__(
        self,
        stations: Iterable[str] | Mapping[str, str | None],
        *,
        ask: Ask = input,
        name: str = "operator",
    ) -> None:
        self.name = name
        self.parent: Any = None
        initial = dict(stations) if isinstance(stations, Mapping) else dict.fromkeys(stations)
        check_station_names(name, initial)
        for sid in initial.values():
            if sid is not None:
                check_sample_id(name, sid)
        self._stations: dict[str, str | None] = initial
        self._ask = ask
        self.prompts: list[str] = []
        """Every prompt shown so far (for the record)."""

    async def stations(self) -> dict[str, str | None]:
        """Return station -> sample id there (None: empty), as this record knows it."""
        return dict(self._stations)

    async def holding(self) -> str | None:
        """Return None: a person's hands hold nothing between two transfers."""
        return None

    async def record(self, station: str, sample_id: str | None) -> None:
        """Record ``sample_id`` (None: nothing) at ``station`` (a known one)."""
        check_station(self.name, station, self._stations)
        if sample_id is not None:
            check_sample_id(self.name, sample_id)
        self._stations[station] = sample_id

    def set(self, value: Transfer) -> AsyncStatus[None]:
        """Ask the operator to move the sample; the status completes once they type
        ``done`` (at once, asking nothing, when the sample is already at the destination).

        Raises
        ------
        InputError
            (from the status) unknown station, source == destination, occupied destination,
            or a source that does not hold the sample; nothing is asked.
        TransferAbortedError
            (from the status) the operator typed ``abort``.
        """
        transfer = check_transfer(self.name, value, self._stations)
        check_occupancy(self.name, transfer, self._stations, None)
        return AsyncStatus(self._move(transfer), name=self.name)

    async def _move(self, t: Transfer) -> None:
        if not check_occupancy(self.name, t, self._stations, None):
            return
        prompt = (
            f"move coupon {t.sample_id} from {t.source} to {t.destination}, "
            f"then type '{DONE}' (or '{ABORT}'): "
        )
        while True:
            self.prompts.append(prompt)
            reply = (await self._answer(prompt)).strip()
            if reply == DONE:
                break
            if reply == ABORT:
                raise TransferAbortedError(
                    self.name, f"transfer of {t.sample_id} from {t.source} aborted by the operator"
                )
        self._stations[t.source] = None
        self._stations[t.destination] = t.sample_id

    async def _answer(self, prompt: str) -> str:
        if inspect.iscoroutinefunction(self._ask):
            return str(await self._ask(prompt))
        answer = await _ask_in_thread(self._ask, prompt)
        if inspect.isawaitable(answer):
            answer = await answer
        return str(answer)


__all__ = [
    "ABORT",
    "DONE",
    "SAMPLE_PATTERN",
    "STATION_PATTERN",
    "Ask",
    "OperatorTransfer",
    "SampleTransfer",
    "Transfer",
    "TransferAbortedError",
    "check_occupancy",
    "check_sample_id",
    "check_station",
    "check_station_names",
    "check_transfer",
]
