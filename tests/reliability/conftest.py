"""Reliability tests reuse the end-to-end fixtures (migrated metadata DB, parsed example DAGs)."""

from __future__ import annotations

from tests.e2e.conftest import airflow_db, archive_root, dagbag  # noqa: F401
