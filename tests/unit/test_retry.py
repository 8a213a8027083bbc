"""hooks/_retry.py: the tenacity policy (budget, backoff, Retry-After, per-error limits, billable calls),
driven directly with a callable that raises."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_patsnap.errors import (
    Outcome,
    PatsnapPermanentError,
    PatsnapRateLimitError,
    PatsnapRetryableError,
    PatsnapTokenError,
)
from airflow_provider_patsnap.hooks._config import PatsnapConfig
from airflow_provider_patsnap.hooks._retry import retry_policy

LOG = logging.getLogger("test_retry")


def config(max_retries: int = 3, wait_min: float = 0.001, wait_max: float = 0.01) -> PatsnapConfig:
    return PatsnapConfig(
        base_url="https://patsnap.test", max_retries=max_retries, retry_wait_min=wait_min, retry_wait_max=wait_max
    )


def transient(**kwargs: Any) -> PatsnapRetryableError:
    return PatsnapRetryableError("busy", endpoint="GET /x", **{"outcome": Outcome.REJECTED, **kwargs})


class Flaky:
    """Raises ``errors`` in turn, then a new ``forever()`` on every call if given, else returns ``"done"``."""

    def __init__(self, *errors: Exception, forever: Callable[[], Exception] | None = None) -> None:
        self.errors = list(errors)
        self.forever = forever
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        if self.forever is not None:
            raise self.forever()
        return "done"


def always(make: Callable[[], Exception]) -> Flaky:
    return Flaky(forever=make)


# --------------------------------------------------------------------------- budget


def test_transient_errors_are_retried_until_success(sleeps: list[float]) -> None:
    call = Flaky(transient(), transient())
    assert retry_policy(config(), LOG, "GET /x")(call) == "done"
    assert call.calls == 3 and len(sleeps) == 2


@pytest.mark.parametrize("max_retries", [0, 1, 2, 5])
def test_the_budget_is_one_try_plus_max_retries_and_the_last_error_is_raised(
    sleeps: list[float], max_retries: int
) -> None:
    errors = [transient() for _ in range(max_retries + 1)]
    call = Flaky(*errors, transient())
    with pytest.raises(PatsnapRetryableError) as info:
        retry_policy(config(max_retries), LOG, "GET /x")(call)
    assert call.calls == max_retries + 1
    assert info.value is errors[-1]  # the error itself, not tenacity's RetryError
    assert len(sleeps) == max_retries


@pytest.mark.parametrize(
    "error",
    [
        PatsnapPermanentError("no", endpoint="GET /x"),
        PatsnapTokenError("stale", endpoint="GET /x"),  # refreshed by the call core, not retried here
        ValueError("a bug"),
    ],
)
def test_non_transient_errors_are_raised_at_once(sleeps: list[float], error: Exception) -> None:
    call = Flaky(error)
    with pytest.raises(type(error)):
        retry_policy(config(), LOG, "GET /x")(call)
    assert call.calls == 1 and sleeps == []


# --------------------------------------------------------------------------- waits


def test_backoff_stays_within_the_connections_bounds(sleeps: list[float]) -> None:
    call = always(transient)
    with pytest.raises(PatsnapRetryableError):
        retry_policy(config(max_retries=8, wait_min=0.5, wait_max=2.0), LOG, "GET /x")(call)
    assert len(sleeps) == 8
    assert all(0.5 <= s <= 2.0 for s in sleeps), sleeps
    assert sleeps[-1] == 2.0  # 0.5 * 2**7 is far above the cap


def test_retry_after_is_a_floor_that_beats_the_cap(sleeps: list[float]) -> None:
    call = Flaky(PatsnapRateLimitError("slow down", retry_after=7.0, outcome=Outcome.REJECTED))
    assert retry_policy(config(wait_max=0.01), LOG, "GET /x")(call) == "done"
    assert sleeps == [7.0]  # the connection's cap is 0.01 s: the server's word wins


def test_a_short_retry_after_does_not_shorten_the_backoff(sleeps: list[float]) -> None:
    call = Flaky(transient(retry_after=0.0), transient(retry_after=0.1))
    retry_policy(config(wait_min=1.0, wait_max=5.0), LOG, "GET /x")(call)
    assert all(s >= 1.0 for s in sleeps), sleeps


# --------------------------------------------------------------------------- per-error limits


def test_an_errors_own_max_attempts_lowers_the_budget(sleeps: list[float]) -> None:
    call = always(lambda: transient(max_attempts=2))
    with pytest.raises(PatsnapRetryableError):
        retry_policy(config(max_retries=5), LOG, "GET /x")(call)
    assert call.calls == 2


def test_an_errors_max_attempts_never_raises_the_budget(sleeps: list[float]) -> None:
    call = always(lambda: transient(max_attempts=10))
    with pytest.raises(PatsnapRetryableError):
        retry_policy(config(max_retries=1), LOG, "GET /x")(call)
    assert call.calls == 2


def test_the_limit_is_read_from_the_latest_error(sleeps: list[float]) -> None:
    # Two plain transient errors, then one that allows at most two attempts: the third attempt stops.
    call = Flaky(transient(), transient(), transient(max_attempts=2), transient())
    with pytest.raises(PatsnapRetryableError):
        retry_policy(config(max_retries=5), LOG, "GET /x")(call)
    assert call.calls == 3


# --------------------------------------------------------------------------- billable calls


@pytest.mark.parametrize("outcome", [Outcome.NOT_SENT, Outcome.REJECTED])
def test_a_billable_call_is_replayed_when_patsnap_surely_did_not_run_it(sleeps: list[float], outcome: Outcome) -> None:
    call = Flaky(transient(outcome=outcome))
    assert retry_policy(config(), LOG, "POST /create", billable=True)(call) == "done"
    assert call.calls == 2


def test_a_billable_call_stops_when_it_may_have_run(sleeps: list[float]) -> None:
    error = transient(outcome=Outcome.MAY_HAVE_RUN)
    call = Flaky(error)
    with pytest.raises(PatsnapRetryableError) as info:
        retry_policy(config(), LOG, "POST /create", billable=True)(call)
    assert info.value is error and call.calls == 1 and sleeps == []


def test_a_read_is_replayed_even_when_it_may_have_run(sleeps: list[float]) -> None:
    call = Flaky(transient(outcome=Outcome.MAY_HAVE_RUN))
    assert retry_policy(config(), LOG, "GET /x")(call) == "done"


# --------------------------------------------------------------------------- logging and copies


def test_each_retry_is_logged_with_attempt_budget_and_wait(
    sleeps: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="test_retry")
    call = Flaky(PatsnapRateLimitError("slow down", endpoint="GET /x", retry_after=3.0))
    retry_policy(config(max_retries=2), LOG, "PatSnap GET /x")(call)
    (record,) = caplog.records
    assert record.getMessage().startswith("PatSnap GET /x failed (attempt 1 of 3): ")
    assert "slow down" in record.getMessage() and "Retrying in 3.0 s." in record.getMessage()


def test_a_policy_can_be_reused_without_sharing_its_state(sleeps: list[float]) -> None:
    policy = retry_policy(config(max_retries=1), LOG, "GET /x")
    with pytest.raises(PatsnapRetryableError):
        policy(always(transient))
    call = Flaky(transient())
    assert policy(call) == "done" and call.calls == 2
