"""Engines for the ledger's database: one per URL and process, tuned for many writers.

SQLite (one machine): WAL, a busy timeout, every commit synced (``synchronous=FULL``), and every
transaction ``BEGIN IMMEDIATE``, so several local processes share the file and a reservation holds
the write lock from its first read.
PostgreSQL (a fleet): reservations lock their budget rows; commits do not wait for the WAL flush
except the one that must (``PatsnapLedger.sent``; see the store's docstring).
"""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Engine, make_url

#: Seconds a SQLite writer waits for another's lock before failing (then: a retryable "not sent").
SQLITE_BUSY_SECONDS = 30.0

_ENGINES: dict[str, Engine] = {}
_LOCK = threading.Lock()


def engine_for(url: str) -> Engine:
    """The process's engine for ``url`` (created on first use)."""
    with _LOCK:
        engine = _ENGINES.get(url)
        if engine is None:
            engine = _ENGINES[url] = _create(make_url(url))
        return engine


def dispose_all() -> None:
    """Close every engine (tests, forks)."""
    with _LOCK:
        for engine in _ENGINES.values():
            engine.dispose()
        _ENGINES.clear()


def _create(url: URL) -> Engine:
    if url.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_SECONDS, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # transactions are begun below, not by pysqlite
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_SECONDS * 1000)}")
            # Every commit on disk before it returns: the sent mark must survive a power cut (it precedes the call).
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(connection: Any) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
    if url.get_backend_name() == "postgresql":

        @event.listens_for(engine, "connect")
        def _flush_later(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("SET synchronous_commit TO OFF")
            cursor.close()
            dbapi_connection.commit()

    return engine


def url_of_connection(conn: Any) -> str:
    """A SQLAlchemy URL for an Airflow connection holding the ledger (postgres or sqlite)."""
    conn_type = (conn.conn_type or "").lower()
    if conn_type == "sqlite":
        path = conn.host or conn.schema or ""
        return f"sqlite:///{path}"
    if conn_type in ("postgres", "postgresql"):
        return URL.create(
            "postgresql+psycopg2",
            username=conn.login or None,
            password=conn.password or None,
            host=conn.host or None,
            port=conn.port or None,
            database=conn.schema or None,
        ).render_as_string(hide_password=False)
    raise ValueError(f"a ledger connection must be of type postgres or sqlite, not {conn_type!r}")


def safe_url(url: str) -> str:
    """``url`` without its password (what may be shown)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(an unreadable ledger URL)"
