"""OAuth token fetches per 1,000 PatSnap calls within one token lifetime (goal: 1).

One report job is created, then the process-wide token cache is emptied (a fresh worker) and
1,000 ``get_report_job`` calls on that job are made from 4 threads that start together (racing for
the first token), each creating a new ``PatsnapHook`` every 25 calls (40 hook instances). Tokens are
counted twice: ``tokens_issued`` on the emulator and ``TOKEN_CACHE.fetches`` in the process.

* ``tokens.fetches_per_1000_calls``: tokens issued per 1,000 sync calls. Goal == 1.
* ``tokens.fetches_per_1000_async_calls``: the same for 1,000 ``aget_report_job`` calls (the trigger
  path) from 40 hook instances, 16 at a time, on one event loop, cold cache. Goal == 1.

Size: ``--calls`` / ``BENCH_TOKEN_CALLS`` (default 1,000; takes a few seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time

import _common

THREADS = 4
CALLS_PER_HOOK = 25
ASYNC_CONCURRENCY = 16
TOKEN_TTL = 1800.0


def fetch_count() -> int:
    from airflow_provider_patsnap.hooks._token_cache import TOKEN_CACHE

    return sum(TOKEN_CACHE.fetches.values())


def sync_calls(job_id: str, calls: int) -> float:
    """``calls`` status calls from THREADS threads, a new hook every CALLS_PER_HOOK calls; returns seconds."""
    from airflow_provider_patsnap.hooks.patsnap import PatsnapHook

    barrier = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def worker(share: int) -> None:
        try:
            barrier.wait()
            hook = PatsnapHook()
            for done in range(share):
                if done and done % CALLS_PER_HOOK == 0:
                    hook = PatsnapHook()
                hook.get_report_job("enterprise", job_id)
        except BaseException as exc:
            errors.append(exc)

    shares = [calls // THREADS + (1 if i < calls % THREADS else 0) for i in range(THREADS)]
    threads = [
        threading.Thread(target=worker, args=(share,), name=f"bench-tokens-{i}") for i, share in enumerate(shares)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - started


def async_calls(job_id: str, calls: int) -> float:
    """``calls`` ``aget_report_job`` calls, ASYNC_CONCURRENCY at a time, on one loop; returns seconds."""
    from airflow_provider_patsnap.hooks._drivers import close_shared_async_client
    from airflow_provider_patsnap.hooks.patsnap import PatsnapHook

    hooks = [PatsnapHook() for _ in range(_common.ceil_div(calls, CALLS_PER_HOOK))]

    async def run() -> float:
        gate = asyncio.Semaphore(ASYNC_CONCURRENCY)

        async def one(index: int) -> None:
            async with gate:
                await hooks[index // CALLS_PER_HOOK].aget_report_job("enterprise", job_id)

        started = time.perf_counter()
        try:
            await asyncio.gather(*(one(i) for i in range(calls)))
        finally:
            await close_shared_async_client()
        return time.perf_counter() - started

    return asyncio.run(run())


def report(name: str, emu: _common.EmulatorProcess, calls: int, seconds: float, how: str) -> None:
    stats = emu.stats
    issued = stats["tokens_issued"]
    polls = stats["status_polls"]
    if polls != calls:
        raise SystemExit(f"expected {calls} status calls on the emulator, saw {polls}")
    per_1000 = issued * 1000 / calls
    _common.figure(
        name,
        per_1000,
        f"{issued} token(s) issued by the emulator, {fetch_count()} fetched per TOKEN_CACHE, for {calls} calls "
        f"{how} in {seconds:.1f} s (token lifetime {TOKEN_TTL:.0f} s); goal == 1",
        per_1000 == 1,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=int(_common.env_number("BENCH_TOKEN_CALLS", 1000)))
    args = parser.parse_args()
    calls: int = args.calls

    from airflow_provider_patsnap.hooks.patsnap import PatsnapHook

    with _common.EmulatorProcess(token_ttl=TOKEN_TTL, job_seconds=0.0) as emu:
        # No client-side pacing: this counts tokens, not time.
        _common.use_connection(emu.connection_json(qps=0))
        job_id = PatsnapHook().create_enterprise_report(company_name="Token Bench Co")

        _common.reset_process_state()
        emu.reset_stats()
        seconds = sync_calls(job_id, calls)
        hooks = _common.ceil_div(calls, CALLS_PER_HOOK)
        report(
            "tokens.fetches_per_1000_calls", emu, calls, seconds, f"from {THREADS} threads / ~{hooks} hook instances"
        )

        _common.reset_process_state()
        emu.reset_stats()
        seconds = async_calls(job_id, calls)
        report(
            "tokens.fetches_per_1000_async_calls",
            emu,
            calls,
            seconds,
            f"async, {ASYNC_CONCURRENCY} concurrent / {hooks} hook instances",
        )


if __name__ == "__main__":
    _common.watchdog(110)
    main()
