"""Protocol robustness: mutated and random bytes into every twin's parser, over the wire.

Every line twin of the bundled lab (feeder, cell, stage, frame, profiler, XRF, camera,
thermocouple scanner, pyrometer, robot) gets lines that Hypothesis builds from the twin's own
headers (mangled headers, separators and arguments: huge, non-finite, quoted, binary) and
lines of random bytes, each followed by ``*IDN?`` on the same connection. The furnace's
OPC UA server gets random and mutated binary messages on fresh connections, then an ordinary
client reads from it. For every case:

- crash untyped: a twin's handler raised something its dispatcher does not map to an SCPI
  error (logged as ``twin handler ... failed``), or the line server's handler failed;
- hang: no ``*IDN?`` answer within :data:`REPLY_DEADLINE_S` (a deadline, not a timing);
- link dropped: the twin closed the connection.

All must stay 0. At the end of the module, no file descriptor, task or thread is left beyond
what was open before the twins started. The numbers of cases per parser are printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Iterator

import pytest
from asyncua import Client, ua
from fuzz_support import LINE_DEVICES, OpenBefore
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from couponlab.cli import sample_lab_path
from couponlab.labfile import load_lab
from couponlab.simulators.detectors._scpi_twin import parse_socket_address
from couponlab.simulators.lab_twins import TwinLab, start_lab_twins
from couponlab.simulators.scpi import ScpiDispatcher
from couponlab.simulators.world import World, WorldConfig
from couponlab.testing.thoroughness import examples
from couponlab.transports import OpcUaSecuritySettings

REPLY_DEADLINE_S = 10.0
"""How long a twin may take to answer ``*IDN?`` on a loaded machine (a deadline only)."""
CASES_PER_TWIN = examples(60, 200)
"""Hypothesis examples per line twin (``--thorough``: 200)."""
OPC_CASES = examples(20, 60)
"""Hypothesis examples for the furnace's OPC UA server (``--thorough``: 60)."""
LINE_TWINS = LINE_DEVICES
ARGS = [
    "", "0", "1", "-1", "1,2", "1,2,3", "0.5", "1e3", "1e308", "-1e308", "1e400", "inf", "-inf",
    "nan", "ON", "OFF", "on", "of", '"C1"', '"', '""', "'x'", "#15hello", "#0", "#9999999999",
    "Ni=1", "Ni=0.5,Cr=0.5", "X", "rack.1", "furnace1.slot1", "9" * 400, "1;*RST", " ,, ",
    "\t", "\x00", "\x7f", "é",
]  # fmt: skip
"""Argument seeds: valid-looking, out of range, not finite, malformed, and not ASCII."""


def _names(lab_names: list[str]) -> list[str]:
    return [n for n in LINE_TWINS if n in lab_names]


