"""The asyncua signal backend against a small OPC UA server on 127.0.0.1 (its own thread).

Units and ranges come from the server's EngineeringUnits/EURange, a read is one request,
bad values are refused before a write reaches the server (a server-side spy records every
write), Bad status replies, timeouts and dropped links raise typed errors, the link comes
back with bounded back-off, and subscriptions deliver changes.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import time
from collections.abc import AsyncIterator, Iterator
from typing import Annotated as A  # noqa: N817
from typing import Any

import numpy as np
import ophyd_async
import pytest
from asyncua import Server, ua
from asyncua.common.callback import CallbackType, ServerItemCallback
from asyncua.common.node import Node as UaNode
from ophyd_async.core import (
    Array1D,
    Command,
    SignalR,
    SignalRW,
    StrictEnum,
    TriggerableCommand,
)
from wait_for2 import CancelledWithResultError

from couponlab.drivers._opcua import (
    Node,
    OpcUaDevice,
    OpcUaDeviceConnector,
    OpcUaMethodBackend,
    OpcUaR,
    OpcUaRW,
    OpcUaSignalBackend,
    fast_get_value,
    void_signature,
)
from couponlab.errors import (
    ConnectionLostError,
    InputError,
    InstrumentRestartedError,
    InstrumentTimeoutError,
    OutOfLimitsError,
    ProtocolError,
)
from couponlab.simulators.background import BackgroundLoop
from couponlab.transports import Backoff, OpcUaConnection, OpcUaStatusError
from couponlab.transports._opcua_units import unece_code, unit_from_eu
from couponlab.values import ValueSpec

NS = "urn:couponlab:test-mini"
FAST = Backoff(attempts=2, initial=0.02, maximum=0.05)


class Mode(StrictEnum):
    STANDBY = "standby"
    MANUAL = "manual"


def _eu(display: str, code: str) -> ua.EUInformation:
    uid = int.from_bytes(code.encode(), "big") if code else 0
    return ua.EUInformation(
        NamespaceUri="http://www.opcfoundation.org/UA/units/un/cefact",
        UnitId=uid,
        DisplayName=ua.LocalizedText(display),
    )


class MiniServer:
    """An OPC UA server with a few typed variables, units, ranges and methods."""

    def __init__(self) -> None:
        self.port = 0
        self.server: Server | None = None
        self.ns = 0
        self.nodes: dict[str, UaNode] = {}
        self.writes: list[str] = []
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    async def start(self, port: int = 0) -> None:
        server = Server()
        await server.init()
        if not port:
            import socket

            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
        server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        self.ns = ns = await server.register_namespace(NS)
        dev = await server.nodes.objects.add_object(
            ua.NodeId("Dev", ns), ua.QualifiedName("Dev", ns)
        )

        async def var(
            name: str,
            value: Any,
            vt: ua.VariantType,
            *,
            eu: ua.EUInformation | None = None,
            rng: tuple[float, float] | None = None,
            writable: bool = True,
        ) -> None:
            sid = f"Dev.{name}"
            node = await dev.add_variable(
                ua.NodeId(sid, ns), ua.QualifiedName(name, ns), ua.Variant(value, vt)
            )
            if writable:
                await node.set_writable()
            if eu is not None:
                await node.add_property(
                    ua.NodeId(f"{sid}.EngineeringUnits", ns),
                    ua.QualifiedName("EngineeringUnits", 0),
                    eu,
                )
            if rng is not None:
                await node.add_property(
                    ua.NodeId(f"{sid}.EURange", ns),
                    ua.QualifiedName("EURange", 0),
                    ua.Range(Low=rng[0], High=rng[1]),
                )
            self.nodes[name] = node

        await var("Temp", 25.0, ua.VariantType.Double, eu=_eu("°C", "CEL"), rng=(0, 1200))
        await var("Rate", 10.0, ua.VariantType.Double, eu=_eu("K/min", "F11"), rng=(0, 100))
        await var("Kelvin", 300.0, ua.VariantType.Double, eu=_eu("K", "KEL"))
        await var("Out", 0.0, ua.VariantType.Double, eu=_eu("%", "P1"), rng=(0, 100))
        await var("Profile", [25.0] * 4, ua.VariantType.Double, eu=_eu("°C", "CEL"), rng=(0, 1200))
        await var("Name", "coupon-1", ua.VariantType.String)
        await var("Flag", False, ua.VariantType.Boolean, writable=False)
        await var("Mode", "standby", ua.VariantType.String, writable=False)
        await var("Count", 3, ua.VariantType.Int32)
        await var("Locked", 1.0, ua.VariantType.Double, eu=_eu("mm", "MMT"), writable=False)
        await var("Odd", 1.0, ua.VariantType.Double, eu=_eu("bogons", ""))

        # async methods run on the server's loop (sync ones would run in a thread pool)
        async def refuse(parent: ua.NodeId) -> ua.StatusCode:
            self.calls.append(("Refuse", ()))
            return ua.StatusCode(ua.StatusCodes.BadInvalidState)

        async def echo(parent: ua.NodeId, values: ua.Variant) -> list[ua.Variant]:
            self.calls.append(("Echo", (list(values.Value),)))
            return []

        async def slow(parent: ua.NodeId) -> list[ua.Variant]:
            self.calls.append(("Slow", ()))
            await asyncio.sleep(0.6)
            return []

        arr = ua.Argument(Name="values", DataType=ua.NodeId(ua.ObjectIds.Double), ValueRank=1)
        await dev.add_method(
            ua.NodeId("Dev.Refuse", ns), ua.QualifiedName("Refuse", ns), refuse, [], []
        )
        await dev.add_method(
            ua.NodeId("Dev.Echo", ns), ua.QualifiedName("Echo", ns), echo, [arr], []
        )
        await dev.add_method(ua.NodeId("Dev.Slow", ns), ua.QualifiedName("Slow", ns), slow, [], [])

        def spy(event: ServerItemCallback, dispatcher: Any) -> None:
            for item in event.request_params.NodesToWrite:
                self.writes.append(str(item.NodeId.Identifier))

        server.subscribe_server_callback(CallbackType.PreWrite, spy)
        await server.start()
        self.server, self.port = server, port

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
            self.server = None

    async def value(self, name: str) -> Any:
        return await self.nodes[name].read_value()

    async def set(self, name: str, value: Any, vt: ua.VariantType) -> None:
        await self.nodes[name].write_value(ua.Variant(value, vt))

    @property
    def url(self) -> str:
        return f"opc.tcp://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def twin_loop() -> Iterator[BackgroundLoop]:
    bg = BackgroundLoop("opcua-mini")
    yield bg
    bg.stop()


@pytest.fixture(scope="module")
def mini(twin_loop: BackgroundLoop) -> Iterator[MiniServer]:
    srv = MiniServer()
    twin_loop.run(srv.start())
    yield srv
    twin_loop.run(srv.stop())


@pytest.fixture
async def conn(mini: MiniServer) -> AsyncIterator[OpcUaConnection]:
    c = OpcUaConnection("mini", mini.url, NS, timeout=0.5, backoff=FAST)
    yield c
    await c.disconnect()


def _sig(conn: OpcUaConnection, dtype: Any, name: str, units: str | None = None) -> SignalR[Any]:
    return SignalR(OpcUaSignalBackend(dtype, conn, f"Dev.{name}", units=units), name=name)


def _sigw(conn: OpcUaConnection, dtype: Any, name: str, units: str | None = None) -> SignalRW[Any]:
    return SignalRW(
        OpcUaSignalBackend(dtype, conn, f"Dev.{name}", units=units, writable=True), name=name
    )


# -- units ------------------------------------------------------------------------------------


def test_unece_codes_and_display_names() -> None:
    assert unece_code(4408652) == "CEL"
    assert unit_from_eu(_eu("°C", "CEL")) == "degC"
    assert unit_from_eu(_eu("", "CEL")) == "degC"  # no display name: the code decides
    assert unit_from_eu(_eu("K/min", "")) == "K/min"
    assert unit_from_eu(_eu("%", "P1")) == "%"
    assert unit_from_eu(_eu("mm", "MMT")) == "mm"
    assert unit_from_eu(_eu("kPa", "")) == "kPa"  # pint parses what we do not list
    assert unit_from_eu(_eu("bogons", "")) is None


async def test_descriptor_carries_units_and_range(conn: OpcUaConnection) -> None:
    temp = _sigw(conn, float, "Temp", "degC")
    rate = _sigw(conn, float, "Rate", "K/min")
    out = _sig(conn, float, "Out")
    await asyncio.gather(temp.connect(), rate.connect(), out.connect())
    dk = (await temp.describe())["Temp"]
    assert dk["units"] == "degC"
    assert dk["limits"]["control"] == {"low": 0.0, "high": 1200.0}
    assert dk["source"] == f"{conn.url}#Dev.Temp"
    assert (await rate.describe())["Rate"]["units"] == "K/min"
    assert (await out.describe())["Out"]["units"] == "%"


async def test_unit_mismatch_fails_at_connect(conn: OpcUaConnection) -> None:
    kelvin = _sig(conn, float, "Kelvin", "degC")  # the server says K
    with pytest.raises(ProtocolError, match=r"Dev.Kelvin is in 'K'; this driver expects 'degC'"):
        await kelvin.connect()


async def test_unknown_unit_fails_at_connect(conn: OpcUaConnection) -> None:
    with pytest.raises(ProtocolError, match="unknown engineering unit"):
        await _sig(conn, float, "Odd").connect()


async def test_wrong_namespace_is_a_protocol_error(mini: MiniServer) -> None:
    c = OpcUaConnection("mini", mini.url, "urn:nobody", timeout=0.5, backoff=FAST)
    try:
        with pytest.raises(ProtocolError, match="does not serve namespace 'urn:nobody'"):
            await c.connect()
    finally:
        await c.disconnect()


# -- reading ------------------------------------------------------------------------------


async def test_reads_each_datatype(conn: OpcUaConnection) -> None:
    sigs = {
        "Temp": _sig(conn, float, "Temp", "degC"),
        "Profile": _sig(conn, Array1D[np.float64], "Profile", "degC"),
        "Name": _sig(conn, str, "Name"),
        "Flag": _sig(conn, bool, "Flag"),
        "Mode": _sig(conn, Mode, "Mode"),
        "Count": _sig(conn, int, "Count"),
    }
    await asyncio.gather(*(s.connect() for s in sigs.values()))
    assert await sigs["Temp"].get_value() == 25.0
    np.testing.assert_array_equal(await sigs["Profile"].get_value(), [25.0] * 4)
    assert (await sigs["Profile"].describe())["Profile"]["shape"] == [4]
    assert await sigs["Name"].get_value() == "coupon-1"
    assert await sigs["Flag"].get_value() is False
    assert await sigs["Mode"].get_value() == Mode.STANDBY
    assert (await sigs["Mode"].describe())["Mode"]["choices"] == ["standby", "manual"]
    assert await sigs["Count"].get_value() == 3
    reading = (await sigs["Temp"].read())["Temp"]
    assert reading["value"] == 25.0 and reading["timestamp"] > 1e9


async def test_wrong_datatype_is_a_protocol_error(conn: OpcUaConnection) -> None:
    with pytest.raises(
        ProtocolError, match=r"Dev.Name: unexpected value: 'coupon-1' is not a number"
    ):
        await _sig(conn, float, "Name").connect()


class MiniDevice(OpcUaDevice):
    """A declarative device over the mini server's ``Dev`` object."""

    temp: A[OpcUaRW[float], Node("Temp", ValueSpec("degC", "temperature", lab_limit="max_t"))]
    label: A[OpcUaR[str], Node("Name")]
    flag: A[OpcUaR[bool], Node("Flag")]
    echo: A[Command[[Array1D[np.float64]], None], Node("Echo")]


