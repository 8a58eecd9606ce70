"""Protocol robustness: mutated replies into every line driver's reply parser.

Every line driver of the bundled lab talks to its twin through a proxy on 127.0.0.1 that
passes commands through and mutates the twin's replies while a case runs: a byte flipped,
the line cut (its terminator lost), random bytes inserted or put in its place, the line
doubled, split in two, or dropped. Hypothesis draws the device, which reply line of the
read to mutate, and how. The driver's ``read()`` or ``read_configuration()`` then must:

- return, or raise a typed error (:class:`~couponlab.errors.CouponlabError`): anything
  else is "untyped";
- finish within :data:`CASE_DEADLINE_S` (a deadline well above the link timeouts): else
  "hang";
- and, with the proxy clean again, the very next ``read()`` must succeed: else "not
  recovered" (a stale reply taken for the next answer, a link left broken).

All must stay 0; the cases per driver are printed. No file descriptor, task or thread is left.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fuzz_support import LINE_DEVICES, OpenBefore
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from couponlab.cli import sample_lab_path
from couponlab.errors import CouponlabError
from couponlab.lab import make_device
from couponlab.labfile import load_lab
from couponlab.simulators.background import BackgroundLoop
from couponlab.simulators.detectors._scpi_twin import parse_socket_address
from couponlab.simulators.lab_twins import TwinLab, start_lab_twins
from couponlab.simulators.world import World, WorldConfig
from couponlab.testing.thoroughness import examples

CASE_DEADLINE_S = 30.0
"""How long one read may take with a mutated reply (link timeouts are 2-5 s; a deadline)."""
CASES = examples(150, 300)
"""Hypothesis examples over all line drivers (``--thorough``: 300)."""
LINE_DRIVERS = LINE_DEVICES
Mutation = Callable[[bytes], bytes]


@dataclass
class Armed:
    """The mutation of the proxy's next case: which reply line (0 = first) and how."""

    line: int
    mutate: Mutation
    seen: int = 0


@dataclass
class Proxy:
    """Forward one driver's link to its twin; mutate the twin's replies when armed."""

    twin_host: str
    twin_port: int
    armed: Armed | None = None
    server: asyncio.Server | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for w in self.writers:
            w.close()
        for t in list(self.tasks):
            t.cancel()
        for t in list(self.tasks):
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await t
        await self.server.wait_closed()

    async def _client(
        self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter
    ) -> None:
        t_reader, t_writer = await asyncio.open_connection(self.twin_host, self.twin_port)
        self.writers += [c_writer, t_writer]
        up = asyncio.ensure_future(self._pipe(c_reader, t_writer, mutate=False))
        down = asyncio.ensure_future(self._pipe(t_reader, c_writer, mutate=True))
        self.tasks |= {up, down}
        try:
            await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (up, down):
                t.cancel()
            for w in (c_writer, t_writer):
                w.close()
            self.tasks -= {up, down}

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, mutate: bool
    ) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                data = await reader.readuntil(b"\n") if mutate else await reader.read(65536)
                if not data:
                    return
                if mutate and self.armed is not None:
                    armed = self.armed
                    if armed.seen == armed.line:
                        data = armed.mutate(data)
                    armed.seen += 1
                writer.write(data)
                await writer.drain()


def _mutations() -> st.SearchStrategy[tuple[str, Mutation]]:
    """How a reply line (with its terminator) is mutated, with a name for the report."""

    def at(data: bytes, where: float) -> int:
        return min(int(where * len(data)), max(len(data) - 1, 0))

    pos = st.floats(0, 1)
    junk = st.binary(min_size=1, max_size=32)
    return st.one_of(
        st.tuples(pos, st.integers(1, 255)).map(
            lambda c: ("flip", lambda d: d[: at(d, c[0])] + bytes([d[at(d, c[0])] ^ c[1]])
                       + d[at(d, c[0]) + 1:] if d else d)),
        pos.map(lambda p: ("cut", lambda d: d[: at(d, p)])),
        st.tuples(pos, junk).map(
            lambda c: ("insert", lambda d: d[: at(d, c[0])] + c[1] + d[at(d, c[0]):])),
        junk.map(lambda j: ("replace", lambda d: j + b"\n")),
        st.just(("double", lambda d: d + d)),
        pos.map(lambda p: ("split", lambda d: d[: at(d, p)] + b"\n" + d[at(d, p):])),
        st.just(("drop", lambda d: b"")),
        st.sampled_from([b"nan\n", b"inf\n", b"-1e999\n", b"\n", b";\n", b",,,\n",
                         b'"unterminated\n', b"#9999999999\n", b"#15ab\n", b"\xff\xfe\n"]
                        ).map(lambda r: ("reply " + r.decode("latin-1").strip(), lambda d: r)),
    )  # fmt: skip


