"""OPC UA security: certificates made on first use, the lab's trust folder, and a client's
policy, certificate and user (docs/decisions/0069-opcua-security.md).

The certificate folder (:func:`pki_dir`: ``$COUPONLAB_PKI_DIR``, else ``pki/`` in
couponlab's state folder) holds::

    own/<name>/cert.der, key.pem   this machine's application certificates (key mode 0600)
    trusted/*.der                  the certificates this machine's clients and twins trust
    rejected/*.der                 server certificates a client refused (move one to trusted/
                                   to trust it)

Certificates are self-signed (RSA 2048, SHA-256, 5 years), made on first use, and copied
into ``trusted/`` when made: applications that share the folder (the same user on the same
machine: a client and its twins) trust each other, and nothing else is trusted until the lab
puts its instrument's certificate there. A client checks the server's certificate against
``trusted/`` before it sends a password.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import ipaddress
import logging
import os
import secrets
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from asyncua import ua
from asyncua.client.client import Client
from asyncua.crypto import cert_gen
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from asyncua.crypto.truststore import TrustStore
from asyncua.crypto.validator import (
    CertificateValidator,
    CertificateValidatorMethod,
    CertificateValidatorOptions,
)
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID
from pydantic import ConfigDict, model_validator

from couponlab.credentials import (
    Credential,
    PasswordReference,
    private_dir,
    state_dir,
    write_private,
)
from couponlab.errors import InputError

log = logging.getLogger(__name__)

PKI_DIR_ENV = "COUPONLAB_PKI_DIR"
"""Environment variable naming the certificate folder (default: ``<state dir>/pki``)."""

CLIENT_APP_URI = "urn:couponlab:client"
"""Application URI of couponlab's OPC UA client (in its certificate)."""

SIGN_AND_ENCRYPT = "Basic256Sha256_SignAndEncrypt"
"""The one secure policy couponlab offers and asks for."""

NO_SECURITY = "None"
"""No signing, no encryption: written out in a lab file to mean it."""

Policy = Literal["Basic256Sha256_SignAndEncrypt", "None"]

CERT_DAYS = 5 * 365
"""Validity of a generated certificate, days."""


def pki_dir() -> Path:
    """Return the certificate folder: ``$COUPONLAB_PKI_DIR``, else ``<state dir>/pki``."""
    named = os.environ.get(PKI_DIR_ENV)
    return Path(named).expanduser() if named else state_dir() / "pki"


def _sans(app_uri: str) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(app_uri)]
    for dns in dict.fromkeys([socket.gethostname(), "localhost"]):
        names.append(x509.DNSName(dns))
    names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    return names


