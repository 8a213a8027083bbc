"""The spend page as HTML, its charts as inline SVG: no asset from anywhere else, one fixed script.

Every value from the ledger (DAG and task ids, subjects, job ids: whatever a DAG author or PatSnap
put there) reaches the page through :func:`_e` (text and attributes) or :func:`_path` (URL path
segments, then escaped): there is no other way in.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import html
import zlib
from typing import Any
from urllib.parse import quote

#: Fixed colours for the billed endpoints (a colour-blind-safe palette); others get one by hash.
COLOURS = {
    "R001": "#4477aa",
    "R002": "#ee6677",
    "P035": "#228833",
    "P036": "#ccbb44",
    "P037": "#66ccee",
    "P038": "#aa3377",
    "P039": "#bbbbbb",
    "P040": "#332288",
}
SPARE = ("#117733", "#882255", "#44aa99", "#999933", "#cc6677", "#88ccee")

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:16px 24px;color:#1a202c;
background:#fff}
h1{font-size:1.4rem;margin:0 0 4px}h2{font-size:1.15rem;margin:24px 0 8px}h3{font-size:1rem;margin:16px 0 6px}
.muted{color:#5a6473}.conn{border-top:1px solid #d7dce3;padding-top:4px}
.gauges{display:flex;gap:32px;flex-wrap:wrap}.gauge{min-width:300px}.stat{font-size:1.6rem;font-weight:600}
table{border-collapse:collapse;font-size:.9rem}th,td{text-align:left;padding:4px 10px;border-bottom:1px solid #e6e9ee}
td.num,th.num{text-align:right}.legend span{display:inline-block;margin-right:14px}
.swatch{display:inline-block;width:10px;height:10px;margin-right:4px;vertical-align:middle}
.error{color:#b42318}code{background:#f2f4f7;padding:1px 4px;border-radius:3px}
a{color:#1d4ed8}
"""


#: The page's only script. The UI shows external views in a sandboxed frame that may not navigate the
#: window it is in, so a click on a link into Airflow is handed to the UI's own router (same origin);
#: opened on its own, or with a modifier key, a link is an ordinary link.
SCRIPT = """document.addEventListener("click", function (event) {
  var link = event.target.closest && event.target.closest("a[data-airflow-ui]");
  if (!link || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  try {
    var ui = window.top;
    if (ui === window || ui.location.origin !== window.location.origin) return;
    event.preventDefault();
    ui.history.pushState(null, "", link.href);
    ui.dispatchEvent(new PopStateEvent("popstate", { state: null }));
  } catch (error) { /* not ours to reach: the browser follows the link */ }
});"""
#: What the Content-Security-Policy allows to run: this script and nothing else.
SCRIPT_HASH = "sha256-" + base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _path(*segments: Any) -> str:
    return "/".join(quote(str(segment), safe="") for segment in segments)


def colour(endpoint: str) -> str:
    return COLOURS.get(endpoint) or SPARE[zlib.crc32(endpoint.encode()) % len(SPARE)]


def dag_link(ui: str, dag_id: str) -> str:
    return f'<a data-airflow-ui target="_top" href="{_e(ui)}/dags/{_e(_path(dag_id))}">{_e(dag_id)}</a>'


def task_link(ui: str, item: dict[str, Any], text: str | None = None) -> str:
    """A link to the task instance a unit was bought for (its latest run, for a top task)."""
    if not item.get("dag_id") or not item.get("task_id"):
        return _e(text or "")
    label = _e(text if text is not None else item["task_id"])
    if not item.get("run_id"):
        task_page = _path(item["dag_id"], "tasks", item["task_id"])
        return f'<a data-airflow-ui target="_top" href="{_e(ui)}/dags/{_e(task_page)}">{label}</a>'
    href = _path(item["dag_id"], "runs", item["run_id"], "tasks", item["task_id"])
    if item.get("map_index") is not None and int(item["map_index"]) >= 0:
        href += f"/mapped/{int(item['map_index'])}"
    return f'<a data-airflow-ui target="_top" href="{_e(ui)}/dags/{_e(href)}">{label}</a>'


