"""Failure injection: random transient faults, gateway pages after a create, and timed outage windows."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from typing import Any

from .protocol import OUTAGE_TARGETS


@dataclass
class _Outage:
    target: str
    seconds: float
    status: int
    calls_before: int  # calls to the target still to pass before the window opens
    start: float | None  # time.monotonic() when the window opened (None: not yet)


#: The transient faults ``fault_rate`` draws from: 68300008, a gateway's HTML 503, a 429.
FAULT_KINDS = ("service_error", "gateway_503", "rate_limited")


class _FaultBook:
    """The faults half of :class:`PatsnapEmulator` (a mixin: the state it uses is set up there)."""

    _lock: threading.RLock
    _stats: dict[str, Any]
    _fault_rng: random.Random
    _outages: list[_Outage]
    fault_rate: float
    create_fault_kinds: tuple[str, ...]
    create_gateway_timeouts: int
    indicator_gateway_timeouts: int
    create_gateway_status: int

    def outage(self, target: str, seconds: float, *, after_calls: int = 0, status: int = 500) -> None:
        """Schedule an outage window on ``target`` that opens after ``after_calls`` more calls to it.

        ``target``: ``"token"``, ``"create"`` (R001/R002, any logo variant), ``"status"``,
        ``"indicators"`` (all of P035-P040), one indicator endpoint (``"valuation"``, ``"technology"``,
        ``"legal"``, ``"market"``, ``"strategic"``, ``"economic"``) or ``"cdn"``. The calls that open
        the window are served normally; from then on, for ``seconds`` (by ``time.monotonic()``), every
        call to the target is answered ``status``: an nginx-style HTML page from the API (before
        authentication: nothing is created or billed), a COS-style XML error from the CDN. Windows
        stack; :meth:`end_outages` ends them all.
        """
        if target not in OUTAGE_TARGETS:
            raise ValueError(f"unknown outage target {target!r}; expected one of {sorted(OUTAGE_TARGETS)}")
        if seconds < 0 or after_calls < 0:
            raise ValueError("seconds and after_calls must not be negative")
        if not 400 <= status <= 599:
            raise ValueError(f"an outage answers an HTTP error status (400-599), not {status}")
        start = time.monotonic() if after_calls == 0 else None
        with self._lock:
            self._outages.append(_Outage(target, float(seconds), int(status), int(after_calls), start))

    def end_outages(self) -> None:
        """End every outage window, open or still waiting for its calls."""
        with self._lock:
            self._outages.clear()

    def _outage_status(self, targets: tuple[str, ...]) -> int | None:
        """Count a call to ``targets``; return the status to answer when an outage window covers it."""
        now = time.monotonic()
        answer: int | None = None
        with self._lock:
            for outage in list(self._outages):
                if outage.target not in targets:
                    continue
                if outage.start is None:
                    outage.calls_before -= 1
                    if outage.calls_before <= 0:
                        outage.start = now  # this call opens the window and is itself served
                elif now >= outage.start + outage.seconds:
                    self._outages.remove(outage)
                elif answer is None:
                    answer = outage.status
            if answer is not None:
                self._stats["outage_answers"] += 1
        return answer

    def _take_gateway_timeout(self, *, indicators: bool) -> int | None:
        """After a create made its job, or an indicator batch was billed: the gateway status to answer
        instead of the envelope, if any (``create_gateway_timeouts`` / ``indicator_gateway_timeouts``)."""
        with self._lock:
            if indicators:
                if self.indicator_gateway_timeouts <= 0:
                    return None
                self.indicator_gateway_timeouts -= 1
            else:
                if self.create_gateway_timeouts <= 0:
                    return None
                self.create_gateway_timeouts -= 1
            self._stats["gateway_timeouts"] += 1
            return int(self.create_gateway_status)

    def _draw_fault(self, action: str = "") -> str | None:
        with self._lock:
            rate = self.fault_rate
            if not rate or rate <= 0 or self._fault_rng.random() >= rate:
                return None
            kinds = tuple(self.create_fault_kinds) if action == "create" else FAULT_KINDS
            if not kinds:
                return None
            self._stats["faults"] += 1
            return self._fault_rng.choice(kinds)
