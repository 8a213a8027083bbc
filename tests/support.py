"""What tests share besides fixtures: fake-host URLs, answer builders and run inspectors (one module)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from airflow_provider_patsnap.errors import PatsnapError
from airflow_provider_patsnap.version_compat import AirflowException

FAKE_HOST = "https://patsnap.test"
TOKEN_URL = f"{FAKE_HOST}/oauth/token"
R001_CREATE = f"{FAKE_HOST}/innovation/company-report/task/create"
R001_CREATE_NO_LOGO = f"{FAKE_HOST}/innovation/company-report/task/create-no-logo"
R001_STATUS = f"{FAKE_HOST}/innovation/company-report/job_id/status"
R002_CREATE_NO_LOGO = f"{FAKE_HOST}/patent-valuation-data/patent-report/task/create-no-logo"
R002_STATUS = f"{FAKE_HOST}/patent-valuation-data/patent-report/job_id/status"
P037 = f"{FAKE_HOST}/patent-valuation-data/legal_indicators"
CLIENT_ID = "client-under-test"
CLIENT_SECRET = "s3cret-client-value-0123456789"
API_KEY = "sk-test-0123456789abcdefghij"

#: What a task may raise: the provider's own errors or Airflow's. Anything else (KeyError,
#: JSONDecodeError, requests' exceptions, OSError...) is an uncaught bug.
PROVIDER_OR_AIRFLOW = (PatsnapError, AirflowException)


# ------------------------------------------------------------------------------------ answers


def envelope(data: object = None, code: int = 0, msg: str | None = None) -> str:
    """A PatSnap response envelope (``error_code`` 0 means success)."""
    body: dict[str, object] = {"data": data, "status": code == 0, "error_code": code}
    if msg:
        body["error_msg"] = msg
    return json.dumps(body)


def conn_json(host: str = FAKE_HOST, *, api_key: str | None = None, **extra: object) -> str:
    """An ``AIRFLOW_CONN_*`` value for a patsnap connection (OAuth unless ``api_key``)."""
    body: dict[str, object] = {"conn_type": "patsnap", "host": host, "extra": dict(extra)}
    if api_key:
        body["extra"]["api_key"] = api_key  # type: ignore[index]
    else:
        body["login"] = CLIENT_ID
        body["password"] = CLIENT_SECRET
    return json.dumps(body)


def add_token(rsps: responses.RequestsMock, token: str = "tok-1", expires_in: int = 1799) -> None:
    rsps.post(
        TOKEN_URL,
        json={
            "token": token,
            "token_type": "BearerToken",
            "expires_in": expires_in,
            "status": "approved",
            "issued_at": "1692347672874",
        },
    )


def query(call: responses.Call) -> dict[str, list[str]]:
    return parse_qs(urlsplit(call.request.url).query)


def calls_to(rsps: responses.RequestsMock, url: str) -> list[responses.Call]:
    return [c for c in rsps.calls if c.request.url.split("?")[0] == url]


# ------------------------------------------------------------------------------------ runs and files


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
