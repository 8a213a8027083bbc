"""The spend page in a real Airflow 3 UI: ``airflow api-server`` with the simple auth manager, a real run
of the patent value example against the emulator (its unit in a SQLite ledger), and headless Chromium
(Debian's ``chromium`` and ``chromium-driver``) logging in, opening the page from the Browse menu,
and following a link to the task instance that bought the unit.

``PATSNAP_REQUIRE_BROWSER=1`` (CI) makes a missing browser a failure instead of a skip;
``PATSNAP_SPEND_SCREENSHOT=<path>`` also writes the page's screenshot there (the README's image).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from airflow_provider_patsnap.version_compat import AIRFLOW_V_3_0_PLUS

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not AIRFLOW_V_3_0_PLUS, reason="the spend page is an Airflow 3 UI plugin"),
]

HOSTILE = '<img src=x onerror="alert(document.cookie)">'  # a task id an attacker wrote into a real DAG
USERS = {"admin": "admin-pass-0", "viewer": "viewer-pass-0"}
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def _browser_or_skip() -> Any:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    try:
        from selenium import webdriver
    except ImportError:
        missing.append("selenium")
    if missing:
        if os.environ.get("PATSNAP_REQUIRE_BROWSER") == "1":
            pytest.fail(f"missing {missing}: apt-get install chromium chromium-driver; pip install .[test]")
        pytest.skip(f"no headless browser here ({', '.join(missing)})")
    return webdriver


class AirflowUI:
    """A running api-server, its users' tokens and what the test put in the ledger."""

    def __init__(self, base: str, home: Path, ledger_url: str, secret: str, job_id: str) -> None:
        self.base, self.home, self.ledger_url, self.secret, self.job_id = base, home, ledger_url, secret, job_id

    def token(self, user: str) -> str:
        body = json.dumps({"username": user, "password": USERS[user]}).encode()
        request = urllib.request.Request(
            f"{self.base}/auth/token", body, {"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            return str(json.load(answer)["access_token"])

    def get(self, path: str, user: str | None = None) -> tuple[int, str]:
        headers = {"Authorization": f"Bearer {self.token(user)}"} if user else {}
        try:
            with urllib.request.urlopen(urllib.request.Request(self.base + path, headers=headers), timeout=30) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()


def _fill_ledger(url: str, run_id: str) -> str:
    """Beside the real run's unit: last week's indicator batches, a call that may have run (tied to the
    real task instance), a DAG id written by an attacker, and a statement that differs."""
    from sqlalchemy import select, update

    from airflow_provider_patsnap.ledger import Purchase, TaskRef
    from airflow_provider_patsnap.ledger.engine import dispose_all
    from airflow_provider_patsnap.ledger.schema import budgets, units
    from airflow_provider_patsnap.ledger.store import PatsnapLedger

    probe = PatsnapLedger(url, "probe")
    with probe.engine.connect() as connection:
        account = connection.execute(select(units.c.account).limit(1)).scalar_one()
    ledger = PatsnapLedger(url, account)
    real = TaskRef("patsnap_patent_value_report", run_id, "create", -1, task_run=0, try_number=1)
    lake = TaskRef("patsnap_legal_indicators_to_lake", "scheduled__2026-12-01", "legal_indicators", -1, 0, 1)
    for days_ago, billed in ((3, 300), (5, 180)):
        unit = ledger.reserve(Purchase("/patent-valuation-data/legal_indicators", "P037", "batch:x", 300), lake)
        ledger.sent(unit)
        ledger.settle(unit, billed)
        when = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=days_ago)
        day, month = ledger.periods(when)
        today = ledger.periods(dt.datetime.now(dt.timezone.utc))[0]
        with ledger.engine.begin() as connection:  # bought that day: the row and the day's counter
            connection.execute(update(units).where(units.c.id == unit).values(day=day, month=month, created_at=when))
            connection.execute(
                update(budgets)
                .where(budgets.c.account == account, budgets.c.period == f"day:{today}")
                .values(reserved=budgets.c.reserved - billed)
            )
    ledger.record_reuse(Purchase("/patent-valuation-data/legal_indicators", "P037", "cache:x", 120), {"id": 1}, lake)
    hostile = TaskRef("patsnap_patent_value_report", "r", HOSTILE, -1, 0, 1)
    retired = TaskRef("retired_dag", "r", "t", -1, 0, 1)  # no such DAG in Airflow: nobody may read it by name
    for where in (hostile, retired):
        unit = ledger.reserve(Purchase("/x", "R001", "company_name=X", 1), where)
        ledger.sent(unit)
        ledger.settle(unit, 1)
    job_id = "1579434053399035905"
    maybe = ledger.reserve(Purchase("/patent/value-report/task/create", "R002", "patent_number=CN1", 1), real)
    ledger.sent(maybe)
    ledger.ambiguous(maybe)
    with ledger.engine.begin() as connection:
        connection.execute(update(units).where(units.c.id == maybe).values(job_id=job_id))
    ledger.record_reconciliation(
        {
            "period": ["2026-12-01", "2026-12-01"],
            "endpoints": [
                {
                    "path": "/x",
                    "serial": "P037",
                    "fee_times": 482,
                    "ledger_units": 480,
                    "difference": 2,
                    "partial": False,
                }
            ],
        }
    )
    dispose_all()
    return job_id


@pytest.fixture(scope="module")
def airflow_ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowUI]:
    from airflow_provider_patsnap.testing.emulator import PatsnapEmulator
    from tests.chaos._procs import AIRFLOW, EXAMPLE_DAGS, MetadataDB, Procs, airflow_env, free_port, run, wait_for

    home = tmp_path_factory.mktemp("airflow-ui")
    (home / "passwords.json").write_text(json.dumps(USERS))
    port = free_port()
    ledger_url = f"sqlite:///{home / 'ledger.db'}"
    with PatsnapEmulator(job_seconds=0.3) as emu, Procs() as procs:
        env = airflow_env(
            home,
            EXAMPLE_DAGS,
            AIRFLOW__API__BASE_URL=f"http://127.0.0.1:{port}",
            AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_urlsafe(32),
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="admin:admin,viewer:viewer",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(home / "passwords.json"),
            AIRFLOW__CORE__TEST_CONNECTION="Enabled",
            AIRFLOW_CONN_PATSNAP_DEFAULT=emu.connection_json(
                qps=0, ledger_url=ledger_url, budget_daily_units=20, budget_monthly_units=1000
            ),
            PATSNAP_ARCHIVE_URI=(home / "archive").as_uri(),
            PATSNAP_DEFERRABLE="false",
            PATSNAP_POKE_INTERVAL="1",
        )
        logs = home / "components"
        run([*AIRFLOW, "db", "migrate"], env, 300, logs / "db-migrate.log", procs)
        run([*AIRFLOW, "dags", "reserialize"], env, 300, logs / "dags-reserialize.log", procs)
        run([*AIRFLOW, "dags", "test", "patsnap_patent_value_report"], env, 300, logs / "dags-test.log", procs)
        ((run_id,),) = MetadataDB(home / "airflow.db").rows(
            "SELECT run_id FROM dag_run WHERE dag_id = 'patsnap_patent_value_report' AND state = 'success'"
        )
        job_id = _fill_ledger(ledger_url, run_id)
        # A connection saved in the metadata database the way the form saves it, Port filled in.
        stored = {**json.loads(emu.connection_json(qps=0)), "port": urlsplit(emu.url).port}
        run(
            [*AIRFLOW, "connections", "add", "patsnap_console", "--conn-json", json.dumps(stored)],
            env,
            120,
            logs / "cli.log",
        )
        server = procs.start(
            "api-server",
            [*AIRFLOW, "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            env,
            logs / "api-server.log",
        )
        base = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            assert server.alive, server.report(60)
            try:
                with urllib.request.urlopen(f"{base}/api/v2/monitor/health", timeout=2) as answer:
                    return answer.status == 200
            except OSError:
                return False

        wait_for(healthy, 180, "the api-server", lambda: server.report(60), 0.5)
        yield AirflowUI(base, home, ledger_url, emu.client_secret, job_id)


def test_only_users_allowed_to_read_connections_get_the_page_or_its_data(airflow_ui: AirflowUI) -> None:
    from tests.chaos._procs import MetadataDB

    for path in ("/patsnap/spend", "/patsnap/api/spend"):
        assert airflow_ui.get(path)[0] == 401  # no session, no token
        assert airflow_ui.get(path, "viewer")[0] == 403  # the simple auth manager's viewers may not read connections
        assert airflow_ui.get(path, "admin")[0] == 200
    assert airflow_ui.get("/patsnap/api/spend?days=0", "admin")[0] == 422
    _, text = airflow_ui.get("/patsnap/api/spend?days=30", "admin")
    (entry,) = json.loads(text)["connections"]
    assert entry["conn_id"] == "patsnap_default"
    assert {day["endpoint"] for day in entry["days"]} == {"R001", "R002", "P037"}
    assert entry["top"][0]["dag_id"] == "patsnap_legal_indicators_to_lake" and entry["top"][0]["units"] == 480
    assert [item["kind"] for item in entry["open"]] == ["may have run", "statement differs"]
    assert "retired_dag" not in {top["dag_id"] for top in entry["top"]}  # its units count, its name is not shown
    assert sum(day["units"] for day in entry["days"]) == 1 + 1 + 1 + 300 + 180  # R002, R001 x2, P037 x2
    budget = entry["budget"]
    assert (budget["daily_cap"], budget["monthly_cap"]) == (20, 1000)
    counters = dict(MetadataDB(airflow_ui.home / "ledger.db").rows("SELECT period, reserved FROM patsnap_budget"))
    assert budget["day_units"] == counters[f"day:{budget['day']}"] > 0  # the caps' own counters
    assert budget["month_units"] == counters[f"month:{budget['month']}"]
    assert entry["reused_units"] == 120
    for secret in (airflow_ui.secret, airflow_ui.ledger_url, str(airflow_ui.home), "access_token"):
        assert secret not in text
    _, page = airflow_ui.get("/patsnap/spend", "admin")
    assert HOSTILE not in page and "&lt;img src=x onerror=" in page and "retired_dag" not in page
    assert airflow_ui.secret not in page and airflow_ui.ledger_url not in page


@pytest.fixture
def browser(airflow_ui: AirflowUI) -> Iterator[Any]:
    """Headless Chromium, logged in to the Airflow UI as the admin (its network log kept)."""
    webdriver = _browser_or_skip()
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as until
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1400,1000")
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    # The UI redirects to its login page while it loads: a lookup during that navigation is retried.
    login = WebDriverWait(driver, 60, ignored_exceptions=(WebDriverException,))
    try:
        driver.get(airflow_ui.base + "/")
        login.until(until.presence_of_element_located((By.NAME, "username"))).send_keys("admin")
        driver.find_element(By.NAME, "password").send_keys(USERS["admin"])
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        login.until(lambda b: "/auth/login" not in b.current_url)
        yield driver
    finally:
        driver.quit()


def test_a_user_opens_the_page_from_the_menu_and_follows_a_link_to_the_task_instance(
    airflow_ui: AirflowUI, browser: Any, tmp_path: Path
) -> None:
    from selenium.common.exceptions import NoAlertPresentException, WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as until
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 60, ignored_exceptions=(WebDriverException,))  # lookups during a navigation
    wait.until(until.element_to_be_clickable((By.CSS_SELECTOR, "button[aria-label=Browse]"))).click()
    wait.until(until.element_to_be_clickable((By.XPATH, "//a[@role='menuitem'][normalize-space()='PatSnap spend']")))
    browser.find_element(By.XPATH, "//a[@role='menuitem'][normalize-space()='PatSnap spend']").click()
    wait.until(lambda b: "/plugin/patsnap-spend" in b.current_url)
    frame = wait.until(until.presence_of_element_located((By.CSS_SELECTOR, "iframe[src='/patsnap/spend']")))
    browser.switch_to.frame(frame)
    wait.until(until.presence_of_element_located((By.CSS_SELECTOR, "svg.chart rect.bar")))
    bars = browser.find_elements(By.CSS_SELECTOR, "svg.chart rect.bar")
    assert len(bars) == 4  # R002 and R001 today, P037 three and five days ago
    assert bars[0].size["height"] > 0
    text = browser.find_element(By.TAG_NAME, "body").text
    assert HOSTILE in text and "Saved by reuse" in text and airflow_ui.job_id in text
    assert not browser.find_elements(By.CSS_SELECTOR, "img")  # the hostile id stayed text
    browser.switch_to.default_content()
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018 (reading it is the check)
    shot = tmp_path / "spend-page.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    if os.environ.get("PATSNAP_SPEND_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["PATSNAP_SPEND_SCREENSHOT"])
    browser.switch_to.frame(frame)
    # The open question's link: the task instance that may have bought a report.
    browser.find_element(By.CSS_SELECTOR, "table.open a[href*='/runs/']").click()
    browser.switch_to.default_content()
    wait.until(lambda b: "/dags/patsnap_patent_value_report/runs/" in b.current_url)
    assert browser.current_url.endswith("/tasks/create")
    wait.until(lambda b: "PatsnapCreatePatentValueReportOperator" in b.find_element(By.TAG_NAME, "body").text)


