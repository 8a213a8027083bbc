"""What tests share besides fixtures: fake-host URLs, answer builders and run inspectors (one module)."""

from __future__ import annotations

import http.client
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from airflow_provider_patsnap.errors import PatsnapError
from airflow_provider_patsnap.testing.emulator import PatsnapEmulator
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


def done_markers(root: Path) -> list[Path]:
    """The done markers an indicator task leaves beside its output before Airflow 3.3 (nothing else
    would let a retry after success recognise the output; 3.3+ keeps them in the task state store)."""
    return [p for p in files_under(root) if p.name == "done.json" and ".patsnap-staging" in p.parts]


def outputs_under(root: Path) -> list[Path]:
    """``files_under`` but the done markers: what a task published."""
    markers = set(done_markers(root))
    return [p for p in files_under(root) if p not in markers]


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


# ------------------------------------------------------------------------------------ raw protocol client
# Plain-HTTP helpers for the emulator's own protocol tests (no provider code involved).

R001_CREATE_PATH = "/innovation/company-report/task/create"
R001_CREATE_NO_LOGO_PATH = "/innovation/company-report/task/create-no-logo"
R001_STATUS_PATH = "/innovation/company-report/job_id/status"
R002_CREATE_PATH = "/patent-valuation-data/patent-report/task/create"
R002_CREATE_NO_LOGO_PATH = "/patent-valuation-data/patent-report/task/create-no-logo"
R002_STATUS_PATH = "/patent-valuation-data/patent-report/job_id/status"
P037_PATH = "/patent-valuation-data/legal_indicators"
DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PN = {"patent_number": "CN108977442B"}
_CLIENT = object()  # sentinel: send apikey=<client id>


def get_token(emu: PatsnapEmulator) -> str:
    resp = requests.post(
        f"{emu.url}/oauth/token",
        auth=(emu.client_id, emu.client_secret),
        data={"grant_type": "client_credentials"},
        timeout=5,
    )
    assert resp.status_code == 200, resp.text
    return resp.json()["token"]


def call(
    emu: PatsnapEmulator,
    method: str,
    path: str,
    bearer: str | None,
    *,
    params: dict[str, str] | None = None,
    body: Any = None,
    apikey: Any = _CLIENT,
) -> requests.Response:
    query = dict(params or {})
    if apikey is _CLIENT:
        query["apikey"] = emu.client_id
    elif apikey is not None:
        query["apikey"] = apikey
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    return requests.request(method, emu.url + path, params=query, json=body, headers=headers, timeout=5)


def indicators(emu: PatsnapEmulator, bearer: str | None, apikey: Any = _CLIENT, **params: str) -> int:
    """Call P037_PATH and return the envelope's error_code."""
    return envelope_code(call(emu, "GET", P037_PATH, bearer, params=params, apikey=apikey))


def envelope_code(resp: requests.Response) -> int:
    return resp.json()["error_code"]


def create(emu: PatsnapEmulator, token: str, path: str = R001_CREATE_PATH, **body: str) -> str:
    """Create a job and return its id exactly as the digits on the wire."""
    apikey = None if token == emu.api_key else _CLIENT
    resp = call(emu, "POST", path, token, body={"report_type": "pdf", **body}, apikey=apikey)
    assert resp.json()["status"] is True, resp.text
    match = re.search(r'"job_id"\s*:\s*(\d+)\s*[,}]', resp.text)
    assert match, resp.text
    return match.group(1)


def poll_until_done(emu: PatsnapEmulator, token: str, status_path: str, job_id: str) -> list[dict[str, Any]]:
    seen = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        resp = call(emu, "GET", status_path, token, params={"job_id": job_id})
        payload = resp.json()
        assert payload["status"] is True, resp.text
        seen.append(payload["data"])
        if payload["data"]["job_status"] in (2, 3):
            return seen
        time.sleep(0.03)
    raise AssertionError(f"job {job_id} never finished: {seen[-1]}")


def download_url(emu: PatsnapEmulator, token: str, job_id: str, status_path: str = R001_STATUS_PATH) -> str:
    final = poll_until_done(emu, token, status_path, job_id)[-1]
    assert final["job_status"] == 2, final
    return final["download_url"]


def raw_get(url: str) -> tuple[int, dict[str, str], bytes, bool]:
    """GET with http.client: (status, headers, body, complete) even when the body is cut short."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=5)
    try:
        conn.request("GET", f"{parts.path}?{parts.query}")
        resp = conn.getresponse()
        try:
            body, complete = resp.read(), True
        except http.client.IncompleteRead as exc:
            body, complete = exc.partial, False
        return resp.status, dict(resp.getheaders()), body, complete
    finally:
        conn.close()


def check_pdf(data: bytes) -> None:
    """A structurally valid PDF: header, trailer, and xref offsets that point at their objects."""
    assert data.startswith(b"%PDF-1.4")
    assert data.endswith(b"%%EOF")
    marker = data.rfind(b"startxref")
    xref_at = int(data[marker + len(b"startxref") :].split()[0])
    assert data[xref_at : xref_at + 5] == b"xref\n"
    table = data[xref_at : data.index(b"trailer", xref_at)]
    offsets = re.findall(rb"(\d{10}) 00000 n \n", table)
    assert len(offsets) >= 5
    for number, offset in enumerate(offsets, start=1):
        assert data[int(offset) :].startswith(b"%d 0 obj" % number)
    length_match = re.search(rb"/Length (\d+) >>\nstream\n", data)
    assert length_match
    length = int(length_match.group(1))
    stream_at = data.index(b"stream\n") + len(b"stream\n")
    assert data[stream_at + length : stream_at + length + 9] == b"endstream"


class TaskStateStore:
    """Airflow 3.3's ``context["task_state_store"]`` accessor (get/set/delete), in memory."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def set(self, key: str, value: Any, *, retention: Any = None) -> None:
        assert value is not None, "the real store refuses None"
        self.data[key] = value

    def delete(self, key: str) -> None:
        self.data.pop(key, None)
