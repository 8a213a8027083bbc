"""Tenacity retry policy for PatSnap calls."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from tenacity import AsyncRetrying, RetryCallState, Retrying, retry_if_exception, wait_exponential_jitter

from airflow_provider_patsnap.errors import PatsnapRetryableError


class _WaitBackoffOrRetryAfter:
    """Exponential backoff with jitter, but never less than the server's ``Retry-After``."""

    def __init__(self, initial: float, maximum: float) -> None:
        self.maximum = maximum
        self.backoff = wait_exponential_jitter(initial=initial, max=maximum, jitter=initial)

    def __call__(self, state: RetryCallState) -> float:
        wait = self.backoff(state)
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        # The server's word beats our own cap (it is bounded where the header is parsed).
        return max(min(wait, self.maximum), retry_after or 0.0)


class _StopPolicy:
    def __init__(self, max_attempts: int) -> None:
        self.max_attempts = max_attempts

    def __call__(self, state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome else None
        limit = self.max_attempts
        per_error = getattr(exc, "max_attempts", None)
        if per_error:
            limit = min(limit, per_error)
        return state.attempt_number >= limit


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


async def _asleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


def should_retry(exc: BaseException, *, billable: bool) -> bool:
    """Retry transient errors; a billable call only when PatSnap surely did not run it."""
    return isinstance(exc, PatsnapRetryableError) and (exc.replay_safe or not billable)


def policy_args(config: Any, logger: logging.Logger | Any, what: str, *, billable: bool = False) -> dict[str, Any]:
    """Arguments for ``retrying``/``async_retrying`` from a ``PatsnapConfig``."""
    return {
        "max_retries": config.max_retries,
        "wait_min": config.retry_wait_min,
        "wait_max": config.retry_wait_max,
        "billable": billable,
        "logger": logger,
        "what": what,
    }


def _policy(
    *, max_retries: int, wait_min: float, wait_max: float, billable: bool, logger: logging.Logger | Any, what: str
) -> dict[str, Any]:
    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0
        logger.warning(
            "%s failed (attempt %d of %d): %s. Retrying in %.1f s.",
            what,
            state.attempt_number,
            max_retries + 1,
            exc,
            wait,
        )

    return {
        "stop": _StopPolicy(max_retries + 1),
        "wait": _WaitBackoffOrRetryAfter(wait_min, wait_max),
        "retry": retry_if_exception(lambda e: should_retry(e, billable=billable)),
        "before_sleep": before_sleep,
        "reraise": True,
    }


def retrying(**kwargs: Any) -> Retrying:
    """Tenacity ``Retrying`` for one PatSnap call (see ``_policy`` for the arguments)."""
    # The sleep is looked up at call time so tests can record the waits instead of sleeping.
    return Retrying(sleep=lambda s: _sleep(s), **_policy(**kwargs))


def async_retrying(**kwargs: Any) -> AsyncRetrying:
    """The ``AsyncRetrying`` twin of ``retrying``, for triggers."""
    return AsyncRetrying(sleep=lambda s: _asleep(s), **_policy(**kwargs))
