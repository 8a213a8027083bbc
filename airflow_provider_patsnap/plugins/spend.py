"""The "PatSnap spend" page in the Airflow 3 UI: a plugin the package registers (entry point group
``airflow.plugins``) that mounts a FastAPI app at ``/patsnap`` on the API server and adds a menu entry.

- ``/patsnap/spend``: the page (HTML, charts as inline SVG, shown in the UI's frame; its one script hands
  links to the UI's router);
- ``/patsnap/api/spend?days=30``: the same figures as JSON.

Who may see it: users the auth manager allows to **read Connections**, and of the PatSnap connections
only those it lets them read one by one. The page is built from the connections' configuration (which
ledger, which budgets) and shows an account's spend: connection-level information (the simple auth
manager's viewers get 403). DAG and task names are then filtered by the reader's DAG read access: an
open question about a DAG they may not see keeps its units, not its names. Nothing on the page or in
the JSON comes from a secret: no ledger URL (only the error's type when a ledger cannot be read), no
token, no link. Ledgers are opened to read only.

On Airflow 2.11 the plugin offers nothing (the page needs Airflow 3's API server).
"""

# No ``from __future__ import annotations`` here: FastAPI reads the routes' annotations at definition
# time, and their types (Request, the user dependency) are imported inside ``create_app``.

import datetime as dt
import json
import logging
import os
from collections.abc import Callable
from typing import Any

from airflow.plugins_manager import AirflowPlugin

from airflow_provider_patsnap.plugins.spend_html import SCRIPT_HASH
from airflow_provider_patsnap.redaction import remote_text
from airflow_provider_patsnap.version_compat import AIRFLOW_V_3_0_PLUS

log = logging.getLogger(__name__)

URL_PREFIX = "/patsnap"
MAX_DAYS = 366
#: What the page adds to every answer: no script runs but the page's own, nothing is cached by a proxy.
HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        f"default-src 'none'; script-src '{SCRIPT_HASH}'; style-src 'unsafe-inline'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def patsnap_conn_ids() -> tuple[set[str], set[str]]:
    """PatSnap connections the API server can list: (the metadata database's, ``AIRFLOW_CONN_*``
    variables' not also in the database). A secrets backend cannot be listed: see the README."""
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        stored = set(session.scalars(select(Connection.conn_id).where(Connection.conn_type == "patsnap")))
    from_environment = {
        name[len("AIRFLOW_CONN_") :].lower()
        for name, value in os.environ.items()
        if name.startswith("AIRFLOW_CONN_") and _is_patsnap(value)
    }
    return stored, from_environment - stored


def _is_patsnap(value: str) -> bool:
    text = value.strip()
    if text.startswith("{"):
        try:
            parsed = json.loads(text)
        except ValueError:
            return False
        return isinstance(parsed, dict) and parsed.get("conn_type") == "patsnap"
    return text.startswith("patsnap:")


def readable_conn_ids(user: Any, manager: Any) -> list[str]:
    """The PatSnap connections this user may read, each asked of the auth manager (with its team, in
    multi-team mode): passing the page's general check is not a right to every connection."""
    stored, from_environment = patsnap_conn_ids()
    allowed = stored & manager.get_authorized_connections(user=user, method="GET")
    if from_environment:
        allowed |= manager.filter_authorized_connections(conn_ids=from_environment, user=user, method="GET")
    return sorted(allowed)


def dag_visibility(user: Any, manager: Any) -> Callable[[str | None], bool]:
    """Which DAG ids this user may read by name: the auth manager's list, always (being allowed to list
    DAGs is not being allowed to read each of them)."""
    allowed = manager.get_authorized_dag_ids(user=user, method="GET")
    return lambda dag_id: dag_id is not None and dag_id in allowed


NOT_HERE = (
    "This connection's ledger is a SQLite file that does not exist on the API server's machine: "
    "the page reads it where the API server runs (use a PostgreSQL ledger for a fleet)."
)


