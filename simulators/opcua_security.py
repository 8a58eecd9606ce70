"""Users, roles and endpoint security of an OPC UA twin (docs/decisions/0069-opcua-security.md).

Two roles, checked on every request by :class:`RolePermissions` (asyncua's permission
ruleset, which sees each request's type before it is served):

* ``operator``: reads, browses, subscribes, writes values and calls methods (setpoints,
  programs);
* ``viewer``: reads, browses and subscribes only.

Nobody adds or deletes nodes or references, and no user is asyncua's ``Admin`` (which may
rewrite attributes other than values, such as ``NamespaceArray``'s): the address space is
the instrument's, not a client's. A wrong user name or password is refused when the session
is activated (``BadUserAccessDenied``); so is an anonymous session unless the twin's
``anonymous`` role allows it, and, when the endpoint is secure, any session on a channel
without a certificate (a ``NoSecurity`` client).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Any, Literal

from asyncua import ua
from asyncua.crypto.permission_rules import USER_TYPES, SimpleRoleRuleset, User, UserRole
from asyncua.server.server import Server
from asyncua.server.user_managers import UserManager
from asyncua.ua.object_ids import ObjectIds
from pydantic import BaseModel, ConfigDict, model_validator

from couponlab.credentials import Credential
from couponlab.transports import Pki

Role = Literal["operator", "viewer"]

TWIN_APP_URI = "urn:couponlab:twin"
"""Application URI of the twins' OPC UA servers (in their certificate)."""


def _ns0(identifier: int) -> ua.NodeId:
    return ua.NodeId(ua.Int32(identifier), ua.Int16(0))


_WRITE_TYPES = frozenset(
    _ns0(t)
    for t in (
        ObjectIds.WriteRequest_Encoding_DefaultBinary,
        ObjectIds.CallRequest_Encoding_DefaultBinary,
    )
)
_READ_TYPES = frozenset(_ns0(t) for t in USER_TYPES) - _WRITE_TYPES


@dataclass
class LabUser(User):
    """An asyncua user with a lab role (never ``UserRole.Admin``)."""

    lab_role: Role = "viewer"


class RolePermissions(SimpleRoleRuleset):
    """Allow a request by its type and the session's lab role; refuse everything else
    (address-space edits, server registration, history updates) to everyone.

    A ``SimpleRoleRuleset`` by type only (asyncua's ``Server`` asks for one): its table by
    asyncua role is never used."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]

    def check_validity(self, user: Any, action_type_id: ua.NodeId, body: Any) -> bool:
        """Return whether ``user`` may send a request of type ``action_type_id``."""
        role = getattr(user, "lab_role", None)
        if action_type_id in _READ_TYPES:
            return role in ("operator", "viewer")
        if action_type_id in _WRITE_TYPES:
            return role == "operator"
        return False


class TwinAccount(BaseModel):
    """One account of a twin (``twin_config.users.<name>``): its role and where its
    password is (created with a random password on the twin's first start if it is a
    missing file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role
    password_env: str | None = None
    password_file: str | None = None

    @model_validator(mode="after")
    def _one_place(self) -> TwinAccount:
        self.credential()
        return self

    def credential(self) -> Credential:
        """Return where the password is (exactly one place; raises ValueError otherwise)."""
        return Credential(password_env=self.password_env, password_file=self.password_file)


@dataclass
class LabUserManager(UserManager):
    """Check user names and passwords against the twin's accounts.

    Attributes
    ----------
    accounts
        User name -> (password, role).
    anonymous
        Role of an anonymous session (None: refused).
    secure
        Refuse a session whose channel carries no client certificate.
    """

    accounts: dict[str, tuple[str, Role]] = field(default_factory=dict)
    anonymous: Role | None = None
    secure: bool = False

    def get_user(
        self,
        iserver: Any,
        username: str | None = None,
        password: str | None = None,
        certificate: Any = None,
    ) -> User | None:
        """Return the session's user, or None to refuse the activation."""
        if self.secure and not certificate:  # b"" on a NoSecurity channel
            return None
        if username is None:
            if self.anonymous is None:
                return None
            return LabUser(role=UserRole.Anonymous, name=None, lab_role=self.anonymous)
        expected, role = self.accounts.get(username, ("", "viewer"))
        given = password if isinstance(password, str) else ""
        ok = hmac.compare_digest(given.encode(), expected.encode())
        if not ok or username not in self.accounts or not expected:
            return None
        return LabUser(role=UserRole.User, name=username, lab_role=role)


@dataclass(frozen=True)
class ServerSecurity:
    """Endpoint security and accounts of one twin's OPC UA server.

    Attributes
    ----------
    secure
        Offer only Basic256Sha256 SignAndEncrypt (True) or only NoSecurity (False).
    pki
        Certificate folder (the twin's certificate is made there on first use).
    accounts
        User name -> (password, role); user names are accepted only when ``secure``.
    anonymous
        Role of anonymous sessions (None: refused).
    """

    secure: bool
    pki: Pki | None = None
    accounts: dict[str, tuple[str, Role]] = field(default_factory=dict)
    anonymous: Role | None = None

    @classmethod
    def open(cls) -> ServerSecurity:
        """NoSecurity, anonymous sessions as operators (a twin on loopback, as before)."""
        return cls(secure=False, anonymous="operator")

    async def apply(self, server: Server) -> None:
        """Configure ``server`` (after ``init``, before the address space is served)."""
        manager = LabUserManager(dict(self.accounts), self.anonymous, self.secure)
        server.iserver.set_user_manager(manager)
        server.iserver.allow_remote_admin = False
        rules = RolePermissions()
        if not self.secure:
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity], rules)
            # no user names over a channel that does not encrypt them
            server.set_identity_tokens([ua.AnonymousIdentityToken])
            return
        if self.pki is None:
            raise ValueError("a secure twin needs a certificate folder")
        cert, key = self.pki.own_certificate("couponlab-twin", TWIN_APP_URI, server=True)
        await server.set_application_uri(TWIN_APP_URI)
        await server.load_certificate(str(cert))
        await server.load_private_key(str(key))
        server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt], rules)
        tokens: list[type] = [ua.UserNameIdentityToken]
        if self.anonymous is not None:
            tokens.insert(0, ua.AnonymousIdentityToken)
        server.set_identity_tokens(tokens)
        server.set_certificate_validator(self.pki.validator("client"))


__all__ = [
    "TWIN_APP_URI",
    "LabUser",
    "LabUserManager",
    "Role",
    "RolePermissions",
    "ServerSecurity",
    "TwinAccount",
]