async def test_a_declared_device_reads_in_one_request(
    conn: OpcUaConnection, mini: MiniServer
) -> None:
    connector = OpcUaDeviceConnector(conn, "Dev.", {"max_t": 900.0})
    dev = MiniDevice(name="mini", connector=connector)
    await dev.connect()
    temp, name, flag = dev.temp, dev.label, dev.flag
    client = conn.client
    assert client is not None
    sent: list[str] = []
    original = client.uaclient.read_attributes

    async def counting(nodeids: list[ua.NodeId], attr: Any) -> Any:
        sent.append(",".join(str(n.Identifier) for n in nodeids))
        return await original(nodeids, attr)

    client.uaclient.read_attributes = counting  # type: ignore[method-assign]
    assert await connector.read(temp, name, flag) == [25.0, "coupon-1", False]
    assert sent == ["Dev.Temp,Dev.Name,Dev.Flag"]
    await temp.get_value()
    assert sent[-1] == "Dev.Temp" and len(sent) == 2
    assert connector.eurange(temp) == (0.0, 1200.0)


async def test_a_declared_signal_takes_the_lab_limit_and_converts_units(
    conn: OpcUaConnection, mini: MiniServer, twin_loop: BackgroundLoop
) -> None:
    dev = MiniDevice(name="mini", connector=OpcUaDeviceConnector(conn, "Dev.", {"max_t": 900.0}))
    await dev.connect()
    try:
        with pytest.raises(OutOfLimitsError, match=r"\[0, 900\] degC"):
            await dev.temp.set("901 degC")
        await dev.temp.set("1000 K")
        assert await twin_loop.arun(mini.value("Temp")) == pytest.approx(726.85)
        await dev.echo.execute(np.array([1.0, 2.0]))
        assert mini.calls[-1] == ("Echo", ([1.0, 2.0],))
    finally:
        await dev.temp.set(25.0)


