"""The registry's SQLite schema, its version table and its migrations.

``MIGRATIONS[k]`` takes a database from schema version ``k`` to ``k + 1``; a new version is one
more entry at the end (never an edit of an old one). :func:`open_database` applies the pending
ones, each in its own transaction together with its row in ``schema_version``.

Wall times are ISO 8601 UTC strings (``2026-12-01T13:30:00.123456+00:00``); JSON columns hold
``json.dumps(..., sort_keys=True)`` text.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from couponlab.errors import RegistryError

BUSY_TIMEOUT_S = 10.0
"""How long a write waits for another process's write transaction to end, wall s."""

_V1 = """
CREATE TABLE campaigns (
    id       TEXT PRIMARY KEY,
    spec     TEXT NOT NULL,                 -- JSON
    created  TEXT NOT NULL
);
CREATE TABLE samples (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('coupon', 'specimen')),
    parent_id   TEXT REFERENCES samples (id),
    campaign_id TEXT NOT NULL REFERENCES campaigns (id),
    created     TEXT NOT NULL,
    attributes  TEXT NOT NULL,              -- JSON: print parameters (coupon), geometry
    CHECK ((kind = 'coupon') = (parent_id IS NULL))
);
CREATE INDEX samples_by_campaign ON samples (campaign_id);
CREATE INDEX samples_by_parent ON samples (parent_id);
CREATE TABLE locations (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,   -- history order
    sample_id  TEXT NOT NULL REFERENCES samples (id),
    station    TEXT NOT NULL,
    step       TEXT,                                -- campaign step key (NULL: none)
    at         TEXT NOT NULL
);
CREATE INDEX locations_by_sample ON locations (sample_id, seq);
CREATE TABLE exposures (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    run_uid     TEXT NOT NULL UNIQUE,
    hot_c       REAL NOT NULL,
    cold_c      REAL NOT NULL,
    hold_s      REAL NOT NULL,
    exposure_s  REAL NOT NULL,
    step        TEXT,
    recorded    TEXT NOT NULL
);
CREATE TABLE exposure_samples (
    exposure_seq INTEGER NOT NULL REFERENCES exposures (seq),
    sample_id    TEXT NOT NULL REFERENCES samples (id),
    PRIMARY KEY (exposure_seq, sample_id)
);
CREATE INDEX exposure_samples_by_sample ON exposure_samples (sample_id);
CREATE TABLE runs (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    sample_id  TEXT NOT NULL REFERENCES samples (id),
    run_uid    TEXT NOT NULL,
    plan       TEXT NOT NULL,
    step       TEXT NOT NULL,
    recorded   TEXT NOT NULL,
    UNIQUE (run_uid, sample_id)
);
CREATE INDEX runs_by_sample ON runs (sample_id);
CREATE TABLE decisions (
    campaign_id TEXT NOT NULL REFERENCES campaigns (id),
    seq         INTEGER NOT NULL,
    agent       TEXT NOT NULL,
    proposal    TEXT NOT NULL,              -- JSON
    reason      TEXT NOT NULL,
    step        TEXT,
    recorded    TEXT NOT NULL,
    PRIMARY KEY (campaign_id, seq)
);
CREATE TABLE steps (
    campaign_id TEXT NOT NULL REFERENCES campaigns (id),
    key         TEXT NOT NULL,
    completed   TEXT NOT NULL,
    result      TEXT,                       -- JSON (NULL: none)
    PRIMARY KEY (campaign_id, key)
);
"""

MIGRATIONS: tuple[str, ...] = (_V1,)
"""SQL scripts; ``MIGRATIONS[k]`` migrates from version ``k`` to ``k + 1``."""

SCHEMA_VERSION = len(MIGRATIONS)
"""The schema version this code writes."""


def now() -> str:
    """Return the wall time now as an ISO 8601 UTC string (microseconds)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def schema_version(conn: sqlite3.Connection) -> int:
    """Return the database's schema version (0: empty, no ``schema_version`` table)."""
    row = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    if row is None:
        return 0
    version = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
    return int(version or 0)


def _migrate(conn: sqlite3.Connection, where: str) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version "
            "(version INTEGER PRIMARY KEY, applied TEXT NOT NULL)"
        )
        current = schema_version(conn)
        if current > SCHEMA_VERSION:
            raise RegistryError(
                where,
                f"schema version {current} is newer than this couponlab's "
                f"({SCHEMA_VERSION}); upgrade couponlab to open it",
            )
        for version in range(current, SCHEMA_VERSION):
            for statement in MIGRATIONS[version].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_version (version, applied) VALUES (?, ?)", (version + 1, now())
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def open_database(
    path: Path, *, create: bool, busy_timeout_s: float = BUSY_TIMEOUT_S
) -> sqlite3.Connection:
    """Open (or create) the registry at ``path``: WAL, foreign keys, busy timeout, migrated.

    ``busy_timeout_s`` (wall s, > 0): how long a write waits for another writer's lock.

    The connection is in autocommit mode (``isolation_level=None``): the registry begins and
    ends its transactions itself. It may be used from any thread (the registry serialises).
    ``synchronous=FULL``: a committed step survives a power loss, not only a crash.
    """
    where = str(path)
    if not create and not path.is_file():
        raise RegistryError(where, "no sample registry at this path")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(
            path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as exc:
        raise RegistryError(where, f"cannot open the sample registry: {exc}") from exc
    try:
        conn.execute(f"PRAGMA busy_timeout = {max(1, round(busy_timeout_s * 1000))}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise RegistryError(where, f"journal mode is {mode!r}; the registry needs 'wal'")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        _migrate(conn, where)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise RegistryError(where, f"not a usable sample registry: {exc}") from exc
    except BaseException:
        conn.close()
        raise
    return conn
