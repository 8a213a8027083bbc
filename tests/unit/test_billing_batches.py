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
from airflow_provider_patsnap.hooks._batches import ReplayBudget, stream_batches
from airflow_provider_patsnap.staging import write_lines_atomically
from airflow_provider_patsnap.valuation import INDICATORS, Batch
from airflow_provider_patsnap.version_compat import object_storage_path
from tests.support import TaskStateStore

LOG = logging.getLogger("test_billing_batches")


def fetch_batches(fetch: Any, batches: list[Batch], concurrency: int, **kwargs: Any) -> dict[str, list[Any]]:
    """The streamed batches, collected (as the hook's ``fetch_batches`` does)."""
    return {b.key: items for b, items in stream_batches(fetch, batches, concurrency, **kwargs)}


def completed(book: Any, batches: list[Batch]) -> dict[str, list[Any]]:
    """What the book holds for these batches."""
    found = {b.key: book.load(b) for b in batches}
    return {key: items for key, items in found.items() if items is not None}


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


class Budget(ReplayBudget):
    """A budget that remembers which batches it was handed as lost at an interruption."""

    def __init__(self) -> None:
        super().__init__(1)
        self.lost: list[str] = []

    def interrupted(self, keys: list[str]) -> None:
        self.lost += keys


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
    # CN0 was answered but its checkpoint never written, CN9 was on the wire: both may be billed.
    assert budget.lost == [fast.key, batch("CN9").key]


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
    assert completed(again, [batch("CN1"), batch("CN2")]) == {batch("CN1").key: [{"pn": "CN1"}]}
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
    assert completed(retry, [batch("CN1")]) == {}  # batch files are gone; only the done marker stays (before 3.3)
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
        assert completed(books[name], [batch("CN1")]) == {batch("CN1").key: [{"pn": "CN1"}]}, name


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
    assert completed(retry, [batch("CN1")]) == {batch("CN1").key: [{"pn": "CN1"}]}
    assert retry.total == 1
    assert completed(open_book(run_of(store=store, max_tries=9), None, 10, 1), [batch("CN1")]) == {}  # a clear


def test_without_a_store_or_a_destination_nothing_is_kept_and_the_log_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(backends, "AIRFLOW_V_3_3_PLUS", False)
    caplog.set_level(logging.WARNING, logger="test_billing_batches")
    book = open_book(run_of(store=TaskStateStore()), None, 10, 1)
    assert book.kind == "none" and "No checkpoint for the indicator batches" in caplog.text


# ------------------------------------------------------------------------------------ streaming, bounded


def test_streamed_batches_come_back_in_plan_order_with_a_bounded_window() -> None:
    pulled: list[int] = []
    yielded: list[int] = []
    ahead_seen: list[int] = []

    def plan() -> Any:
        for i in range(40):
            pulled.append(i)
            ahead_seen.append(len(pulled) - len(yielded))
            yield batch(f"CN{i}")

    def fetch(b: Batch, stop: threading.Event) -> list[Any]:
        time.sleep(0.003 * (int(b.patents[0][2:]) % 5))  # answers arrive out of order
        return [{"pn": b.patents[0]}]

    checkpointed: list[str] = []
    for b, items in stream_batches(fetch, plan(), 4, on_batch=lambda b, _: checkpointed.append(b.key), ahead=6):
        yielded.append(int(b.patents[0][2:]))
        assert items == [{"pn": b.patents[0]}]
    assert yielded == list(range(40))  # plan order, whatever order PatSnap answered in
    assert max(ahead_seen) <= 6 + 2  # never more than the window ahead of the caller, however long the plan
    assert sorted(checkpointed) == sorted(batch(f"CN{i}").key for i in range(40))


def test_a_known_batch_is_passed_through_unsent_and_not_checkpointed_again() -> None:
    fetch = Fetch(CN2=[[{"pn": "CN2"}]])
    known = {batch("CN1").key: [{"pn": "CN1", "from": "checkpoint"}]}
    saved: list[str] = []
    out = list(
        stream_batches(
            fetch,
            [batch("CN1"), batch("CN2")],
            2,
            on_batch=lambda b, _: saved.append(b.patents[0]),
            known=lambda b: known.get(b.key),
        )
    )
    assert [(b.patents[0], items) for b, items in out] == [
        ("CN1", [{"pn": "CN1", "from": "checkpoint"}]),
        ("CN2", [{"pn": "CN2"}]),
    ]
    assert fetch.sent == ["CN2"] and saved == ["CN2"]


def test_a_consumer_that_stops_reading_hands_the_batches_in_flight_to_the_budget() -> None:
    release = threading.Event()

    def fetch(b: Batch, stop: threading.Event) -> list[Any]:
        if b.patents[0] != "CN0":
            release.wait(2)
        return [{"pn": b.patents[0]}]

    budget = Budget()
    saved: list[str] = []
    stream = stream_batches(
        fetch, [batch("CN0"), batch("CN1")], 2, on_batch=lambda b, _: saved.append(b.key), budget=budget
    )
    first, _ = next(stream)
    assert first.patents == ("CN0",)
    time.sleep(0.1)  # CN1 is in flight
    stream.close()  # e.g. the writer failed: the generator is closed
    release.set()
    assert budget.lost == [batch("CN1").key]  # sent and maybe billed: counted, not forgotten
    assert saved == [batch("CN0").key]


