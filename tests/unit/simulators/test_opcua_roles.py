"""Roles of the OPC UA twins: operators write and call, viewers read, nobody edits the
address space, and no password or certificate-less channel gets a session it should not."""

from __future__ import annotations

import pytest
from asyncua import ua
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.ua.object_ids import ObjectIds

from couponlab.simulators.opcua_security import LabUser, LabUserManager, RolePermissions


def _type(identifier: int) -> ua.NodeId:
    return ua.NodeId(ua.Int32(identifier), ua.Int16(0))


READ = _type(ObjectIds.ReadRequest_Encoding_DefaultBinary)
BROWSE = _type(ObjectIds.BrowseRequest_Encoding_DefaultBinary)
WRITE = _type(ObjectIds.WriteRequest_Encoding_DefaultBinary)
CALL = _type(ObjectIds.CallRequest_Encoding_DefaultBinary)
ADD_NODES = _type(ObjectIds.AddNodesRequest_Encoding_DefaultBinary)
DELETE_NODES = _type(ObjectIds.DeleteNodesRequest_Encoding_DefaultBinary)
ADD_REFS = _type(ObjectIds.AddReferencesRequest_Encoding_DefaultBinary)
HISTORY_UPDATE = _type(ObjectIds.HistoryUpdateRequest_Encoding_DefaultBinary)

OPERATOR = LabUser(role=UserRole.User, name="op", lab_role="operator")
VIEWER = LabUser(role=UserRole.User, name="view", lab_role="viewer")
ADMIN = User(role=UserRole.Admin, name="admin")  # asyncua's own Admin: not a lab role


@pytest.mark.parametrize(
    ("user", "allowed"),
    [
        (OPERATOR, {READ, BROWSE, WRITE, CALL}),
        (VIEWER, {READ, BROWSE}),
        (ADMIN, set()),
    ],
)
def test_each_role_may_send_only_its_requests(user: User, allowed: set[ua.NodeId]) -> None:
    rules = RolePermissions()
    for request in (READ, BROWSE, WRITE, CALL, ADD_NODES, DELETE_NODES, ADD_REFS, HISTORY_UPDATE):
        assert rules.check_validity(user, request, None) is (request in allowed), request


MANAGER = LabUserManager(
    {"op": ("right", "operator"), "view": ("seen", "viewer")}, anonymous=None, secure=True
)
CERT = b"client certificate"


def test_a_right_password_gives_the_accounts_role() -> None:
    user = MANAGER.get_user(None, "op", "right", CERT)
    assert isinstance(user, LabUser) and user.lab_role == "operator"
    assert user.role != UserRole.Admin
    viewer = MANAGER.get_user(None, "view", "seen", CERT)
    assert isinstance(viewer, LabUser) and viewer.lab_role == "viewer"


@pytest.mark.parametrize(
    ("name", "password", "certificate"),
    [
        ("op", "wrong", CERT),
        ("op", "", CERT),
        ("admin", "right", CERT),
        ("Admin", "anything", CERT),
        (None, None, CERT),  # anonymous, not allowed here
        ("op", "right", b""),  # the right password over a NoSecurity channel
        ("op", "right", None),
    ],
)
def test_everything_else_is_refused_at_activation(
    name: str | None, password: str | None, certificate: bytes | None
) -> None:
    assert MANAGER.get_user(None, name, password, certificate) is None


def test_an_allowed_anonymous_session_gets_only_its_role() -> None:
    manager = LabUserManager({}, anonymous="viewer", secure=False)
    user = manager.get_user(None, None, None, b"")
    assert isinstance(user, LabUser) and user.lab_role == "viewer"
