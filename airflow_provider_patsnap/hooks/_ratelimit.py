"""Client-side request pacing, shared by every hook of a process that uses the same credentials."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque

#: PatSnap counts calls in a sliding one-second window. The client counts in a slightly longer one,
#: so network and scheduling jitter cannot squeeze ``qps + 1`` arrivals into PatSnap's window.
WINDOW_SECONDS = 1.02


class RateLimiter:
    """Keeps calls under ``qps`` per second, across threads and coroutines.

    Two rules: calls are spaced ``1/qps`` apart (no bursts; each caller reserves the next slot under
    a lock and sleeps outside it, so slots go out in arrival order), and at most ``qps`` calls are
    *sent* in any ``WINDOW_SECONDS``. Spacing alone is not enough: with exact spacing, call k and
    call k + qps are exactly one second apart, and a millisecond of jitter puts both inside
    PatSnap's sliding window, which answers 67200002/429 and costs a backoff.
    """

    def __init__(self, qps: float | None) -> None:
        self.qps = qps
        self._interval = 1.0 / qps if qps and qps > 0 else 0.0
        self._capacity = max(1, math.floor(qps)) if qps and qps > 0 else 0
        self._sent: deque[float] = deque()
        self._next = 0.0
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Claim the next slot; return how long to wait for it."""
        if not self._interval:
            return 0.0
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self._interval
            return slot - now

    def _admit(self) -> float:
        """Record a send now and return 0.0 if the window has room, else how long to wait."""
        with self._lock:
            now = time.monotonic()
            while self._sent and self._sent[0] <= now - WINDOW_SECONDS:
                self._sent.popleft()
            if len(self._sent) < self._capacity:
                self._sent.append(now)
                return 0.0
            return self._sent[0] + WINDOW_SECONDS - now

    def acquire(self) -> None:
        delay = self.reserve()
        if delay > 0:
            time.sleep(delay)
        while self._capacity and (delay := self._admit()) > 0:
            time.sleep(delay)

    async def aacquire(self) -> None:
        delay = self.reserve()
        if delay > 0:
            await asyncio.sleep(delay)
        while self._capacity and (delay := self._admit()) > 0:
            await asyncio.sleep(delay)


_LIMITERS: dict[tuple[str, str, float | None], RateLimiter] = {}
_LIMITERS_LOCK = threading.Lock()


def limiter_for(base_url: str, principal: str, qps: float | None) -> RateLimiter:
    """The process-wide limiter for one account on one host (hooks share it, so does the triggerer)."""
    key = (base_url, principal, qps)
    with _LIMITERS_LOCK:
        limiter = _LIMITERS.get(key)
        if limiter is None:
            limiter = _LIMITERS[key] = RateLimiter(qps)
        return limiter
