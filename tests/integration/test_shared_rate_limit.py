"""One account's QPS shared by several processes through Redis (extra ``rate_limit_url``), against a
real ``redis-server`` started here and the emulator enforcing the account's QPS."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_patsnap.testing.emulator import PatsnapEmulator

ACCOUNT_QPS = 4
CALLS_PER_PROCESS = 12
STATUS = "GET /innovation/company-report/job_id/status"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    required = os.environ.get("PATSNAP_REQUIRE_REDIS") == "1"
    missing = [
        what for what, ok in (("redis-server", shutil.which("redis-server")), ("the redis extra", _extra())) if not ok
    ]
    if missing:
        if required:
            pytest.fail(f"PATSNAP_REQUIRE_REDIS=1 but {' and '.join(missing)} not installed")
        pytest.skip(f"{' and '.join(missing)} not installed (apt-get install redis-server; pip install .[redis])")
    port = _free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        import redis

        client = redis.Redis(host="127.0.0.1", port=port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(timeout=10)


def _extra() -> bool:
    try:
        import pyrate_limiter  # noqa: F401
        import redis  # noqa: F401
    except ImportError:
        return False
    return True


def _worker(conn_json: str, job_id: str, calls: int, results: Any, start: Any) -> None:
    """One Airflow worker process: its own hook, limiter and token, the same account."""
    os.environ["AIRFLOW_CONN_PATSNAP_DEFAULT"] = conn_json
    from airflow_provider_patsnap.hooks.patsnap import PatsnapHook

    hook = PatsnapHook()
    hook.get_report_job("enterprise", job_id)  # warm-up: imports, token and connection
    start.wait(timeout=60)  # every process measured from the same moment, none still starting up
    started = time.monotonic()
    for _ in range(calls):
        hook.get_report_job("enterprise", job_id)
    results.put((started, time.monotonic()))


def run_fleet(emu: PatsnapEmulator, processes: int, **extra: Any) -> tuple[int, float]:
    """``processes`` workers on one account, each configured at the account's QPS: (rejections, calls/s)."""
    from airflow_provider_patsnap.hooks.patsnap import PatsnapHook

    os.environ["AIRFLOW_CONN_PATSNAP_DEFAULT"] = emu.connection_json(qps=0)
    job_id = PatsnapHook().create_enterprise_report(company_name="Example Robotics Ltd")
    conn = emu.connection_json(qps=ACCOUNT_QPS, retry_wait_min=0.2, retry_wait_max=1, max_retries=8, **extra)
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    start = context.Barrier(processes + 1)
    args = (conn, job_id, CALLS_PER_PROCESS, results, start)
    workers = [context.Process(target=_worker, args=args) for _ in range(processes)]
    for worker in workers:
        worker.start()
    while start.n_waiting < processes:  # each warmed up (spawning four Airflows takes the CPU for a while)
        assert all(w.is_alive() for w in workers), "a worker process failed to start"
        time.sleep(0.1)
    time.sleep(1.1)  # the warm-ups leave PatSnap's window
    emu.reset_stats()
    start.wait(timeout=10)
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0, "a worker process failed"
    spans = [results.get(timeout=5) for _ in workers]
    stats = emu.stats
    calls = stats["calls"][STATUS] - stats["rate_limited"]
    seconds = max(end for _, end in spans) - min(start for start, _ in spans)
    return stats["rate_limited"], calls / seconds


def test_a_shared_budget_keeps_the_fleet_under_the_account_qps(redis_url: str) -> None:
    with PatsnapEmulator(job_seconds=60, qps_limit=ACCOUNT_QPS) as emu:
        rejections, throughput = run_fleet(emu, 4, rate_limit_url=redis_url)
    assert rejections == 0
    assert throughput >= 0.8 * ACCOUNT_QPS, throughput  # the budget is used, not just respected


def test_the_async_path_draws_from_the_same_budget(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_patsnap.hooks._drivers import close_shared_async_client
    from airflow_provider_patsnap.hooks.patsnap import PatsnapHook

    with PatsnapEmulator(job_seconds=60, qps_limit=ACCOUNT_QPS) as emu:
        monkeypatch.setenv(
            "AIRFLOW_CONN_PATSNAP_DEFAULT", emu.connection_json(qps=ACCOUNT_QPS, rate_limit_url=redis_url)
        )
        job_id = PatsnapHook().create_enterprise_report(company_name="Example Robotics Ltd")

        async def triggers() -> None:
            try:
                hook = PatsnapHook()
                await asyncio.gather(*(hook.aget_report_job("enterprise", job_id) for _ in range(3 * ACCOUNT_QPS)))
            finally:
                await close_shared_async_client()

        started = time.monotonic()
        asyncio.run(triggers())
        elapsed = time.monotonic() - started
        assert emu.stats["rate_limited"] == 0
    assert elapsed >= 2 * 1.0  # 12 polls at 4 per window need at least two more windows


def test_without_a_shared_budget_the_fleet_slows_itself_instead_of_failing() -> None:
    with PatsnapEmulator(job_seconds=60, qps_limit=ACCOUNT_QPS) as emu:
        rejections, throughput = run_fleet(emu, 4)
    # Four processes each allowed the account's QPS do get refused, but AIMD backs them off together
    # and every call completes (the workers exited 0): no failed calls, no storm.
    assert rejections > 0
    assert throughput >= 0.5 * ACCOUNT_QPS, throughput


def test_an_unreachable_budget_sends_nothing_and_leaves_the_create_retryable(monkeypatch: pytest.MonkeyPatch) -> None:
    if not _extra():
        pytest.skip("the redis extra is not installed")
    from airflow_provider_patsnap.errors import Outcome, PatsnapConnectionError
    from airflow_provider_patsnap.hooks.patsnap import PatsnapHook

    with PatsnapEmulator(job_seconds=60) as emu:
        down = f"redis://127.0.0.1:{_free_port()}/0"  # nothing listens there
        conn = emu.connection_json(qps=ACCOUNT_QPS, rate_limit_url=down, max_retries=2, retry_wait_min=0.01)
        monkeypatch.setenv("AIRFLOW_CONN_PATSNAP_DEFAULT", conn)
        with pytest.raises(PatsnapConnectionError, match=r"shared rate budget .* unreachable") as info:
            PatsnapHook().create_enterprise_report(company_name="Example Robotics Ltd")
        assert info.value.outcome is Outcome.NOT_SENT and info.value.transient  # Airflow may retry it
        assert emu.stats["creates"] == 0 and "POST /innovation/company-report/task/create" not in emu.stats["calls"]
