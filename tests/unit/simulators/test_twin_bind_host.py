"""Twins bind 127.0.0.1 whatever host the lab file names; only the operator's ``--bind``
(``start_lab_twins(bind=...)``) moves them, and then every twin and the control channel move.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from couponlab.cli import build_parser, sample_lab_path
from couponlab.labfile import LabFile, load_lab
from couponlab.simulators.bind_host import operator_bind, reachable_host, with_host
from couponlab.simulators.lab_twins import TwinLab, start_lab_twins
from couponlab.simulators.line_server import LineServer
from couponlab.simulators.world import World, WorldConfig

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads the listening sockets from /proc"
)


def _listening() -> dict[int, set[str]]:
    """Return port -> the IPv4/IPv6 hosts that sockets on this machine listen on."""
    found: dict[int, set[str]] = {}
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A":  # TCP_LISTEN
                continue
            host_hex, port_hex = fields[1].split(":")
            if width == 8:
                host = ".".join(str(b) for b in reversed(bytes.fromhex(host_hex)))
            else:
                host = "::" if int(host_hex, 16) == 0 else host_hex
            found.setdefault(int(port_hex, 16), set()).add(host)
    return found


def _port(address: str) -> int:
    return int(address.rstrip("/").replace("::SOCKET", "").rsplit(":", 1)[1])


def _with_twin_hosts(lab: LabFile, host: str) -> LabFile:
    """The lab with every twin address naming ``host`` (built directly: the lab-file check
    refuses such hosts, this is what start_lab_twins must not trust either)."""
    return lab.with_addresses({d.name: with_host(d.address, host) for d in lab.devices if d.twin})


async def _start(lab: LabFile, **kwargs: str) -> TwinLab:
    world = World(WorldConfig.model_validate(lab.world), paused=True)
    return await start_lab_twins(lab, world=world, run_clock=False, **kwargs)


@pytest.fixture
async def stopping() -> AsyncIterator[list[TwinLab]]:
    started: list[TwinLab] = []
    yield started
    for running in started:
        await running.stop()
    await asyncio.get_running_loop().shutdown_default_executor()


def test_with_host_keeps_notation_and_port() -> None:
    assert with_host("socket://0.0.0.0:0", "127.0.0.1") == "socket://127.0.0.1:0"
    assert with_host("opc.tcp://10.1.2.3:4840", "127.0.0.1") == "opc.tcp://127.0.0.1:4840"
    assert with_host("TCPIP::lab-pc::5025::SOCKET", "h") == "TCPIP::h::5025::SOCKET"
    assert with_host("tcp://0.0.0.0:7", "127.0.0.2") == "tcp://127.0.0.2:7"
    assert with_host("ASRL/dev/ttyUSB0::INSTR", "h") == "ASRL/dev/ttyUSB0::INSTR"
    assert reachable_host("0.0.0.0") == "127.0.0.1"
    assert reachable_host("127.0.0.2") == "127.0.0.2"


async def test_a_lab_naming_every_interface_still_binds_loopback(
    stopping: list[TwinLab],
) -> None:
    lab = _with_twin_hosts(load_lab(sample_lab_path()), "0.0.0.0")
    assert all("0.0.0.0" in d.address for d in lab.devices if d.twin)
    running = await _start(lab)
    stopping.append(running)
    listening = _listening()
    served = [d.address for d in running.lab.devices if d.twin]
    assert running.lab.twin_control is not None
    served.append(running.lab.twin_control)
    assert len(served) == len(running.twins) + 1
    for address in served:
        assert "127.0.0.1" in address, address
        assert listening.get(_port(address)) == {"127.0.0.1"}, address


async def test_bind_moves_every_twin_and_the_control_channel(stopping: list[TwinLab]) -> None:
    running = await _start(load_lab(sample_lab_path()), bind="127.0.0.2")
    stopping.append(running)
    listening = _listening()
    assert running.lab.twin_control is not None
    served = [d.address for d in running.lab.devices if d.twin] + [running.lab.twin_control]
    for address in served:
        assert "127.0.0.2" in address, address
        assert listening.get(_port(address)) == {"127.0.0.2"}, address


def test_twin_serve_bind_option_defaults_to_loopback() -> None:
    args = build_parser().parse_args(["twin", "serve", "sim"])
    assert args.bind == "127.0.0.1"
    args = build_parser().parse_args(["twin", "serve", "sim", "--bind", "127.0.0.2"])
    assert args.bind == "127.0.0.2"


async def test_a_twin_started_directly_refuses_another_interface() -> None:
    world = World(WorldConfig(), paused=True)
    server = LineServer(world, lambda line: None, host="0.0.0.0", port=0)
    with pytest.raises(ValueError, match=r"127\.0\.0\.1 only, not '0\.0\.0\.0'"):
        await server.start()
    with operator_bind("127.0.0.2"):
        moved = LineServer(world, lambda line: None, host="127.0.0.2", port=0)
        await moved.start()
    try:
        assert _listening().get(moved.port) == {"127.0.0.2"}
    finally:
        await moved.stop()
