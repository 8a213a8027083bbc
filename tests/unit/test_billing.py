"""billing: the owner of billable state (the run's identity, single units, failures after a purchase)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from airflow_provider_patsnap.billing import RunIdentity, TaskRun, UnitState, backends
from airflow_provider_patsnap.errors import (
    Outcome,
    PatsnapAmbiguousCreateError,
    PatsnapInputError,
    PatsnapRateLimitError,
)
from airflow_provider_patsnap.version_compat import AirflowException, AirflowFailException, TaskDeferred
from tests.support import TaskStateStore

try:  # Airflow 3: BaseException subclasses, as the task runner raises them
    from airflow.sdk.exceptions import AirflowTaskTerminated, AirflowTaskTimeout
except ImportError:  # Airflow 2.11
    from airflow.exceptions import AirflowTaskTerminated, AirflowTaskTimeout  # type: ignore[no-redef]

LOG = logging.getLogger("test_billing")
KEY = "patsnap_create"


class TI:
    dag_id, run_id, task_id, map_index = "d", "r", "t", -1

    def __init__(self, max_tries: int = 2, try_number: int = 1, fail_push: bool = False) -> None:
        self.max_tries = max_tries
        self.try_number = try_number
        self.pushed: dict[str, Any] = {}
        self.fail_push = fail_push

    def xcom_push(self, key: str, value: Any) -> None:
        if self.fail_push:
            raise ConnectionError("metadata database went away")
        self.pushed[key] = value


class Task:
    def __init__(self, retries: int = 2) -> None:
        self.retries = retries


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> TaskStateStore:
    monkeypatch.setattr(backends, "AIRFLOW_V_3_3_PLUS", True)
    return TaskStateStore()


def context(store: TaskStateStore | None, max_tries: int = 2, retries: int = 2, **ti: Any) -> dict[str, Any]:
    return {"task_state_store": store, "ti": TI(max_tries, **ti), "task": Task(retries)}


class Calls:
    """A billable call: each outcome in turn; ``send`` says whether it reaches the transport first."""

    def __init__(self, *outcomes: Any, send: bool = True) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0
        self.send = send

    def __call__(self, on_send: Any) -> str:
        self.calls += 1
        outcome = self.outcomes.pop(0)
        if self.send:
            on_send()
        if isinstance(outcome, BaseException):
            raise outcome
        return str(outcome)


def buy(ctx: dict[str, Any], call: Calls) -> str:
    return TaskRun(ctx, LOG).buy_once(KEY, "R001 create", call, xcom_key="patsnap_job_id")


# ------------------------------------------------------------------------------------ identity


def test_the_run_is_max_tries_so_a_deploy_that_changes_retries_is_still_the_same_run() -> None:
    before = RunIdentity.of(context(None, max_tries=3, retries=3))
    after_deploy = RunIdentity.of(context(None, max_tries=3, retries=5))  # the DAG file now says retries=5
    assert before.run == after_deploy.run == 3
    assert before.owns({"run": 3}) and after_deploy.owns({"run": 3})
    cleared = RunIdentity.of(context(None, max_tries=4, retries=3))  # a clear after try 1: 1 + 3
    assert not cleared.owns({"run": 3})


def test_entries_written_by_0_2_are_read_by_their_generation() -> None:
    identity = RunIdentity.of(context(None, max_tries=5, retries=2))
    assert identity.legacy_generation == 4
    assert identity.owns({"generation": 4, "state": "done"}) and not identity.owns({"generation": 1})


def test_a_legacy_record_is_understood_after_an_upgrade(store: TaskStateStore) -> None:
    store.data[KEY] = {"state": "done", "result": "1579434053399035905", "generation": 1}
    call = Calls("must-not-happen")
    assert buy(context(store), call) == "1579434053399035905" and call.calls == 0


# ------------------------------------------------------------------------------------ single units


def test_a_retry_after_the_answer_was_recorded_reattaches(store: TaskStateStore) -> None:
    call = Calls("1579434053399035905", "second-job")
    assert buy(context(store), call) == "1579434053399035905"
    # The worker dies before Airflow records the XCom; Airflow retries the task (after a deploy, even).
    assert buy(context(store, retries=7, try_number=2), call) == "1579434053399035905"
    assert call.calls == 1
    assert store.data[KEY]["state"] == UnitState.ANSWERED.value and store.data[KEY]["run"] == 2


def test_a_retry_after_sent_without_an_answer_fails_with_the_check_message(store: TaskStateStore) -> None:
    store.data[KEY] = {"state": "sent", "sent_at": "2026-12-02T10:00:00+00:00", "run": 2}
    call = Calls("must-not-happen")
    with pytest.raises(AirflowFailException, match=r"may have run.*Before re-running.*Clearing the task") as info:
        buy(context(store), call)
    assert "2026-12-02T10:00:00" in str(info.value) and call.calls == 0


def test_clearing_the_task_buys_anew(store: TaskStateStore) -> None:
    store.data[KEY] = {"state": "answered", "result": "old", "run": 2}
    assert buy(context(store, max_tries=5), Calls("new")) == "new"
    assert store.data[KEY]["result"] == "new" and store.data[KEY]["run"] == 5


def test_a_call_stopped_before_it_was_handed_to_the_transport_is_bought_by_the_retry(store: TaskStateStore) -> None:
    """An execution_timeout while the create waits in the rate limiter (or for its token)."""
    with pytest.raises(AirflowTaskTimeout):
        buy(context(store), Calls(AirflowTaskTimeout("execution_timeout"), send=False))
    assert store.data[KEY]["state"] == UnitState.INTENT.value
    assert buy(context(store, try_number=2), Calls("42")) == "42"


@pytest.mark.parametrize(
    "error",
    [
        PatsnapInputError("company_name", "give at least one"),
        PatsnapRateLimitError("rate limited", outcome=Outcome.REJECTED),
    ],
)
def test_a_call_that_surely_bought_nothing_is_refused_and_may_be_bought_again(
    store: TaskStateStore, error: Exception
) -> None:
    with pytest.raises(type(error)):
        buy(context(store), Calls(error))
    assert store.data[KEY]["state"] == UnitState.REFUSED.value
    assert buy(context(store), Calls("42")) == "42"


@pytest.mark.parametrize("durable", [True, False], ids=["3.3+", "older"])
@pytest.mark.parametrize(
    "interruption",
    [AirflowTaskTimeout("execution_timeout"), KeyError("parser crash"), AirflowTaskTerminated("SIGTERM")],
    ids=["timeout", "crash", "sigterm"],
)
def test_a_call_interrupted_after_it_was_sent_fails_without_retries(
    monkeypatch: pytest.MonkeyPatch, durable: bool, interruption: BaseException
) -> None:
    monkeypatch.setattr(backends, "AIRFLOW_V_3_3_PLUS", durable)
    backing = TaskStateStore()
    with pytest.raises(AirflowFailException, match="after it was sent: it may have run") as info:
        buy(context(backing), Calls(interruption))
    assert info.value.__cause__ is interruption
    if durable:  # the next attempt knows
        assert backing.data[KEY]["state"] == UnitState.AMBIGUOUS.value


def test_an_ambiguous_create_keeps_its_own_message(store: TaskStateStore) -> None:
    error = PatsnapAmbiguousCreateError("the report job may have been created", endpoint="POST /c")
    with pytest.raises(PatsnapAmbiguousCreateError):
        buy(context(store), Calls(error))
    assert store.data[KEY]["state"] == UnitState.AMBIGUOUS.value


def test_a_small_result_is_kept_and_a_large_one_fails_the_retry(store: TaskStateStore) -> None:
    run = TaskRun(context(store), LOG)
    call = Calls('{"total": 1}')
    first = run.buy_once("k", "POST /x", call)
    assert TaskRun(context(store), LOG).buy_once("k", "POST /x", call) == first and call.calls == 1

    big = Calls("x" * 100_000)
    run.buy_once("big", "POST /y", big)
    with pytest.raises(AirflowFailException, match="too large to keep"):
        TaskRun(context(store), LOG).buy_once("big", "POST /y", big)
    assert big.calls == 1


def test_without_a_durable_store_the_result_is_pushed_inside_execute(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backends, "AIRFLOW_V_3_3_PLUS", False)
    ctx = context(TaskStateStore())
    assert buy(ctx, Calls("77")) == "77"
    assert ctx["ti"].pushed == {"patsnap_job_id": "77"}

    ctx = context(TaskStateStore(), fail_push=True)
    with pytest.raises(AirflowFailException, match=r"answered '88' but it could not be recorded in XCom"):
        buy(ctx, Calls("88"))


# ------------------------------------------------------------------------------------ failures after a purchase


def hint() -> str:
    return "Report job 42 exists (and is paid for): archive it"


@pytest.mark.parametrize("durable", [True, False], ids=["3.3+", "older"])
def test_every_failure_after_a_purchase_names_it(monkeypatch: pytest.MonkeyPatch, durable: bool) -> None:
    monkeypatch.setattr(backends, "AIRFLOW_V_3_3_PLUS", durable)
    run = TaskRun(context(TaskStateStore()), LOG)
    run.buy_once(KEY, "R001 create", Calls("42"))
    with pytest.raises(AirflowException) as info, run.failures_name_purchases(hint):
        raise ConnectionError("the CDN went away")
    assert "Report job 42 exists" in str(info.value)
    # With a durable store the retry reattaches, so Airflow may retry; without one it must not.
    assert isinstance(info.value, AirflowFailException) is (not durable)


def test_a_permanent_failure_keeps_failing_without_retries_and_names_the_job(store: TaskStateStore) -> None:
    run = TaskRun(context(store), LOG)
    run.bought("R001 create", "42")
    with (
        pytest.raises(AirflowFailException, match=r"link refused\. Report job 42 exists"),
        run.failures_name_purchases(hint),
    ):
        raise AirflowFailException("link refused")


def test_no_purchase_no_hint_and_a_deferral_passes_through(store: TaskStateStore) -> None:
    run = TaskRun(context(store), LOG)
    with pytest.raises(ConnectionError), run.failures_name_purchases(hint):
        raise ConnectionError("before anything was bought")
    run.bought("R001 create", "42")
    deferred = TaskDeferred(trigger=object(), method_name="execute_complete")  # type: ignore[arg-type]
    with pytest.raises(TaskDeferred), run.failures_name_purchases(hint):
        raise deferred


def test_the_waiting_window_is_anchored_to_the_runs_first_attempt(store: TaskStateStore) -> None:
    assert TaskRun(context(store), LOG).window_end("w", 60, now=1000.0) == 1060.0
    assert TaskRun(context(store, try_number=2), LOG).window_end("w", 60, now=1500.0) == 1060.0
    assert TaskRun(context(store, max_tries=9), LOG).window_end("w", 60, now=1500.0) == 1560.0  # a clear