def test_the_connection_list_s_test_button_passes_for_a_patsnap_connection_with_its_port(
    airflow_ui: AirflowUI, browser: Any
) -> None:
    """Airflow 3.3.2's Test button sends port 0 for an empty port, which the server refuses; a PatSnap
    connection stored with its port (the form keeps the field: tests/unit/test_provider_info.py) passes:
    the server tests it with the stored credentials and a token is fetched from the emulator."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as until
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(airflow_ui.base + "/connections")
    test = "//tr[.//*[normalize-space()='patsnap_console']]//button[@aria-label='Test Connection']"
    WebDriverWait(browser, 60, ignored_exceptions=(WebDriverException,)).until(
        until.element_to_be_clickable((By.XPATH, test))
    ).click()

    seen: dict[str, int] = {}  # request id -> HTTP status (the log is read once per call)

    def answer() -> dict[str, Any] | None:
        for entry in browser.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            response = message["params"].get("response", {}) if message["method"] == "Network.responseReceived" else {}
            if response.get("url", "").endswith("/api/v2/connections/test"):
                seen[message["params"]["requestId"]] = response["status"]
        for request_id, status in seen.items():
            try:
                body = browser.execute_cdp_cmd("Network.getResponseBody", {"requestId": request_id})
            except Exception:  # not loaded yet
                return None
            return {"http": status, **json.loads(body["body"])}
        return None

    found = WebDriverWait(browser, 60).until(lambda _: answer())
    assert found["http"] == 200 and found["status"] is True, found
