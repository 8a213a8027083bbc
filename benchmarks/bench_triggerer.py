"""Triggerer at scale: 1,000 ``PatsnapReportJobTrigger`` on one asyncio loop, CPU, threads, sockets, polls.

The real triggerer runs every deferred task's trigger as a task on one event loop. This script does
the same with ``N`` triggers (1,000, and 100 for comparison), all alive at once, against the
emulator (in its own process, so its CPU is not counted), with time scaled down by ``S`` (100): the
30 s poll interval becomes ``P = 0.3`` s and job lengths of 1-10 minutes become 0.6-6 s.

Staggered jobs: the emulator has a single ``job_seconds``, so every job is done ``T`` after its
creation. With ``T`` = the longest scaled job, job ``i`` (remaining length ``J_i``, spread evenly over
0.6-6 s) is created ``T - J_i`` before the triggers start, in order, over ~5.4 s. At the start
``t0`` all ``N`` triggers exist and job ``i`` finishes ``J_i`` after ``t0``: a triggerer taking up ``N``
deferred tasks at once (a restart, say) whose jobs of 1-10 minutes finish at staggered times. ``J_i``
is taken from the emulator's own ``created_at``, so a slow create cannot skew the figures. Each
trigger gets ``last_polled_at = t0 - u_i * P`` (``u_i`` uniform in [0, 1)): its sensor looked when it
deferred, and sensors defer at different moments, so the polls are spread over the interval rather
than sent in one burst. The connection has ``qps=0`` (no client-side pacing) and the process-wide
token cache starts cold (one fresh triggerer process).

At ``S = 100`` the loop is asked for ``N / P`` = 3,333 polls/s, more than one core can serve: it runs
saturated, so the per-poll CPU it measures includes whatever the HTTP stack costs under a backlog
(the same backlog a real triggerer sees whenever many polls fall due together). The N=100 run
(333 polls/s, not saturated) is shown alongside for the per-poll cost without a backlog.

While the triggers run, a sampler thread reads ``/proc/self/status`` (``Threads``),
``threading.active_count()`` and counts the socket entries of ``/proc/self/fd`` every 50 ms; the
process CPU time (minus the sampler's own) is divided by the wall time.

* ``triggerer.cpu_share_at_real_interval``: CPU seconds per status poll x N / 30 s, the share of one
  core at the real 30 s interval (each trigger polls once per interval). Goal < 0.05.
* ``triggerer.cpu_share_at_scaled_interval``: CPU / wall while the triggers run at ``P``. For information.
* ``triggerer.peak_threads_vs_n100``: peak OS threads with N triggers / with 100. Goal <= 1 (no growth).
* ``triggerer.peak_sockets_vs_n100``: peak sockets opened during the run with N / with 100 (ratio ~1);
  goal: at most the shared client's fixed pool (``max_connections``) at N.
* ``triggerer.polls_per_job_vs_ideal``: emulator ``status_polls`` / N over the mean ideal, for each
  trigger its first poll ``a_i = (1 - u_i) P`` after ``t0`` then one per ``P`` up to the first at or
  after ``J_i``: ``1 + ceil((J_i - a_i) / P)`` (at most ``ceil(J/P) + 1``). Goal <= 1.
* ``triggerer.detect_lag_vs_poll_interval``: mean and worst delay from a job finishing to its event, / P.
  For information: at the scaled interval the loop carries S times the real load.
* ``triggerer.fired_exactly_once``: share of triggers (both runs) whose ``run()`` yielded exactly one
  event, with status ``success``. Goal == 1.
* ``triggerer.token_fetches``: OAuth tokens the emulator issued to N triggers on a cold cache. Goal == 1.

Knobs: ``--triggers`` / ``BENCH_TRIGGERS`` (1,000), ``--baseline-triggers`` / ``BENCH_BASELINE_TRIGGERS``
(100), ``--scale`` / ``BENCH_TIME_SCALE`` (100). About 30 s in all.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import _common

if TYPE_CHECKING:
    from airflow_provider_patsnap.triggers.report_job import PatsnapReportJobTrigger

REAL_POLL_INTERVAL = 30.0  # seconds: PatsnapReportJobSensor's default poke_interval, the trigger's interval
JOB_MINUTES = (1.0, 10.0)  # real job lengths, spread evenly
GOAL_CPU_SHARE = 0.05
SAMPLE_SECONDS = 0.05
SEED = 20240611


class Sampler(threading.Thread):
    """Peaks of OS threads, Python threads and open sockets of this process, sampled every 50 ms."""

    def __init__(self) -> None:
        super().__init__(name="bench-triggerer-sampler", daemon=True)
        self.peak_os_threads = self.peak_py_threads = self.peak_sockets = 0
        self.cpu_seconds = 0.0  # this thread's own CPU, taken off the process figure
        self._stop_event = threading.Event()

    @staticmethod
    def os_threads() -> int:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
        return threading.active_count()

    @staticmethod
    def sockets() -> int:
        count = 0
        for entry in os.scandir("/proc/self/fd"):
            try:
                if os.readlink(entry.path).startswith("socket:"):
                    count += 1
            except OSError:  # closed between listing and reading
                pass
        return count

    def sample(self) -> None:
        self.peak_os_threads = max(self.peak_os_threads, self.os_threads())
        self.peak_py_threads = max(self.peak_py_threads, threading.active_count())
        self.peak_sockets = max(self.peak_sockets, self.sockets())

    def run(self) -> None:
        started = time.thread_time()
        while not self._stop_event.wait(SAMPLE_SECONDS):
            self.sample()
        self.sample()
        self.cpu_seconds = time.thread_time() - started

    def finish(self) -> None:
        self._stop_event.set()
        self.join()


@dataclass
class Run:
    """What one run of ``n`` triggers measured."""

    n: int
    poll: float
    wall: float = 0.0
    cpu: float = 0.0
    polls: int = 0
    ideal_polls: float = 0.0
    tokens: int = 0
    create_lag: float = 0.0
    base_threads: int = 0
    base_sockets: int = 0
    peak_threads: int = 0
    peak_py_threads: int = 0
    peak_sockets: int = 0
    events: list[list[dict[str, Any]]] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)

    @property
    def fired_once(self) -> int:
        return sum(1 for events in self.events if len(events) == 1 and events[0]["status"] == "success")

    @property
    def new_sockets(self) -> int:
        return self.peak_sockets - self.base_sockets


async def all_events(trigger: PatsnapReportJobTrigger) -> list[tuple[dict[str, Any], float]]:
    """Run a trigger to its end as the triggerer does, keeping every event and the epoch time it came."""
    return [(event.payload, time.time()) async for event in trigger.run()]


async def run_triggers(
    run: Run, job_ids: list[str], phases: list[float], end_time: float
) -> tuple[list[list[tuple[dict[str, Any], float]]], float]:
    """All triggers as tasks on this loop; returns their events and the start epoch, fills in CPU and wall."""
    from airflow_provider_patsnap.hooks._drivers import close_shared_async_client
    from airflow_provider_patsnap.triggers.report_job import PatsnapReportJobTrigger

    # The loop's own self-pipe (a socket pair) and the sampler exist by now: the triggers' baseline.
    run.base_threads, run.base_sockets = Sampler.os_threads(), Sampler.sockets()
    poll = run.poll
    t0 = time.time()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    triggers = [
        PatsnapReportJobTrigger(
            job_id=job_id, report_kind="enterprise", end_time=end_time, poll_interval=poll, last_polled_at=t0 - u * poll
        )
        for job_id, u in zip(job_ids, phases, strict=True)
    ]
    try:
        results = list(await asyncio.gather(*(all_events(trigger) for trigger in triggers)))
        run.cpu, run.wall = time.process_time() - cpu0, time.perf_counter() - wall0
    finally:
        await close_shared_async_client()
    return results, t0


def one_run(emu: _common.EmulatorProcess, n: int, poll: float, j_min: float, j_max: float) -> Run:
    """Create ``n`` staggered jobs, then run their triggers together; see the module docstring."""
    from airflow_provider_patsnap.hooks.patsnap import PatsnapHook

    run = Run(n=n, poll=poll)
    emu.set(job_seconds=j_max)
    remaining = [j_min + (j_max - j_min) * (i + 0.5) / n for i in range(n)]
    rng = random.Random(f"{SEED}:{n}")
    phases = [rng.random() for _ in range(n)]

    hook = PatsnapHook()
    job_ids: list[str] = []
    c0 = time.time()
    for index, j in enumerate(remaining):
        delay = c0 + (j_max - j) - time.time()  # created T - J_i before t0 = c0 + T, so done J_i after t0
        if delay > 0:
            time.sleep(delay)
        job_ids.append(hook.create_enterprise_report(company_name=f"Triggerer Bench Co {n}-{index}"))
    hook.session.close()  # the sync hook's keep-alive socket is not part of the triggerer's count
    start_at = c0 + j_max
    if time.time() < start_at:
        time.sleep(start_at - time.time())
    run.create_lag = max(0.0, time.time() - start_at)

    _common.reset_process_state()  # a fresh triggerer: cold token cache
    emu.reset_stats()
    sampler = Sampler()
    sampler.start()
    try:
        results, t0 = asyncio.run(run_triggers(run, job_ids, phases, end_time=time.time() + 120))
    finally:
        sampler.finish()
    stats = emu.stats
    created_at = [emu.call("job", job_id)["created_at"] for job_id in job_ids]

    run.cpu -= sampler.cpu_seconds
    run.polls, run.tokens = stats["status_polls"], stats["tokens_issued"]
    run.peak_threads, run.peak_py_threads, run.peak_sockets = (
        sampler.peak_os_threads,
        sampler.peak_py_threads,
        sampler.peak_sockets,
    )
    ideal = 0
    for created, u, events in zip(created_at, phases, results, strict=True):
        done_in = created + j_max - t0  # J_i as the emulator sees it
        first = (1 - u) * poll
        ideal += 1 + max(0, math.ceil((done_in - first) / poll))
        run.events.append([payload for payload, _ in events])
        if events:
            run.lags.append(events[0][1] - (created + j_max))
    run.ideal_polls = ideal / n
    return run


def report(big: Run, small: Run, scale: float, pool: int) -> None:
    real_poll = big.poll * scale
    per_poll = big.cpu / big.polls if big.polls else math.inf
    real_share = per_poll * big.n / real_poll
    _common.figure(
        "triggerer.cpu_share_at_real_interval",
        real_share,
        f"{per_poll * 1000:.3f} ms CPU per status poll ({big.cpu:.2f} s CPU / {big.polls} polls) x {big.n} "
        f"triggers / {real_poll:g} s; N={small.n}: {small.cpu / max(1, small.polls) * 1000:.3f} ms per poll; "
        f"goal < {GOAL_CPU_SHARE}",
        real_share < GOAL_CPU_SHARE,
        fmt=".4f",
    )
    _common.figure(
        "triggerer.cpu_share_at_scaled_interval",
        big.cpu / big.wall,
        f"{big.cpu:.2f} s CPU in {big.wall:.2f} s wall, {big.n} triggers at P={big.poll:g} s "
        f"(time / {scale:g}, {big.polls / big.wall:.0f} polls/s); N={small.n}: {small.cpu / small.wall:.3f}; "
        "for information",
        None,
        fmt=".3f",
    )
    _common.figure(
        f"triggerer.peak_threads_vs_n{small.n}",
        big.peak_threads / small.peak_threads,
        f"peak {big.peak_threads} OS threads ({big.peak_py_threads} Python) with {big.n} triggers vs "
        f"{small.peak_threads} ({small.peak_py_threads}) with {small.n}; {big.base_threads} at loop start "
        "incl. this sampler; goal <= 1 (no growth)",
        big.peak_threads <= small.peak_threads,
        fmt=".3f",
    )
    _common.figure(
        f"triggerer.peak_sockets_vs_n{small.n}",
        big.new_sockets / max(1, small.new_sockets),
        f"peak {big.new_sockets} sockets opened with {big.n} triggers vs {small.new_sockets} with {small.n} "
        f"(over {big.base_sockets} open at loop start: emulator pipe, loop self-pipe); "
        f"goal: <= the shared client's pool of {pool} at {big.n}",
        big.new_sockets <= pool,
        fmt=".3f",
    )
    per_job = big.polls / big.n
    _common.figure(
        "triggerer.polls_per_job_vs_ideal",
        per_job / big.ideal_polls,
        f"{per_job:.2f} status polls per job / ideal {big.ideal_polls:.2f} (first poll at (1-u)P, then every "
        f"P until the one at or after J; J = {JOB_MINUTES[0]:g}-{JOB_MINUTES[1]:g} min / {scale:g}); "
        f"N={small.n}: {small.polls / small.n:.2f} / {small.ideal_polls:.2f}; loop busy {big.cpu / big.wall:.0%} "
        f"of a core at N={big.n}, {small.cpu / small.wall:.0%} at N={small.n}; goal <= 1",
        per_job <= big.ideal_polls,
    )
    if big.lags:
        mean_lag, worst_lag = sum(big.lags) / len(big.lags), max(big.lags)
        _common.figure(
            "triggerer.detect_lag_vs_poll_interval",
            worst_lag / big.poll,
            f"worst {worst_lag:.2f} s, mean {mean_lag:.2f} s = {mean_lag / big.poll:.2f} P from job done to event, "
            f"P={big.poll:g} s, {big.n} triggers; the loop carries {scale:g}x the real poll rate here; for information",
            None,
        )
    fired = big.fired_once + small.fired_once
    total = big.n + small.n
    statuses: dict[str, int] = {}
    for events in big.events + small.events:
        key = ",".join(event["status"] for event in events) or "none"
        statuses[key] = statuses.get(key, 0) + 1
    _common.figure(
        "triggerer.fired_exactly_once",
        fired / total,
        f"{fired} of {total} triggers ({big.n} + {small.n}) yielded exactly one event, status success; "
        f"events per trigger: {statuses}; goal == 1",
        fired == total,
        fmt=".3f",
    )
    _common.figure(
        "triggerer.token_fetches",
        big.tokens,
        f"tokens issued for {big.n} triggers on a cold token cache ({small.tokens} for {small.n}); goal == 1",
        big.tokens == 1 and small.tokens == 1,
        fmt="d",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--triggers", type=int, default=int(_common.env_number("BENCH_TRIGGERS", 1000)))
    parser.add_argument(
        "--baseline-triggers", type=int, default=int(_common.env_number("BENCH_BASELINE_TRIGGERS", 100))
    )
    parser.add_argument("--scale", type=float, default=_common.env_number("BENCH_TIME_SCALE", 100))
    args = parser.parse_args()
    scale: float = args.scale
    poll = REAL_POLL_INTERVAL / scale
    j_min, j_max = (minutes * 60 / scale for minutes in JOB_MINUTES)

    from airflow_provider_patsnap.hooks import _drivers
    from airflow_provider_patsnap.hooks.patsnap import PatsnapHook

    with _common.EmulatorProcess(job_seconds=j_max) as emu:
        # qps=0: no client-side pacing, so the poll rate is the triggers' own.
        _common.use_connection(emu.connection_json(qps=0))
        _common.reset_process_state()
        PatsnapHook().config  # noqa: B018 - resolve the connection before timing anything
        small = one_run(emu, args.baseline_triggers, poll, j_min, j_max)
        big = one_run(emu, args.triggers, poll, j_min, j_max)
        errors = emu.stats.get("internal_errors", 0)
    if errors:
        raise SystemExit(f"the emulator recorded {errors} internal error(s)")
    for run in (small, big):
        if run.create_lag > 1.0:
            print(f"note: creating {run.n} jobs ran {run.create_lag:.1f} s late; J_i taken from the emulator")
    report(big, small, scale, _drivers._POOL.max_connections or 0)


if __name__ == "__main__":
    _common.watchdog(110)
    main()
