"""durable.py: what a task instance remembers across attempts, with an in-memory task state store."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from airflow_provider_patsnap import durable
from airflow_provider_patsnap.durable import CREATE_KEY, TaskMemory, durable_create, generation
from airflow_provider_patsnap.errors import (
    Outcome,
    PatsnapAmbiguousCreateError,
    PatsnapInputError,
    PatsnapRateLimitError,
)
from airflow_provider_patsnap.version_compat import AirflowFailException
from tests.support import TaskStateStore

try:  # Airflow 3: BaseException subclasses, as the task runner raises them
    from airflow.sdk.exceptions import AirflowTaskTerminated, AirflowTaskTimeout
except ImportError:  # Airflow 2.11
    from airflow.exceptions import AirflowTaskTerminated, AirflowTaskTimeout  # type: ignore[no-redef]

LOG = logging.getLogger("test_durable")


class TI:
    def __init__(self, max_tries: int = 2, fail_push: bool = False) -> None:
        self.max_tries = max_tries
        self.pushed: dict[str, Any] = {}
        self.fail_push = fail_push

    def xcom_push(self, key: str, value: Any) -> None:
        if self.fail_push:
            raise ConnectionError("metadata database went away")
        self.pushed[key] = value


class Task:
    retries = 2


@pytest.fixture
def with_store(monkeypatch: pytest.MonkeyPatch) -> TaskStateStore:
    monkeypatch.setattr(durable, "AIRFLOW_V_3_3_PLUS", True)
    return TaskStateStore()


def context(store: TaskStateStore | None, max_tries: int = 2, **ti: Any) -> dict[str, Any]:
    return {"task_state_store": store, "ti": TI(max_tries, **ti), "task": Task()}


class Creates:
    def __init__(self, *outcomes: Any) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return str(outcome)


def test_generation_is_the_first_try_of_the_current_run() -> None:
    assert generation(context(None, max_tries=2)) == 1  # tries 1..3 of a task with retries=2
    assert generation(context(None, max_tries=5)) == 4  # after a clear at try 3: a new generation
    assert generation({}) == 1


def test_a_retry_after_the_job_id_was_recorded_reattaches(with_store: TaskStateStore) -> None:
    create = Creates("1579434053399035905", "second-job")
    assert durable_create(context(with_store), create, what="R001", log=LOG) == "1579434053399035905"
    # The worker dies before Airflow records the XCom; Airflow retries the task.
    assert durable_create(context(with_store), create, what="R001", log=LOG) == "1579434053399035905"
    assert create.calls == 1
    assert with_store.data[CREATE_KEY]["state"] == "done"


def test_a_retry_after_sent_without_an_answer_fails_with_the_check_message(with_store: TaskStateStore) -> None:
    with_store.data[CREATE_KEY] = {"state": "sending", "sent_at": "2026-12-02T10:00:00+00:00", "generation": 1}
    create = Creates("must-not-happen")
    with pytest.raises(AirflowFailException, match=r"may have run.*Before re-running.*Clearing the task") as info:
        durable_create(context(with_store), create, what="R002", log=LOG)
    assert "2026-12-02T10:00:00" in str(info.value)
    assert create.calls == 0


def test_clearing_the_task_creates_anew(with_store: TaskStateStore) -> None:
    with_store.data[CREATE_KEY] = {"state": "done", "result": "old", "generation": 1}
    create = Creates("new")
    assert durable_create(context(with_store, max_tries=5), create, what="R001", log=LOG) == "new"
    assert with_store.data[CREATE_KEY] == {
        "state": "done",
        "result": "new",
        "sent_at": with_store.data[CREATE_KEY]["sent_at"],
        "generation": 4,
    }


@pytest.mark.parametrize(
    "error",
    [
        PatsnapInputError("company_name", "give at least one"),
        PatsnapRateLimitError("rate limited", outcome=Outcome.REJECTED),
    ],
)
def test_a_create_that_surely_made_nothing_leaves_no_intent(with_store: TaskStateStore, error: Exception) -> None:
    with pytest.raises(type(error)):
        durable_create(context(with_store), Creates(error), what="R001", log=LOG)
    assert CREATE_KEY not in with_store.data
    assert durable_create(context(with_store), Creates("42"), what="R001", log=LOG) == "42"


@pytest.mark.parametrize("store", [True, False], ids=["3.3+", "older"])
@pytest.mark.parametrize(
    "interruption",
    [AirflowTaskTimeout("execution_timeout"), KeyError("parser crash"), AirflowTaskTerminated("SIGTERM")],
    ids=["timeout", "crash", "sigterm"],
)
def test_an_interrupted_create_fails_without_retries(
    monkeypatch: pytest.MonkeyPatch, store: bool, interruption: BaseException
) -> None:
    monkeypatch.setattr(durable, "AIRFLOW_V_3_3_PLUS", store)
    backing = TaskStateStore()
    with pytest.raises(AirflowFailException, match="may have run") as info:
        durable_create(context(backing), Creates(interruption), what="R001", log=LOG)
    assert info.value.__cause__ is interruption
    if store:  # the next attempt knows a create was in flight
        assert backing.data[CREATE_KEY]["state"] == "sending"


def test_an_ambiguous_create_keeps_its_own_message(with_store: TaskStateStore) -> None:
    error = PatsnapAmbiguousCreateError("the report job may have been created", endpoint="POST /c")
    with pytest.raises(PatsnapAmbiguousCreateError):
        durable_create(context(with_store), Creates(error), what="R001", log=LOG)
    assert with_store.data[CREATE_KEY]["state"] == "sending"


def test_a_billable_call_keeps_its_small_result_for_a_retry(with_store: TaskStateStore) -> None:
    from airflow_provider_patsnap.durable import durable_call

    call = Creates('{"total": 1}')
    first = durable_call(context(with_store), call, key="k", what="POST /x", log=LOG)
    assert durable_call(context(with_store), call, key="k", what="POST /x", log=LOG) == first
    assert call.calls == 1

    big = Creates("x" * 100_000)
    durable_call(context(with_store), big, key="big", what="POST /y", log=LOG)
    with pytest.raises(AirflowFailException, match="too large to keep"):
        durable_call(context(with_store), big, key="big", what="POST /y", log=LOG)
    assert big.calls == 1


def test_older_airflow_records_the_job_id_inside_execute(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(durable, "AIRFLOW_V_3_3_PLUS", False)
    ctx = context(TaskStateStore())
    assert durable_create(ctx, Creates("77"), what="R001", log=LOG) == "77"
    assert ctx["ti"].pushed == {"return_value": "77"}

    ctx = context(TaskStateStore(), fail_push=True)
    with pytest.raises(AirflowFailException, match="Created R001 job 88 but could not record it"):
        durable_create(ctx, Creates("88"), what="R001", log=LOG)


def test_memory_ignores_entries_of_another_generation(with_store: TaskStateStore) -> None:
    memory = TaskMemory(context(with_store, max_tries=2))
    memory.set("k", value=1)
    assert memory.get("k") == {"value": 1, "generation": 1}
    assert TaskMemory(context(with_store, max_tries=7)).get("k") is None