def test_every_declared_child_needs_a_node() -> None:
    class NoNode(OpcUaDevice):
        temp: OpcUaR[float]

    conn = OpcUaConnection("mini", "opc.tcp://127.0.0.1:4840", NS)
    with pytest.raises(TypeError, match="exactly one Node"):
        NoNode(connector=OpcUaDeviceConnector(conn, "Dev."))


async def test_the_pinned_fast_path_reads_what_ophyd_async_reads(conn: OpcUaConnection) -> None:
    """drivers/_opcua.fast_get_value uses SignalR._backend_or_cache: pinned to 0.21."""
    assert ophyd_async.__version__.startswith("0.21."), "re-check fast_get_value"
    profile = _sig(conn, Array1D[np.float64], "Profile", "degC")
    await profile.connect()
    fast = await fast_get_value(profile, None)
    assert np.array_equal(fast, await SignalR.get_value(profile))
    assert fast.tolist() == [25.0] * 4


# -- writing ------------------------------------------------------------------------------


async def test_write_reaches_the_server(
    conn: OpcUaConnection, mini: MiniServer, twin_loop: BackgroundLoop
) -> None:
    temp = _sigw(conn, float, "Temp", "degC")
    profile = _sigw(conn, Array1D[np.float64], "Profile", "degC")
    await asyncio.gather(temp.connect(), profile.connect())
    try:
        await temp.set(850.0)
        await profile.set(np.array([900.0, 800.0, 700.0, 600.0]))
        assert await twin_loop.arun(mini.value("Temp")) == 850.0
        assert await twin_loop.arun(mini.value("Profile")) == [900.0, 800.0, 700.0, 600.0]
        assert (await temp.locate())["setpoint"] == 850.0
    finally:
        await twin_loop.arun(mini.set("Temp", 25.0, ua.VariantType.Double))
        await twin_loop.arun(mini.set("Profile", [25.0] * 4, ua.VariantType.Double))


