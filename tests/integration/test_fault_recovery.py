"""Recovery on every transport: the same faults, met by a TCP socket, a VISA resource, a
serial link (pyserial ``socket://``) and the OPC UA client, each against a twin on its own
thread. Each kind ends in a typed error or a recovered exchange, never a hang or an untyped
error, and a power loss is reported once as ``InstrumentRestartedError``. Faults are ended
by clearing them, never by waiting for them to run out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from asyncua import ua
from twin_entries import FEEDER_TWIN

from couponlab.errors import (
    ConnectionLostError,
    InstrumentError,
    InstrumentRestartedError,
    InstrumentTimeoutError,
    ProtocolError,
)
from couponlab.labfile import LabFile
from couponlab.simulators.furnace.server import NAMESPACE_URI
from couponlab.transports import (
    Backoff,
    OpcUaConnection,
    ScpiClient,
    SerialLineTransport,
    TcpLineTransport,
    VisaLineTransport,
    make_transport,
)
from couponlab.twins import BackgroundTwins

FAST = Backoff(attempts=3, initial=0.02, maximum=0.05)
TIMEOUT_S = 2.0
"""Exchange timeout of the clients here, wall s (a stall must outlast it: it is cleared only
after the client has given up). Not shorter: the twins share this process, and on a loaded
2-core machine a reconnected VISA link's first reply (``*ESR?``, pyvisa's own timeout, which
counts this process's stalls) once took over 0.5 s."""
LINKS = {
    "tcp": ("stage_tcp", None, TcpLineTransport),
    "visa": ("stage_visa", None, VisaLineTransport),
    "serial": ("feeder", {"baudrate": 115200}, SerialLineTransport),
}
"""Transport kind -> (device, serial framing, the transport make_transport must pick)."""


def _lab() -> LabFile:
    stage = {
        "family": "xy_stage",
        "driver": "couponlab.drivers.stage:ScpiXyStage",
        "twin": True,
        "limits": {"x": ["-10 mm", "150 mm"], "max_velocity": "40 mm/s"},
    }
    return LabFile.model_validate(
        {
            "name": "faults",
            "world": {"speedup": 100, "seed": 1},
            "devices": [
                {**stage, "name": "stage_tcp", "address": "socket://127.0.0.1:0"},
                {**stage, "name": "stage_visa", "address": "TCPIP::127.0.0.1::0::SOCKET"},
                {**FEEDER_TWIN, "name": "feeder"},
                {
                    "name": "furnace",
                    "family": "gradient_furnace",
                    "driver": "couponlab.drivers.furnace:OpcUaGradientFurnace",
                    "address": "opc.tcp://127.0.0.1:0",
                    "twin": True,
                    "limits": {"max_temperature": "1150 degC"},
                    "settings": {"zones": 8},
                },
            ],
        }
    )


@pytest.fixture(scope="module")
def twins() -> Iterator[BackgroundTwins]:
    running = BackgroundTwins(_lab())
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(autouse=True)
def _no_faults_left(twins: BackgroundTwins) -> Iterator[None]:
    yield
    twins.call(twins.world.faults.clear)


def inject(twins: BackgroundTwins, device: str, kind: str, **params: Any) -> None:
    twins.call(lambda: twins.world.faults.inject(device, kind, **params))


def clear(twins: BackgroundTwins, device: str) -> None:
    twins.call(lambda: twins.world.faults.clear(device))


@pytest.fixture(params=sorted(LINKS))
async def link(request: pytest.FixtureRequest, twins: BackgroundTwins) -> AsyncIterator[Any]:
    """``(device, client)``: a connected ScpiClient over each transport kind."""
    device, serial, kind = LINKS[request.param]
    transport = make_transport(
        device, twins.lab.device(device).address, timeout=TIMEOUT_S, serial=serial, backoff=FAST
    )
    assert isinstance(transport, kind)
    client = ScpiClient(transport)
    await client.open(clear=True)
    await client.query("*IDN?")  # the twin has handled the *CLS before a test injects
    try:
        yield device, client
    finally:
        await client.close()


async def test_a_dropped_link_is_reestablished_by_the_next_exchange(
    twins: BackgroundTwins, link: Any
) -> None:
    device, client = link
    idn = await client.query("*IDN?")
    inject(twins, device, "drop")
    assert await client.query("*IDN?") == idn  # an idempotent query: retried on a new link
    assert client.transport.reconnects >= 1 and client.transport.restarts == 0


async def test_a_link_that_stays_down_ends_in_connection_lost(
    twins: BackgroundTwins, link: Any
) -> None:
    device, client = link
    inject(twins, device, "drop", for_s=1e6)
    with pytest.raises(ConnectionLostError, match=device):
        await client.query("*IDN?")
    clear(twins, device)
    assert await client.query("*IDN?")  # back: the next exchange reconnects


