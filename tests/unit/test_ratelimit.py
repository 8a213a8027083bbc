"""The client-side limiter, on a fake clock: spacing and the sliding-window cap."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from airflow_provider_patsnap.hooks import _ratelimit
from airflow_provider_patsnap.hooks._ratelimit import RateLimiter, limiter_for


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    async def asleep(seconds: float) -> None:
        now[0] += seconds

    monkeypatch.setattr(_ratelimit.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(_ratelimit.time, "sleep", sleep)
    monkeypatch.setattr(_ratelimit.asyncio, "sleep", asleep)
    return now


def _check(sent: list[float], qps: int) -> None:
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert min(gaps) >= 1 / qps - 1e-9  # never a burst
    for i, start in enumerate(sent):  # never more than qps inside any one-second window
        assert sum(1 for t in sent[i:] if t < start + 1.0) <= qps


def test_spacing_and_window(clock: list[float]) -> None:
    limiter = RateLimiter(4)
    sent = []
    for _ in range(13):
        limiter.acquire()
        sent.append(clock[0])
    _check(sent, 4)
    assert sent[4] - sent[0] >= _ratelimit.WINDOW_SECONDS - 1e-9  # the 5th waits for the first to leave the window


def test_async_twin_obeys_the_same_rules(clock: list[float]) -> None:
    limiter = RateLimiter(5)
    sent: list[float] = []

    async def run() -> None:
        for _ in range(12):
            await limiter.aacquire()
            sent.append(clock[0])

    asyncio.run(run())
    _check(sent, 5)


def test_disabled_limiter_never_waits(clock: list[float]) -> None:
    limiter = RateLimiter(None)
    for _ in range(100):
        limiter.acquire()
    assert clock[0] == 1000.0


def test_one_limiter_per_account_and_host() -> None:
    a = limiter_for("https://connect.patsnap.com", "client:x", 2)
    assert limiter_for("https://connect.patsnap.com", "client:x", 2) is a
    assert limiter_for("https://connect.patsnap.com", "client:y", 2) is not a