@pytest.mark.parametrize(
    ("name", "dtype", "value", "error", "match"),
    [
        (
            "Temp",
            float,
            1500.0,
            OutOfLimitsError,
            r"Dev.Temp = 1500 degC is outside .*\[0, 1200\]",
        ),
        ("Temp", float, -1.0, OutOfLimitsError, "outside the allowed range"),
        ("Temp", float, math.nan, InputError, "not a finite number"),
        ("Temp", float, math.inf, InputError, "not a finite number"),
        ("Temp", float, "850", InputError, "is not a number"),
        ("Temp", float, True, InputError, "is not a number"),
        ("Temp", float, None, InputError, "no value given"),
        ("Profile", Array1D[np.float64], [900.0, 800.0], InputError, "needs 4 values, got 2"),
        ("Profile", Array1D[np.float64], [900.0, 800.0, 1300.0, 0.0], OutOfLimitsError, "1300"),
        ("Profile", Array1D[np.float64], [900.0, math.nan, 1.0, 0.0], InputError, "finite"),
        ("Name", str, 12, InputError, "is not a string"),
        ("Count", int, 2.5, InputError, "is not an integer"),
    ],
)
async def test_bad_values_never_reach_the_server(
    conn: OpcUaConnection,
    mini: MiniServer,
    twin_loop: BackgroundLoop,
    name: str,
    dtype: Any,
    value: Any,
    error: type[Exception],
    match: str,
) -> None:
    sig = _sigw(conn, dtype, name)
    await sig.connect()
    before = await twin_loop.arun(mini.value(name))
    writes = len(mini.writes)
    with pytest.raises(error, match=match):
        await sig.set(value)
    assert len(mini.writes) == writes, "a refused value reached the server"
    assert await twin_loop.arun(mini.value(name)) == before