async def test_a_stall_times_out_and_the_link_recovers(twins: BackgroundTwins, link: Any) -> None:
    device, client = link
    idn = await client.query("*IDN?")
    inject(twins, device, "stall")
    with pytest.raises(InstrumentTimeoutError, match=f"{device}: no reply to"):
        await client.query("*IDN?")
    clear(twins, device)
    assert await client.query("*IDN?") == idn  # a fresh link: the late reply is not taken


async def test_writes_into_a_stalled_instrument_end_in_a_lost_link_not_a_hang(
    twins: BackgroundTwins, link: Any
) -> None:
    device, client = link
    inject(twins, device, "stall")
    line = "*CLS;" + "X" * 990

    async def flood() -> None:
        for _ in range(100_000):  # ~100 MB: more than every buffer between us holds
            await client.write(line)

    with pytest.raises(ConnectionLostError, match=device):
        await flood()
    clear(twins, device)
    assert await client.query("*IDN?")


async def test_a_garbled_reply_is_a_protocol_error(twins: BackgroundTwins, link: Any) -> None:
    device, client = link
    idn = await client.query("*IDN?")
    inject(twins, device, "garble")
    with pytest.raises(ProtocolError, match=f"{device}: garbled reply"):
        await client.query("*IDN?")
    clear(twins, device)
    assert await client.query("*IDN?") == idn


async def test_a_truncated_status_is_a_protocol_error(twins: BackgroundTwins, link: Any) -> None:
    device, client = link
    inject(twins, device, "truncate")
    with pytest.raises(ProtocolError, match=device):
        await client.command("*CLS")  # its status reply, cut short, does not parse
    clear(twins, device)
    await client.command("*CLS")


async def test_an_instrument_error_fails_the_next_checked_command(
    twins: BackgroundTwins, link: Any
) -> None:
    device, client = link
    inject(twins, device, "error", code=-241, message="Hardware missing")
    with pytest.raises(ProtocolError, match=r"Hardware missing \(-241\)"):
        await client.checked_query("*IDN?")
    assert await client.checked_query("*IDN?")  # reported once


async def test_a_power_loss_is_reported_once_as_a_restart(
    twins: BackgroundTwins, link: Any
) -> None:
    device, client = link
    idn = await client.query("*IDN?")
    inject(twins, device, "power_loss")
    with pytest.raises(InstrumentRestartedError, match=f"{device}: the instrument restarted"):
        await client.query("*IDN?")
    assert client.transport.restarts == 1
    assert await client.query("*IDN?") == idn  # the link is up; the identity answers again


async def test_a_power_loss_while_off_is_a_lost_link_then_a_restart(
    twins: BackgroundTwins, link: Any
) -> None:
    device, client = link
    inject(twins, device, "power_loss", for_s=1e6)
    with pytest.raises(ConnectionLostError):
        await client.query("*IDN?")
    clear(twins, device)  # power is back
    with pytest.raises(InstrumentRestartedError):
        await client.query("*IDN?")


# -- OPC UA -----------------------------------------------------------------------------------
@pytest.fixture
async def furnace(twins: BackgroundTwins) -> AsyncIterator[OpcUaConnection]:
    conn = OpcUaConnection(
        "furnace",
        twins.lab.device("furnace").address,
        NAMESPACE_URI,
        timeout=TIMEOUT_S,
        backoff=FAST,
    )
    await conn.connect()
    try:
        yield conn
    finally:
        await conn.disconnect()


async def _state(conn: OpcUaConnection) -> str:
    (value,) = await conn.read(["Furnace.State"])
    return str(value.Value.Value)


async def test_opcua_drop_reconnects_and_power_loss_is_a_restart(
    twins: BackgroundTwins, furnace: OpcUaConnection
) -> None:
    await furnace.write("Furnace.RampRate", ua.Variant(5.0, ua.VariantType.Double))
    inject(twins, "furnace", "drop")
    assert await _state(furnace) == "standby"
    assert furnace.restarts == 0
    inject(twins, "furnace", "power_loss")
    with pytest.raises(InstrumentRestartedError, match="furnace: the instrument restarted"):
        await _state(furnace)
    assert furnace.restarts == 1
    (rate,) = await furnace.read(["Furnace.RampRate"])
    assert rate.Value.Value == 0.0  # its power-on default, not what was written


@pytest.mark.parametrize("kind", ["stall", "garble", "truncate"])
async def test_opcua_link_faults_end_in_a_typed_error_and_recover(
    twins: BackgroundTwins, furnace: OpcUaConnection, kind: str
) -> None:
    inject(twins, "furnace", kind)
    with pytest.raises(InstrumentError, match="furnace"):
        await _state(furnace)
    clear(twins, "furnace")
    assert await _state(furnace) == "standby"
