"""When a report-job trigger looks again: from what PatSnap says, not a fixed beat.

The account's rate budget is shared by every job the triggerer watches, so a look that cannot
find the report done is a look another job does not get. A queued job (status 0) cannot be done
before it has left the queue and then spent PatSnap's documented minimum generation time, so it
is looked at again only around when it should start; an exporting job (status 1) is looked at
every poll interval. How fast the queue moves is pooled over every job of the same account and
report kind in the process: each job's position then says when it should start, from its first
look on, instead of each job learning the rate from its own looks.

Times derived from PatSnap's documented 1-10 minutes are also capped in poll intervals (its
guide polls every 30-60 s), so a deployment or test that polls faster, against faster jobs,
keeps its proportions.
"""

from __future__ import annotations

import threading
from collections import deque

from airflow_provider_patsnap.models import JobStatus, ReportJob

#: PatSnap documents 1-10 minutes of generation once a job is exporting.
MIN_GENERATION_SECONDS = 60.0
#: ... which is this many poll intervals at the documented 30 s (the cap for faster polling).
MIN_GENERATION_INTERVALS = 2.0
#: A queued job is looked at again after at most this long, whatever its queue says.
MAX_QUEUED_WAIT_SECONDS = 1800.0
MAX_QUEUED_WAIT_INTERVALS = 60.0
#: Share of the expected time to the job's start waited before looking again (on top of the minimum
#: generation time): the estimate may be off, and erring late would delay the finished report.
START_SHARE = 0.8
#: Queue movements older than this (seconds) no longer describe the queue.
DRAIN_MEMORY_SECONDS = 600.0
DRAIN_SAMPLES = 64


class QueueDrain:
    """How fast one account's queue for one report kind moves, pooled over the jobs of a process."""

    def __init__(self) -> None:
        self._samples: deque[tuple[float, float, int]] = deque(maxlen=DRAIN_SAMPLES)
        self._lock = threading.Lock()

    def observe(self, since: float, now: float, moved: int) -> None:
        """One job's position fell by ``moved`` between two looks (monotonic seconds)."""
        if now > since:
            with self._lock:
                # A position that grew (were queue_num the queue's length, not the job's place)
                # counts as a queue that did not move: a negative movement would cancel out real
                # ones and could make the pooled rate zero or negative for every job.
                self._samples.append((now, now - since, max(moved, 0)))

    def jobs_per_second(self, now: float) -> float | None:
        with self._lock:
            while self._samples and self._samples[0][0] < now - DRAIN_MEMORY_SECONDS:
                self._samples.popleft()
            seconds = sum(s for _, s, _ in self._samples)
            moved = sum(m for _, _, m in self._samples)
        return moved / seconds if moved > 0 and seconds > 0 else None


_DRAINS: dict[tuple[str, str], QueueDrain] = {}
_DRAINS_LOCK = threading.Lock()


def drain_for(conn_id: str, report_kind: str) -> QueueDrain:
    """The process-wide queue estimate for one connection and report kind."""
    with _DRAINS_LOCK:
        return _DRAINS.setdefault((conn_id, report_kind), QueueDrain())


class PollSchedule:
    """One job's next look: an exporting job every ``poll_interval``; a queued job no sooner than the
    minimum generation time (it cannot be done before), plus ``START_SHARE`` of the time its queue
    position needs at the pooled drain rate (while no queue has been seen moving, that wait doubles
    from look to look); never later than ``MAX_QUEUED_WAIT_*``."""

    def __init__(self, poll_interval: float, drain: QueueDrain | None = None) -> None:
        self.poll_interval = poll_interval
        self.drain = drain or QueueDrain()
        self._last_queue: tuple[float, int] | None = None
        self._blind_wait = 0.0
        base = poll_interval
        self._min_generation = min(MIN_GENERATION_SECONDS, MIN_GENERATION_INTERVALS * base)
        self._max_queued_wait = max(base, min(MAX_QUEUED_WAIT_SECONDS, MAX_QUEUED_WAIT_INTERVALS * base))

    def next_wait(self, job: ReportJob, now: float) -> float:
        base = self.poll_interval
        queue = job.queue_num if job.status is JobStatus.QUEUED else None
        if not queue:
            self._last_queue = None
            return base
        previous, self._last_queue = self._last_queue, (now, queue)
        if previous is not None:
            self.drain.observe(previous[0], now, previous[1] - queue)
        rate = self.drain.jobs_per_second(now)
        if rate is None:
            # No queue has been seen moving yet: back off (a thousand fresh jobs must not poll a
            # stuck queue every minimum generation time, ahead of jobs that may be done).
            self._blind_wait = 2 * self._blind_wait if self._blind_wait else self._min_generation
            return min(max(base, self._blind_wait), self._max_queued_wait)
        self._blind_wait = 0.0
        wait = self._min_generation + START_SHARE * queue / rate
        return min(max(base, wait), self._max_queued_wait)
