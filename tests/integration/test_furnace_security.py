"""The bundled lab's furnace twin lets no one in who should not be (docs/security.md,
docs/decisions/0069-opcua-security.md): Basic256Sha256 SignAndEncrypt only, users with
roles, nobody edits the address space."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest
from asyncua import ua
from asyncua.client.client import Client
from asyncua.ua.uaerrors import UaError, UaStatusCodeError

from couponlab.cli import sample_lab_path
from couponlab.credentials import Credential
from couponlab.drivers.furnace import OpcUaGradientFurnace
from couponlab.errors import AccessDeniedError
from couponlab.labfile import DeviceEntry, load_lab
from couponlab.simulators.furnace import FurnaceModel
from couponlab.transports import CLIENT_APP_URI, ClientSecurity, OpcUaSecuritySettings, Pki
from couponlab.twins import BackgroundTwins

NAME = "furnace1"
NAMESPACE = "urn:couponlab:gradient-furnace"
SETPOINT = "Furnace.Zones.Zone1.Setpoint"


@pytest.fixture(scope="module")
def twins() -> Iterator[BackgroundTwins]:
    lab = load_lab(sample_lab_path())
    only_furnace = lab.model_copy(update={"devices": [lab.device(NAME)]})
    with BackgroundTwins(only_furnace) as running:
        yield running


def _entry(twins: BackgroundTwins) -> DeviceEntry:
    return twins.lab.device(NAME)


def _secret(twins: BackgroundTwins, user: str) -> Credential:
    account = _entry(twins).twin_config["users"][user]
    return Credential(password_file=account["password_file"])


def _security(
    twins: BackgroundTwins, user: str | None, credential: Credential | None
) -> ClientSecurity:
    settings = OpcUaSecuritySettings.model_validate(_entry(twins).settings["security"])
    security = settings.client_security()
    assert security is not None
    return ClientSecurity(security.pki, user, credential)


async def _client(twins: BackgroundTwins, security: ClientSecurity | None) -> Client:
    client = Client(_entry(twins).address, timeout=10)
    if security is not None:
        await security.apply(client, "test")
    return client


@pytest.fixture
async def viewer(twins: BackgroundTwins) -> AsyncIterator[Client]:
    client = await _client(twins, _security(twins, "viewer", _secret(twins, "viewer")))
    await client.connect()
    try:
        yield client
    finally:
        await client.disconnect()


@pytest.fixture
async def operator(twins: BackgroundTwins) -> AsyncIterator[Client]:
    client = await _client(twins, _security(twins, "operator", _secret(twins, "operator")))
    await client.connect()
    try:
        yield client
    finally:
        await client.disconnect()


def _setpoint(twins: BackgroundTwins) -> float:
    model = twins.world.instruments[NAME]
    assert isinstance(model, FurnaceModel)
    return float(model.target_c[0])


async def _node(client: Client, string_id: str) -> ua.NodeId:
    ns = await client.get_namespace_index(NAMESPACE)
    return ua.NodeId(ua.String(string_id), ua.Int16(ns))


async def test_the_bundled_furnace_offers_only_sign_and_encrypt(twins: BackgroundTwins) -> None:
    client = Client(_entry(twins).address, timeout=10)
    endpoints = await client.connect_and_get_server_endpoints()
    assert {(e.SecurityPolicyUri.rsplit("#")[-1], e.SecurityMode) for e in endpoints} == {
        ("Basic256Sha256", ua.MessageSecurityMode.SignAndEncrypt)
    }
    tokens = {t.TokenType for e in endpoints for t in e.UserIdentityTokens}
    assert tokens == {ua.UserTokenType.UserName}  # no anonymous sessions


async def test_the_operator_of_the_lab_file_writes_and_runs(twins: BackgroundTwins) -> None:
    furnace = OpcUaGradientFurnace.from_lab_entry(_entry(twins))
    await furnace.connect(timeout=30)
    try:
        await furnace.setpoint_profile.set(np.full(furnace.num_zones, 120.0))
        assert await twins.acall(_setpoint, twins) == 120.0
        await furnace.standby_cmd.trigger()
        assert await twins.acall(_setpoint, twins) < 120.0
    finally:
        await furnace.disconnect()


async def test_a_viewer_reads_but_cannot_write_or_call(
    twins: BackgroundTwins, viewer: Client
) -> None:
    before = await twins.acall(_setpoint, twins)
    node = viewer.get_node(await _node(viewer, SETPOINT))
    assert await node.read_value() == before
    with pytest.raises(UaStatusCodeError) as refused:
        await node.write_value(ua.DataValue(ua.Variant(300.0, ua.VariantType.Double)))
    assert refused.value.code == ua.StatusCodes.BadUserAccessDenied
    furnace = viewer.get_node(await _node(viewer, "Furnace"))
    with pytest.raises(UaStatusCodeError) as refused:
        await furnace.call_method(await _node(viewer, "Furnace.Standby"))
    assert refused.value.code == ua.StatusCodes.BadUserAccessDenied
    assert await twins.acall(_setpoint, twins) == before


@pytest.mark.parametrize(
    ("user", "password"), [("operator", "not-the-password"), ("admin", "admin"), (None, None)]
)
async def test_a_wrong_password_admin_or_anonymous_is_refused_at_activation(
    twins: BackgroundTwins,
    user: str | None,
    password: str | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    credential = None
    if password is not None:
        monkeypatch.setenv("COUPONLAB_TEST_PASSWORD", password)
        credential = Credential(password_env="COUPONLAB_TEST_PASSWORD")
    client = await _client(twins, _security(twins, user, credential))
    with pytest.raises(UaStatusCodeError) as refused:
        await client.connect()
    assert refused.value.code in (
        ua.StatusCodes.BadUserAccessDenied,
        ua.StatusCodes.BadIdentityTokenRejected,
    )


async def test_the_driver_with_a_wrong_password_cannot_write_and_says_why(
    twins: BackgroundTwins, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COUPONLAB_TEST_PASSWORD", "not-the-password")
    settings = dict(_entry(twins).settings)
    settings["security"] = {
        **settings["security"],
        "password_file": None,
        "password_env": "COUPONLAB_TEST_PASSWORD",
    }
    entry = _entry(twins).model_copy(update={"settings": settings})
    furnace = OpcUaGradientFurnace.from_lab_entry(entry)
    with pytest.raises(AccessDeniedError, match=r"user 'operator'.*BadUserAccessDenied"):
        await furnace.connection.connect()
    await furnace.connection.disconnect()


async def test_nobody_edits_the_address_space(twins: BackgroundTwins, operator: Client) -> None:
    objects = operator.nodes.objects
    ns = await operator.get_namespace_index(NAMESPACE)
    with pytest.raises(UaStatusCodeError) as refused:
        await objects.add_folder(ns, "Intruder")
    assert refused.value.code == ua.StatusCodes.BadUserAccessDenied
    limit = operator.get_node(await _node(operator, "Furnace.Interlock.Limit"))
    with pytest.raises(UaStatusCodeError) as refused:
        await operator.delete_nodes([limit])
    assert refused.value.code == ua.StatusCodes.BadUserAccessDenied
    assert await limit.read_value() > 0  # still there
    namespaces = operator.get_node(ua.NodeId(ua.ObjectIds.Server_NamespaceArray))
    with pytest.raises(UaStatusCodeError):
        await namespaces.write_value(["urn:evil"], ua.VariantType.String)
    assert NAMESPACE in await namespaces.read_value()


async def test_a_no_security_client_cannot_open_a_session(twins: BackgroundTwins) -> None:
    client = Client(_entry(twins).address, timeout=10)
    with pytest.raises(UaError, match="No matching endpoints"):
        await client.connect()
    # a client that ignores the endpoint list: the server refuses the session itself
    rogue = Client(_entry(twins).address, timeout=10)
    await rogue.connect_socket()
    try:
        await rogue.send_hello()
        await rogue.open_secure_channel()
        params = ua.CreateSessionParameters(
            ClientDescription=ua.ApplicationDescription(ApplicationUri="urn:rogue"),
            EndpointUrl=_entry(twins).address,
            SessionName="rogue",
            ClientNonce=b"0" * 32,
            RequestedSessionTimeout=60_000,
        )
        await rogue.uaclient.create_session(params)
        with pytest.raises(UaStatusCodeError) as refused:
            await rogue.uaclient.activate_session(ua.ActivateSessionParameters())
        assert refused.value.code == ua.StatusCodes.BadIdentityTokenRejected  # anonymous
        password = _secret(twins, "operator").read("test")  # even the right one, in clear
        token = ua.UserNameIdentityToken(
            PolicyId="username", UserName="operator", Password=password.encode()
        )
        with pytest.raises(UaStatusCodeError) as refused:
            await rogue.uaclient.activate_session(
                ua.ActivateSessionParameters(UserIdentityToken=token)
            )
        assert refused.value.code == ua.StatusCodes.BadUserAccessDenied
    finally:
        rogue.disconnect_socket()


async def test_a_furnace_with_an_untrusted_certificate_gets_no_password(
    twins: BackgroundTwins, tmp_path: Path
) -> None:
    """A client whose folder does not trust the furnace refuses it before ActivateSession
    (which carries the password), though the furnace itself accepts the client."""
    stranger = Pki(tmp_path / "elsewhere")
    security = ClientSecurity(stranger, "operator", _secret(twins, "operator"))
    furnace = OpcUaGradientFurnace(_entry(twins).address, NAME, security=security)
    cert, _key = stranger.own_certificate("couponlab-client", CLIENT_APP_URI, server=False)
    welcome = Pki.default().trusted / "stranger-client.der"  # the twin trusts this client
    welcome.write_bytes(cert.read_bytes())
    try:
        with pytest.raises(AccessDeniedError, match="not trusted") as refused:
            await furnace.connection.connect()
    finally:
        welcome.unlink()
        await furnace.connection.disconnect()
    saved = list(stranger.rejected.glob("*.der"))
    assert len(saved) == 1 and str(saved[0]) in str(refused.value)
    assert saved[0].read_bytes() == (Pki.default().trusted / "couponlab-twin.der").read_bytes()


async def test_a_furnace_that_does_not_trust_the_client_is_named(
    twins: BackgroundTwins, tmp_path: Path
) -> None:
    stranger = Pki(tmp_path / "elsewhere")
    twin_cert = Pki.default().trusted / "couponlab-twin.der"
    stranger.trusted.mkdir(parents=True)
    (stranger.trusted / "furnace.der").write_bytes(twin_cert.read_bytes())  # we trust it
    security = ClientSecurity(stranger, "operator", _secret(twins, "operator"))
    furnace = OpcUaGradientFurnace(_entry(twins).address, NAME, security=security)
    with pytest.raises(AccessDeniedError, match="refused this client's certificate"):
        await furnace.connection.connect()
    await furnace.connection.disconnect()