def connection_spend(
    conn_id: str, days: int, now: dt.datetime, visible: Callable[[str | None], bool]
) -> dict[str, Any]:
    """One connection's entry (``{}`` without a ledger). The ledger is opened to read only: a page view
    never creates, migrates or locks it. One that cannot be read shows its error's type, and the log
    gets the redacted message (it could carry the URL)."""
    from airflow_provider_patsnap.hooks.patsnap import PatsnapHook
    from airflow_provider_patsnap.ledger.engine import LedgerMissing
    from airflow_provider_patsnap.ledger.spend import spend

    hook = PatsnapHook(conn_id)
    try:
        config = hook.config
        ledger = hook.ledger_reader()
        if ledger is None:
            return {}
        return {"conn_id": conn_id, "host": config.base_url, **spend(ledger, days=days, now=now, visible=visible)}
    except LedgerMissing:
        return {"conn_id": conn_id, "error": NOT_HERE}
    except Exception as exc:
        log.warning(
            "PatSnap spend page: the ledger of connection %s cannot be read: %s: %s",
            conn_id,
            type(exc).__name__,
            remote_text(str(exc), 300),
        )
        return {"conn_id": conn_id, "error": f"This connection's ledger cannot be read ({type(exc).__name__})."}


def summary(user: Any, days: int) -> dict[str, Any]:
    """The page's figures for this user: the connections and DAG names they may read."""
    from airflow.api_fastapi.app import get_auth_manager

    manager = get_auth_manager()
    visible = dag_visibility(user, manager)
    now = dt.datetime.now(dt.timezone.utc)
    entries = [connection_spend(conn_id, days, now, visible) for conn_id in readable_conn_ids(user, manager)]
    return {"generated_at": now.isoformat(timespec="seconds"), "days": days, "connections": [e for e in entries if e]}


def create_app() -> Any:
    """The FastAPI app (built on the first request: other Airflow processes load plugins too)."""
    from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_connection
    from fastapi import Depends, FastAPI, Query, Request
    from fastapi.responses import HTMLResponse, JSONResponse

    from airflow_provider_patsnap.plugins.spend_html import page

    app = FastAPI(title="PatSnap spend", docs_url=None, redoc_url=None, openapi_url=None)
    allowed = [Depends(requires_access_connection("GET"))]
    days_query = Query(30, ge=1, le=MAX_DAYS, description="How many budget days, ending today")

    @app.get("/spend", response_class=HTMLResponse, dependencies=allowed)
    def spend_page(request: Request, user: GetUserDep, days: int = days_query) -> HTMLResponse:
        data = summary(user, days)
        mount = request.scope.get("root_path", "")
        ui = mount[: -len(URL_PREFIX)] if mount.endswith(URL_PREFIX) else ""
        generated = dt.datetime.fromisoformat(data["generated_at"])
        return HTMLResponse(page(ui, data["connections"], days, generated), headers=HEADERS)

    @app.get("/api/spend", dependencies=allowed)
    def spend_data(user: GetUserDep, days: int = days_query) -> JSONResponse:
        return JSONResponse(summary(user, days), headers=HEADERS)

    return app


class LazyApp:
    """An ASGI app that builds the real one on its first request (a mount forwards no lifespan)."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self._factory = factory
        self._app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._app is None:
            self._app = self._factory()
        await self._app(scope, receive, send)


class PatsnapSpendPlugin(AirflowPlugin):
    """Registers the spend page (Airflow 3); nothing on Airflow 2."""

    name = "patsnap_spend"
    if AIRFLOW_V_3_0_PLUS:
        fastapi_apps = [{"app": LazyApp(create_app), "url_prefix": URL_PREFIX, "name": "PatSnap spend"}]
        external_views = [
            {
                "name": "PatSnap spend",
                "href": f"{URL_PREFIX}/spend",
                "url_route": "patsnap-spend",
                "destination": "nav",
                "category": "browse",
            }
        ]
