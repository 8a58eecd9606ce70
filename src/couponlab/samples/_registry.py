"""The sample registry: campaigns, coupons, specimens, where they are and what they saw.

One SQLite file (stdlib ``sqlite3``, WAL, foreign keys on; decision 0061). A write outside a
step is one transaction of its own. Inside ``with reg.step(campaign_id, key) as done:`` every
write joins ONE transaction that commits together with the step's completion mark when the
block ends, and rolls back wholly when it raises (or the process dies): a resumed campaign
skips the completed steps and redoes the others from nothing.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from couponlab.errors import RegistryError
from couponlab.samples import _queries
from couponlab.samples._schema import BUSY_TIMEOUT_S, now, open_database
from couponlab.samples._values import (
    ABSOLUTE_ZERO_C,
    check_id,
    check_number,
    check_station,
    check_text,
    from_json,
    to_json,
)

DEFAULT_PATH = Path("runs") / "samples.sqlite"
"""Where ``couponlab samples`` looks without ``--db`` (relative to the working directory)."""

MAX_TEMPERATURE_C = 3000.0
"""Highest exposure temperature the registry accepts, degC (above every alloy's melting)."""

MAX_DURATION_S = 1e9
"""Longest hold or exposure the registry accepts, s (about 32 years)."""


@dataclass
class _OpenStep:
    campaign_id: str
    key: str
    done: bool
    result: str | None = None  # JSON


class SampleRegistry:
    """Every coupon and specimen of every campaign: identity, parent, locations, history.

    Parameters
    ----------
    path
        The SQLite file (created with its folder unless ``create`` is False).
    create
        False: refuse a path where no registry exists (for readers such as the CLI).
    busy_timeout_s
        How long a write waits while another process holds the write lock, wall s (> 0).

    Use it from any thread (calls are serialised); close it (or use ``with``) when done.
    Refusals raise :class:`~couponlab.errors.RegistryError` (a number out of range:
    :class:`~couponlab.errors.OutOfLimitsError`), both ``InputError``, and record nothing.

    The registry records where samples are; it does not enforce one sample per station (the
    robot or the operator does, before the move happens). :meth:`at` lists a station's
    samples so a campaign can compare the record with the robot's.
    """

    def __init__(
        self,
        path: str | Path = DEFAULT_PATH,
        *,
        create: bool = True,
        busy_timeout_s: float = BUSY_TIMEOUT_S,
    ) -> None:
        self._path = Path(path)
        self._where = str(self._path)
        if not busy_timeout_s > 0:
            raise RegistryError(self._where, f"busy_timeout_s = {busy_timeout_s} must be > 0")
        self._busy_timeout_s = busy_timeout_s
        self._conn: sqlite3.Connection | None = open_database(
            self._path, create=create, busy_timeout_s=busy_timeout_s
        )
        self._lock = threading.RLock()
        self._step: _OpenStep | None = None

    @property
    def path(self) -> Path:
        """The registry's SQLite file."""
        return self._path

    def close(self) -> None:
        """Close the database (an open step's writes are rolled back). Idempotent."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
                self._step = None

    def __enter__(self) -> SampleRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SampleRegistry({self._where!r})"

    # -- transactions ----------------------------------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RegistryError(self._where, "the registry is closed")
        return self._conn

    def _begin(self, conn: sqlite3.Connection, sql: str) -> None:
        """Begin a write transaction (or a savepoint); refuse when another writer holds the
        lock for longer than the busy timeout."""
        try:
            conn.execute(sql)
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise
            raise RegistryError(
                self._where,
                f"another writer held the registry's write lock for more than "
                f"{self._busy_timeout_s:g} s "
                "(one SampleRegistry per process; nothing was recorded)",
            ) from exc

    def _begin_step_transaction(self, conn: sqlite3.Connection, step: _OpenStep) -> None:
        self._begin(conn, "BEGIN IMMEDIATE")
        if self._completed(conn, step.campaign_id, step.key):
            conn.execute("ROLLBACK")
            raise RegistryError(
                self._where,
                f"step {step.key!r} of campaign {step.campaign_id!r} was completed by another "
                "writer while this one had it open",
            )

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """One write: its own transaction, or a savepoint inside the open step's transaction."""
        with self._lock:
            conn = self._connection()
            step = self._step
            if step is not None and step.done:
                raise RegistryError(
                    self._where,
                    f"step {step.key!r} of campaign {step.campaign_id!r} completed before: its "
                    "writes are recorded (skip the block's work when `done` is True)",
                )
            undo: tuple[str, ...]
            if step is not None:
                if not conn.in_transaction:
                    self._begin_step_transaction(conn, step)
                begin, commit, undo = "SAVEPOINT w", "RELEASE w", ("ROLLBACK TO w", "RELEASE w")
            else:
                begin, commit, undo = "BEGIN IMMEDIATE", "COMMIT", ("ROLLBACK",)
            self._begin(conn, begin)
            try:
                yield conn
            except sqlite3.IntegrityError as exc:  # a check above missed it: still refuse
                for sql in undo:
                    conn.execute(sql)
                raise RegistryError(self._where, f"refused by the database: {exc}") from exc
            except BaseException:
                for sql in undo:
                    conn.execute(sql)
                raise
            conn.execute(commit)

    @contextmanager
    def step(self, campaign_id: str, key: str) -> Iterator[bool]:
        """Run one resumable campaign step: ``with reg.step(cid, key) as done:``.

        ``done`` is True when the step completed before: skip its work (a write inside the
        block is refused). Otherwise every registry write inside the block, from any thread,
        is part of ONE transaction that commits together with the step's completion mark when
        the block ends; an exception (or a crash) inside rolls all of it back. The write lock
        is taken at the block's first write, so put long instrument work before the writes.
        Steps do not nest or overlap on one registry.
        """
        check_id(self._where, "campaign", campaign_id)
        check_text(self._where, "step key", key)
        with self._lock:
            conn = self._connection()
            if self._step is not None:
                raise RegistryError(
                    self._where,
                    f"step {key!r} opened while step {self._step.key!r} is open; "
                    "steps do not nest or overlap",
                )
            self._require_campaign(conn, campaign_id)
            state = _OpenStep(campaign_id, key, self._completed(conn, campaign_id, key))
            self._step = state
        try:
            yield state.done
        except BaseException:
            with self._lock:
                self._step = None
                if self._conn is not None and self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
            raise
        with self._lock:
            self._step = None
            if state.done:
                return
            conn = self._connection()
            if not conn.in_transaction:
                self._begin_step_transaction(conn, state)
            try:
                conn.execute(
                    "INSERT INTO steps (campaign_id, key, completed, result) VALUES (?, ?, ?, ?)",
                    (campaign_id, key, now(), state.result),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def set_step_result(self, result: Mapping[str, Any]) -> None:
        """Store ``result`` (JSON) with the open step's completion mark (last call wins)."""
        with self._lock:
            if self._step is None or self._step.done:
                raise RegistryError(self._where, "set_step_result outside an open step")
            self._step.result = to_json(self._where, "step result", result)

    # -- checks ----------------------------------------------------------------------------
    @staticmethod
    def _completed(conn: sqlite3.Connection, campaign_id: str, key: str) -> bool:
        row = conn.execute(
            "SELECT 1 FROM steps WHERE campaign_id = ? AND key = ?", (campaign_id, key)
        ).fetchone()
        return row is not None

    def _require_campaign(self, conn: sqlite3.Connection, campaign_id: str) -> str:
        """Return the campaign's spec (JSON) or refuse an unknown campaign."""
        row = conn.execute("SELECT spec FROM campaigns WHERE id = ?", (campaign_id,)).fetchone()
        if row is None:
            raise RegistryError(self._where, f"campaign {campaign_id!r} is unknown")
        return str(row[0])

    def _require_sample(self, conn: sqlite3.Connection, sample_id: object) -> str:
        """Return the sample's campaign id or refuse an unknown sample."""
        row = conn.execute("SELECT campaign_id FROM samples WHERE id = ?", (sample_id,)).fetchone()
        if row is None:
            raise RegistryError(self._where, f"sample {sample_id!r} is unknown")
        return str(row[0])

    def _require_new_sample(self, conn: sqlite3.Connection, sample_id: str) -> None:
        row = conn.execute("SELECT kind FROM samples WHERE id = ?", (sample_id,)).fetchone()
        if row is not None:
            raise RegistryError(self._where, f"sample {sample_id!r} exists already ({row[0]})")

    def _step_key(self) -> str | None:
        return None if self._step is None else self._step.key

    # -- writes ----------------------------------------------------------------------------
    def start_campaign(self, campaign_id: str, spec: Mapping[str, Any]) -> None:
        """Record a campaign and its spec (JSON); the same spec again is a no-op.

        A different spec under an existing id is refused (resume with the campaign's own
        file, or give the new campaign a new id).
        """
        check_id(self._where, "campaign", campaign_id)
        text = to_json(self._where, "campaign spec", spec)
        with self._writing() as conn:
            row = conn.execute("SELECT spec FROM campaigns WHERE id = ?", (campaign_id,))
            found = row.fetchone()
            if found is None:
                conn.execute(
                    "INSERT INTO campaigns (id, spec, created) VALUES (?, ?, ?)",
                    (campaign_id, text, now()),
                )
            elif found[0] != text:
                old, new = from_json(found[0]), from_json(text)
                differ = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
                raise RegistryError(
                    self._where,
                    f"campaign {campaign_id!r} exists with another spec (differs in {differ}); "
                    "a new campaign needs a new id",
                )

    def _add_sample(
        self,
        conn: sqlite3.Connection,
        sample_id: str,
        kind: str,
        parent_id: str | None,
        campaign_id: str,
        attributes: str,
        location: str,
    ) -> None:
        stamp = now()
        conn.execute(
            "INSERT INTO samples (id, kind, parent_id, campaign_id, created, attributes) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (sample_id, kind, parent_id, campaign_id, stamp, attributes),
        )
        conn.execute(
            "INSERT INTO locations (sample_id, station, step, at) VALUES (?, ?, ?, ?)",
            (sample_id, location, self._step_key(), stamp),
        )

    def add_coupon(
        self,
        coupon_id: str,
        campaign_id: str,
        *,
        print_params: Mapping[str, Any],
        location: str,
    ) -> None:
        """Record a new coupon of a known campaign, its print parameters (JSON) and station."""
        check_id(self._where, "coupon", coupon_id)
        attributes = to_json(self._where, "print_params", print_params)
        check_station(self._where, location)
        with self._writing() as conn:
            self._require_campaign(conn, campaign_id)
            self._require_new_sample(conn, coupon_id)
            self._add_sample(conn, coupon_id, "coupon", None, campaign_id, attributes, location)

    def add_specimen(
        self,
        specimen_id: str,
        parent_id: str,
        *,
        geometry: Mapping[str, Any],
        location: str,
    ) -> None:
        """Record a specimen cut from a known sample (its campaign's), its geometry and station."""
        check_id(self._where, "specimen", specimen_id)
        attributes = to_json(self._where, "geometry", geometry)
        check_station(self._where, location)
        with self._writing() as conn:
            campaign_id = self._require_sample(conn, parent_id)
            self._require_new_sample(conn, specimen_id)
            self._add_sample(
                conn, specimen_id, "specimen", parent_id, campaign_id, attributes, location
            )

    def move(self, sample_id: str, destination: str, *, step: str) -> None:
        """Record that a known sample is now at ``destination`` (moved by campaign ``step``).

        A move to the station the sample is recorded at is refused (a resumed step that
        would record a move twice is a bug the registry reports).
        """
        check_station(self._where, destination)
        check_text(self._where, "step", step)
        with self._writing() as conn:
            self._require_sample(conn, sample_id)
            here = _queries.current_location(conn, sample_id)
            if here == destination:
                raise RegistryError(
                    self._where, f"sample {sample_id!r} is at {destination!r} already"
                )
            conn.execute(
                "INSERT INTO locations (sample_id, station, step, at) VALUES (?, ?, ?, ?)",
                (sample_id, destination, step, now()),
            )

    def record_exposure(
        self,
        sample_ids: Sequence[str],
        *,
        hot_c: float,
        cold_c: float,
        hold_s: float,
        exposure_s: float,
        run_uid: str,
    ) -> None:
        """Record one furnace exposure of known samples (exposed together, one run).

        ``hot_c`` >= ``cold_c``, degC (the gradient's ends, -273.15 to 3000); ``hold_s`` and
        ``exposure_s``, s (0 to 1e9); ``run_uid`` the furnace run's start uid (unique).
        """
        w = self._where
        if isinstance(sample_ids, str) or not sample_ids:
            raise RegistryError(w, f"sample_ids {sample_ids!r} must be a non-empty list of ids")
        if len(set(sample_ids)) != len(sample_ids):
            raise RegistryError(w, f"sample_ids {list(sample_ids)!r} names a sample twice")
        hot = check_number(w, "hot_c", hot_c, ABSOLUTE_ZERO_C, MAX_TEMPERATURE_C, "degC")
        cold = check_number(w, "cold_c", cold_c, ABSOLUTE_ZERO_C, MAX_TEMPERATURE_C, "degC")
        if cold > hot:
            raise RegistryError(w, f"cold_c = {cold} degC is above hot_c = {hot} degC")
        hold = check_number(w, "hold_s", hold_s, 0.0, MAX_DURATION_S, "s")
        exposure = check_number(w, "exposure_s", exposure_s, 0.0, MAX_DURATION_S, "s")
        check_id(w, "run_uid", run_uid)
        with self._writing() as conn:
            for sid in sample_ids:
                self._require_sample(conn, sid)
            if conn.execute("SELECT 1 FROM exposures WHERE run_uid = ?", (run_uid,)).fetchone():
                raise RegistryError(w, f"an exposure of run {run_uid!r} is recorded already")
            cursor = conn.execute(
                "INSERT INTO exposures (run_uid, hot_c, cold_c, hold_s, exposure_s, step, "
                "recorded) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (run_uid, hot, cold, hold, exposure, self._step_key(), now()),
            )
            conn.executemany(
                "INSERT INTO exposure_samples (exposure_seq, sample_id) VALUES (?, ?)",
                [(cursor.lastrowid, sid) for sid in sample_ids],
            )

    def record_run(self, sample_id: str, run_uid: str, plan: str, step: str) -> None:
        """Record that run ``run_uid`` (plan ``plan``, campaign step ``step``) measured a sample.

        The same run recorded twice for one sample is refused.
        """
        check_id(self._where, "run_uid", run_uid)
        check_text(self._where, "plan", plan)
        check_text(self._where, "step", step)
        with self._writing() as conn:
            self._require_sample(conn, sample_id)
            found = conn.execute(
                "SELECT 1 FROM runs WHERE run_uid = ? AND sample_id = ?", (run_uid, sample_id)
            ).fetchone()
            if found:
                raise RegistryError(
                    self._where, f"run {run_uid!r} of sample {sample_id!r} is recorded already"
                )
            conn.execute(
                "INSERT INTO runs (sample_id, run_uid, plan, step, recorded) "
                "VALUES (?, ?, ?, ?, ?)",
                (sample_id, run_uid, plan, step, now()),
            )

    def record_decision(
        self,
        campaign_id: str,
        seq: int,
        *,
        agent: str,
        proposal: Mapping[str, Any],
        reason: str,
    ) -> None:
        """Record the campaign's decision number ``seq`` (0, 1, ...): who, what (JSON), why."""
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
            raise RegistryError(self._where, f"decision seq {seq!r} must be an integer >= 0")
        check_text(self._where, "agent", agent)
        check_text(self._where, "reason", reason)
        text = to_json(self._where, "proposal", proposal)
        with self._writing() as conn:
            self._require_campaign(conn, campaign_id)
            found = conn.execute(
                "SELECT 1 FROM decisions WHERE campaign_id = ? AND seq = ?", (campaign_id, seq)
            ).fetchone()
            if found:
                raise RegistryError(
                    self._where, f"decision {seq} of campaign {campaign_id!r} exists already"
                )
            conn.execute(
                "INSERT INTO decisions (campaign_id, seq, agent, proposal, reason, step, "
                "recorded) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (campaign_id, seq, agent, text, reason, self._step_key(), now()),
            )

    # -- reads -----------------------------------------------------------------------------
    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._connection()

    def location(self, sample_id: str) -> str:
        """Return the station a known sample is recorded at."""
        with self._reading() as conn:
            self._require_sample(conn, sample_id)
            here = _queries.current_location(conn, sample_id)
        assert here is not None  # every sample is added with a location
        return here

    def at(self, station: str) -> list[str]:
        """Return the ids of the samples recorded at ``station`` now (sorted)."""
        check_station(self._where, station)
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT sample_id FROM locations l WHERE station = ? AND seq = "
                "(SELECT MAX(seq) FROM locations m WHERE m.sample_id = l.sample_id) "
                "ORDER BY sample_id",
                (station,),
            ).fetchall()
        return [r[0] for r in rows]

    def completed_steps(self, campaign_id: str) -> list[str]:
        """Return the keys of a known campaign's completed steps, in completion order."""
        with self._reading() as conn:
            self._require_campaign(conn, campaign_id)
            rows = conn.execute(
                "SELECT key FROM steps WHERE campaign_id = ? ORDER BY rowid", (campaign_id,)
            ).fetchall()
        return [r[0] for r in rows]

    def step_result(self, campaign_id: str, key: str) -> Any:
        """Return what :meth:`set_step_result` stored with a completed step (None: nothing).

        A step that has not completed is refused.
        """
        with self._reading() as conn:
            self._require_campaign(conn, campaign_id)
            row = conn.execute(
                "SELECT result FROM steps WHERE campaign_id = ? AND key = ?", (campaign_id, key)
            ).fetchone()
        if row is None:
            raise RegistryError(
                self._where, f"step {key!r} of campaign {campaign_id!r} has not completed"
            )
        return from_json(row[0])

    def campaign_spec(self, campaign_id: str) -> Any:
        """Return a known campaign's spec as it was recorded."""
        with self._reading() as conn:
            return from_json(self._require_campaign(conn, campaign_id))

    def campaigns(self) -> list[dict[str, Any]]:
        """Return every campaign: id, created, spec, and counts of coupons, specimens,
        completed steps and decisions (oldest first)."""
        with self._reading() as conn:
            return _queries.campaign_rows(conn)

    def samples(self, campaign_id: str | None = None) -> list[dict[str, Any]]:
        """Return every sample (of one known campaign, or all): id, kind, parent, campaign,
        created, location (now) and attributes, ordered by campaign then id."""
        with self._reading() as conn:
            if campaign_id is not None:
                self._require_campaign(conn, campaign_id)
            return _queries.sample_rows(conn, campaign_id)

    def decisions(self, campaign_id: str) -> list[dict[str, Any]]:
        """Return a known campaign's decisions in seq order (seq, agent, proposal, reason,
        step, recorded)."""
        with self._reading() as conn:
            self._require_campaign(conn, campaign_id)
            rows = conn.execute(
                "SELECT seq, agent, proposal, reason, step, recorded FROM decisions "
                "WHERE campaign_id = ? ORDER BY seq",
                (campaign_id,),
            ).fetchall()
        keys = ("seq", "agent", "proposal", "reason", "step", "recorded")
        out = [dict(zip(keys, r, strict=True)) for r in rows]
        for d in out:
            d["proposal"] = from_json(d["proposal"])
        return out

    def genealogy(self, sample_id: str) -> dict[str, Any]:
        """Return a known sample's record: identity, attributes, ``parents`` (nearest first),
        ``children``, ``locations`` (history), ``exposures`` (its own),
        ``inherited_exposures`` (its ancestors') and ``runs``."""
        with self._reading() as conn:
            self._require_sample(conn, sample_id)
            return _queries.genealogy(conn, sample_id)

    def canonical(self, campaign_id: str) -> dict[str, Any]:
        """Return a known campaign's content without wall times and run uids (runs as
        ``(plan, step)``), in a deterministic order: equal for two registries that recorded
        the same campaign (for example one run through and one resumed)."""
        with self._reading() as conn:
            self._require_campaign(conn, campaign_id)
            return _queries.canonical(conn, campaign_id)
