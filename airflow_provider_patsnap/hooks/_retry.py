"""Tenacity retry policy for PatSnap calls: when to try again and how long to wait (no sleeping here).

The call core asks the policy for decisions and hands each wait to its driver, so the same policy
serves the blocking and the asyncio transports. ``sleep``/``asleep`` are the drivers' clocks,
looked up at call time so tests can record waits instead of sleeping.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from tenacity import RetryCallState, Retrying, retry_if_exception, wait_exponential, wait_random

from airflow_provider_patsnap.errors import may_replay


def sleep(seconds: float) -> None:
    time.sleep(seconds)


async def asleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


class _WaitBackoffOrRetryAfter:
    """Exponential backoff with jitter, but never less than the server's ``Retry-After``."""

    def __init__(self, initial: float, maximum: float) -> None:
        self.maximum = maximum
        # Exponential from `initial`, capped, plus up to `initial` of jitter (stable tenacity APIs only).
        self.backoff = wait_exponential(multiplier=initial, max=maximum) + wait_random(0, initial)

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


def retry_policy(config: Any, logger: logging.Logger | Any, what: str, *, billable: bool = False) -> Retrying:
    """The policy for one PatSnap call under a ``PatsnapConfig``'s budget.

    ``billable`` marks creates: they are replayed only after errors that prove PatSnap did not run
    them (``errors.may_replay``), so one intended report is one job and one charge.
    """
    max_attempts = config.max_retries + 1

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0
        logger.warning(
            "%s failed (attempt %d of %d): %s. Retrying in %.1f s.", what, state.attempt_number, max_attempts, exc, wait
        )

    return Retrying(
        stop=_StopPolicy(max_attempts),
        wait=_WaitBackoffOrRetryAfter(config.retry_wait_min, config.retry_wait_max),
        retry=retry_if_exception(lambda e: may_replay(e, billable=billable)),
        before_sleep=before_sleep,
        reraise=True,
        sleep=lambda s: sleep(s),
    )
