"""What the provider tells Airflow's metrics (``Stats``: StatsD or OpenTelemetry, as Airflow is set up).

Counters, tagged by endpoint (the PatSnap serial: R001, P037...) and DAG: ``patsnap.units.billed``,
``patsnap.units.reused``, ``patsnap.budget.refused``, ``patsnap.calls.ambiguous``,
``patsnap.ratelimit.refused``; and the timer ``patsnap.ratelimit.wait``. A metric that cannot be
sent is dropped: metrics never fail a call.
"""

from __future__ import annotations

import contextlib
from typing import Any

from airflow_provider_patsnap.version_compat import Stats


def _tags(serial: str | None, dag_id: str | None) -> dict[str, str]:
    return {"endpoint": serial or "unknown", "dag_id": dag_id or "none"}


def count(name: str, value: int, *, serial: str | None = None, dag_id: str | None = None) -> None:
    if value <= 0:
        return
    with contextlib.suppress(Exception):
        Stats.incr(f"patsnap.{name}", value, tags=_tags(serial, dag_id))


def timing(name: str, seconds: float, **tags: Any) -> None:
    with contextlib.suppress(Exception):
        Stats.timing(f"patsnap.{name}", seconds * 1000.0, tags={k: str(v) for k, v in tags.items()})
