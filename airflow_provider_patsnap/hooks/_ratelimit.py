"""Client-side request pacing, shared by every hook of a process that uses the same credentials.

One limiter per account and host spends one budget for everything the process sends (creates from
tasks, polls from triggers, indicator batches). Three rules:

* **Spacing and a window.** Calls are spaced ``1/rate`` apart, and at most ``rate`` are *sent* in
  any ``WINDOW_SECONDS``. Spacing alone is not enough: call k and call k + qps land exactly one
  second apart, and a millisecond of jitter puts both inside PatSnap's sliding window.
* **Creates first.** A billable create waiting for a slot takes the earliest slot a waiting read
  holds; the reads behind it keep their order, one slot later. A poll can wait; a create that
  waits can be rejected and must then be retried with backoff.
* **Slow down together (AIMD).** A rate rejection (67200002 / HTTP 429) halves the whole process's
  rate, not just the one call's; each accepted call wins back a small step, so processes sharing
  one account converge near its QPS instead of storming it. ``qps`` stays the ceiling.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from enum import IntEnum

from airflow_provider_patsnap import metrics
from airflow_provider_patsnap.hooks._shared_budget import SharedBudget

#: PatSnap counts calls in a sliding one-second window; the client counts in a slightly longer one.
WINDOW_SECONDS = 1.02
#: On a rejection the rate halves, but never below this share of the configured QPS.
MIN_RATE_SHARE = 0.1
#: Each accepted call restores this share of the configured QPS (about 20 calls to recover from a halving).
RECOVERY_STEP = 0.025
#: A waiter looks again at least this often (its slot may have moved earlier when the rate recovered).
MAX_NAP = 1.0


class Priority(IntEnum):
    """Who goes first when both wait: lower values."""

    CREATE = 0
    READ = 1


@dataclass(eq=False)  # tickets are compared by identity
class _Ticket:
    slot: float
    priority: Priority


class RateLimiter:
    """Keeps calls under ``qps`` per second across threads and coroutines (see the module docstring)."""

    def __init__(self, qps: float | None, shared: SharedBudget | None = None) -> None:
        self.qps = qps if qps and qps > 0 else None
        self.shared = shared if self.qps else None
        self.rate = self.qps or 0.0
        self.rejections = 0
        self._next = 0.0
        self._waiting: list[_Ticket] = []
        self._sent: deque[float] = deque()
        self._last_decrease = -math.inf
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ slots

    def _interval(self) -> float:
        """Slot spacing: ``1/rate``, and never closer than the window allows (``floor(rate)`` per
        ``WINDOW_SECONDS``): slots that ran ahead of the window would leave several calls due at
        once, and whichever woke first would go, out of order."""
        return max(1.0 / self.rate, WINDOW_SECONDS / max(1, math.floor(self.rate)))

    def _claim(self, priority: Priority) -> _Ticket | None:
        if self.qps is None:
            return None
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self._interval()
            ticket = _Ticket(slot, priority)
            behind = sorted((t for t in self._waiting if t.priority > priority and t.slot > now), key=lambda t: t.slot)
            if behind and behind[0].slot < slot:
                # Jump the reads: take the first one's slot and move each of them one slot back.
                slots = [t.slot for t in behind] + [slot]
                ticket.slot = slots[0]
                for waiter, later in zip(behind, slots[1:], strict=True):
                    waiter.slot = later
            self._waiting.append(ticket)
            return ticket

    def _respace(self, now: float) -> None:
        """After a change of rate, give the waiting calls slots at the new spacing (in their order):
        slots handed out at a lower rate must not keep the queue slow once the rate recovers."""
        interval = self._interval()
        slot = max(now, self._sent[-1] + interval) if self._sent else now
        for waiter in sorted(self._waiting, key=lambda t: (t.slot, t.priority)):
            waiter.slot = slot
            slot += interval
        self._next = max(slot, now)

    def _delay(self, ticket: _Ticket) -> float:
        """0.0 once the ticket's slot has come and the window has room (recorded as sent); else the wait
        (at most ``MAX_NAP``, so a waiter sees a slot that a recovered rate moved earlier)."""
        with self._lock:
            now = time.monotonic()
            if ticket.slot > now:
                return min(ticket.slot - now, MAX_NAP)
            while self._sent and self._sent[0] <= now - WINDOW_SECONDS:
                self._sent.popleft()
            if len(self._sent) >= max(1, math.floor(self.rate)):
                return self._sent[0] + WINDOW_SECONDS - now
            if self._due_ahead_of(ticket, now):
                # Calls due at once go in their order (creates first, then by slot), not by which
                # waiter happens to wake first: else a poll can be overtaken again and again.
                return min(self._interval(), MAX_NAP)
            self._sent.append(now)
            self._waiting.remove(ticket)
            return 0.0

    def _due_ahead_of(self, ticket: _Ticket, now: float) -> bool:
        """Whether a waiter that is also due goes before ``ticket`` (caller holds the lock)."""
        order = (ticket.priority, ticket.slot)
        return any(
            other is not ticket and other.slot <= now and (other.priority, other.slot) < order
            for other in self._waiting
        )

    def _drop(self, ticket: _Ticket) -> None:
        with self._lock:
            if ticket in self._waiting:
                self._waiting.remove(ticket)

    def acquire(self, priority: Priority = Priority.READ) -> None:
        ticket = self._claim(priority)
        if ticket is None:
            return
        try:
            while (delay := self._delay(ticket)) > 0:
                time.sleep(delay)
        finally:
            self._drop(ticket)
        while self.shared is not None and (delay := self.shared.wait()) > 0:
            time.sleep(delay)

    async def aacquire(self, priority: Priority = Priority.READ) -> None:
        ticket = self._claim(priority)
        if ticket is None:
            return
        try:
            while (delay := self._delay(ticket)) > 0:
                await asyncio.sleep(delay)
        finally:
            self._drop(ticket)  # a cancelled trigger gives its place up
        while self.shared is not None and (delay := await self.shared.await_()) > 0:
            await asyncio.sleep(delay)

    # ------------------------------------------------------------------ feedback

    def on_rejected(self) -> None:
        """PatSnap refused a call for rate: the whole process slows down (once per window: the calls
        already in flight when the limit was hit are refused together, and count as one signal)."""
        metrics.count("ratelimit.refused", 1)
        if self.qps is None:
            return
        with self._lock:
            self.rejections += 1
            now = time.monotonic()
            if now - self._last_decrease < WINDOW_SECONDS:
                return
            self._last_decrease = now
            self.rate = max(self.qps * MIN_RATE_SHARE, self.rate / 2)
            self._respace(now)

    def on_accepted(self) -> None:
        """A call went through: win back a step of the configured rate."""
        if self.qps is None or self.rate >= self.qps:
            return
        with self._lock:
            self.rate = min(self.qps, self.rate + self.qps * RECOVERY_STEP)
            self._respace(time.monotonic())


_LIMITERS: dict[tuple[str, str, float | None, str | None], RateLimiter] = {}
_LIMITERS_LOCK = threading.Lock()


def limiter_for(base_url: str, principal: str, qps: float | None, shared_url: str | None = None) -> RateLimiter:
    """The process-wide limiter for one account on one host (hooks share it, so does the triggerer);
    with ``shared_url``, every call also takes a place in the deployment-wide budget in Redis."""
    key = (base_url, principal, qps, shared_url)
    with _LIMITERS_LOCK:
        limiter = _LIMITERS.get(key)
        if limiter is None:
            shared = SharedBudget(shared_url, f"{base_url}|{principal}", qps) if shared_url and qps else None
            limiter = _LIMITERS[key] = RateLimiter(qps, shared)
        return limiter