# ------------------------------------------------------------------------------------ append-only checkpoints


def test_saving_a_batch_costs_the_same_whatever_came_before(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from airflow_provider_patsnap import staging

    listings: list[str] = []
    real_scandir, real_listdir = os.scandir, os.listdir
    monkeypatch.setattr(os, "scandir", lambda p=".": listings.append(str(p)) or real_scandir(p))
    monkeypatch.setattr(os, "listdir", lambda p=".": listings.append(str(p)) or real_listdir(p))
    monkeypatch.setattr(staging, "sweep_leftovers", lambda *a, **k: listings.append("sweep") or [])
    final = local(tmp_path / "out.jsonl")
    book = StagedBook(run_of(), 1, final)
    for i in range(200):
        book.save(batch(f"CN{i}"), [{"pn": f"CN{i}"}])
    assert listings == []  # no save lists the folder (0.2 rescanned it: quadratic in the portfolio)

    retry = StagedBook(run_of(), 1, final)
    loaded = [retry.load(batch(f"CN{i}")) for i in range(210)]
    assert loaded[:200] == [[{"pn": f"CN{i}"}] for i in range(200)] and loaded[200:] == [None] * 10
    assert len(listings) <= 1  # one listing for the whole resume


def test_a_checkpoint_cut_short_is_read_as_not_fetched(tmp_path: Path) -> None:
    final = local(tmp_path / "out.jsonl")
    book = StagedBook(run_of(), 1, final)
    book.save(batch("CN1"), [{"pn": "CN1"}])
    (Path(book.folder.path) / f"{batch('CN1').key}.json").write_text('[{"pn": "CN')  # an OS crash mid-write
    assert StagedBook(run_of(), 1, final).load(batch("CN1")) is None  # fetched again, never merged half


# ------------------------------------------------------------------------------------ the patent list, pinned


def test_the_list_read_by_the_first_attempt_is_the_runs_list(tmp_path: Path) -> None:
    final = local(tmp_path / "out.jsonl")
    first = StagedBook(run_of(), 1, final)
    assert first.pinned("file:///p.csv") is None
    odd = ["CN1\rX", "CN2\ni\tdeadbeef"]  # what no gate should let through, pinned and read back as it is
    assert first.pin("file:///p.csv", ["CN0", *odd], ["u-1"]) == (["CN0", *odd], ["u-1"])

    retry = StagedBook(run_of(), 1, final)  # the source now says something else: the run's list wins
    assert retry.pinned("file:///p.csv") == (["CN0", *odd], ["u-1"])
    assert retry.pin("file:///p.csv", ["US9"], []) == (["CN0", *odd], ["u-1"])
    assert retry.pinned("file:///other.csv") is None  # a deploy changed the argument: not this list
    assert StagedBook(run_of(max_tries=5), 1, final).pinned("file:///p.csv") is None  # a clear: a new run

    pinned = Path(first.folder.path) / "patents.jsonl"
    lines = pinned.read_text().splitlines(keepends=True)
    pinned.write_text("".join(lines[:2] + lines[3:]))  # a line lost (an OS crash): the count says so
    assert StagedBook(run_of(), 1, final).pinned("file:///p.csv") is None
    pinned.write_text("".join(lines[:-1]))  # cut short before its end line
    assert StagedBook(run_of(), 1, final).pinned("file:///p.csv") is None


def test_in_xcom_mode_the_list_is_pinned_in_the_task_state_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backends, "AIRFLOW_V_3_3_PLUS", True)
    store = TaskStateStore()
    assert open_book(run_of(store=store), None, 2, 1).pin("s3://b/p.txt", ["CN1"], ["u-1"]) == (["CN1"], ["u-1"])
    assert open_book(run_of(store=store), None, 2, 1).pin("s3://b/p.txt", ["US9"], []) == (["CN1"], ["u-1"])
    assert open_book(run_of(store=store), None, 2, 1).pinned("s3://b/q.txt") is None


def test_a_batch_whose_checkpoint_cannot_be_written_is_counted_not_forgotten() -> None:
    budget = Budget()

    def save(b: Batch, items: list[Any]) -> None:
        if b.patents[0] == "CN1":
            raise OSError("SlowDown")  # a transient error of the checkpoint's storage

    fetch = Fetch(CN0=[[{"pn": "CN0"}]], CN1=[[{"pn": "CN1"}]], CN2=[[{"pn": "CN2"}]])
    with pytest.raises(OSError, match="SlowDown"):
        fetch_batches(fetch, [batch("CN0"), batch("CN1"), batch("CN2")], 1, on_batch=save, budget=budget)
    assert batch("CN1").key in budget.lost  # billed, not kept: counted as what a retry may buy again