async def test_read_only_signal_refuses_put(conn: OpcUaConnection, mini: MiniServer) -> None:
    backend = OpcUaSignalBackend(float, conn, "Dev.Temp")
    await backend.connect(1.0)
    writes = len(mini.writes)
    with pytest.raises(InputError, match="read-only"):
        await backend.put(30.0)
    assert len(mini.writes) == writes


async def test_bad_status_reply_is_typed(conn: OpcUaConnection, mini: MiniServer) -> None:
    locked = _sigw(conn, float, "Locked")  # the server refuses writes to it
    await locked.connect()
    with pytest.raises(
        OpcUaStatusError, match=r"write Dev.Locked refused .*BadUserAccessDenied"
    ) as info:
        await locked.set(2.0)
    assert info.value.status == "BadUserAccessDenied"
    assert isinstance(info.value, ProtocolError)


# -- methods ------------------------------------------------------------------------------


async def test_method_call_and_refusal(conn: OpcUaConnection, mini: MiniServer) -> None:
    echo: Command[[Array1D[np.float64]], None] = Command(
        OpcUaMethodBackend(
            conn,
            "Dev",
            "Dev.Echo",
            inspect.Signature(
                [
                    inspect.Parameter(
                        "values",
                        inspect.Parameter.POSITIONAL_OR_KEYWORD,
                        annotation=Array1D[np.float64],
                    )
                ],
                return_annotation=None,
            ),
            [ua.VariantType.Double],
        ),
        name="echo",
    )
    refuse = TriggerableCommand(OpcUaMethodBackend(conn, "Dev", "Dev.Refuse", void_signature()))
    missing = TriggerableCommand(OpcUaMethodBackend(conn, "Dev", "Dev.Nope", void_signature()))
    await asyncio.gather(echo.connect(), refuse.connect())
    await echo.execute(np.array([1.0, 2.0]))
    assert mini.calls[-1] == ("Echo", ([1.0, 2.0],))
    with pytest.raises(OpcUaStatusError, match="BadInvalidState"):
        await refuse.trigger()
    with pytest.raises(Exception, match="BadNodeIdUnknown"):
        await missing.connect()


async def test_request_timeout_is_typed_and_link_survives(
    mini: MiniServer,
) -> None:
    c = OpcUaConnection("mini", mini.url, NS, timeout=0.2, backoff=FAST)
    slow = TriggerableCommand(OpcUaMethodBackend(c, "Dev", "Dev.Slow", void_signature()))
    temp = _sig(c, float, "Temp")
    try:
        await asyncio.gather(slow.connect(), temp.connect())
        # the typed error is not a TimeoutError, so ophyd-async does not re-wrap it
        with pytest.raises(InstrumentTimeoutError) as info:
            await slow.trigger()
        assert str(info.value).startswith("mini: no reply to call Dev.Slow() from")
        # the server answers a session's requests in order: once the slow call is done the
        # link works again, and the late reply is not taken for the next answer
        await asyncio.sleep(0.7)
        assert await temp.get_value() == 25.0
    finally:
        await c.disconnect()


