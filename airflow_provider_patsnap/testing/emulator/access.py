"""Who may call: client credentials, OAuth tokens (lifetime, one active token per client) and QPS limits."""

from __future__ import annotations

import hmac
import math
import secrets
import threading
import time
from collections import deque
from typing import Any


class _AccessBook:
    """The access half of :class:`PatsnapEmulator` (a mixin: the state it uses is set up there)."""

    _lock: threading.RLock
    _stats: dict[str, Any]
    _tokens: dict[str, tuple[str, float]]  # token -> (owner, monotonic expiry); never forgotten
    _windows: dict[str, deque[float]]
    client_id: str
    client_secret: str
    token_ttl: float
    qps_limit: float | None
    single_active_token: bool

    def expire_tokens(self) -> None:
        """Make every token issued so far expired from now on."""
        with self._lock:
            self._tokens = {token: (owner, -math.inf) for token, (owner, _) in self._tokens.items()}

    def _valid_client(self, client_id: str, secret: str) -> bool:
        return hmac.compare_digest(client_id.encode(), self.client_id.encode()) and hmac.compare_digest(
            secret.encode(), self.client_secret.encode()
        )

    def _issue_token(self, owner: str) -> tuple[str, float]:
        token = secrets.token_urlsafe(32)
        ttl = float(self.token_ttl)
        with self._lock:
            if self.single_active_token:  # PatSnap-like: a new token revokes the client's earlier ones
                for old, (old_owner, _) in list(self._tokens.items()):
                    if old_owner == owner:
                        self._tokens[old] = (old_owner, -math.inf)
            self._tokens[token] = (owner, time.monotonic() + ttl)
            self._stats["tokens_issued"] += 1
        return token, ttl

    def _token_owner(self, token: str) -> str | None:
        with self._lock:
            entry = self._tokens.get(token)
        if entry is None or time.monotonic() >= entry[1]:
            return None
        return entry[0]

    def _admit(self, credential: str) -> bool:
        limit = self.qps_limit
        if limit is None:
            return True
        now = time.monotonic()
        with self._lock:
            window = self._windows.setdefault(credential, deque())
            while window and window[0] <= now - 1.0:
                window.popleft()
            if len(window) >= limit:
                self._stats["rate_limited"] += 1
                return False
            window.append(now)
            return True
