"""hooks/_token_cache.py: one OAuth token per (host, client) and lifetime, refreshed ahead of expiry."""

from __future__ import annotations

import asyncio

import pytest

from airflow_provider_patsnap.hooks import _token_cache
from airflow_provider_patsnap.hooks._token_cache import REFRESH_LEAD_SECONDS, Token, TokenCache

KEY = ("https://patsnap.test", "client-a")


def test_a_token_is_fresh_until_the_refresh_lead_before_expiry() -> None:
    token = Token("tok", expires_at=1800.0, lifetime=1800.0)
    assert REFRESH_LEAD_SECONDS == 60.0
    assert token.is_fresh(now=0.0)
    assert token.is_fresh(now=1739.9)  # 60.1 s left
    assert not token.is_fresh(now=1740.0)  # inside the lead: refresh before PatSnap would refuse it
    assert not token.is_fresh(now=1801.0)


def test_a_short_lived_token_is_refreshed_a_tenth_of_its_life_early() -> None:
    token = Token("tok", expires_at=100.0, lifetime=100.0)  # a 60 s lead would make it stale at birth
    assert token.is_fresh(now=0.0) and token.is_fresh(now=89.9)
    assert not token.is_fresh(now=90.0)


def test_freshness_defaults_to_the_monotonic_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(_token_cache.time, "monotonic", lambda: now[0])
    token = Token("tok", expires_at=1000.0 + 1800, lifetime=1800)
    assert token.is_fresh()
    now[0] += 1750
    assert not token.is_fresh()


def test_the_value_stays_out_of_repr() -> None:
    assert "secret-token-value" not in repr(Token("secret-token-value", expires_at=1.0, lifetime=1.0))


def test_get_returns_only_fresh_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]
    monkeypatch.setattr(_token_cache.time, "monotonic", lambda: now[0])
    cache = TokenCache()
    assert cache.get(KEY) is None
    cache.put(KEY, Token("tok", expires_at=1800.0, lifetime=1800.0))
    assert cache.get(KEY).value == "tok"  # type: ignore[union-attr]
    assert cache.get(("https://patsnap.test", "client-b")) is None  # per client
    assert cache.get(("https://other.test", "client-a")) is None  # per host
    now[0] = 1745.0
    assert cache.get(KEY) is None


def test_put_counts_fetches_per_key() -> None:
    cache = TokenCache()
    cache.put(KEY, Token("a", expires_at=1e12, lifetime=1800))
    cache.put(KEY, Token("b", expires_at=1e12, lifetime=1800))
    assert cache.fetches == {KEY: 2}
    assert cache.get(KEY).value == "b"  # type: ignore[union-attr]


def test_invalidate_drops_only_the_refused_value() -> None:
    cache = TokenCache()
    cache.put(KEY, Token("new", expires_at=1e12, lifetime=1800))
    cache.invalidate(KEY, "old")  # a slower caller reports the token it was refused: already replaced
    assert cache.get(KEY).value == "new"  # type: ignore[union-attr]
    cache.invalidate(KEY, "new")
    assert cache.get(KEY) is None
    cache.invalidate(KEY, "new")  # nothing left: no error
    cache.invalidate(("https://patsnap.test", "nobody"), "x")


def test_clear_forgets_tokens_and_counts() -> None:
    cache = TokenCache()
    cache.put(KEY, Token("a", expires_at=1e12, lifetime=1800))
    cache.clear()
    assert cache.get(KEY) is None and cache.fetches == {}


def test_one_lock_per_key() -> None:
    cache = TokenCache()
    assert cache.lock(KEY) is cache.lock(KEY)
    assert cache.lock(KEY) is not cache.lock(("https://patsnap.test", "client-b"))


def test_async_locks_are_per_key_and_per_event_loop() -> None:
    cache = TokenCache()

    async def locks() -> tuple[asyncio.Lock, asyncio.Lock, asyncio.Lock]:
        return cache.async_lock(KEY), cache.async_lock(KEY), cache.async_lock(("h", "other"))

    loops = [asyncio.new_event_loop(), asyncio.new_event_loop()]  # both alive: two distinct loops
    try:
        (first, same, other), (second_loop, _, _) = (loop.run_until_complete(locks()) for loop in loops)
    finally:
        for loop in loops:
            loop.close()
    assert first is same and first is not other
    assert second_loop is not first  # an asyncio lock belongs to one loop


def test_async_locks_belong_to_their_event_loop() -> None:
    import asyncio
    import gc

    cache = TokenCache()

    async def lock_of() -> asyncio.Lock:
        return cache.async_lock(("https://patsnap.test", "cid"))

    first = asyncio.run(lock_of())
    gc.collect()
    second = asyncio.run(lock_of())
    assert first is not second  # a lock is never handed to a later loop, even one with a reused id
    assert len(cache._async_locks) <= 1  # finished loops' locks are dropped
