"""Airflow fixtures for DAG runs: a migrated SQLite metadata DB (once per session) and the example
DAGs parsed from their files. Registered for every test directory by tests/conftest.py."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

EXAMPLE_DAGS = Path(__file__).resolve().parents[1] / "example_dags"


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """Migrate the session's private metadata DB once (AIRFLOW_HOME is set by tests/conftest.py)."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        stdout=subprocess.DEVNULL,
        env=dict(os.environ),
        timeout=300,
    )


@pytest.fixture
def archive_root(tmp_path: Path) -> Path:
    return tmp_path / "archive"


@pytest.fixture
def dagbag(airflow_db: None, archive_root: Path) -> Iterator[object]:
    """The example DAGs, parsed the way the DAG processor does, configured to archive to a temp dir."""
    try:
        from airflow.dag_processing.dagbag import DagBag  # Airflow 3
    except ImportError:  # Airflow 2.11
        from airflow.models.dagbag import DagBag

    with pytest.MonkeyPatch.context() as mp:
        # Read at parse time by the DAG files, so set before parsing.
        mp.setenv("PATSNAP_ARCHIVE_URI", archive_root.as_uri())
        mp.setenv("PATSNAP_LAKE_URI", archive_root.as_uri())
        mp.setenv("PATSNAP_POKE_INTERVAL", "0.2")
        bag = DagBag(str(EXAMPLE_DAGS))
        # A failing task must fail the test now, not after the DAGs' production retry delays.
        for dag in bag.dags.values():
            for task in dag.tasks:
                task.retry_delay = timedelta(seconds=0)
        yield bag
