"""Engines for the ledger's database: one per URL and process, tuned for many writers.

SQLite (one machine): WAL, a busy timeout, every commit synced (``synchronous=FULL``), and every
transaction ``BEGIN IMMEDIATE``, so several local processes share the file and a reservation holds
the write lock from its first read.
PostgreSQL (a fleet): reservations lock their budget rows; commits do not wait for the WAL flush
except the one that must (``PatsnapLedger.sent``; see the store's docstring).
A *reader* engine (``read_only=True``, what the spend page uses) can write nothing and takes no write
lock: SQLite ``query_only`` with deferred transactions (a WAL reader never blocks the writers), and
PostgreSQL read-only sessions; a SQLite file that does not exist is not created.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Engine, make_url

#: Seconds a SQLite writer waits for another's lock before failing (then: a retryable "not sent").
SQLITE_BUSY_SECONDS = 30.0

_ENGINES: dict[tuple[str, bool], Engine] = {}
_LOCK = threading.Lock()


class LedgerMissing(FileNotFoundError):
    """A reader was asked for a SQLite ledger whose file does not exist on this machine."""


def engine_for(url: str, *, read_only: bool = False) -> Engine:
    """The process's engine for ``url`` (created on first use); a reader engine with ``read_only``."""
    parsed = make_url(url)
    if read_only and _sqlite_file(parsed) and not Path(str(parsed.database)).is_file():
        raise LedgerMissing("the ledger's SQLite file does not exist on this machine")
    with _LOCK:
        engine = _ENGINES.get((url, read_only))
        if engine is None:
            engine = _ENGINES[(url, read_only)] = _create(parsed, read_only=read_only)
        return engine


def _sqlite_file(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")


def dispose_all() -> None:
    """Close every engine (tests, forks)."""
    with _LOCK:
        for engine in _ENGINES.values():
            engine.dispose()
        _ENGINES.clear()


def _create(url: URL, *, read_only: bool = False) -> Engine:
    if url.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_SECONDS, "check_same_thread": False})
        # Writers: WAL, and every commit on disk before it returns (the sent mark must survive a power
        # cut: it precedes the call), each transaction holding the write lock from its first read.
        # Readers: no writes at all, deferred transactions (a WAL reader never blocks a writer).
        pragmas = ("PRAGMA query_only=ON",) if read_only else ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL")
        begin = "BEGIN" if read_only else "BEGIN IMMEDIATE"

        @event.listens_for(engine, "connect")
        def _connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # transactions are begun below, not by pysqlite
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_SECONDS * 1000)}")
            for pragma in pragmas:
                cursor.execute(pragma)
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(connection: Any) -> None:
            connection.exec_driver_sql(begin)

        return engine
    engine = create_engine(url, pool_pre_ping=True, pool_size=2 if read_only else 5, max_overflow=5)
    if url.get_backend_name() == "postgresql":
        setting = (
            "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY" if read_only else "SET synchronous_commit TO OFF"
        )

        @event.listens_for(engine, "connect")
        def _session(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute(setting)
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
