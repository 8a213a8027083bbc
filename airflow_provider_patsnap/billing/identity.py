"""Which run of a task instance an attempt belongs to, from the task instance alone.

A task instance's attempts share what they bought; a *clear* (a deliberate re-run) starts a new
run that buys afresh. Airflow records exactly that in ``ti.max_tries``: it is set when the task
instance is created, kept across retries, and raised by every clear of a finished task instance
(``max_tries = try_number + retries``). It does not depend on the DAG file the worker parses now,
so a deploy that changes ``retries`` while the task is up for retry does not make the retry a new
run (0.2 derived the run from ``task.retries`` and bought a second report in that case).

Two corners, both Airflow's semantics: a clear of a *running* task instance restarts it without
touching ``max_tries`` (it is a retry: it reattaches), and a clear that lowers ``retries`` by exactly
the tries already made leaves ``max_tries`` as it was (it reattaches too; nothing is bought twice).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any


def _get(context: Any, name: str) -> Any:
    return context.get(name) if hasattr(context, "get") else None


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


@dataclass(frozen=True)
class RunIdentity:
    """A task instance and the run of it an attempt belongs to."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    #: ``ti.max_tries``: the same for every attempt of a run, changed by a clear.
    run: int
    try_number: int
    #: 0.2's run number (``max_tries - task.retries + 1``), to recognise entries written before the upgrade.
    legacy_generation: int

    @classmethod
    def of(cls, context: Any) -> RunIdentity:
        ti = _get(context, "ti")
        task = _get(context, "task")
        max_tries = _int(getattr(ti, "max_tries", 0), 0)
        return cls(
            dag_id=str(getattr(ti, "dag_id", "") or ""),
            run_id=str(getattr(ti, "run_id", "") or ""),
            task_id=str(getattr(ti, "task_id", "") or ""),
            map_index=_int(getattr(ti, "map_index", -1), -1),
            run=max_tries,
            try_number=_int(getattr(ti, "try_number", 1), 1),
            legacy_generation=max_tries - _int(getattr(task, "retries", 0) or 0, 0) + 1,
        )

    @property
    def instance_digest(self) -> str:
        """16 hex digits naming the task instance (all its runs) in file names."""
        text = "|".join((self.dag_id, self.run_id, self.task_id, str(self.map_index)))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def owns(self, entry: Any) -> bool:
        """Whether a stored entry was written by an attempt of this run."""
        if not isinstance(entry, dict):
            return False
        if "run" in entry:
            return entry["run"] == self.run
        return entry.get("generation") == self.legacy_generation  # written by 0.2
