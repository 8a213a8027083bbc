"""One PatSnap account under a fleet: a refresh of many reports, timeouts under load, four workers.

Time is scaled by ``SCALE`` (default 10) so minutes run in seconds: the account allows ``2 * SCALE``
calls per second, polls come every ``30 / SCALE`` s and reports take PatSnap's documented 1-10
minutes / ``SCALE`` (seeded), queued for ``GENERATION_SLOTS`` generators. Figures are reported
back in real minutes. The emulator runs in its own process and enforces the account's QPS.

* ``fleet.refresh_<N>.total_vs_bound``: a worker process creates N reports while a triggerer
  process waits on them (each process configured at the account's QPS, no shared limiter, as
  the README's single-machine setup). Total time / the lower bound max((N creates + N polls) / QPS,
  when PatSnap would finish the last report had every create gone out at the full rate). Goal <= 1.1
  (<= 1.05 with a shared budget).
* ``fleet.refresh_<N>.latency_p50/p95``: report done -> trigger event, minutes, next to the same for
  an ideal poller that knows when each report is done and spends one poll on it as soon as the
  budget left by the creates allows. Goal: p95 <= ideal p95 + one poll interval.
* ``fleet.refresh_<N>.polls_per_job``, ``...rejections``, ``...failed_creates`` (goal 0).
* ``fleet.timeout_lateness``: 400 triggers whose reports never finish, deadlines spread over a
  minute, a budget far below what they ask for: latest timeout event after its deadline, in poll
  intervals. Goal <= 1.
* ``fleet.shared.rejections_per_1000`` / ``fleet.shared.throughput_vs_qps``: four worker processes on
  one account each configured at its QPS, with the Redis budget (``rate_limit_url``; needs
  redis-server): goal 0 and >= 0.9. ``fleet.unshared.*``: the same without it (AIMD only).

Sizes: ``BENCH_FLEET_JOBS`` (default "200,1000"), ``BENCH_FLEET_SCALE`` (10).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import _common

SCALE = _common.env_number("BENCH_FLEET_SCALE", 10)
ACCOUNT_QPS = 2 * SCALE
POLL = 30 / SCALE
JOB_RANGE = (60 / SCALE, 600 / SCALE)
GENERATION_SLOTS = 100
STATUS = "GET /innovation/company-report/job_id/status"


# ------------------------------------------------------------------------------------ processes


def _creator(conn: str, count: int, jobs: Any, stats: Any) -> None:
    """A worker process creating ``count`` reports, one after the other, handing each job to the triggerer."""
    os.environ["AIRFLOW_CONN_PATSNAP_DEFAULT"] = conn
    from airflow_provider_patsnap.hooks.patsnap import PatsnapHook

    hook, failed = PatsnapHook(), 0
    for i in range(count):
        try:
            jobs.put((hook.create_enterprise_report(company_name=f"Fleet Co {i:05d}"), time.time()))
        except Exception:
            failed += 1
    jobs.put(None)
    stats.put(failed)


def _triggerer(conn: str, jobs: Any, events: Any, deadline_after: float) -> None:
    """A triggerer process: one PatsnapReportJobTrigger per job, all on one event loop."""
    os.environ["AIRFLOW_CONN_PATSNAP_DEFAULT"] = conn
    from airflow_provider_patsnap.hooks._drivers import close_shared_async_client
    from airflow_provider_patsnap.triggers.report_job import PatsnapReportJobTrigger

    async def wait(job_id: str, created: float) -> None:
        trigger = PatsnapReportJobTrigger(
            job_id, "enterprise", end_time=created + deadline_after, poll_interval=POLL, last_polled_at=created
        )
        async for event in trigger.run():
            events.put((job_id, event.payload["status"], time.time()))
            return

    async def main() -> None:
        loop, waits = asyncio.get_running_loop(), []
        while (item := await loop.run_in_executor(None, jobs.get)) is not None:
            waits.append(asyncio.ensure_future(wait(*item)))
        await asyncio.gather(*waits)
        await close_shared_async_client()

    asyncio.run(main())
    events.put(None)


def _worker(conn: str, job_id: str, calls: int, results: Any, start: Any) -> None:
    os.environ["AIRFLOW_CONN_PATSNAP_DEFAULT"] = conn
    from airflow_provider_patsnap.hooks.patsnap import PatsnapHook

    hook = PatsnapHook()
    hook.get_report_job("enterprise", job_id)
    start.wait(timeout=120)
    started = time.monotonic()
    for _ in range(calls):
        hook.get_report_job("enterprise", job_id)
    results.put((started, time.monotonic()))


# ------------------------------------------------------------------------------------ measures


def ideal_latencies(creates: list[float], done: list[float], qps: float) -> list[float]:
    """Latency of an oracle poller: one look per job, at the first free slot of the account's budget
    at or after the job is done (slots every 1/qps s; the creates keep theirs)."""
    step = 1 / qps
    taken = {round(t / step) for t in creates}
    latencies, next_free = [], 0
    for finished in sorted(done):
        slot = max(next_free, int(-(-finished // step)))
        while slot in taken:
            slot += 1
        taken.add(slot)
        next_free = slot + 1
        latencies.append(slot * step - finished)
    return latencies


def ideal_finish(durations: list[float], qps: float, slots: int) -> float:
    """When PatSnap would finish the last report if every create went out at the account's full rate
    (creation order kept) and the queue ran as it did: the floor no pacing can beat."""
    free = [0.0] * slots
    last = 0.0
    for i, seconds in enumerate(durations):
        created = i / qps
        start = max(created, heapq.heappop(free))
        heapq.heappush(free, start + seconds)
        last = max(last, start + seconds)
    return last


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


def refresh(emu: _common.EmulatorProcess, jobs_count: int, extra: dict[str, Any]) -> None:
    _common.reset_process_state()
    emu.reset_stats()
    earlier = set(emu.call("job_ids"))  # the emulator keeps every job: count only this run's
    conn = emu.connection_json(qps=ACCOUNT_QPS, retry_wait_min=0.5 / SCALE * 10, retry_wait_max=3, **extra)
    ctx = multiprocessing.get_context("spawn")
    jobs, events, stats = ctx.Queue(), ctx.Queue(), ctx.Queue()
    trig = ctx.Process(target=_triggerer, args=(conn, jobs, events, 3600 / SCALE))
    make = ctx.Process(target=_creator, args=(conn, jobs_count, jobs, stats))
    trig.start()
    time.sleep(3)  # the triggerer's imports
    make.start()
    got: dict[str, tuple[str, float]] = {}
    while (item := events.get(timeout=3600)) is not None:
        got[item[0]] = (item[1], item[2])
    make.join(60)
    trig.join(60)
    failed = stats.get(timeout=10)
    jobs_info = [emu.call("job", j) for j in emu.call("job_ids") if j not in earlier]
    counters = emu.stats
    first_create = min(j["created_at"] for j in jobs_info)
    last_event = max(t for _, t in got.values())
    done = {j["job_id"]: j["done_at"] for j in jobs_info}
    durations = [j["generation_seconds"] for j in sorted(jobs_info, key=lambda j: j["created_at"])]
    bound = max(2 * jobs_count / ACCOUNT_QPS, ideal_finish(durations, ACCOUNT_QPS, GENERATION_SLOTS))
    latency = [got[j][1] - done[j] for j in got if got[j][0] == "success"]
    ideal = ideal_latencies(
        [j["created_at"] - first_create for j in jobs_info], [d - first_create for d in done.values()], ACCOUNT_QPS
    )
    name = f"fleet.refresh_{jobs_count}{'.shared' if extra else ''}"
    minutes = SCALE / 60
    total = last_event - first_create
    goal = 1.05 if extra else 1.1
    _common.figure(
        f"{name}.total_vs_bound",
        total / bound,
        f"{total * minutes:.1f} min vs {bound * minutes:.1f} min; goal <= {goal}",
        total / bound <= goal,
    )
    p95_goal = pct(ideal, 95) + POLL
    detail = (
        f"p50 {pct(latency, 50) * minutes:.2f} / p95 {pct(latency, 95) * minutes:.2f} min; ideal "
        f"{pct(ideal, 50) * minutes:.2f} / {pct(ideal, 95) * minutes:.2f}; goal p95 <= {p95_goal * minutes:.2f}"
    )
    _common.figure(f"{name}.latency_p95_min", pct(latency, 95) * minutes, detail, pct(latency, 95) <= p95_goal)
    polls = counters["calls"].get(STATUS, 0)
    _common.figure(f"{name}.polls_per_job", polls / jobs_count, f"{polls} status calls", None)
    _common.figure(f"{name}.rejections", counters["rate_limited"], "67200002/429 answers", None, ".0f")
    _common.figure(f"{name}.failed_creates", failed, f"of {jobs_count}; goal 0", failed == 0, ".0f")


def timeout_lateness(emu: _common.EmulatorProcess, triggers: int = 400) -> None:
    _common.reset_process_state()
    emu.set(job_seconds=10_000, generation_slots=None)
    conn = emu.connection_json(qps=ACCOUNT_QPS / 4, retry_wait_min=0.1, retry_wait_max=1)
    os.environ["AIRFLOW_CONN_PATSNAP_DEFAULT"] = conn
    from airflow_provider_patsnap.hooks._drivers import close_shared_async_client
    from airflow_provider_patsnap.hooks.patsnap import PatsnapHook
    from airflow_provider_patsnap.triggers.report_job import PatsnapReportJobTrigger

    ids = [PatsnapHook(qps=0).create_enterprise_report(company_name=f"Never Co {i}") for i in range(triggers)]
    late: list[float] = []

    async def one(job_id: str, end_time: float) -> None:
        trigger = PatsnapReportJobTrigger(job_id, "enterprise", end_time=end_time, poll_interval=POLL)
        async for event in trigger.run():
            assert event.payload["status"] == "timeout", event.payload
            late.append(time.time() - end_time)
            return

    async def main() -> None:
        start = time.time()
        try:
            await asyncio.gather(*(one(j, start + 5 + 60 / SCALE * i / triggers) for i, j in enumerate(ids)))
        finally:
            await close_shared_async_client()

    asyncio.run(main())
    worst = max(late)
    _common.figure(
        "fleet.timeout_lateness_intervals",
        worst / POLL,
        f"{triggers} triggers at {ACCOUNT_QPS / 4:g} QPS (asking ~{triggers / POLL:.0f}/s): worst {worst:.2f} s "
        f"late, p95 {pct(late, 95):.2f} s; goal <= 1",
        worst <= POLL,
    )


def fleet(emu: _common.EmulatorProcess, processes: int, calls: int, extra: dict[str, Any]) -> None:
    _common.reset_process_state()
    emu.set(job_seconds=10_000, generation_slots=None, qps_limit=4)
    os.environ["AIRFLOW_CONN_PATSNAP_DEFAULT"] = emu.connection_json(qps=0)
    from airflow_provider_patsnap.hooks.patsnap import PatsnapHook

    job_id = PatsnapHook().create_enterprise_report(company_name="Fleet Probe Co")
    conn = emu.connection_json(qps=4, retry_wait_min=0.2, retry_wait_max=1, max_retries=8, **extra)
    ctx = multiprocessing.get_context("spawn")
    results, start = ctx.Queue(), ctx.Barrier(processes + 1)
    workers = [ctx.Process(target=_worker, args=(conn, job_id, calls, results, start)) for _ in range(processes)]
    for worker in workers:
        worker.start()
    while start.n_waiting < processes:
        time.sleep(0.1)
    time.sleep(1.2)
    emu.reset_stats()
    start.wait(timeout=10)
    spans = [results.get(timeout=600) for _ in workers]
    for worker in workers:
        worker.join(30)
    counters = emu.stats
    sent = counters["calls"].get(STATUS, 0)
    accepted = sent - counters["rate_limited"]
    rate = accepted / (max(e for _, e in spans) - min(s for s, _ in spans))
    name = "fleet.shared" if extra else "fleet.unshared"
    ok = counters["rate_limited"] == 0 if extra else None
    _common.figure(
        f"{name}.rejections_per_1000",
        1000 * counters["rate_limited"] / sent,
        f"{counters['rate_limited']} of {sent} calls, {processes} processes",
        ok,
    )
    _common.figure(
        f"{name}.throughput_vs_qps",
        rate / 4,
        f"{rate:.2f} calls/s on a 4-QPS account",
        rate / 4 >= 0.9 if extra else None,
    )


@contextlib.contextmanager
def redis_server() -> Iterator[str | None]:
    if not shutil.which("redis-server"):
        print("fleet.shared: skipped (no redis-server; apt-get install redis-server)")
        yield None
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(10)


def main() -> int:
    _common.watchdog(3 * 3600)
    sizes = [int(n) for n in os.environ.get("BENCH_FLEET_JOBS", "200,1000").split(",") if n]
    with (
        redis_server() as url,
        _common.EmulatorProcess(
            job_seconds=JOB_RANGE[0],
            job_seconds_range=JOB_RANGE,
            generation_slots=GENERATION_SLOTS,
            qps_limit=ACCOUNT_QPS,
        ) as emu,
    ):
        for size in sizes:
            refresh(emu, size, {})
            if url:
                refresh(emu, size, {"rate_limit_url": url})
        timeout_lateness(emu)
        fleet(emu, 4, 60, {})
        if url:
            fleet(emu, 4, 60, {"rate_limit_url": url})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