class FuzzLab:
    """The bundled lab's twins in a paused world, on a loop of their own."""

    def __init__(self) -> None:
        self.before = OpenBefore()
        self.loop = asyncio.new_event_loop()
        declared = load_lab(sample_lab_path())
        world = World(WorldConfig.model_validate(declared.world), paused=True)
        self.twins: TwinLab = self.loop.run_until_complete(
            start_lab_twins(declared, world=world, run_clock=False)
        )
        self.counts: Counter[str] = Counter()
        self.findings: list[str] = []
        self.links: dict[str, tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}

    def dispatcher(self, name: str) -> ScpiDispatcher:
        twin = self.twins.twins[name]
        found = [v for v in vars(twin).values() if isinstance(v, ScpiDispatcher)]
        assert found, f"{name}: no SCPI dispatcher"
        return found[0]

    async def _link(self, name: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if name not in self.links:
            host, port = parse_socket_address(self.twins.lab.device(name).address)
            self.links[name] = await asyncio.open_connection(host, port, limit=2**26)
        return self.links[name]

    async def _exchange(self, name: str, line: bytes) -> str | None:
        """Send ``line`` and ``*IDN?``; return what went wrong, or None."""
        idn = self.dispatcher(name).idn.encode()
        reader, writer = await self._link(name)
        writer.write(line + b"\n*IDN?\n")
        await writer.drain()
        while True:
            try:
                raw = await asyncio.wait_for(reader.readline(), REPLY_DEADLINE_S)
            except TimeoutError:
                return "hang"
            if not raw:
                del self.links[name]
                writer.close()
                return "link dropped"
            if raw.rstrip(b"\r\n") == idn:
                return None

    def send(self, name: str, line: bytes, caplog: pytest.LogCaptureFixture) -> list[str]:
        """Send one fuzzed line to twin ``name``; return the findings."""
        self.counts[name] += 1
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="couponlab.simulators"):
            what = self.loop.run_until_complete(self._exchange(name, line))
        found = [f"{what}: {name} <- {line!r:.120}"] if what else []
        found += [
            f"crash untyped: {name} <- {line!r:.120}: {r.getMessage()}"
            for r in caplog.records
            if r.levelno >= logging.ERROR
        ]
        self.findings += found
        return found

    def opc_send(self, payload: bytes) -> None:
        """Send ``payload`` on a fresh TCP connection to the furnace's OPC UA server."""
        self.counts["furnace1 (OPC UA)"] += 1
        host, port = _opc_host_port(self.twins.lab.device("furnace1").address)

        async def send() -> None:
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(payload)
            await writer.drain()
            # the server may answer (an ERR message), close, or wait for more; all are fine
            with contextlib.suppress(TimeoutError, ConnectionError):
                await asyncio.wait_for(reader.read(65536), 0.2)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

        self.loop.run_until_complete(send())

    def opc_still_serves(self) -> str | None:
        """Read the server's state with an ordinary client (the lab entry's security and
        user, decision 0069); return a finding or None."""
        entry = self.twins.lab.device("furnace1")
        security = OpcUaSecuritySettings.model_validate(entry.settings["security"])

        async def read() -> None:
            client = Client(entry.address, timeout=REPLY_DEADLINE_S)
            lab_security = security.client_security()
            if lab_security is not None:
                await lab_security.apply(client, "furnace1")
            async with client:
                node = client.get_node(ua.ObjectIds.Server_ServerStatus_State)
                await node.read_value()

        try:
            self.loop.run_until_complete(read())
        except Exception as exc:  # what failed is the finding
            return f"OPC UA server no longer serves: {type(exc).__name__}: {exc}"
        return None

    def close(self) -> list[str]:
        """Stop the twins and the loop; return what was left open."""

        async def stop() -> None:
            for _, writer in self.links.values():
                writer.close()
            await self.twins.stop()
            await asyncio.get_running_loop().shutdown_default_executor()

        self.loop.run_until_complete(stop())
        return self.before.close_loop_and_diff(self.loop)


def _opc_host_port(address: str) -> tuple[str, int]:
    host, _, port = address.removeprefix("opc.tcp://").rstrip("/").partition(":")
    return host, int(port.split("/")[0])


@pytest.fixture(scope="module")
def fuzz() -> Iterator[FuzzLab]:
    lab = FuzzLab()
    yield lab
    left = lab.close()
    counts = ", ".join(f"{k} {v}" for k, v in sorted(lab.counts.items()))
    print(f"\nfuzz cases per twin parser: {counts}; findings {len(lab.findings)}")
    assert not left, "\n".join(left)