async def test_a_reply_that_came_while_this_process_stood_still_is_no_timeout(
    mini: MiniServer,
) -> None:
    """The deadline is the instrument's: while this process's loop cannot run (a document
    callback drawing its first figure, a collection, a busy machine), the reply waits unread
    in the socket, and that stall is not counted against the instrument. A silent
    instrument still times out (the previous test)."""
    c = OpcUaConnection("mini", mini.url, NS, timeout=0.2, backoff=FAST)
    temp = _sig(c, float, "Temp")
    loop = asyncio.get_running_loop()
    try:
        await temp.connect()
        for _ in range(3):
            loop.call_soon(time.sleep, 1.0)  # the loop stands still 5x the timeout
            assert await temp.get_value() == 25.0
    finally:
        await c.disconnect()


async def test_a_reply_that_arrives_as_the_timeout_cancels_it_is_a_timeout(
    mini: MiniServer,
) -> None:
    """asyncua's ``wait_for2`` raises CancelledWithResultError, a CancelledError subclass that
    ``asyncio.timeout`` does not turn into TimeoutError, when the reply arrives just as the
    wait is cancelled: a late reply, not a link closed under the request."""
    c = OpcUaConnection("mini", mini.url, NS, timeout=0.1, backoff=FAST)
    temp = _sig(c, float, "Temp")

    async def late_reply(client: Any) -> None:
        try:
            await asyncio.sleep(5.0)  # the deadline cancels this
        except asyncio.CancelledError:
            raise CancelledWithResultError(b"the reply", False) from None

    try:
        await temp.connect()
        generation = c.generation
        with pytest.raises(InstrumentTimeoutError, match=r"no reply to call Dev\.Late"):
            await c.request("call Dev.Late()", late_reply, idempotent=False)
        assert c.connected and c.generation == generation  # one late reply keeps the link
        assert await temp.get_value() == 25.0
        cancelled = asyncio.ensure_future(
            c.request("call Dev.Late()", late_reply, idempotent=False)
        )
        await asyncio.sleep(0)
        cancelled.cancel()  # a request cancelled by its caller stays cancelled
        with pytest.raises(asyncio.CancelledError):
            await cancelled
    finally:
        await c.disconnect()


# -- the link -----------------------------------------------------------------------------


async def test_no_server_gives_up_with_bounded_backoff(free_port: int) -> None:
    c = OpcUaConnection("mini", f"opc.tcp://127.0.0.1:{free_port}", NS, timeout=0.3, backoff=FAST)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    try:
        with pytest.raises(ConnectionLostError, match="after 2 attempts"):
            await c.connect()
    finally:
        await c.disconnect()
    assert loop.time() - t0 < 5.0  # bounded, not the asyncua default of retrying forever


def test_bad_addresses_are_refused_offline() -> None:
    for url in ("tcp://127.0.0.1:4840", "opc.tcp://127.0.0.1", "opc.tcp://:4840"):
        with pytest.raises(InputError, match="mini"):
            OpcUaConnection("mini", url, NS)


async def test_dropped_link_raises_then_reconnects(twin_loop: BackgroundLoop) -> None:
    srv = MiniServer()
    await twin_loop.arun(srv.start())
    port = srv.port
    c = OpcUaConnection("mini", srv.url, NS, timeout=0.3, backoff=FAST)
    temp = _sigw(c, float, "Temp", "degC")
    try:
        await temp.connect()
        assert await temp.get_value() == 25.0
        await twin_loop.arun(srv.stop())
        with pytest.raises(ConnectionLostError, match="mini"):
            await temp.get_value()
        with pytest.raises(ConnectionLostError):
            await temp.set(30.0)
        await twin_loop.arun(srv.start(port))
        with pytest.raises(InstrumentRestartedError, match="mini: the instrument restarted"):
            await temp.get_value()  # reconnected with back-off: a new server start time
        assert c.restarts == 1
        assert await temp.get_value() == 25.0  # said once; the link is up
        await temp.set(30.0)
        assert await twin_loop.arun(srv.value("Temp")) == 30.0
        assert c.reconnects >= 1 and c.generation >= 2
    finally:
        await c.disconnect()
        await twin_loop.arun(srv.stop())


