"""Client-side request pacing, shared by every hook of a process that uses the same credentials."""

from __future__ import annotations

import asyncio
import threading
import time


class RateLimiter:
    """Spaces calls at least ``1/qps`` seconds apart (no bursts), across threads and coroutines.

    Each caller reserves the next free slot under a lock and then sleeps outside it, so waiting
    callers never hold the lock and slots are handed out in arrival order.
    """

    def __init__(self, qps: float | None) -> None:
        self.qps = qps
        self._interval = 1.0 / qps if qps and qps > 0 else 0.0
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

    def acquire(self) -> None:
        delay = self.reserve()
        if delay > 0:
            time.sleep(delay)

    async def aacquire(self) -> None:
        delay = self.reserve()
        if delay > 0:
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
