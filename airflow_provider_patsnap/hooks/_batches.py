"""Fetching many batches at once under one rate limit, stopping all of them at the first failure and
keeping every batch PatSnap answered (PatSnap bills per result returned).

A batch is billable: PatSnap charges for every result it returns, so a batch whose answer was lost
(a read timeout, a 502/503/504 after it was sent) may have been billed. Within one attempt it is
sent again only while its :class:`ReplayBudget` allows (the connection extra
``max_ambiguous_replays``, default 1, per batch), after a backoff, and each replay is logged and
counted; once that is spent the attempt ends with a transient error, and the batch waits for the
task's next attempt (an outage longer than the hook's patience is Airflow's retries' business, as
for every read). A batch still in flight when the fetch is interrupted is handed to the budget as
lost. So each lost answer costs at most one batch more, and the owner of billable state
(``billing.batches``) keeps the count across attempts and reports it.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from airflow_provider_patsnap.errors import Outcome, PatsnapError, PatsnapRetryableError
from airflow_provider_patsnap.hooks._drivers import Stopped
from airflow_provider_patsnap.valuation import Batch

Fetch = Callable[[Batch, threading.Event], list[Any]]


class ReplayBudget:
    """How many times, in this attempt, each batch whose answer was lost may be sent again.

    ``counts`` are this attempt's replays per batch key, ``carried`` what earlier attempts counted
    (the owner of billable state subclasses this to keep both across attempts); ``pause(n)`` waits
    before the n-th replay of a batch.
    """

    def __init__(self, replays: int, pause: Callable[[int], None] | None = None) -> None:
        self.replays = max(0, int(replays))
        self.counts: dict[str, int] = {}
        self.carried: dict[str, int] = {}
        self.pause = pause
        self.dirty = False
        self._lock = threading.Lock()

    def take(self, key: str) -> int | None:
        """The number of this replay if one is left in this attempt (and count it), else None."""
        with self._lock:
            used = self.counts.get(key, 0)
            if used >= self.replays:
                return None
            self.counts[key] = used + 1
            self.dirty = True
        return used + 1

    def lost(self, keys: list[str]) -> None:
        """Count answers lost without a replay (batches in flight at an interruption)."""
        with self._lock:
            for key in keys:
                self.carried[key] = self.carried.get(key, 0) + 1
            self.dirty = True

    def flush(self) -> None:
        """Keep the counts if they changed. Called from the fetching thread only (task state store
        clients are not thread-safe): as each batch completes, and on the way out."""
        if self.dirty:
            self.dirty = False
            self.saved()

    def saved(self) -> None:
        """The counts changed (subclasses persist them)."""

    def interrupted(self, keys: list[str]) -> None:
        """These batches were in flight when the fetch was interrupted: they may have been billed."""
        self.lost(keys)

    @property
    def total(self) -> int:
        """Every send of a batch that may have been billed without its results reaching us, so far."""
        with self._lock:
            return sum(self.counts.values()) + sum(self.carried.values())


def stream_batches(
    fetch: Fetch,
    batches: Iterable[Batch],
    concurrency: int,
    on_batch: Callable[[Batch, list[Any]], None] | None = None,
    budget: ReplayBudget | None = None,
    log: Any = None,
    ahead: int | None = None,
    known: Callable[[Batch], list[Any] | None] | None = None,
) -> Generator[tuple[Batch, list[Any]], None, None]:
    """``(batch, items)`` in the order of ``batches``, ``concurrency`` requests at a time.

    ``batches`` is read lazily and at most ``ahead`` (default ``4 x concurrency``) batches are in
    hand beyond the one the caller waits for, so memory does not grow with the portfolio. A batch
    ``known`` answers (a checkpoint, a reused result) is passed through in its place, not sent. ``on_batch``
    runs in the calling thread as soon as each batch completes, in any order (so it can checkpoint
    it). On the first error the rest stop at once: batches not yet started are cancelled and those
    in flight send nothing more (``fetch`` gets a ``stop`` event). Batches already answered are still
    handed to ``on_batch``, also when this generator is interrupted (a timeout, SIGTERM, a consumer
    that fails or stops reading), and those still in flight then are handed to
    ``budget.interrupted``; then the error is raised.
    """
    budget = budget if budget is not None else ReplayBudget(0)
    limit = max(1, ahead if ahead is not None else 4 * concurrency)
    source = iter(batches)
    window: deque[tuple[Batch, Future[list[Any]]]] = deque()
    kept: set[Future[list[Any]]] = set()
    stop = threading.Event()
    pool = ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="patsnap-batch")

    def fill() -> None:
        while len(window) <= limit and not stop.is_set():
            batch = next(source, None)
            if batch is None:
                return
            items = known(batch) if known is not None else None
            if items is None:
                window.append((batch, pool.submit(_with_replays, fetch, batch, stop, budget, log)))
            else:
                answered: Future[list[Any]] = Future()
                answered.set_result(items)
                kept.add(answered)
                window.append((batch, answered))

    def keep_answered() -> BaseException | None:
        """Hand every newly answered batch to ``on_batch``; the first real failure, if any."""
        failure: BaseException | None = None
        for batch, future in window:
            if future in kept or not future.done() or future.cancelled():
                continue
            error = future.exception()
            if error is None:
                if on_batch is not None:
                    on_batch(batch, future.result())
                kept.add(future)  # only once kept: a save that failed is not a kept batch
                budget.flush()
            elif failure is None and not isinstance(error, Stopped):
                failure = error
        return failure

    def unkept() -> list[str]:
        """On the way out: keep each answered batch that can still be kept; the keys of the rest that
        PatSnap may have billed (answered but not kept, or still in flight)."""
        lost = []
        for batch, future in window:
            if future in kept or future.cancelled() or (future.done() and future.exception() is not None):
                continue
            try:
                if not future.done():
                    raise TimeoutError  # in flight: its answer will not be read
                if on_batch is not None:
                    on_batch(batch, future.result())
                kept.add(future)
            except BaseException:  # already on the way out: the first error is the one raised
                lost.append(batch.key)
        return lost

    try:
        fill()
        while window:
            head = window[0][1]
            if not head.done():
                wait([f for _, f in window if not f.done()], return_when=FIRST_COMPLETED)
            failure = keep_answered()
            if failure is not None:
                stop.set()
                for _, future in window:
                    future.cancel()
                wait([f for _, f in window if not f.cancelled()])
                keep_answered()
                raise failure
            while window and window[0][1] in kept:
                batch, future = window.popleft()
                kept.discard(future)
                fill()
                yield batch, future.result()
    except BaseException:  # includes GeneratorExit: keep whatever PatSnap has answered (and billed)
        stop.set()
        for _, future in window:
            future.cancel()
        lost = unkept()
        if lost:
            with contextlib.suppress(Exception):
                budget.interrupted(lost)
        raise
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        with contextlib.suppress(Exception):
            budget.flush()


def _with_replays(fetch: Fetch, batch: Batch, stop: threading.Event, budget: ReplayBudget, log: Any) -> list[Any]:
    """One batch, sent again after a lost answer while its budget allows."""
    while True:
        try:
            return fetch(batch, stop)
        except PatsnapError as exc:
            if not (exc.transient and exc.outcome is Outcome.MAY_HAVE_RUN):
                raise
            replay = budget.take(batch.key)
            what = f"the {batch.indicator.code} batch of {len(batch.patents)} patent(s) may have been billed"
            if replay is None:
                budget.lost([batch.key])
                raise PatsnapRetryableError(
                    f"{exc.message}; {what}, and it is not sent again in this attempt (max_ambiguous_replays="
                    f"{budget.replays} spent): the task's next attempt sends it, and only it",
                    endpoint=exc.endpoint,
                    code=exc.code,
                    http_status=exc.http_status,
                    outcome=Outcome.MAY_HAVE_RUN,
                ) from None
            if log is not None:
                log.warning("%s (%s); sending it again (replay %d of %d).", what, exc, replay, budget.replays)
            if budget.pause is not None:
                budget.pause(replay)
            if stop.is_set():
                raise Stopped("stopped by another batch's failure") from None