def _days(first: str, last: str) -> list[str]:
    start, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    return [(start + dt.timedelta(days=n)).isoformat() for n in range((end - start).days + 1)]


def _ceiling(value: int) -> int:
    """A round axis maximum at or above ``value`` (1, 2, 5 x 10^n)."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def stacked_days(summary: dict[str, Any]) -> str:
    """Units per day, stacked by endpoint, as an SVG bar chart (zero days included)."""
    days = _days(summary["first_day"], summary["last_day"])
    endpoints = sorted({row["endpoint"] for row in summary["days"]})
    units = {(row["day"], row["endpoint"]): row["units"] for row in summary["days"]}
    totals = [sum(units.get((day, e), 0) for e in endpoints) for day in days]
    top = _ceiling(max([*totals, 1]))
    width, height, left, bottom, upper = 760, 240, 48, 30, 12
    plot_w, plot_h = width - left - 12, height - bottom - upper
    slot = plot_w / len(days)
    parts = [
        f'<svg class="chart" role="img" aria-label="Units per day by endpoint" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg" font-size="11" fill="#5a6473">'
    ]
    for tick in (0, top // 2, top) if top > 1 else (0, top):
        y = upper + plot_h - plot_h * tick / top
        parts.append(f'<line x1="{left}" x2="{width - 12}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e6e9ee"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{tick}</text>')
    for i, day in enumerate(days):
        x = left + i * slot + slot * 0.15
        y = upper + plot_h
        for endpoint in endpoints:
            value = units.get((day, endpoint), 0)
            if not value:
                continue
            h = plot_h * value / top
            y -= h
            parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}" '
                f'fill="{colour(endpoint)}"><title>{_e(day)} {_e(endpoint)}: {value} unit(s)</title></rect>'
            )
        if i % 5 == 0 or i == len(days) - 1:
            parts.append(f'<text x="{x + slot * 0.35:.1f}" y="{height - 10}" text-anchor="middle">{_e(day[5:])}</text>')
    parts.append("</svg>")
    legend = "".join(f'<span><i class="swatch" style="background:{colour(e)}"></i>{_e(e)}</span>' for e in endpoints)
    return "".join(parts) + f'<div class="legend">{legend or "<span class=muted>No units bought.</span>"}</div>'


def gauge(label: str, period: str, used: int, cap: int | None) -> str:
    """One period's units against its cap, as a bar (no cap: the units alone)."""
    if cap is None:
        bar = '<div class="muted">no cap set</div>'
    else:
        share = used / cap if cap else 1.0
        fill = "#16a34a" if share < 0.8 else "#d97706" if share < 1 else "#dc2626"
        width = 300 * min(share, 1.0)
        bar = (
            f'<svg class="gauge-bar" role="img" aria-label="{_e(label)}: {used} of {cap}" width="300" height="16" '
            f'xmlns="http://www.w3.org/2000/svg"><rect width="300" height="16" rx="3" fill="#e6e9ee"/>'
            f'<rect width="{width:.1f}" height="16" rx="3" fill="{fill}"/></svg>'
        )
    of = f" of {cap}" if cap is not None else ""
    return (
        f'<div class="gauge"><h3>{_e(label)} <span class="muted">{_e(period)}</span></h3>'
        f'<div class="stat">{used}<span class="muted" style="font-size:1rem">{_e(of)} unit(s)</span></div>{bar}</div>'
    )


def _table(css: str, headings: tuple[str, ...], rows: list[str], empty: str) -> str:
    """A table of ``rows`` (already escaped ``<td>`` cells), or the ``empty`` sentence; a heading that
    starts with "#" is a number column."""
    if not rows:
        return f'<p class="muted">{empty}</p>'
    head = "".join(f'<th class="num">{h[1:]}</th>' if h.startswith("#") else f"<th>{h}</th>" for h in headings)
    return f'<table class="{css}"><tr>{head}</tr>{"".join(f"<tr>{row}</tr>" for row in rows)}</table>'


