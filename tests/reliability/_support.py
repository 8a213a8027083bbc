"""Helpers shared by the reliability tests (no fixtures here: see conftest.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_patsnap.errors import PatsnapError
from airflow_provider_patsnap.version_compat import AirflowException

#: What a task may raise: the provider's own errors or Airflow's. Anything else (KeyError,
#: JSONDecodeError, requests' exceptions, OSError...) is an uncaught bug.
PROVIDER_OR_AIRFLOW = (PatsnapError, AirflowException)


def state_of(obj: Any) -> str:
    """A DagRun's or TaskInstance's state as a plain string (enum on 3.x, str on 2.11)."""
    return str(getattr(obj.state, "value", obj.state))


def task_states(dag_run: Any) -> dict[tuple[str, int], str]:
    return {(ti.task_id, ti.map_index): state_of(ti) for ti in dag_run.get_task_instances()}


def files_under(root: Path) -> list[Path]:
    """Every file below ``root``, hidden ones included (staging files start with a dot)."""
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def partial_files(root: Path) -> list[Path]:
    return [p for p in files_under(root) if ".part" in p.name]


def xcom_texts(dag_id: str, run_id: str) -> dict[tuple[str, int, str], str]:
    """Every XCom the run stored, as text, keyed by (task_id, map_index, key)."""
    from airflow.utils.session import create_session

    try:  # Airflow 3
        from airflow.models.xcom import XComModel as XCom
    except ImportError:  # Airflow 2.11
        from airflow.models.xcom import XCom  # type: ignore[no-redef]

    out: dict[tuple[str, int, str], str] = {}
    with create_session() as session:
        rows = session.query(XCom).filter(XCom.dag_id == dag_id, XCom.run_id == run_id).all()
        for row in rows:
            value = row.value
            if isinstance(value, (bytes, bytearray)):
                value = bytes(value).decode("utf-8", "replace")
            out[(row.task_id, row.map_index, row.key)] = value if isinstance(value, str) else json.dumps(value)
    return out


def expect_failure(call: Callable[[], Any]) -> BaseException:
    """Run ``call``; it must raise, and only one of the provider's or Airflow's exceptions."""
    try:
        result = call()
    except BaseException as exc:
        if not isinstance(exc, PROVIDER_OR_AIRFLOW):
            pytest.fail(f"uncaught {type(exc).__module__}.{type(exc).__name__} escaped: {exc!r}")
        return exc
    pytest.fail(f"expected a failure, got {result!r}")
