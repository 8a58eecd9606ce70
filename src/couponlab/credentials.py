"""Credentials a lab file refers to but never holds, and couponlab's state folder.

A lab file names where a password is, never the password itself::

    security: {user: operator, password_env: FURNACE1_PASSWORD}
    security: {user: operator, password_file: sim-lab/furnace1-operator.secret}

``password_env`` names an environment variable; ``password_file`` names a file outside any
repository: a relative path is taken under couponlab's state folder (:func:`state_dir`), an
absolute one (or ``~/...``) as it is. A password file must be readable by its owner only
(mode 0600, as ssh requires of its keys). A twin creates the files of its own accounts on
first use (:meth:`Credential.read_or_create`); a driver only reads them.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from couponlab.errors import InputError

STATE_DIR_ENV = "COUPONLAB_STATE_DIR"
"""Environment variable naming couponlab's state folder (tests point it at a tmp folder)."""

SECRET_KEYS = frozenset({"password", "passwd", "pwd", "secret", "passphrase", "token"})
"""Keys a lab file may not hold at any level: a credential is referred to, never written."""

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def state_dir() -> Path:
    """Return couponlab's state folder: ``$COUPONLAB_STATE_DIR``, else
    ``$XDG_STATE_HOME/couponlab``, else ``~/.local/state/couponlab`` (not created here)."""
    named = os.environ.get(STATE_DIR_ENV)
    if named:
        return Path(named).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "state"
    return base / "couponlab"


def private_dir(path: Path) -> Path:
    """Create ``path`` (and its parents) if missing, the last folder at mode 0700."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def inside_repository(path: Path) -> Path | None:
    """Return the work tree (a folder holding ``.git``) that contains ``path``, else None.

    The user's home folder itself is not looked at (a home kept in git is not "the
    repository" of a lab)."""
    home = Path.home().resolve()
    for parent in path.resolve().parents:
        if parent == home:
            return None
        if (parent / ".git").exists():
            return parent
    return None


def write_private(path: Path, data: bytes) -> bool:
    """Create ``path`` with ``data`` at mode 0600 unless it exists; return whether it did.

    The file appears whole or not at all (written beside it, then linked into place), so
    two processes creating it at once leave the first one's content.
    """
    private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        tmp.unlink(missing_ok=True)


def check_env_name(name: str) -> str:
    """Return ``name`` if it is an environment variable name (else ValueError)."""
    if not _ENV_NAME.match(name):
        raise ValueError(f"{name!r} is not an environment variable name")
    return name


def password_file_path(name: str) -> Path:
    """Return the absolute path of a lab file's ``password_file``.

    Raises
    ------
    ValueError
        An empty path, a relative path that leaves the state folder (``..``), or a file
        inside a git work tree.
    """
    if not name.strip():
        raise ValueError("password_file is empty")
    raw = Path(name).expanduser()
    if not raw.is_absolute() and ".." in raw.parts:
        raise ValueError(f"{name!r} must stay inside the state folder {state_dir()}")
    path = raw if raw.is_absolute() else state_dir() / raw
    repo = inside_repository(path)
    if repo is not None:
        raise ValueError(
            f"{str(path)!r} is inside the repository {str(repo)!r}; keep credentials "
            "outside any repository"
        )
    return path


class PasswordReference(BaseModel):
    """Where a password is, if anywhere: an environment variable's name (checked as a name)
    or a file (checked to lie outside any repository). Models that refer to a password
    inherit these two fields and their checks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    password_env: str | None = None
    password_file: str | None = None

    @field_validator("password_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        return None if value is None else check_env_name(value)

    @field_validator("password_file")
    @classmethod
    def _file_outside(cls, value: str | None) -> str | None:
        if value is not None:
            password_file_path(value)
        return value


class Credential(PasswordReference):
    """Where a password is: exactly one of an environment variable or a file.

    Attributes
    ----------
    password_env
        Name of the environment variable that holds the password.
    password_file
        File that holds the password (one line; mode 0600): relative to :func:`state_dir`,
        or absolute / ``~/...``; never inside a git work tree.
    """

    @model_validator(mode="after")
    def _one_place(self) -> Self:
        if (self.password_env is None) == (self.password_file is None):
            raise ValueError("give exactly one of password_env or password_file")
        return self

    def path(self) -> Path | None:
        """Return the password file's absolute path (None for ``password_env``)."""
        return None if self.password_file is None else password_file_path(self.password_file)

    def describe(self) -> str:
        """Return where the password is, for messages (never the password)."""
        if self.password_env is not None:
            return f"environment variable {self.password_env}"
        return f"file {self.path()}"

    def read(self, device: str) -> str:
        """Return the password.

        Raises
        ------
        InputError
            The variable is unset or empty; the file is missing, unreadable, empty, or
            readable by others than its owner.
        """
        if self.password_env is not None:
            value = os.environ.get(self.password_env, "")
            if not value:
                raise InputError(device, f"environment variable {self.password_env} is not set")
            return value
        path = self.path()
        assert path is not None
        try:
            mode = path.stat().st_mode
            text = path.read_text().strip()
        except OSError as exc:
            raise InputError(
                device, f"cannot read password file {path}: {exc.strerror or exc}"
            ) from None
        if stat.S_IMODE(mode) & 0o077:
            raise InputError(
                device, f"password file {path} is readable by others: chmod 600 {path}"
            )
        if not text:
            raise InputError(device, f"password file {path} is empty")
        return text

    def read_or_create(self, device: str) -> str:
        """Return the password, creating a random one in a missing password file first.

        For a twin's own accounts: the first start of a twin makes the password that its
        lab's driver then reads. An environment variable is never invented.
        """
        path = self.path()
        if path is not None and not path.exists():
            write_private(path, (secrets.token_urlsafe(24) + "\n").encode())
        return self.read(device)


def secret_keys_in(data: object, prefix: str = "") -> list[str]:
    """Return the dotted keys of ``data`` (nested mappings and lists) that would hold a
    credential inline (:data:`SECRET_KEYS`, any case)."""
    found: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            dotted = f"{prefix}{key}"
            if str(key).lower() in SECRET_KEYS:
                found.append(dotted)
            found += secret_keys_in(value, dotted + ".")
    elif isinstance(data, list):
        for i, value in enumerate(data):
            found += secret_keys_in(value, f"{prefix}{i}.")
    return found


__all__ = [
    "SECRET_KEYS",
    "STATE_DIR_ENV",
    "Credential",
    "check_env_name",
    "inside_repository",
    "password_file_path",
    "private_dir",
    "secret_keys_in",
    "state_dir",
    "write_private",
]
