"""The "PatSnap spend" page in the Airflow 3 UI: a plugin the provider registers (``plugins`` in its
provider info) that mounts a FastAPI app at ``/patsnap`` on the API server and adds a menu entry.

- ``/patsnap/spend``: the page (HTML, charts as inline SVG, shown in the UI's frame; its one script hands links
  to the UI's router);
- ``/patsnap/api/spend?days=30``: the same figures as JSON.

Who may see it: users the auth manager allows to **read Connections**. The page is built from the
PatSnap connections' configuration (which ledger, which budgets) and shows an account's spend, which
is connection-level information: in Airflow, a user who may not list connections may not see how an
account is set up either (the simple auth manager's viewers get 403). DAG and task names are then
filtered by the reader's DAG read access: an open question about a DAG they may not see keeps its
units, not its names. Nothing on the page or in the JSON comes from a secret: no ledger URL (only the
error's type when a ledger cannot be read), no token, no link.

On Airflow 2.11 the plugin offers nothing (the page needs Airflow 3's API server).
"""

# No ``from __future__ import annotations`` here: FastAPI reads the routes' annotations at definition
# time, and their types (Request, the user dependency) are imported inside ``create_app``.

import datetime as dt
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from airflow.plugins_manager import AirflowPlugin
from sqlalchemy.engine import make_url

from airflow_provider_patsnap.plugins.spend_html import SCRIPT_HASH
from airflow_provider_patsnap.version_compat import AIRFLOW_V_3_0_PLUS

URL_PREFIX = "/patsnap"
MAX_DAYS = 366
#: What the page adds to every answer: no script runs but the page's own, nothing is cached by a proxy.
HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        f"default-src 'none'; script-src '{SCRIPT_HASH}'; style-src 'unsafe-inline'; frame-ancestors 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def patsnap_conn_ids() -> list[str]:
    """PatSnap connections the API server can list: the metadata database's and ``AIRFLOW_CONN_*``
    variables' (a secrets backend cannot be listed: see the README)."""
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        found = set(session.scalars(select(Connection.conn_id).where(Connection.conn_type == "patsnap")))
    for name, value in os.environ.items():
        if name.startswith("AIRFLOW_CONN_") and _is_patsnap(value):
            found.add(name[len("AIRFLOW_CONN_") :].lower())
    return sorted(found)


def _is_patsnap(value: str) -> bool:
    text = value.strip()
    if text.startswith("{"):
        try:
            parsed = json.loads(text)
        except ValueError:
            return False
        return isinstance(parsed, dict) and parsed.get("conn_type") == "patsnap"
    return text.startswith("patsnap:")


def connection_spend(
    conn_id: str, days: int, now: dt.datetime, visible: Callable[[str | None], bool]
) -> dict[str, Any]:
    """One connection's entry on the page; None-free: a ledger that cannot be read says so (its error's
    type only: the message could carry the URL)."""
    from airflow_provider_patsnap.hooks.patsnap import PatsnapHook
    from airflow_provider_patsnap.ledger.engine import url_of_connection
    from airflow_provider_patsnap.ledger.spend import spend

    hook = PatsnapHook(conn_id)
    try:
        config = hook.config
        if not config.has_ledger:
            return {}
        url = config.ledger_url or url_of_connection(hook.get_connection(str(config.ledger_conn_id)))
        if not sqlite_file_exists(url):  # opening it would create an empty ledger here: a page view writes nothing
            return {"conn_id": conn_id, "error": NOT_HERE}
        ledger = hook.ledger
        assert ledger is not None
        return {"conn_id": conn_id, "host": config.base_url, **spend(ledger, days=days, now=now, visible=visible)}
    except Exception as exc:
        return {"conn_id": conn_id, "error": f"This connection's ledger cannot be read ({type(exc).__name__})."}


NOT_HERE = (
    "This connection's ledger is a SQLite file that does not exist on the API server's machine: "
    "the page reads it where the API server runs (use a PostgreSQL ledger for a fleet)."
)


def sqlite_file_exists(url: str) -> bool:
    """False for a SQLite URL whose file is missing here; True for any other database."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return True
    return Path(parsed.database).is_file()


def summary(days: int, visible: Callable[[str | None], bool]) -> dict[str, Any]:
    now = dt.datetime.now(dt.timezone.utc)
    entries = [connection_spend(conn_id, days, now, visible) for conn_id in patsnap_conn_ids()]
    return {"generated_at": now.isoformat(timespec="seconds"), "days": days, "connections": [e for e in entries if e]}


def dag_visibility(user: Any) -> Callable[[str | None], bool]:
    """Which DAG ids this user may read (all of them, or the auth manager's list)."""
    from airflow.api_fastapi.app import get_auth_manager

    manager = get_auth_manager()
    if manager.is_authorized_dag(method="GET", user=user):
        return lambda _dag_id: True
    allowed = manager.get_authorized_dag_ids(user=user, method="GET")
    return lambda dag_id: dag_id is not None and dag_id in allowed


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
        data = summary(days, dag_visibility(user))
        mount = request.scope.get("root_path", "")
        ui = mount[: -len(URL_PREFIX)] if mount.endswith(URL_PREFIX) else ""
        generated = dt.datetime.fromisoformat(data["generated_at"])
        return HTMLResponse(page(ui, data["connections"], days, generated), headers=HEADERS)

    @app.get("/api/spend", dependencies=allowed)
    def spend_data(user: GetUserDep, days: int = days_query) -> JSONResponse:
        return JSONResponse(summary(days, dag_visibility(user)), headers=HEADERS)

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
