"""The spend page's HTML and SVG (hostile ledger values stay text) and how the plugin is registered."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
from html.parser import HTMLParser
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_patsnap.get_provider_info import get_provider_info
from airflow_provider_patsnap.plugins import spend_html
from airflow_provider_patsnap.plugins.spend import HEADERS, PatsnapSpendPlugin, _is_patsnap
from airflow_provider_patsnap.version_compat import AIRFLOW_V_3_0_PLUS

HOSTILE = '<img src=x onerror="alert(1)">'
NOW = dt.datetime(2026, 12, 7, 9, 30, tzinfo=dt.timezone.utc)


class Elements(HTMLParser):
    """Every start tag with its attributes, and the page's text."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def all(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag and all(a.get(k) == v for k, v in attrs.items())]


def entry(**overrides: Any) -> dict[str, Any]:
    item = {
        "kind": "may have run",
        "when": "2026-12-07T01:00:00+00:00",
        "endpoint": "R001",
        "subject": f"company_name={HOSTILE}",
        "units": 1,
        "job_id": "1579434053399035905",
        "dag_id": HOSTILE,
        "run_id": "manual__2026-12-07T01:00:00+00:00",
        "task_id": "create/../x",
        "map_index": 2,
    }
    summary = {
        "conn_id": "patsnap_default",
        "host": "https://connect.patsnap.com",
        "timezone": "Asia/Shanghai",
        "first_day": "2026-11-08",
        "last_day": "2026-12-07",
        "days": [
            {"day": "2026-12-01", "endpoint": "P037", "units": 300},
            {"day": "2026-12-01", "endpoint": "R001", "units": 2},
            {"day": "2026-12-07", "endpoint": "R002", "units": 1},
        ],
        "budget": {
            "timezone": "Asia/Shanghai",
            "day": "2026-12-07",
            "day_units": 9,
            "daily_cap": 10,
            "month": "2026-12",
            "month_units": 303,
            "monthly_cap": None,
        },
        "top": [{"dag_id": HOSTILE, "task_id": "create", "units": 302, "calls": 4, "run_id": "r 1", "map_index": -1}],
        "reused_units": 7,
        "open": [item],
    }
    summary.update(overrides)
    return summary


def test_hostile_ledger_values_are_text_and_links_are_encoded() -> None:
    page = spend_html.page("/base", [entry()], 30, NOW)
    parsed = Elements(page)
    assert not parsed.all("img") and not any("onerror" in attrs for _, attrs in parsed.tags)
    assert HOSTILE in "".join(parsed.text)  # shown as the text it is
    hrefs = [a["href"] for a in parsed.all("a")]
    encoded = "%3Cimg%20src%3Dx%20onerror%3D%22alert%281%29%22%3E"
    assert f"/base/dags/{encoded}" in hrefs
    assert f"/base/dags/{encoded}/runs/r%201/tasks/create" in hrefs  # the top task's latest run
    assert (
        f"/base/dags/{encoded}/runs/manual__2026-12-07T01%3A00%3A00%2B00%3A00/tasks/create%2F..%2Fx/mapped/2" in hrefs
    )
    assert all(a["target"] == "_top" for a in parsed.all("a"))  # out of the UI's frame, into the UI
    assert "1579434053399035905" in "".join(parsed.text)


def test_the_only_script_is_the_one_the_content_security_policy_names() -> None:
    page = spend_html.page("", [entry()], 30, NOW)
    assert page.count("<script") == 1 and f"<script>{spend_html.SCRIPT}</script>" in page
    digest = base64.b64encode(hashlib.sha256(spend_html.SCRIPT.encode()).digest()).decode()
    policy = HEADERS["Content-Security-Policy"]
    assert f"script-src 'sha256-{digest}'" in policy and "default-src 'none'" in policy


def test_the_chart_stacks_each_day_by_endpoint_and_the_gauges_show_the_caps() -> None:
    parsed = Elements(spend_html.page("", [entry()], 30, NOW))
    bars = parsed.all("rect", **{"class": "bar"})
    assert len(bars) == 3  # one per (day, endpoint) with units; the empty days draw nothing
    assert {bar["fill"] for bar in bars} == {spend_html.colour(e) for e in ("P037", "R001", "R002")}
    heights = {bar["fill"]: float(bar["height"] or 0) for bar in bars}
    assert heights[spend_html.colour("P037")] == pytest.approx(198 * 300 / 500, abs=0.05)  # 300 on a 0-500 axis
    assert len(parsed.all("svg", **{"aria-label": "Today: 9 of 10"})) == 1
    assert "#d97706" in spend_html.gauge("Today", "d", 9, 10)  # 90 %: amber
    assert "#dc2626" in spend_html.gauge("Today", "d", 10, 10) and "#16a34a" in spend_html.gauge("T", "d", 1, 10)
    assert "no cap set" in "".join(parsed.text)  # the month has none
    assert "7" in [t.strip() for t in parsed.text]  # saved by reuse


def test_the_empty_state_says_how_to_configure_a_ledger_and_errors_show_no_url() -> None:
    empty = "".join(Elements(spend_html.page("", [], 30, NOW)).text)
    assert "No PatSnap ledger is configured" in empty and "ledger_url" in empty and "ledger_conn_id" in empty
    failed = spend_html.page("", [{"conn_id": "c", "error": "This connection's ledger cannot be read (X)."}], 30, NOW)
    assert "cannot be read (X)" in failed and "No PatSnap ledger" not in failed


def test_axis_maxima_are_round() -> None:
    assert [spend_html._ceiling(n) for n in (0, 1, 3, 7, 11, 301, 1000)] == [1, 1, 5, 10, 20, 500, 1000]


