"""Credentials are referred to, never held: where a password may be, how it is read, and
the certificates made on first use (docs/decisions/0069-opcua-security.md)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pydantic import ValidationError

from couponlab.credentials import Credential, secret_keys_in, state_dir
from couponlab.drivers.furnace._lab_entry import FurnaceSettings
from couponlab.errors import InputError
from couponlab.transports import CLIENT_APP_URI, OpcUaSecuritySettings, Pki

SECURE = "Basic256Sha256_SignAndEncrypt"


def test_the_suite_keeps_its_state_out_of_the_users_folder(couponlab_state_dir: Path) -> None:
    assert state_dir() == couponlab_state_dir
    assert ".local" not in state_dir().parts


@pytest.mark.parametrize(
    "given",
    [
        {},
        {"password_env": "A", "password_file": "a.secret"},
        {"password_env": "not a name"},
        {"password_file": "../escape.secret"},
        {"password_file": ""},
        {"password": "hunter2"},
    ],
)
def test_a_credential_is_in_exactly_one_acceptable_place(given: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        Credential.model_validate(given)


def test_a_password_file_inside_a_repository_is_refused(tmp_path: Path) -> None:
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    with pytest.raises(ValidationError, match="inside the repository"):
        Credential(password_file=str(tmp_path / "repo" / "config" / "furnace.secret"))


def test_a_relative_password_file_is_under_the_state_folder() -> None:
    cred = Credential(password_file="lab/furnace.secret")
    assert cred.path() == state_dir() / "lab" / "furnace.secret"


def test_the_environment_variable_is_read_and_a_missing_one_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cred = Credential(password_env="COUPONLAB_TEST_SECRET")
    monkeypatch.delenv("COUPONLAB_TEST_SECRET", raising=False)
    with pytest.raises(InputError, match="COUPONLAB_TEST_SECRET is not set"):
        cred.read("furnace1")
    monkeypatch.setenv("COUPONLAB_TEST_SECRET", "s3cret")
    assert cred.read("furnace1") == "s3cret"


def test_a_twin_makes_a_private_password_file_once_and_a_driver_reads_it(
    tmp_path: Path,
) -> None:
    cred = Credential(password_file=str(tmp_path / "lab" / "operator.secret"))
    with pytest.raises(InputError, match="cannot read password file"):
        cred.read("furnace1")  # a driver never invents one
    made = cred.read_or_create("furnace1")
    assert len(made) >= 24
    path = cred.path()
    assert path is not None and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert cred.read_or_create("furnace1") == made == cred.read("furnace1")


def test_a_password_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "open.secret"
    path.write_text("s3cret\n")
    path.chmod(0o644)
    with pytest.raises(InputError, match="readable by others"):
        Credential(password_file=str(path)).read("furnace1")


def test_secret_keys_are_found_at_any_depth() -> None:
    data = {"settings": {"security": {"user": "op", "Password": "x"}}, "list": [{"token": 1}]}
    assert secret_keys_in(data) == ["settings.security.Password", "list.0.token"]


@pytest.mark.parametrize(
    "security",
    [
        {"user": "operator", "password_env": "P"},  # no policy: never implied
        {"policy": "Basic256Sha256"},
        {"policy": SECURE, "user": "operator"},  # a user without a password
        {"policy": SECURE, "password_env": "P"},  # a password without a user
        {"policy": "None", "user": "operator", "password_env": "P"},  # a password in clear
        {"policy": SECURE, "certificate": "/etc/x.pem"},
    ],
)
def test_the_furnace_refuses_unclear_security_settings(security: dict[str, str]) -> None:
    model, problems = FurnaceSettings.validate_section({"security": security})
    assert model is None and problems
    assert all(key.startswith("settings.security") for key, _ in problems)


def test_no_security_means_no_client_security() -> None:
    assert OpcUaSecuritySettings(policy="None").client_security() is None


def test_certificates_are_made_once_with_a_private_key_and_trusted(tmp_path: Path) -> None:
    pki = Pki(tmp_path / "pki")
    cert, key = pki.own_certificate("couponlab-client", CLIENT_APP_URI, server=False)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    parsed = x509.load_der_x509_certificate(cert.read_bytes())
    san = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert CLIENT_APP_URI in san.get_values_for_type(x509.UniformResourceIdentifier)
    assert parsed.public_key().key_size == 2048  # type: ignore[union-attr]
    assert (pki.trusted / "couponlab-client.der").read_bytes() == cert.read_bytes()
    again = pki.own_certificate("couponlab-client", CLIENT_APP_URI, server=False)
    assert again == (cert, key)
    assert cert.read_bytes() == parsed.public_bytes(Encoding.DER)  # not remade
