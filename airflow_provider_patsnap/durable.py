"""Paying once across attempts: what a task instance remembers between its tries.

On Airflow 3.3+ the task state store (AIP-103, ``context["task_state_store"]``) outlives a killed
worker and is read by the next attempt of the same task instance. Entries are stamped with the
task's *generation* (its first try number since the last clear), so a retry sees them and a
deliberate re-run (clearing the task) starts afresh, as users expect of a clear.

On older Airflow there is no such memory: a create that may have gone out is failed without
Airflow retries instead (``durable_create``), so a retry can never create silently twice.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

from airflow_provider_patsnap.errors import (
    CHECK_BEFORE_RERUN,
    Outcome,
    PatsnapError,
    PatsnapInputError,
)
from airflow_provider_patsnap.version_compat import AIRFLOW_V_3_3_PLUS, AirflowFailException

CREATE_KEY = "patsnap_create"
#: Results up to this many bytes of JSON are kept in the state store for a later attempt.
RESULT_LIMIT = 64 * 1024


def generation(context: Any) -> int:
    """The first try number of the task's current run (what Airflow itself uses; a clear changes it)."""
    ti = _get(context, "ti")
    task = _get(context, "task")
    try:
        return int(ti.max_tries) - int(getattr(task, "retries", 0) or 0) + 1
    except (AttributeError, TypeError, ValueError):
        return 1


def _get(context: Any, name: str) -> Any:
    return context.get(name) if hasattr(context, "get") else None


class TaskMemory:
    """Entries of one task instance that survive its attempts (Airflow 3.3+), per generation."""

    def __init__(self, context: Any) -> None:
        self.store = _get(context, "task_state_store") if AIRFLOW_V_3_3_PLUS else None
        self.generation = generation(context)

    @property
    def available(self) -> bool:
        return self.store is not None

    def get(self, key: str) -> dict[str, Any] | None:
        """The entry an earlier attempt of this generation left, or None."""
        if self.store is None:
            return None
        entry = self.store.get(key)
        if isinstance(entry, dict) and entry.get("generation") == self.generation:
            return entry
        return None

    def set(self, key: str, **fields: Any) -> None:
        if self.store is not None:
            self.store.set(key, {**fields, "generation": self.generation})

    def delete(self, key: str) -> None:
        if self.store is not None:
            self.store.delete(key)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _surely_not_created(exc: BaseException) -> bool:
    """Errors that prove PatSnap made no job (bad input, or a call refused or never sent)."""
    if isinstance(exc, PatsnapInputError):
        return True
    return isinstance(exc, PatsnapError) and exc.outcome in (Outcome.NOT_SENT, Outcome.REJECTED)


def durable_call(context: Any, call: Callable[[], Any], *, key: str, what: str, log: Any) -> Any:
    """Run a billable ``call`` at most once per task instance and generation; return its result.

    3.3+: the intent is recorded before sending and the result (when it is small JSON) after
    PatSnap answers. A later attempt that finds the result returns it; one that finds "sent, no
    answer" fails with the check-before-rerun message. Any Airflow version: an exception that
    leaves the call in doubt (a timeout, SIGTERM, a crash after the request) fails without
    Airflow retries.
    """
    memory = TaskMemory(context)
    entry = memory.get(key)
    if entry and "result" in entry:
        log.info("Reattached: an earlier attempt already made the %s (%s); no new call.", what, entry["result"])
        return entry["result"]
    if entry:
        happened = "got an answer too large to keep" if entry.get("state") == "done" else "got no answer"
        raise AirflowFailException(
            f"An earlier attempt of this task sent the {what} at {entry.get('sent_at')} and {happened}: it may "
            f"have run. {CHECK_BEFORE_RERUN}. Clearing the task calls again deliberately."
        )
    sent_at = _now()
    memory.set(key, state="sending", sent_at=sent_at)
    try:
        result = call()
    except BaseException as exc:
        if _surely_not_created(exc):
            memory.delete(key)
            raise
        if isinstance(exc, (AirflowFailException, PatsnapError)):
            raise  # already says the call may have run (or is permanent): fails without retries
        raise AirflowFailException(
            f"The {what} was interrupted ({type(exc).__name__}) after it may have been sent: it may have run. "
            f"{CHECK_BEFORE_RERUN}."
        ) from exc
    kept = len(json.dumps(result, default=str)) <= RESULT_LIMIT
    memory.set(key, state="done", sent_at=sent_at, **({"result": result} if kept else {}))
    return result


def durable_create(context: Any, create: Callable[[], str], *, what: str, log: Any) -> str:
    """``durable_call`` for a report create (``what``: ``R001``/``R002``); returns the job id."""
    job_id = str(durable_call(context, create, key=CREATE_KEY, what=f"{what} create", log=log))
    if not TaskMemory(context).available:
        _record_in_xcom(context, job_id, what)
    return job_id


def _record_in_xcom(context: Any, job_id: str, what: str) -> None:
    """Without a state store, push the job id inside ``execute``, where a failure can still be caught:
    Airflow's own push after ``execute`` returns could fail into a retry that creates again."""
    ti = _get(context, "ti")
    if ti is None:
        return
    try:
        ti.xcom_push(key="return_value", value=job_id)
    except Exception as exc:
        raise AirflowFailException(
            f"Created {what} job {job_id} but could not record it in XCom ({type(exc).__name__}); "
            f"use this job id instead of re-running the create."
        ) from exc


def window_end(context: Any, key: str, seconds: float, now: float) -> float:
    """The end of a waiting window anchored to the first attempt (Airflow 3.3+: a retry keeps it)."""
    memory = TaskMemory(context)
    started = (memory.get(key) or {}).get("started")
    if not isinstance(started, (int, float)):
        started = now
        memory.set(key, started=started)
    return float(started) + seconds
