"""The database: WAL, foreign keys, busy timeout, a version table, refusal of what it cannot
open."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from couponlab.errors import RegistryError
from couponlab.samples import SCHEMA_VERSION, SampleRegistry
from couponlab.samples._schema import BUSY_TIMEOUT_S, MIGRATIONS, schema_version


def _pragma(reg: SampleRegistry, name: str) -> object:
    conn = reg._connection()
    return conn.execute(f"PRAGMA {name}").fetchone()[0]


def test_wal_foreign_keys_busy_timeout_and_version(reg: SampleRegistry) -> None:
    assert _pragma(reg, "journal_mode") == "wal"
    assert _pragma(reg, "foreign_keys") == 1
    assert _pragma(reg, "busy_timeout") == int(BUSY_TIMEOUT_S * 1000)
    assert _pragma(reg, "synchronous") == 2  # FULL
    assert SCHEMA_VERSION == len(MIGRATIONS) >= 1
    assert schema_version(reg._connection()) == SCHEMA_VERSION


def test_reopening_keeps_the_content_and_migrates_nothing_twice(db: Path) -> None:
    with SampleRegistry(db) as reg:
        reg.start_campaign("K1", {})
    with SampleRegistry(db) as reg:
        assert [c["id"] for c in reg.campaigns()] == ["K1"]
        rows = reg._connection().execute("SELECT version FROM schema_version").fetchall()
        assert rows == [(v,) for v in range(1, SCHEMA_VERSION + 1)]


def test_foreign_keys_are_enforced_by_the_database(reg: SampleRegistry) -> None:
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        reg._connection().execute(
            "INSERT INTO locations (sample_id, station, step, at) VALUES ('nope', 'x', NULL, 't')"
        )


def test_a_newer_schema_is_refused(db: Path) -> None:
    SampleRegistry(db).close()
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("INSERT INTO schema_version VALUES (?, 'later')", (SCHEMA_VERSION + 1,))
    conn.close()
    with pytest.raises(RegistryError, match=f"schema version {SCHEMA_VERSION + 1} is newer"):
        SampleRegistry(db)


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "notes.sqlite"
    p.write_text("not sqlite at all, " * 100)
    with pytest.raises(RegistryError, match="not a usable sample registry"):
        SampleRegistry(p)


def test_readers_do_not_create_a_registry(tmp_path: Path) -> None:
    p = tmp_path / "none" / "samples.sqlite"
    with pytest.raises(RegistryError, match="no sample registry at this path"):
        SampleRegistry(p, create=False)
    assert not p.parent.exists()