class DriverLab:
    """The bundled lab's twins (paused world) and its line drivers, each behind a proxy."""

    def __init__(self, out_dir: Path) -> None:
        self.before = OpenBefore()
        self.loop = asyncio.new_event_loop()
        self.bg = BackgroundLoop("fuzz-twins")  # serial drivers block their loop
        declared = load_lab(sample_lab_path())
        world = World(WorldConfig.model_validate(declared.world), paused=True)
        self.twins: TwinLab = self.bg.run(start_lab_twins(declared, world=world, run_clock=False))
        self.proxies: dict[str, Proxy] = {}
        self.devices: dict[str, Any] = {}
        self.counts: Counter[str] = Counter()
        self.findings: list[str] = []
        for name in LINE_DRIVERS:
            entry = self.twins.lab.device(name)
            host, port = parse_socket_address(entry.address)
            proxy = Proxy(host, port)
            proxy_port = self.bg.run(proxy.start())
            address = entry.address.replace(f":{port}", f":{proxy_port}")
            self.proxies[name] = proxy
            device = make_device(entry.model_copy(update={"address": address}), out_dir=out_dir)
            self.loop.run_until_complete(device.connect(timeout=10))
            self.devices[name] = device

    def run(self, name: str, op: str, line: int, how: str, mutate: Mutation) -> list[str]:
        """Run ``op`` on ``name`` with reply ``line`` mutated by ``mutate``; return findings."""
        device, proxy = self.devices[name], self.proxies[name]
        label = f"{name}.{op}() with reply {line} {how}"
        self.counts[name] += 1
        found: list[str] = []

        async def call(fn: Any) -> Any:
            async with asyncio.timeout(CASE_DEADLINE_S):
                return await fn()

        proxy.armed = Armed(line, mutate)
        try:
            self.loop.run_until_complete(call(getattr(device, op)))
            self.counts["returned"] += 1
        except CouponlabError:
            self.counts["typed error"] += 1
        except TimeoutError:
            found.append(f"hang: {label}")
        except Exception as exc:
            found.append(f"untyped {type(exc).__name__}: {label}: {exc}")
        finally:
            proxy.armed = None
        try:
            self.loop.run_until_complete(call(device.read))
        except Exception as exc:
            found.append(f"not recovered: {label}: then {type(exc).__name__}: {exc}")
        self.findings += found
        return found

    def close(self) -> list[str]:
        """Disconnect, stop proxies and twins; return what was left open."""

        async def disconnect() -> None:
            for device in self.devices.values():
                with contextlib.suppress(Exception):
                    await device.disconnect()

        async def stop() -> None:
            for proxy in self.proxies.values():
                await proxy.stop()
            await self.twins.stop()
            await asyncio.get_running_loop().shutdown_default_executor()

        self.loop.run_until_complete(disconnect())
        self.bg.run(stop())
        self.bg.stop()
        return self.before.close_loop_and_diff(self.loop)


@pytest.fixture(scope="module")
def drivers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DriverLab]:
    lab = DriverLab(tmp_path_factory.mktemp("fuzz-replies"))
    yield lab
    left = lab.close()
    counts = ", ".join(f"{k} {v}" for k, v in sorted(lab.counts.items()))
    print(f"\nreply fuzz: {counts}; findings {len(lab.findings)}")
    assert not left, "\n".join(left)


@pytest.mark.timeout(900)
@settings(
    max_examples=CASES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    name=st.sampled_from(LINE_DRIVERS),
    op=st.sampled_from(["read", "read", "read_configuration"]),
    line=st.integers(0, 3),
    mutation=_mutations(),
)
def test_mutated_replies_give_typed_errors_and_the_driver_recovers(
    drivers: DriverLab, name: str, op: str, line: int, mutation: tuple[str, Mutation]
) -> None:
    how, mutate = mutation
    found = drivers.run(name, op, line, how, mutate)
    assert not found, "\n".join(found)


def test_every_line_driver_was_fuzzed(drivers: DriverLab) -> None:
    """Runs after the property (same module): every driver got cases."""
    assert all(drivers.counts[n] >= 5 for n in LINE_DRIVERS), drivers.counts
