"""Tiled as the store: every run's documents, readable with the ordinary Tiled client.

By default the store is an *embedded* catalog inside the output folder, with no server to
start: ``<out>/store/catalog.db`` (the SQLite catalog of runs and their metadata),
``<out>/store/tables.duckdb`` (the event tables, array columns included) and
``<out>/store/data/`` (anything else Tiled writes). Files the devices wrote themselves (the
frame's tensile curves, the camera's frames: HDF5 referenced by StreamResource documents)
stay where they are and are read in place. A lab that outgrows one machine names a Tiled
server in its lab file instead (``store: {uri: ..., api_key_env: ...}``; see
:class:`couponlab.labfile.StoreSettings`).

The JSON-lines document log (:mod:`couponlab.data`) stays the write-ahead record: the
store is filled from it (:mod:`couponlab.ingest`), so a killed process loses nothing.

Reading back::

    from couponlab.store import open_store, runs
    with open_store("runs/campaign") as store:
        run = runs(store, coupon_id="C20261201-69c2d2f8", plan_name="tensile_test")[0]
        curve = run["primary"]["frame1_force"].read()    # numpy array, N

See docs/howto/read-back-data.md and docs/decisions/0067-tiled-as-the-store.md.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from couponlab.data import DEFAULT_OUT_DIR
from couponlab.errors import InputError

STORE_DIR = "store"
"""Folder of the embedded store inside an output folder."""
CATALOG_FILE = "catalog.db"
"""The embedded store's SQLite catalog (runs, streams, metadata)."""
TABLES_FILE = "tables.duckdb"
"""The embedded store's tabular storage: event data, array columns included (DuckDB; Tiled's
SQLite tabular storage refuses list columns, decision 0067)."""
DATA_DIR = "data"
"""Folder for the files Tiled writes itself (arrays it is given, not the devices' files)."""


@dataclass(frozen=True)
class StoreLocation:
    """Where a store is: an output folder (embedded) or a Tiled server.

    Parameters
    ----------
    out_dir
        The output folder: its ``store/`` holds the embedded catalog, and its files (curve and
        frame HDF5) are readable through the store.
    uri
        A Tiled server's URI (``http://host:8000/api``), or None for the embedded store.
    api_key
        The server's API key (from the environment or a file, never from the lab file).
    readable
        More folders whose files the embedded store may read (a camera's share).
    """

    out_dir: Path
    uri: str | None = None
    api_key: str | None = None
    readable: tuple[Path, ...] = ()

    @property
    def embedded(self) -> bool:
        """True for the embedded catalog in ``out_dir/store``."""
        return self.uri is None


def store_dir(out_dir: str | Path) -> Path:
    """Return the folder of the embedded store of an output folder (``<out>/store``)."""
    return Path(out_dir).absolute() / STORE_DIR