@st.composite
def scpi_lines(draw: st.DrawFn, headers: list[str]) -> bytes:
    """A line built from a twin's headers: commands with mangled parts, or random bytes."""
    kind = draw(st.sampled_from(["command"] * 3 + ["compound", "mutated", "random"]))
    if kind == "random":
        return draw(st.binary(max_size=300))

    def command() -> str:
        header = draw(st.sampled_from(headers))
        mangled = [header.lower(), ":" + header, header[: len(header) // 2], header + "?"]
        header = draw(st.sampled_from([header] * 4 + mangled))
        arg = st.one_of(
            st.sampled_from(ARGS),
            st.floats(allow_nan=True, allow_infinity=True).map(repr),
            st.integers(min_value=-(10**30), max_value=10**30).map(str),
            st.text(max_size=12),
        )
        args = draw(st.lists(arg, min_size=draw(st.sampled_from([0, 1, 1, 2])), max_size=4))
        sep = draw(st.sampled_from([" "] * 4 + ["", "  ", ","]))
        return header + (sep + ",".join(args) if args else "")

    text = command()
    if kind == "compound":
        text += draw(st.sampled_from([";", ";:", ";;", ":"])) + command()
    data = text.encode("utf-8", errors="surrogatepass")
    if kind == "mutated" and data:
        at = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["cut", "insert", "flip"]))
        if op == "cut":
            data = data[:at]
        elif op == "insert":
            data = data[:at] + draw(st.binary(min_size=1, max_size=16)) + data[at:]
        elif at < len(data):
            data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1 :]
    return data


def _one_line(data: bytes) -> bytes:
    """One line: no terminator inside, no ``*OPC?`` (which waits for motion that a paused
    world never finishes: the hang would be the test's)."""
    data = data.replace(b"\n", b" ")
    return b"" if b"OPC" in data.upper() else data


FUZZ_SETTINGS = settings(
    max_examples=CASES_PER_TWIN,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", LINE_TWINS)
def test_fuzzed_lines_are_answered_and_keep_the_link(
    fuzz: FuzzLab, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    assert name in fuzz.twins.twins, f"the bundled lab has no twin {name}"
    headers = fuzz.dispatcher(name).headers()

    @FUZZ_SETTINGS
    @given(line=scpi_lines(headers))
    def check(line: bytes) -> None:
        found = fuzz.send(name, _one_line(line), caplog)
        assert not found, "\n".join(found)

    check()
    assert fuzz.counts[name] >= CASES_PER_TWIN


HELLO = (
    bytes.fromhex(
        "48454c46"  # HEL F
        "38000000"  # message size 56
        "00000000"  # protocol version
        "00000100"  # receive buffer 65536
        "00000100"  # send buffer
        "00000001"  # max message size
        "00000000"  # max chunk count
        "18000000"  # endpoint url length 24
    )
    + b"opc.tcp://127.0.0.1:4840/"[:24]
)
"""An OPC UA Hello message (the first thing a client sends), the seed of the mutations."""


@pytest.mark.timeout(600)
def test_fuzzed_opc_ua_messages_leave_the_furnace_serving(fuzz: FuzzLab) -> None:
    @settings(
        max_examples=OPC_CASES,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        payload=st.one_of(
            st.binary(max_size=512),
            st.tuples(
                st.integers(0, len(HELLO)), st.binary(min_size=1, max_size=64), st.booleans()
            ).map(lambda c: HELLO[: c[0]] + c[1] + (HELLO[c[0] :] if c[2] else b"")),
            st.sampled_from([b"HELF", b"MSGF\xff\xff\xff\x7f", b"OPNF" + b"\x00" * 64]),
        )
    )
    def check(payload: bytes) -> None:
        fuzz.opc_send(payload)

    check()
    assert fuzz.opc_still_serves() is None
    assert fuzz.counts["furnace1 (OPC UA)"] >= OPC_CASES


def test_every_line_twin_of_the_bundled_lab_is_fuzzed(fuzz: FuzzLab) -> None:
    """A line twin added to the bundled lab must join :data:`LINE_TWINS`."""
    lines = [n for n, t in fuzz.twins.twins.items() if any(
        isinstance(v, ScpiDispatcher) for v in vars(t).values()
    )]  # fmt: skip
    assert sorted(lines) == sorted(_names(lines))
    assert sorted(lines) == sorted(LINE_TWINS)
