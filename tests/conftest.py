"""Test set-up: a private AIRFLOW_HOME, no example DAGs, fresh process-wide caches per test."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

# Before anything imports airflow: its configuration is read once, at import.
_HOME = tempfile.mkdtemp(prefix="patsnap-airflow-home-")
os.environ["AIRFLOW_HOME"] = _HOME
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(Path(__file__).resolve().parents[1] / "example_dags")
# Airflow 3 runs (dag.test) only DAGs of a configured bundle: the example DAGs, and the test DAGs.
os.environ["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"] = json.dumps(
    [
        {"name": "dags-folder", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle", "kwargs": {}},
        {
            "name": "test-dags",
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(Path(__file__).resolve().parent / "dags")},
        },
    ]
)
os.environ.pop("AIRFLOW_CONN_PATSNAP_DEFAULT", None)

import pytest  # noqa: E402

from airflow_provider_patsnap.hooks import _ratelimit  # noqa: E402
from airflow_provider_patsnap.hooks._token_cache import TOKEN_CACHE  # noqa: E402
from airflow_provider_patsnap.triggers import _schedule  # noqa: E402
from tests.airflow_fixtures import airflow_db, archive_root, dagbag  # noqa: E402, F401
from tests.ledger_support import postgres  # noqa: E402, F401
from tests.support import API_KEY, conn_json  # noqa: E402


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_HOME, ignore_errors=True)


@pytest.fixture(autouse=True)
def _fresh_process_state() -> Iterator[None]:
    """Token cache, limiters and queue estimates are process-wide by design; tests must not leak them."""
    TOKEN_CACHE.clear()
    _ratelimit._LIMITERS.clear()
    _schedule._DRAINS.clear()
    yield
    TOKEN_CACHE.clear()
    _ratelimit._LIMITERS.clear()
    _schedule._DRAINS.clear()


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record tenacity's waits instead of sleeping."""
    from airflow_provider_patsnap.hooks import _retry

    recorded: list[float] = []
    monkeypatch.setattr(_retry, "sleep", recorded.append)
    return recorded


@pytest.fixture
def oauth_conn(monkeypatch: pytest.MonkeyPatch) -> str:
    """``patsnap_default`` pointing at a fake host (for `responses`), fast retries, no pacing."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_PATSNAP_DEFAULT",
        conn_json(qps=0, max_retries=3, retry_wait_min=0.001, retry_wait_max=0.01),
    )
    return "patsnap_default"


@pytest.fixture
def api_key_conn(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(
        "AIRFLOW_CONN_PATSNAP_DEFAULT",
        conn_json(api_key=API_KEY, qps=0, max_retries=3, retry_wait_min=0.001, retry_wait_max=0.01),
    )
    return "patsnap_default"


@pytest.fixture
def emulator() -> Iterator[object]:
    """A fresh PatSnap emulator on a random loopback port; jobs finish in 0.6 s."""
    from airflow_provider_patsnap.testing.emulator import PatsnapEmulator

    with PatsnapEmulator(job_seconds=0.6) as emu:
        yield emu
    assert not emu.errors, f"emulator raised internally: {emu.errors}"


@pytest.fixture
def emu_conn(emulator: object, monkeypatch: pytest.MonkeyPatch) -> str:
    """``patsnap_default`` pointing at the emulator (OAuth), fast retries, no client-side pacing."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_PATSNAP_DEFAULT",
        emulator.connection_json(qps=0, retry_wait_min=0.01, retry_wait_max=0.05),  # type: ignore[attr-defined]
    )
    return "patsnap_default"


@pytest.fixture
def ledger_conn(emulator: object, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """``emu_conn`` with a ledger (a SQLite file): what the example refresh's ``reuse_within`` needs."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_PATSNAP_DEFAULT",
        emulator.connection_json(  # type: ignore[attr-defined]
            qps=0, retry_wait_min=0.01, retry_wait_max=0.05, ledger_url=f"sqlite:///{tmp_path / 'ledger.db'}"
        ),
    )
    return "patsnap_default"
