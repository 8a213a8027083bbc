"""An account's QPS shared by every process of a deployment, kept in Redis (connection extra
``rate_limit_url``, install ``airflow-provider-patsnap[redis]``).

Each worker and triggerer paces itself with its own limiter; with a shared budget every call must
also be admitted by one GCRA (a leaky bucket kept as one timestamp, pyrate-limiter's Redis state
store: a Lua script makes the check and the update atomic across processes). GCRA spaces calls
``SPACING_MS / qps`` apart fleet-wide with no bursts, so at most ``qps`` fit in any PatSnap second
even with some lag between admission and arrival. It also fails safe on a stale clock reading: a
process descheduled between reading the time and asking Redis is told to wait, never let through
early. Clocks of different hosts should still agree (NTP).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_patsnap.errors import Outcome, PatsnapConnectionError, PatsnapInputError

#: ``qps`` calls per this many milliseconds, one at a time: PatSnap's second plus a margin for the
#: lag between admission and arrival (new connections, busy event loops), which varies by call.
SPACING_MS = 1100


class SharedBudget:
    """``qps`` calls per ``SPACING_MS`` for one account, across every process that uses ``url``."""

    def __init__(self, url: str, key: str, qps: float) -> None:
        try:
            from pyrate_limiter import Rate
        except ImportError:
            hint = "a shared rate limit needs the redis extra: pip install airflow-provider-patsnap[redis]"
            raise PatsnapInputError("extra.rate_limit_url", hint) from None
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise PatsnapInputError("extra.rate_limit_url", f"expected a redis:// URL, got {url.split('@')[-1]!r}")
        self.url = url
        self.key = f"airflow-provider-patsnap:{key}"
        # Whole calls per window (floor); the window scaled so the rate is qps / 1.1 either way.
        per_window = max(1, int(qps))
        self.rates = [Rate(per_window, round(SPACING_MS * per_window / qps), burst=1)]
        self._bucket: Any = None
        self._lock = threading.Lock()
        self._abuckets: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[Any, asyncio.Lock]] = (
            weakref.WeakKeyDictionary()
        )

    def _new_bucket(self, client: Any) -> Any:
        from pyrate_limiter import GCRA, RedisStateStore, StateBucket

        return StateBucket(self.rates, algorithm=GCRA(), store=RedisStateStore(client, self.key))

    def wait(self) -> float:
        """Ask for admission: 0.0 when admitted, else the seconds to wait before asking again."""
        from pyrate_limiter import RateItem

        with self._lock, self._reachable():
            if self._bucket is None:
                import redis

                self._bucket = self._new_bucket(redis.Redis.from_url(self.url))
            decision = self._bucket.put_decision(RateItem("call", time.time_ns() // 1_000_000))
        return _seconds(decision)

    async def await_(self) -> float:
        """``wait`` for the event loop (redis.asyncio: nothing blocks the triggerer)."""
        from pyrate_limiter import RateItem

        loop = asyncio.get_running_loop()
        entry = self._abuckets.get(loop)
        if entry is None:
            import redis.asyncio

            entry = self._abuckets[loop] = (self._new_bucket(redis.asyncio.Redis.from_url(self.url)), asyncio.Lock())
        bucket, lock = entry
        async with lock:
            with self._reachable():
                decision = await bucket.put_decision(RateItem("call", time.time_ns() // 1_000_000))
        return _seconds(decision)

    @contextlib.contextmanager
    def _reachable(self) -> Iterator[None]:
        """Fail closed: without the budget, no call is sent. The error is a transient not-sent one, so
        the hook retries it (a create too) and, past its budget, Airflow's retries apply."""
        try:
            yield
        except (OSError, ConnectionError) as exc:
            raise self._unreachable(exc) from None
        except Exception as exc:
            if type(exc).__module__.split(".")[0] != "redis":
                raise
            raise self._unreachable(exc) from None

    def _unreachable(self, exc: Exception) -> PatsnapConnectionError:
        where = urlsplit(self.url).hostname or self.url.split("@")[-1]
        return PatsnapConnectionError(
            f"the shared rate budget at {where} is unreachable ({type(exc).__name__}); nothing was sent",
            endpoint="rate_limit_url",
            outcome=Outcome.NOT_SENT,
        )


def _seconds(decision: Any) -> float:
    if decision.allowed:
        return 0.0
    wait_ms = decision.retry_after_ms
    return max(0.001, (wait_ms if wait_ms is not None else 50) / 1000)
