"""The client-side limiter, on a fake clock: spacing and the sliding-window cap."""

from __future__ import annotations

import asyncio
import itertools
import math

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


def test_a_create_takes_the_first_slot_a_waiting_read_holds(clock: list[float]) -> None:
    limiter = _ratelimit.RateLimiter(2)
    reads = [limiter._claim(_ratelimit.Priority.READ) for _ in range(4)]
    read_slots = [t.slot for t in reads]  # 1000.0, 1000.51, 1001.02, 1001.53 (2 per 1.02 s window)
    create = limiter._claim(_ratelimit.Priority.CREATE)
    assert create is not None and create.slot == read_slots[1]  # the first free one (slot 0 is due now)
    assert [t.slot for t in reads] == [read_slots[0], read_slots[2], read_slots[3], read_slots[3] + 0.51]
    later = limiter._claim(_ratelimit.Priority.CREATE)
    assert later is not None and create.slot < later.slot == read_slots[2]  # creates keep their own order


def test_creates_go_first_through_the_real_waits() -> None:
    limiter = _ratelimit.RateLimiter(5)  # real time: a slot every 200 ms
    order: list[str] = []

    async def one(name: str, priority: _ratelimit.Priority, delay: float) -> None:
        await asyncio.sleep(delay)
        await limiter.aacquire(priority)
        order.append(name)

    async def run() -> None:
        reads = [one(f"read{i}", _ratelimit.Priority.READ, 0) for i in range(6)]
        await asyncio.gather(*reads, one("create", _ratelimit.Priority.CREATE, 0.02))

    asyncio.run(run())
    assert order.index("create") <= 2 and [n for n in order if n != "create"] == [f"read{i}" for i in range(6)]


def test_rejections_halve_the_rate_and_successes_win_it_back(clock: list[float]) -> None:
    limiter = _ratelimit.RateLimiter(4)
    limiter.on_rejected()
    assert limiter.rate == 2 and limiter.rejections == 1
    for _ in range(5):  # the calls in flight when the limit was hit are refused together: one signal
        limiter.on_rejected()
    assert limiter.rate == 2 and limiter.rejections == 6
    for _ in range(10):
        clock[0] += _ratelimit.WINDOW_SECONDS
        limiter.on_rejected()
    assert limiter.rate == 4 * _ratelimit.MIN_RATE_SHARE  # a floor: never stops entirely
    steps = 0
    while limiter.rate < 4:
        limiter.on_accepted()
        steps += 1
    assert limiter.rate == 4 and steps == math.ceil((4 - 0.4) / (4 * _ratelimit.RECOVERY_STEP))
    limiter.on_accepted()
    assert limiter.rate == 4  # qps stays the ceiling


def test_after_a_rejection_calls_are_spaced_at_the_lower_rate(clock: list[float]) -> None:
    limiter = _ratelimit.RateLimiter(4)
    limiter.acquire()
    limiter.on_rejected()
    sent = []
    for _ in range(4):
        limiter.acquire()
        sent.append(clock[0])
    assert all(b - a >= 0.5 - 1e-9 for a, b in itertools.pairwise(sent))  # 2/s, not 4/s


def test_a_cancelled_waiter_gives_its_place_up(clock: list[float]) -> None:
    limiter = _ratelimit.RateLimiter(1)

    async def run() -> None:
        await limiter.aacquire()
        waiter = asyncio.ensure_future(limiter.aacquire())
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter

    asyncio.run(run())
    assert limiter._waiting == []


def test_waiting_calls_speed_up_again_when_the_rate_recovers(clock: list[float]) -> None:
    limiter = _ratelimit.RateLimiter(10)
    limiter.on_rejected()
    for _ in range(10):
        clock[0] += _ratelimit.WINDOW_SECONDS
        limiter.on_rejected()
    waiting = [limiter._claim(_ratelimit.Priority.READ) for _ in range(50)]  # queued at 1 call/s
    assert waiting[-1] is not None and waiting[-1].slot - clock[0] >= 48
    for _ in range(40):
        limiter.on_accepted()
    assert limiter.rate == 10
    assert waiting[-1].slot - clock[0] <= 50 / 10 + 0.5  # the same queue, now at the recovered pace


def test_calls_due_at_once_go_in_their_order_not_by_who_wakes_first(clock: list[float]) -> None:
    limiter = _ratelimit.RateLimiter(2)
    first, second, third = (limiter._claim(_ratelimit.Priority.READ) for _ in range(3))
    assert first is not None and second is not None and third is not None
    clock[0] += 10  # all three are due and the window is empty: only the order decides
    assert limiter._delay(third) > 0 and limiter._delay(second) > 0
    assert limiter._delay(first) == 0
    assert limiter._delay(third) > 0
    assert limiter._delay(second) == 0
    assert limiter._delay(third) > 0  # the window (2 per 1.02 s) is full now
    clock[0] += _ratelimit.WINDOW_SECONDS
    assert limiter._delay(third) == 0


def test_slots_are_never_closer_than_the_window_allows() -> None:
    for qps in (1, 2, 2.5, 4, 20):
        limiter = _ratelimit.RateLimiter(qps)
        per_window = max(1, int(qps))
        assert limiter._interval() * per_window >= _ratelimit.WINDOW_SECONDS - 1e-9
