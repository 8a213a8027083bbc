"""Legal indicators (P037) for many patents: request count, pacing efficiency, speed-up over a naive loop.

Measured against the bundled emulator (own process, 127.0.0.1) with 0.2 s latency per call and a
client-side cap of 20 calls/s, so latency > 1/qps and the hook needs concurrency to use its quota:

* ``legal_indicators.requests_ratio``: P037 requests / ceil(N/100). Goal == 1 (100 patents per request).
* ``legal_indicators.wall_vs_rate_bound``: wall time of ``get_legal_indicators(N patents)`` (cold: token
  fetch included) / the rate-limit lower bound ceil(N/100)/qps. Goal <= 1.15.
* ``legal_indicators.wall_vs_rate_bound_enforced``: the same, with the emulator *also enforcing* the
  QPS limit (as PatSnap does, sliding 1 s window): does pacing at exactly the account limit cost 429s?
  Goal <= 1.15.
* ``legal_indicators.speedup_vs_naive``: time a hand-rolled loop (one fresh ``requests.get`` per patent,
  no Session, valid Bearer token + apikey) would take for N patents, extrapolated from a sample, / the
  hook's wall time. Goal >= 50.

Sizes: ``--patents`` / ``BENCH_PATENTS`` (default 10,000) and ``--naive-sample`` / ``BENCH_NAIVE_SAMPLE``
(default 50 patents, ~10 s; the loop is latency-bound, so a larger sample changes little).
"""

from __future__ import annotations

import argparse
import time

import _common

QPS = 20.0
LATENCY = 0.2
MAX_CONCURRENCY = 8  # >= latency * qps = 4 calls in flight, with headroom for the token fetch and jitter
BATCH = 100
GOAL_WALL = 1.15
GOAL_SPEEDUP = 50.0


def patent_numbers(count: int) -> list[str]:
    return [f"CN{10000000 + i}A" for i in range(count)]


def timed_hook_run(emu: _common.EmulatorProcess, numbers: list[str]) -> tuple[float, int, int, int]:
    """A cold ``get_legal_indicators`` (fresh token cache and limiter): seconds, records, P037 calls, 429s."""
    from airflow_provider_patsnap.hooks.patsnap import LEGAL_INDICATORS_PATH, PatsnapHook

    _common.reset_process_state()
    emu.reset_stats()
    hook = PatsnapHook()
    started = time.perf_counter()
    records = hook.get_legal_indicators(patent_numbers=numbers)
    elapsed = time.perf_counter() - started
    stats = emu.stats
    return elapsed, len(records), stats["calls"].get(f"GET {LEGAL_INDICATORS_PATH}", 0), stats["rate_limited"]


def naive_loop(emu: _common.EmulatorProcess, numbers: list[str]) -> float:
    """What a hand-rolled HttpOperator DAG does: one ``requests.get`` per patent, new connection each time."""
    import requests

    from airflow_provider_patsnap.hooks.patsnap import LEGAL_INDICATORS_PATH, TOKEN_PATH

    token_response = requests.post(
        emu.url + TOKEN_PATH,
        data={"grant_type": "client_credentials"},
        auth=(emu.client_id, emu.client_secret),
        timeout=30,
    )
    token = token_response.json()["token"]
    started = time.perf_counter()
    for number in numbers:
        response = requests.get(
            emu.url + LEGAL_INDICATORS_PATH,
            params={"patent_number": number, "apikey": emu.client_id},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        body = response.json()
        if response.status_code != 200 or body.get("status") is not True or len(body["data"]) != 1:
            raise RuntimeError(f"naive call for {number} failed: HTTP {response.status_code} {body}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patents", type=int, default=int(_common.env_number("BENCH_PATENTS", 10_000)))
    parser.add_argument("--naive-sample", type=int, default=int(_common.env_number("BENCH_NAIVE_SAMPLE", 50)))
    args = parser.parse_args()
    count: int = args.patents
    sample = max(1, min(args.naive_sample, count))
    numbers = patent_numbers(count)
    ideal_requests = _common.ceil_div(count, BATCH)
    bound = ideal_requests / QPS

    with _common.EmulatorProcess(latency=LATENCY, job_seconds=1.0) as emu:
        _common.use_connection(emu.connection_json(qps=QPS, max_concurrency=MAX_CONCURRENCY))

        # 1. Client pacing alone (the emulator does not enforce a limit).
        wall, records, requests_made, limited = timed_hook_run(emu, numbers)
        if records != count:
            raise SystemExit(f"expected {count} records, got {records}")
        _common.figure(
            "legal_indicators.requests_ratio",
            requests_made / ideal_requests,
            f"{requests_made} P037 requests / ceil({count}/{BATCH}) = {ideal_requests}; {records} records; goal == 1",
            requests_made == ideal_requests,
        )
        _common.figure(
            "legal_indicators.wall_vs_rate_bound",
            wall / bound,
            f"{wall:.2f} s / {bound:.2f} s = {ideal_requests} requests at qps={QPS:g}; latency {LATENCY} s, "
            f"max_concurrency={MAX_CONCURRENCY}, cold token; goal <= {GOAL_WALL}",
            wall / bound <= GOAL_WALL,
        )

        # 2. The same with the server enforcing the same QPS (PatSnap's sliding 1 s window).
        emu.set(qps_limit=QPS)
        wall_enforced, records_enforced, requests_enforced, limited = timed_hook_run(emu, numbers)
        emu.set(qps_limit=None)
        if records_enforced != count:
            raise SystemExit(f"expected {count} records with the limit enforced, got {records_enforced}")
        _common.figure(
            "legal_indicators.wall_vs_rate_bound_enforced",
            wall_enforced / bound,
            f"{wall_enforced:.2f} s / {bound:.2f} s; server limit {QPS:g} qps = client qps; "
            f"{limited} call(s) answered 429 and retried, {requests_enforced} requests; goal <= {GOAL_WALL}",
            wall_enforced / bound <= GOAL_WALL,
        )

        # 3. The naive loop, on a sample, extrapolated to N patents.
        naive_seconds = naive_loop(emu, numbers[:sample])
    per_patent = naive_seconds / sample
    naive_total = per_patent * count
    speedup = naive_total / wall
    _common.figure(
        "legal_indicators.speedup_vs_naive",
        speedup,
        f"naive {per_patent * 1000:.0f} ms/patent x {count} = {naive_total:.0f} s (sample of {sample}) / hook "
        f"{wall:.2f} s; goal >= {GOAL_SPEEDUP:g}",
        speedup >= GOAL_SPEEDUP,
        fmt=".0f",
    )


if __name__ == "__main__":
    _common.watchdog(110)
    main()