def _in_fresh_loop(coro_fn: Any) -> Any:
    """Run ``asyncio.run(coro_fn())`` in a worker thread (a caller's loop may be running)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(coro_fn())).result()


def _init_catalog(uri: str) -> None:
    """Create and stamp a new SQLite catalog in this process.

    ``tiled.catalog.from_uri(init_if_not_exists=True)`` does this in a subprocess that imports
    the whole Tiled command line (about 10 s here); the same three steps in-process take a
    fraction of that.
    """
    from sqlalchemy.ext.asyncio import create_async_engine
    from tiled.alembic_utils import UninitializedDatabase, check_database, stamp_head
    from tiled.catalog.alembic_constants import ALEMBIC_DIR, ALEMBIC_INI_TEMPLATE_PATH
    from tiled.catalog.core import ALL_REVISIONS, REQUIRED_REVISION, initialize_database

    async def setup() -> bool:
        engine = create_async_engine(uri)
        try:
            await check_database(engine, REQUIRED_REVISION, ALL_REVISIONS)
        except UninitializedDatabase:
            await initialize_database(engine)
            return True
        finally:
            await engine.dispose()
        return False

    if _in_fresh_loop(setup):
        # alembic's env.py runs its own event loop: keep it off any running one; tiled's
        # alembic.ini template predates alembic's path_separator (a DeprecationWarning)
        with warnings.catch_warnings(), concurrent.futures.ThreadPoolExecutor(1) as pool:
            warnings.filterwarnings("ignore", message="No path_separator found")
            pool.submit(stamp_head, ALEMBIC_INI_TEMPLATE_PATH, ALEMBIC_DIR, uri).result()


def _quiet_context(app: Any) -> Any:
    from tiled.client import Context

    with warnings.catch_warnings():
        # tiled 0.2.20 serves an in-process app through starlette's TestClient, which warns
        # (a DeprecationWarning subclass) that httpx support moves to another package
        warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
        return Context.from_app(app)


def embedded_catalog(location: StoreLocation) -> Any:
    """Return the Tiled catalog adapter of an embedded store (created if missing)."""
    from tiled.catalog import from_uri

    folder = store_dir(location.out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / DATA_DIR).mkdir(exist_ok=True)
    uri = f"sqlite+aiosqlite:///{folder / CATALOG_FILE}"
    if not (folder / CATALOG_FILE).exists():
        _init_catalog(uri)
    readable = [str(location.out_dir.absolute()), *(str(p.absolute()) for p in location.readable)]
    return from_uri(
        uri,
        writable_storage=[str(folder / DATA_DIR), f"duckdb:///{folder / TABLES_FILE}"],
        readable_storage=readable,
    )


def connect(location: StoreLocation) -> Any:
    """Return a Tiled client (root container) on a store; close it with :func:`close_store`."""
    from tiled.client import from_context, from_uri

    if location.uri is not None:
        return from_uri(location.uri, api_key=location.api_key)
    from tiled.server.app import build_app

    return from_context(_quiet_context(build_app(embedded_catalog(location))))


def close_store(client: Any) -> None:
    """Close a client from :func:`open_store` (its in-process server thread, its files)."""
    client.context.close()


def store_client(
    out_dir: str | Path = DEFAULT_OUT_DIR,
    *,
    uri: str | None = None,
    api_key: str | None = None,
    readable: Sequence[str | Path] = (),
) -> Any:
    """Return an open client on a store, as :func:`open_store` yields (for IPython: no
    ``with`` block); close it with :func:`close_store` when done."""
    return connect(
        StoreLocation(Path(out_dir).absolute(), uri, api_key, tuple(Path(p) for p in readable))
    )


@contextlib.contextmanager
def open_store(
    out_dir: str | Path = DEFAULT_OUT_DIR,
    *,
    uri: str | None = None,
    api_key: str | None = None,
    readable: Sequence[str | Path] = (),
) -> Iterator[Any]:
    """Open the store of an output folder (or a Tiled server) for reading and writing.

    Yields the Tiled client's root container: runs by start uid (``store[uid]``), searchable
    (:func:`runs`). Each run has its streams (``run["primary"]``), whose columns read back as
    numpy arrays (``run["primary"]["frame1_force"].read()``), files of the devices included.
    The embedded store is one process's at a time (DuckDB locks its file while open): close
    the session that writes before reading from another process, or use a Tiled server.

    Parameters
    ----------
    out_dir
        The output folder (``runs`` by default): the embedded store is ``<out_dir>/store``.
    uri
        A Tiled server's URI instead (``http://127.0.0.1:8000/api``).
    api_key
        The server's API key.
    readable
        More folders the embedded store may read files from (beside ``out_dir``).
    """
    location = StoreLocation(
        Path(out_dir).absolute(), uri, api_key, tuple(Path(p) for p in readable)
    )
    with connected(location) as client:
        yield client


@contextlib.contextmanager
def connected(location: StoreLocation) -> Iterator[Any]:
    """Yield a client on the store at ``location`` (as :func:`open_store`), closed after."""
    client = connect(location)
    try:
        yield client
    finally:
        close_store(client)


def runs(
    store: Any,
    *,
    campaign_id: str | None = None,
    coupon_id: str | None = None,
    plan_name: str | None = None,
) -> list[Any]:
    """Return the runs of a store that match every key given, oldest first.

    A run matches ``coupon_id`` when its start document names that coupon, alone or in its
    list of coupons (a furnace exposure of several coupons).

    Parameters
    ----------
    store
        The root container from :func:`open_store`.
    campaign_id
        The campaign's id (start key ``campaign_id``).
    coupon_id
        The coupon's id (start key ``coupon_id``: a string, or a list for several coupons).
    plan_name
        The plan that made the run (``tensile_test``, ``raster_map`` ...).
    """
    from tiled.queries import Contains, Eq

    node = store
    if campaign_id is not None:
        node = node.search(Eq("start.campaign_id", campaign_id))
    if plan_name is not None:
        node = node.search(Eq("start.plan_name", plan_name))
    found: dict[str, Any] = {}
    if coupon_id is None:
        found = dict(node.items())
    else:
        found = dict(node.search(Eq("start.coupon_id", coupon_id)).items())
        found.update(node.search(Contains("start.coupon_id", coupon_id)).items())
    return sorted(found.values(), key=lambda r: float(r.metadata["start"].get("time", 0.0)))


def api_key_from(env: str | None = None, file: str | Path | None = None) -> str | None:
    """Return a Tiled API key from an environment variable or a file (first line), or None.

    Raises
    ------
    InputError
        The variable is not set, or the file cannot be read or is empty.
    """
    if env is not None:
        value = os.environ.get(env, "").strip()
        if not value:
            raise InputError("store", f"environment variable {env} (the Tiled API key) is unset")
        return value
    if file is not None:
        try:
            value = Path(file).expanduser().read_text(encoding="utf-8").strip().splitlines()[0]
        except (OSError, IndexError):
            raise InputError("store", f"no Tiled API key in {file}") from None
        return value.strip()
    return None


__all__ = [
    "CATALOG_FILE",
    "STORE_DIR",
    "TABLES_FILE",
    "StoreLocation",
    "api_key_from",
    "close_store",
    "connect",
    "connected",
    "embedded_catalog",
    "open_store",
    "runs",
    "store_client",
    "store_dir",
]
