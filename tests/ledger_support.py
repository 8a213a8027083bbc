"""Real databases for the ledger tests: SQLite files, and a throwaway PostgreSQL cluster on 127.0.0.1.

The PostgreSQL cluster comes from Debian's ``postgresql`` package (``initdb``/``pg_ctl``), started once
per test session in a temporary folder, as a non-root user (initdb refuses root; as root the
``postgres`` system user runs it). Without the binaries the PostgreSQL tests are skipped, unless
``PATSNAP_REQUIRE_POSTGRES=1`` (CI) makes that a failure.
"""

from __future__ import annotations

import datetime as dt
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def _bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_owner(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


class PostgresCluster:
    """A throwaway cluster: ``url`` is a SQLAlchemy URL of its ``postgres`` database."""

    def __init__(self) -> None:
        initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
        if not initdb or not pg_ctl:
            raise FileNotFoundError("PostgreSQL's initdb/pg_ctl (apt-get install postgresql)")
        self.pg_ctl = pg_ctl
        self.root = Path(tempfile.mkdtemp(prefix="patsnap-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
            os.chmod(self.root, 0o755)
        subprocess.run(
            _as_owner([initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=120,
        )
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.root}"
        subprocess.run(
            _as_owner([pg_ctl, "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "start"]),
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=120,
        )
        self.url = f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"

    def fresh_database(self, name: str) -> str:
        """A new, empty database's URL."""
        import sqlalchemy

        engine = sqlalchemy.create_engine(self.url, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        engine.dispose()
        return self.url.rsplit("/", 1)[0] + f"/{name}"

    def stop(self) -> None:
        subprocess.run(
            _as_owner([self.pg_ctl, "-D", str(self.data), "-m", "immediate", "stop"]),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
            check=False,
        )
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    try:
        import psycopg2  # noqa: F401

        cluster = PostgresCluster()
    except (FileNotFoundError, ImportError, subprocess.CalledProcessError) as exc:
        if os.environ.get("PATSNAP_REQUIRE_POSTGRES") == "1":
            raise
        pytest.skip(f"no PostgreSQL here ({exc}); apt-get install postgresql, pip install .[postgres]")
    try:
        yield cluster
    finally:
        cluster.stop()


def backdate(emu: Any, ledger: Any, days: int) -> tuple[dt.date, dt.date]:
    """Move everything bought so far to ``days`` ago, on both sides (a closed day to reconcile)."""
    from sqlalchemy import update

    from airflow_provider_patsnap.ledger.schema import units

    china = dt.timezone(dt.timedelta(hours=8))
    today = dt.datetime.now(china).date()
    then = today - dt.timedelta(days=days)
    noon = dt.datetime.combine(then, dt.time(12), china).astimezone(dt.timezone.utc)
    with ledger.engine.begin() as connection:
        connection.execute(
            update(units).values(
                day=then.isoformat(),
                month=then.strftime("%Y-%m"),
                created_at=noon,
                sent_at=noon + dt.timedelta(seconds=1),
            )
        )
    with emu._lock:
        emu._statement = {(then.strftime("%Y%m%d"), path): usage for (_, path), usage in emu._statement.items()}
    return then, today
