"""The ledger's tests run on both databases it supports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_patsnap.ledger.engine import dispose_all
from tests.ledger_support import PostgresCluster


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty ledger database: a SQLite file, then a PostgreSQL database on 127.0.0.1."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    return cluster.fresh_database(f"ledger_{request.node.name.split('[')[0][-40:]}".lower())


@pytest.fixture(autouse=True)
def _engines() -> Iterator[None]:
    yield
    dispose_all()
