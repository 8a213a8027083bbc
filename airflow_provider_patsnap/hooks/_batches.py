"""Fetching many batches at once under one rate limit, stopping all of them at the first failure and
keeping every batch PatSnap answered (PatSnap bills per result returned)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from typing import Any

from airflow_provider_patsnap.hooks._drivers import Stopped
from airflow_provider_patsnap.valuation import Batch

Fetch = Callable[[Batch, threading.Event], list[Any]]


def fetch_batches(
    fetch: Fetch,
    batches: Sequence[Batch],
    concurrency: int,
    on_batch: Callable[[Batch, list[Any]], None] | None = None,
) -> dict[str, list[Any]]:
    """Items per batch key, ``concurrency`` requests at a time.

    ``on_batch`` runs in the calling thread as each batch completes (so it can checkpoint it). On
    the first error the rest stop at once: batches not yet started are cancelled and those in
    flight send nothing more (``fetch`` gets a ``stop`` event). Batches already answered are still
    handed to ``on_batch``, also when this thread is interrupted (a timeout, SIGTERM, a checkpoint
    that cannot be written); then the error is raised.
    """
    results: dict[str, list[Any]] = {}
    if not batches:
        return results
    stop = threading.Event()
    error: BaseException | None = None
    pool = ThreadPoolExecutor(max_workers=min(concurrency, len(batches)), thread_name_prefix="patsnap-batch")
    futures = {pool.submit(fetch, batch, stop): batch for batch in batches}

    def keep(future: Future[list[Any]]) -> None:
        batch = futures[future]
        results[batch.key] = future.result()
        if on_batch is not None:
            on_batch(batch, results[batch.key])

    try:
        for future in as_completed(futures):
            if future.cancelled():
                continue
            failure = future.exception()
            if failure is None:
                keep(future)
            elif error is None and not isinstance(failure, Stopped):
                error = failure
                stop.set()
                for pending in futures:
                    pending.cancel()
    except BaseException:
        stop.set()
        for future, batch in futures.items():  # keep whatever PatSnap has answered (and billed)
            answered = future.done() and not future.cancelled() and future.exception() is None
            if answered and batch.key not in results:
                with contextlib.suppress(Exception):
                    keep(future)
        raise
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    if error is not None:
        raise error
    return results
