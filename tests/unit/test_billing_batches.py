"""billing.batches and hooks._batches: indicator batches as billable units (kept, bounded replays, output known)."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_patsnap.billing import TaskRun, backends, open_book, request_digest
from airflow_provider_patsnap.billing.batches import StagedBook, StoredBook
from airflow_provider_patsnap.errors import (
    Outcome,
    PatsnapConnectionError,
    PatsnapRetryableError,
)
from airflow_provider_patsnap.hooks._batches import ReplayBudget, fetch_batches
from airflow_provider_patsnap.staging import write_lines_atomically
from airflow_provider_patsnap.valuation import INDICATORS, Batch
from airflow_provider_patsnap.version_compat import object_storage_path
from tests.support import TaskStateStore

LOG = logging.getLogger("test_billing_batches")


def batch(*patents: str) -> Batch:
    return Batch(indicator=INDICATORS["legal"], param="patent_number", patents=patents or ("CN1",))


def run_of(run_id: str = "r1", map_index: int = 0, max_tries: int = 2, store: Any = None) -> TaskRun:
    ti = SimpleNamespace(dag_id="d", run_id=run_id, task_id="t", map_index=map_index, max_tries=max_tries, try_number=1)
    return TaskRun({"ti": ti, "task": SimpleNamespace(retries=2), "task_state_store": store}, LOG)


def lost() -> PatsnapRetryableError:
    return PatsnapConnectionError("ReadTimeout (no answer after the request was sent)", outcome=Outcome.MAY_HAVE_RUN)


class Fetch:
    """Each batch's answers in turn (an exception is raised)."""

    def __init__(self, **answers: list[Any]) -> None:
        self.answers = answers
        self.sent: list[str] = []

    def __call__(self, b: Batch, stop: threading.Event) -> list[Any]:
        self.sent.append(b.patents[0])
        answer = self.answers[b.patents[0]].pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer


# ------------------------------------------------------------------------------------ replays within a fetch


def test_a_lost_answer_is_sent_again_once_and_counted() -> None:
    budget = ReplayBudget(1)
    fetch = Fetch(CN1=[lost(), [{"pn": "CN1"}]])
    assert fetch_batches(fetch, [batch("CN1")], 2, budget=budget) == {batch("CN1").key: [{"pn": "CN1"}]}
    assert fetch.sent == ["CN1", "CN1"] and budget.total == 1


@pytest.mark.parametrize("replays", [0, 1, 2])
def test_replays_stop_at_the_budget_and_leave_the_batch_to_the_next_attempt(replays: int) -> None:
    fetch = Fetch(CN1=[lost()] * (replays + 1))
    pauses: list[int] = []
    budget = ReplayBudget(replays, pause=pauses.append)
    with pytest.raises(
        PatsnapRetryableError, match=r"may have been billed, and it is not sent again in this attempt"
    ) as info:
        fetch_batches(fetch, [batch("CN1")], 1, budget=budget)
    assert info.value.outcome is Outcome.MAY_HAVE_RUN
    assert len(fetch.sent) == replays + 1 and pauses == list(range(1, replays + 1))  # a backoff before each replay
    assert budget.total == replays + 1  # every send whose results never reached us is counted


def test_a_refused_batch_is_not_counted_as_a_replay() -> None:
    refused = PatsnapRetryableError("rate limited", outcome=Outcome.REJECTED)
    budget = ReplayBudget(1)
    with pytest.raises(PatsnapRetryableError):
        fetch_batches(Fetch(CN1=[refused]), [batch("CN1")], 1, budget=budget)
    assert budget.total == 0


def test_batches_in_flight_at_an_interruption_are_handed_to_the_budget() -> None:
    started = threading.Event()

    class Budget(ReplayBudget):
        def __init__(self) -> None:
            super().__init__(1)
            self.lost: list[str] = []

        def interrupted(self, keys: list[str]) -> None:
            self.lost += keys

    def slow(b: Batch, stop: threading.Event) -> list[Any]:
        started.set()
        time.sleep(0.5)
        return []

    def interrupt(b: Batch, items: list[Any]) -> None:
        raise KeyboardInterrupt  # stands for the SIGTERM/timeout Airflow raises in the task's thread

    budget = Budget()
    fast = batch("CN0")

    def fetch(b: Batch, stop: threading.Event) -> list[Any]:
        if b is fast:
            started.wait(5)  # the other batch is on the wire when this one's answer interrupts
            return []
        return slow(b, stop)

    with pytest.raises(KeyboardInterrupt):
        fetch_batches(fetch, [fast, batch("CN9")], 2, on_batch=interrupt, budget=budget)
    assert budget.lost == [batch("CN9").key]


# ------------------------------------------------------------------------------------ the book beside a destination


def local(path: Path) -> Any:
    return object_storage_path(path.as_uri())