def _top_table(ui: str, top: list[dict[str, Any]]) -> str:
    rows = [
        f"<td>{dag_link(ui, item['dag_id'])}</td><td>{task_link(ui, item)}</td>"
        f'<td class="num">{int(item["units"])}</td><td class="num">{int(item["calls"])}</td>'
        for item in top
    ]
    headings = ("DAG", "Task (latest run)", "#Units", "#Calls")
    return _table("top", headings, rows, "No units bought by a DAG in this period.")


def _open_table(ui: str, items: list[dict[str, Any]]) -> str:
    rows = [
        f"<td>{_e(item['kind'])}</td><td>{_e(item['when'])}</td><td>{_e(item['endpoint'])}</td>"
        f'<td>{_e(item["subject"])}</td><td class="num">{int(item["units"])}</td>'
        f"<td><code>{_e(item['job_id'] or '-')}</code></td>"
        f"<td>{task_link(ui, item, _task_label(item)) if item.get('dag_id') else '-'}</td>"
        for item in items
    ]
    headings = ("Question", "When", "Endpoint", "Subject", "#Units", "Job id", "Task instance")
    return _table("open", headings, rows, "Nothing open: every call was answered and every reconciled day matched.")


def _task_label(item: dict[str, Any]) -> str:
    mapped = f"[{item['map_index']}]" if item.get("map_index") is not None and int(item["map_index"]) >= 0 else ""
    return f"{item['dag_id']}.{item['task_id']}{mapped} {item.get('run_id') or ''}".strip()


def connection_section(ui: str, entry: dict[str, Any]) -> str:
    title = f'<h2>{_e(entry["conn_id"])} <span class="muted">{_e(entry.get("host") or "")}</span></h2>'
    if entry.get("error"):
        return f'<section class="conn">{title}<p class="error">{_e(entry["error"])}</p></section>'
    budget = entry["budget"]
    gauges = (
        gauge("Today", f"{budget['day']} ({budget['timezone']})", budget["day_units"], budget["daily_cap"])
        + gauge("This month", f"{budget['month']} ({budget['timezone']})", budget["month_units"], budget["monthly_cap"])
        + '<div class="gauge"><h3>Saved by reuse <span class="muted">this period</span></h3>'
        f'<div class="stat reused">{entry["reused_units"]}<span class="muted" style="font-size:1rem"> unit(s) '
        "not bought again</span></div></div>"
    )
    return (
        f'<section class="conn" data-conn-id="{_e(entry["conn_id"])}">{title}<div class="gauges">{gauges}</div>'
        f'<h3>Units per day <span class="muted">{_e(entry["first_day"])} to {_e(entry["last_day"])}, '
        f"{_e(entry['timezone'])}</span></h3>{stacked_days(entry)}"
        f"<h3>Top DAGs and tasks</h3>{_top_table(ui, entry['top'])}"
        f"<h3>Open questions</h3>{_open_table(ui, entry['open'])}</section>"
    )


EMPTY = """<section class="empty"><h2>No PatSnap ledger is configured</h2>
<p>This page reads the ledger a PatSnap connection records its units in. Add one of these extras to a
connection of type <code>patsnap</code>, then run a task with it:</p>
<ul><li><code>ledger_url</code>: a SQLAlchemy URL, e.g. <code>sqlite:////var/lib/airflow/patsnap-ledger.db</code>
for one machine, <code>postgresql+psycopg2://user@db/patsnap</code> for a fleet;</li>
<li><code>ledger_conn_id</code>: an Airflow connection to that database.</li></ul>
<p>Budgets come from the extras <code>budget_daily_units</code> and <code>budget_monthly_units</code>.</p></section>"""


def page(ui: str, connections: list[dict[str, Any]], days: int, generated: dt.datetime) -> str:
    body = "".join(connection_section(ui, entry) for entry in connections) or EMPTY
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>PatSnap spend</title>'
        f"<style>{STYLE}</style><script>{SCRIPT}</script></head><body><h1>PatSnap spend</h1>"
        f'<p class="muted">The last {days} day(s), from each PatSnap connection\'s ledger. '
        f"Generated {_e(generated.isoformat(timespec='seconds'))}.</p>{body}</body></html>"
    )