def test_patsnap_connections_are_recognised_in_both_environment_forms() -> None:
    assert _is_patsnap('{"conn_type": "patsnap", "host": "x"}') and _is_patsnap("patsnap://id:secret@host")
    assert not _is_patsnap('{"conn_type": "http"}') and not _is_patsnap("postgresql://x") and not _is_patsnap("{")


def test_the_package_registers_the_plugin_once() -> None:
    # Airflow loads this entry point group always (a provider-info "plugins" list only when it discovers
    # providers eagerly, and both would register the plugin twice): installing is the whole set-up.
    (point,) = [p for p in entry_points(group="airflow.plugins") if p.name == "patsnap_spend"]
    assert point.load() is PatsnapSpendPlugin
    assert "plugins" not in get_provider_info()
    if AIRFLOW_V_3_0_PLUS:
        (app,) = PatsnapSpendPlugin.fastapi_apps
        (view,) = PatsnapSpendPlugin.external_views
        assert app["url_prefix"] == "/patsnap" and view["href"] == "/patsnap/spend" and view["category"] == "browse"
    else:  # Airflow 2: the page needs Airflow 3's API server; the plugin offers nothing
        assert not getattr(PatsnapSpendPlugin, "fastapi_apps", []) and not getattr(
            PatsnapSpendPlugin, "external_views", []
        )


def test_each_connection_is_read_from_its_own_ledger_and_a_missing_sqlite_file_is_not_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_patsnap.ledger import Purchase, TaskRef
    from airflow_provider_patsnap.ledger.engine import dispose_all
    from airflow_provider_patsnap.plugins.spend import connection_spend

    def patsnap(name: str, **extra: Any) -> None:
        conn = {"conn_type": "patsnap", "host": "https://connect.patsnap.com", "login": "id", "password": "s3cret!"}
        monkeypatch.setenv(f"AIRFLOW_CONN_{name.upper()}", json.dumps({**conn, "extra": extra}))

    ledger_file, elsewhere = tmp_path / "ledger.db", tmp_path / "on-a-worker" / "ledger.db"
    patsnap("with_ledger", ledger_url=f"sqlite:///{ledger_file}")
    patsnap("worker_local", ledger_url=f"sqlite:///{elsewhere}")
    patsnap("without")
    now = dt.datetime.now(dt.timezone.utc)
    try:
        from airflow_provider_patsnap.hooks.patsnap import PatsnapHook

        ledger = PatsnapHook("with_ledger").ledger
        assert ledger is not None
        unit = ledger.reserve(Purchase("/r", "R001", "company_name=A", 1), TaskRef("d", "r", "t", -1, 0, 1))
        ledger.sent(unit)
        ledger.settle(unit, 1)
        found = connection_spend("with_ledger", 30, now, lambda _dag_id: True)
        assert found["conn_id"] == "with_ledger" and found["top"][0]["dag_id"] == "d"
        assert found["host"] == "https://connect.patsnap.com" and "s3cret!" not in repr(found)
        assert connection_spend("without", 30, now, lambda _dag_id: True) == {}  # not on the page
        missing = connection_spend("worker_local", 30, now, lambda _dag_id: True)
        assert "does not exist on the API server" in missing["error"] and str(elsewhere) not in missing["error"]
        assert not elsewhere.parent.exists()
    finally:
        dispose_all()


class Manager:
    """An auth manager that lets this user read some connections and DAGs (as a team or per-connection
    rules would): the page may show only those."""

    def __init__(self, connections: set[str], dags: set[str]) -> None:
        self.connections, self.dags = connections, dags

    def get_authorized_connections(self, *, user: Any, method: str) -> set[str]:
        assert user == "alice" and method == "GET"
        return {c for c in self.connections if not c.startswith("env_")}

    def filter_authorized_connections(self, *, conn_ids: set[str], user: Any, method: str) -> set[str]:
        assert user == "alice" and method == "GET"
        return conn_ids & self.connections

    def get_authorized_dag_ids(self, *, user: Any, method: str) -> set[str]:
        assert user == "alice" and method == "GET"
        return self.dags


def test_only_connections_and_dags_the_auth_manager_allows_one_by_one_are_shown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow_provider_patsnap.plugins import spend

    monkeypatch.setattr(spend, "patsnap_conn_ids", lambda: ({"team_a", "team_b"}, {"env_a", "env_b"}))
    manager = Manager(connections={"team_a", "env_b", "other"}, dags={"refresh"})
    assert spend.readable_conn_ids("alice", manager) == ["env_b", "team_a"]
    visible = spend.dag_visibility("alice", manager)
    assert visible("refresh") and not visible("payroll") and not visible(None)


def test_an_unreadable_ledger_shows_its_error_type_and_logs_no_password(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from airflow_provider_patsnap.plugins.spend import connection_spend

    password = "Ledger-Passw0rd-42"
    url = f"postgresql+psycopg2://patsnap:{password}@127.0.0.1:1/ledger"  # nothing listens there
    conn = {"conn_type": "patsnap", "host": "https://connect.patsnap.com", "extra": {"api_key": "sk-0123456789"}}
    monkeypatch.setenv("AIRFLOW_CONN_BROKEN", json.dumps({**conn, "extra": {**conn["extra"], "ledger_url": url}}))
    with caplog.at_level("WARNING"):
        found = connection_spend("broken", 30, NOW, lambda _dag_id: True)
    # OperationalError (nothing listens), or the driver's absence where the postgres extra is not installed
    shown = re.fullmatch(r"This connection's ledger cannot be read \((\w+)\)\.", found["error"])
    assert shown is not None and shown.group(1) in caplog.text
    assert password not in repr(found) and "127.0.0.1:1" not in repr(found) and password not in caplog.text