def _usable(cert_path: Path, app_uri: str) -> bool:
    """Whether a certificate is valid for 30 more days and names ``app_uri`` and this host."""
    try:
        cert = x509.load_der_x509_certificate(cert_path.read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    now = datetime.datetime.now(datetime.UTC)
    return (
        cert.not_valid_before_utc <= now
        and cert.not_valid_after_utc > now + datetime.timedelta(days=30)
        and app_uri in san.get_values_for_type(x509.UniformResourceIdentifier)
        and socket.gethostname() in san.get_values_for_type(x509.DNSName)
    )


@dataclass(frozen=True)
class Pki:
    """A certificate folder (see the module docstring).

    Attributes
    ----------
    root
        The folder (created at mode 0700 on first use).
    """

    root: Path

    @classmethod
    def default(cls) -> Pki:
        """Return the folder :func:`pki_dir` names."""
        return cls(pki_dir())

    @property
    def trusted(self) -> Path:
        """Return the folder of trusted certificates."""
        return self.root / "trusted"

    @property
    def rejected(self) -> Path:
        """Return the folder where a client saves a server certificate it refused."""
        return self.root / "rejected"

    def own_certificate(self, name: str, app_uri: str, *, server: bool) -> tuple[Path, Path]:
        """Return ``(cert.der, key.pem)`` of application ``name``, made on first use.

        A missing, expiring (30 days) or foreign (other URI or host name) certificate is
        made anew (RSA 2048, about 0.1 s), its key written at mode 0600, and the certificate
        copied to :attr:`trusted` as ``<name>.der``.
        """
        own = private_dir(self.root / "own")
        folder = own / name
        cert_path, key_path = folder / "cert.der", folder / "key.pem"
        if key_path.exists() and _usable(cert_path, app_uri):
            self._trust(name, cert_path)
            return cert_path, key_path
        key = cert_gen.generate_private_key()
        use = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        cert = cert_gen.generate_self_signed_app_certificate(
            key, app_uri, {"organizationName": "couponlab"}, _sans(app_uri), [use], CERT_DAYS
        )
        tmp = own / f".{name}.{secrets.token_hex(6)}"
        private_dir(tmp)
        write_private(tmp / "key.pem", cert_gen.dump_private_key_as_pem(key))
        (tmp / "cert.der").write_bytes(cert.public_bytes(Encoding.DER))
        if folder.exists():  # stale: keep it aside rather than delete a lab's key
            with contextlib.suppress(OSError):
                folder.rename(own / f".{name}.old-{secrets.token_hex(4)}")
        try:
            tmp.rename(folder)
            log.info("made OPC UA certificate %s (%s)", cert_path, app_uri)
        except OSError:  # another process made it meanwhile: use theirs
            shutil.rmtree(tmp, ignore_errors=True)
        self._trust(name, cert_path)
        return cert_path, key_path

    def _trust(self, name: str, cert_path: Path) -> None:
        target = private_dir(self.trusted) / f"{name}.der"
        data = cert_path.read_bytes()
        if not target.exists() or target.read_bytes() != data:
            tmp = target.with_name(f".{name}.{secrets.token_hex(6)}.tmp")
            tmp.write_bytes(data)
            tmp.replace(target)

    def validator(self, peer: Literal["client", "server"]) -> CertificateValidatorMethod:
        """Return a validator of a peer's certificate against :attr:`trusted` (read anew at
        every session, so a certificate added meanwhile counts): validity dates,
        application URI, key usage, and trust (``BadCertificateUntrusted``)."""
        role = (
            CertificateValidatorOptions.PEER_SERVER
            if peer == "server"
            else CertificateValidatorOptions.PEER_CLIENT
        )
        options = (
            CertificateValidatorOptions.TIME_RANGE
            | CertificateValidatorOptions.URI
            | CertificateValidatorOptions.TRUSTED
            | role
        )

        async def validate(cert: x509.Certificate, app: ua.ApplicationDescription) -> None:
            store = TrustStore([private_dir(self.trusted)], [])
            await store.load()
            await CertificateValidator(options, store).validate(cert, app)

        return validate

    async def trusts(self, der: bytes) -> bool:
        """Return whether a certificate (DER) is trusted by :attr:`trusted`."""
        store = TrustStore([private_dir(self.trusted)], [])
        await store.load()
        return store.is_trusted(x509.load_der_x509_certificate(der))

    def reject(self, der: bytes) -> Path:
        """Save a refused server certificate in :attr:`rejected`; return its path."""
        name = hashlib.sha256(der).hexdigest()[:16]
        path = private_dir(self.rejected) / f"{name}.der"
        path.write_bytes(der)
        return path


class OpcUaSecuritySettings(PasswordReference):
    """The ``settings.security`` block of an OPC UA lab entry (unknown keys refused).

    Attributes
    ----------
    policy
        ``Basic256Sha256_SignAndEncrypt`` or ``None`` (written out: no signing, no
        encryption, anonymous only).
    user
        User name to log in as (``None``: anonymous).
    password_env, password_file
        Where the user's password is (see :class:`~couponlab.credentials.Credential`);
        exactly one, only with ``user``. Never the password itself.
    pki_dir
        Certificate folder (default: :func:`pki_dir`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    policy: Policy
    user: str | None = None
    pki_dir: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> OpcUaSecuritySettings:
        has_password = self.password_env is not None or self.password_file is not None
        if self.user is not None and not self.user.strip():
            raise ValueError("user is empty (leave it out for an anonymous session)")
        if self.user is not None and not has_password:
            raise ValueError(f"user {self.user!r} needs password_env or password_file")
        if self.user is None and has_password:
            raise ValueError("a password needs a user")
        if self.policy == NO_SECURITY and self.user is not None:
            raise ValueError(
                "a user needs policy Basic256Sha256_SignAndEncrypt (no password in clear)"
            )
        if self.password_env is not None and self.password_file is not None:
            raise ValueError("give one of password_env or password_file, not both")
        return self

    def credential(self) -> Credential | None:
        """Return where the password is (None: anonymous)."""
        if self.user is None:
            return None
        return Credential(password_env=self.password_env, password_file=self.password_file)

    def client_security(self) -> ClientSecurity | None:
        """Return the client's security (None for ``policy: None``)."""
        if self.policy == NO_SECURITY:
            return None
        root = Path(self.pki_dir).expanduser() if self.pki_dir else pki_dir()
        return ClientSecurity(Pki(root), self.user, self.credential())


@dataclass(frozen=True)
class ClientSecurity:
    """Basic256Sha256 SignAndEncrypt for one client: certificate, trust and user.

    Attributes
    ----------
    pki
        The certificate folder (the client's certificate is made there on first use).
    user
        User name (None: an anonymous session over the secure channel).
    credential
        Where the user's password is (read at every connection).
    """

    pki: Pki
    user: str | None = None
    credential: Credential | None = None

    def prepare(self) -> None:
        """Make the client's certificate now if it is missing (blocking, about 0.1 s)."""
        self.pki.own_certificate("couponlab-client", CLIENT_APP_URI, server=False)

    async def apply(self, client: Client, device: str) -> None:
        """Set up ``client`` before it connects: policy, certificate, server check, user.

        Raises
        ------
        InputError
            The password cannot be read (nothing was sent).
        """
        password = self.credential.read(device) if self.credential is not None else None
        cert, key = self.pki.own_certificate("couponlab-client", CLIENT_APP_URI, server=False)
        client.application_uri = CLIENT_APP_URI
        await client.set_security(
            SecurityPolicyBasic256Sha256,
            str(cert),
            str(key),
            mode=ua.MessageSecurityMode.SignAndEncrypt,
        )
        client.certificate_validator = self.pki.validator("server")
        if self.user is not None:
            if password is None:  # pragma: no cover - a user always has a credential
                raise InputError(device, f"user {self.user!r} has no password")
            client.set_user(self.user)
            client.set_password(password)


__all__ = [
    "CLIENT_APP_URI",
    "NO_SECURITY",
    "PKI_DIR_ENV",
    "SIGN_AND_ENCRYPT",
    "ClientSecurity",
    "OpcUaSecuritySettings",
    "Pki",
    "Policy",
    "pki_dir",
]
