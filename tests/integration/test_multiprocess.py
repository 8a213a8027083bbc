"""Several worker processes on one PatSnap account: each keeps its own token, none corrupts another's."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from airflow_provider_patsnap.hooks.patsnap import PatsnapHook

PROCESSES = 4
CALLS_PER_PROCESS = 25


def _worker(job_id: str) -> dict[str, Any]:
    """One 'Airflow worker': many tasks, each building its own hook, polling one job."""
    from airflow_provider_patsnap.hooks._token_cache import TOKEN_CACHE

    seen = [PatsnapHook().get_report_job("enterprise", job_id).job_id for _ in range(CALLS_PER_PROCESS)]
    return {"ok": seen.count(job_id), "token_fetches": sum(TOKEN_CACHE.fetches.values()), "pid": os.getpid()}


def test_one_token_per_process_and_independent_recovery(emulator: Any, emu_conn: str) -> None:
    job_id = PatsnapHook().create_enterprise_report(company_name="Fleet Co")
    emulator.reset_stats()
    emulator.qps_limit = 1000  # the account limit is far above what four workers do here

    with ProcessPoolExecutor(PROCESSES, mp_context=multiprocessing.get_context("spawn")) as pool:
        first = list(pool.map(_worker, [job_id] * PROCESSES))
        after_first = emulator.stats
        emulator.expire_tokens()  # PatSnap revokes every token while the workers keep theirs cached
        second = list(pool.map(_worker, [job_id] * PROCESSES))

    # Every call succeeded; one token per process, not per hook; nobody used another's token.
    assert [r["ok"] for r in first + second] == [CALLS_PER_PROCESS] * PROCESSES * 2
    first_pids = {r["pid"] for r in first}
    assert all(r["token_fetches"] == 1 for r in first)
    assert after_first["tokens_issued"] == len(first_pids)
    assert after_first["auth_rejected"] == 0 and after_first["rate_limited"] == 0
    assert after_first["status_polls"] == PROCESSES * CALLS_PER_PROCESS
    # Each process holding a revoked token was refused once, refreshed once, and carried on.
    second_pids = {r["pid"] for r in second}
    stats = emulator.stats
    assert stats["tokens_issued"] - after_first["tokens_issued"] == len(second_pids)
    assert stats["auth_rejected"] == len(second_pids & first_pids)
