"""Process-wide OAuth token cache: one token per (host, client id) per token lifetime."""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from dataclasses import dataclass, field

#: Refresh this long before expiry (capped at a tenth of the lifetime for short-lived tokens).
REFRESH_LEAD_SECONDS = 60.0


@dataclass(frozen=True)
class Token:
    value: str = field(repr=False)
    expires_at: float  # time.monotonic() deadline
    lifetime: float

    def is_fresh(self, now: float | None = None) -> bool:
        lead = min(REFRESH_LEAD_SECONDS, self.lifetime / 10)
        return (now if now is not None else time.monotonic()) < self.expires_at - lead


class TokenCache:
    """Tokens keyed by (base URL, client id), with a per-key lock so one caller fetches at a time."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, str], Token] = {}
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        # asyncio locks belong to one event loop: keyed by the loop itself, dropped with it.
        self._async_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str], asyncio.Lock]] = (
            weakref.WeakKeyDictionary()
        )
        self._guard = threading.Lock()
        #: Tokens fetched per key since start (read by tests and benchmarks).
        self.fetches: dict[tuple[str, str], int] = {}

    def get(self, key: tuple[str, str]) -> Token | None:
        token = self._tokens.get(key)
        return token if token is not None and token.is_fresh() else None

    def put(self, key: tuple[str, str], token: Token) -> None:
        with self._guard:
            self._tokens[key] = token
            self.fetches[key] = self.fetches.get(key, 0) + 1

    def invalidate(self, key: tuple[str, str], value: str) -> None:
        """Drop the token only if it is still ``value`` (another caller may have refreshed it already)."""
        with self._guard:
            current = self._tokens.get(key)
            if current is not None and current.value == value:
                del self._tokens[key]

    def lock(self, key: tuple[str, str]) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def async_lock(self, key: tuple[str, str]) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        with self._guard:
            return self._async_locks.setdefault(loop, {}).setdefault(key, asyncio.Lock())

    def clear(self) -> None:
        with self._guard:
            self._tokens.clear()
            self.fetches.clear()


TOKEN_CACHE = TokenCache()