def test_the_book_keeps_batches_and_lost_answers_for_the_next_attempt(tmp_path: Path) -> None:
    final = local(tmp_path / "out.jsonl")
    book = StagedBook(run_of(), 1, final)
    book.save(batch("CN1"), [{"pn": "CN1"}])
    assert book.take(batch("CN2").key) == 1 and book.take(batch("CN2").key) is None  # one replay per attempt
    book.interrupted([batch("CN3").key])
    book.flush()  # what fetch_batches does, in its own thread, as batches complete and on the way out
    assert book.total == 2

    again = StagedBook(run_of(), 1, final)  # the retry
    assert again.completed([batch("CN1"), batch("CN2")]) == {batch("CN1").key: [{"pn": "CN1"}]}
    assert again.total == 2  # what may have been billed so far, carried across attempts
    assert again.take(batch("CN2").key) == 1 and again.total == 3


def test_a_finished_output_is_recognised_only_for_the_same_request_and_bytes(tmp_path: Path) -> None:
    final = local(tmp_path / "out.jsonl")
    book = StagedBook(run_of(), 1, final)
    book.save(batch("CN1"), [{"pn": "CN1"}])
    write_lines_atomically(final, iter([b'{"pn": "CN1"}\n']))
    digest = request_digest(["P037"], ["CN1"], [])
    result = {"uri": "file:///x", "records": 1}
    book.finish(digest, result)

    retry = StagedBook(run_of(), 1, final)
    assert retry.finished(digest) == result
    assert retry.finished(request_digest(["P037"], ["CN1", "CN2"], [])) is None  # another request
    assert retry.completed([batch("CN1")]) == {}  # batch files are gone; only the done marker stays (before 3.3)
    assert [p.name for p in retry.folder.iterdir()] == ["done.json"]
    (tmp_path / "out.jsonl").write_text("edited by someone\n")
    assert retry.finished(digest) is None  # not the bytes that were published
    assert StagedBook(run_of(max_tries=5), 1, final).finished(digest) is None  # a clear: a new run


def test_with_a_task_state_store_the_done_marker_is_kept_there_and_nothing_beside_the_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backends, "AIRFLOW_V_3_3_PLUS", True)
    store = TaskStateStore()
    final = local(tmp_path / "out.jsonl")
    book = StagedBook(run_of(store=store), 1, final)
    book.save(batch("CN1"), [{"pn": "CN1"}])
    write_lines_atomically(final, iter([b'{"pn": "CN1"}\n']))
    book.finish("digest", {"uri": "u"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]
    assert StagedBook(run_of(store=store), 1, final).finished("digest") == {"uri": "u"}


def test_finishing_cleans_only_this_task_instances_folders(tmp_path: Path) -> None:
    final = local(tmp_path / "legal_indicators.jsonl")
    books = {
        "mine": StagedBook(run_of("r1", 0), 1, final),
        "before a clear": StagedBook(run_of("r1", 0, max_tries=1), 1, final),
        "sibling": StagedBook(run_of("r1", 1), 1, final),
        "other run": StagedBook(run_of("r2", 0), 1, final),
    }
    for book in books.values():
        book.save(batch("CN1"), [{"pn": "CN1"}])
    write_lines_atomically(final, iter([b"x\n"]))
    books["mine"].finish("digest", {"uri": "u"})
    assert not books["before a clear"].folder.exists()
    assert [p.name for p in books["mine"].folder.iterdir()] == ["done.json"]
    for name in ("sibling", "other run"):
        assert books[name].completed([batch("CN1")]) == {batch("CN1").key: [{"pn": "CN1"}]}, name


# ------------------------------------------------------------------------------------ the book in the task state store


def test_in_xcom_mode_the_batches_stay_after_success_so_a_retry_calls_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backends, "AIRFLOW_V_3_3_PLUS", True)
    store = TaskStateStore()
    book = open_book(run_of(store=store), None, 10, 1)
    assert isinstance(book, StoredBook)
    book.save(batch("CN1"), [{"pn": "CN1"}])
    book.take(batch("CN2").key)
    book.flush()
    book.finish("digest", None)
    retry = open_book(run_of(store=store), None, 10, 1)
    assert retry.completed([batch("CN1")]) == {batch("CN1").key: [{"pn": "CN1"}]}
    assert retry.total == 1
    assert open_book(run_of(store=store, max_tries=9), None, 10, 1).completed([batch("CN1")]) == {}  # a clear


def test_without_a_store_or_a_destination_nothing_is_kept_and_the_log_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(backends, "AIRFLOW_V_3_3_PLUS", False)
    caplog.set_level(logging.WARNING, logger="test_billing_batches")
    book = open_book(run_of(store=TaskStateStore()), None, 10, 1)
    assert book.kind == "none" and "No checkpoint for the indicator batches" in caplog.text