async def test_a_dropped_link_never_affects_another_device(
    twin_loop: BackgroundLoop, mini: MiniServer
) -> None:
    """Two devices, two clients: one server goes away, the other device reads and writes on."""
    gone = MiniServer()
    await twin_loop.arun(gone.start())
    lost = OpcUaConnection("lost", gone.url, NS, timeout=0.3, backoff=FAST)
    kept = OpcUaConnection("kept", mini.url, NS, timeout=0.5, backoff=FAST)
    lost_temp, kept_temp = _sigw(lost, float, "Temp", "degC"), _sigw(kept, float, "Temp", "degC")
    try:
        await lost_temp.connect()
        await kept_temp.connect()
        await twin_loop.arun(gone.stop())
        with pytest.raises(ConnectionLostError, match="lost"):
            await lost_temp.get_value()
        with pytest.raises(ConnectionLostError, match="lost"):
            await lost.connect()  # the bounded back-off gives up, for this device only
        await kept_temp.set(31.0)
        assert await kept_temp.get_value() == 31.0
        assert kept.reconnects == 0 and kept.generation == 1
    finally:
        await kept_temp.set(25.0)
        await lost.disconnect()
        await kept.disconnect()


# -- subscriptions ------------------------------------------------------------------------


async def test_subscription_delivers_changes(
    conn: OpcUaConnection, mini: MiniServer, twin_loop: BackgroundLoop
) -> None:
    out = _sig(conn, float, "Out", "%")
    await out.connect()
    seen: list[float] = []
    got_two = asyncio.Event()

    def cb(reading: dict[str, Any]) -> None:
        seen.append(reading["Out"]["value"])
        if len(seen) >= 2:
            got_two.set()

    out.subscribe_reading(cb)
    try:
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.02)
        assert seen == [0.0]  # the current value arrives first
        await twin_loop.arun(mini.set("Out", 42.0, ua.VariantType.Double))
        await asyncio.wait_for(got_two.wait(), 5.0)
        assert seen[-1] == 42.0
        assert await out.get_value(cached=True) == 42.0
    finally:
        out.clear_sub(cb)
        await twin_loop.arun(mini.set("Out", 0.0, ua.VariantType.Double))


def _late_data_change(client_handle: int) -> ua.PublishResult:
    item = ua.MonitoredItemNotification(ClientHandle=client_handle, Value=ua.DataValue(1.0))
    message = ua.NotificationMessage(
        SequenceNumber=1_000_000, NotificationData=[ua.DataChangeNotification([item])]
    )
    return ua.PublishResult(NotificationMessage=message)


async def test_a_data_change_for_a_removed_monitor_is_no_warning(
    conn: OpcUaConnection, caplog: pytest.LogCaptureFixture
) -> None:
    """The server may have queued a data change before it deleted the monitored item: it
    arrives after the removal, and asyncua warns of an unknown handle. For an item this
    process removed that is expected (a debug line); any other unknown handle still warns."""
    caplog.set_level(logging.DEBUG, logger="asyncua.common.subscription")
    caplog.set_level(logging.DEBUG, logger="couponlab.transports._opcua")
    seen = asyncio.Event()
    handle = conn.monitor("Dev.Out", lambda dv: seen.set())
    await asyncio.wait_for(seen.wait(), 5.0)  # the item exists: its first value came
    sub = conn._subscription
    assert sub is not None
    conn.unmonitor(handle)
    await asyncio.gather(*conn._tasks)  # the item is deleted on the server
    # gone from the subscription too, even if it was removed while still being created
    # (its first value may come before the server's reply to the creation)
    assert list(sub._monitored_items) == []
    await sub.publish_callback(_late_data_change(handle))
    late = [r for r in caplog.records if "unknown handle" in r.getMessage()]
    assert late == []
    ignored = f"removed monitored item {handle} ignored"
    assert any(ignored in r.getMessage() for r in caplog.records)
    await sub.publish_callback(_late_data_change(2**31 - 1))  # never issued
    (warned,) = [r for r in caplog.records if "unknown handle" in r.getMessage()]
    assert warned.levelno == logging.WARNING and warned.args == (2**31 - 1,)
