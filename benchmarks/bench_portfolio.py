"""Indicator operator at portfolio scale: the patent list from a file, six indicators, streamed to Parquet.

Each size runs ``PatsnapPatentIndicatorsOperator(patents_from=<file>, indicators=<all six>,
destination=<folder>/, output_format=...)`` in a fresh process against the bundled emulator (its own
process, 127.0.0.1) with the client pacing at ``qps``; the figures compare the sizes in this one run:

* ``portfolio.requests_ratio``: indicator requests / (ceil(N/100) x 6) for the large run. Goal == 1.
* ``portfolio.rss_growth_mib``: peak RSS of the large run - peak RSS of the small run. Goal <= 256 MiB.
* ``portfolio.wall_vs_rate_bound``: the large run's ``execute`` wall time / (its requests / qps). Goal <= 1.15.

Sizes and pace: ``--small`` (10,000), ``--large`` (1,000,000), ``--qps`` (``BENCH_QPS``, default 100:
1,000,000 x 6 is 60,000 requests, 600 s at the bound), ``--format`` (parquet).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import _common

INDICATORS = ("valuation", "technology", "legal", "market", "strategic", "economic")
BATCH = 100
GOAL_WALL = 1.15
GOAL_RSS_MIB = 256.0


def child(portfolio: str, destination: str, fmt: str) -> None:
    """One run in this (fresh) process; prints what it measured as JSON."""
    from airflow_provider_patsnap.operators.indicators import PatsnapPatentIndicatorsOperator

    operator = PatsnapPatentIndicatorsOperator(
        task_id="portfolio",
        patents_from=portfolio,
        indicators=INDICATORS,
        destination=destination,
        output_format=fmt,
    )
    started = time.perf_counter()
    result = operator.execute({})
    wall = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"wall": wall, "records": result["records"], "peak_kib": peak_kib, "uri": result["uri"]}))


def run(emu: _common.EmulatorProcess, folder: str, count: int, fmt: str) -> dict[str, float]:
    portfolio = os.path.join(folder, f"portfolio-{count}.txt")
    with open(portfolio, "w", encoding="utf-8") as handle:
        handle.writelines(f"CN{100000000 + i}A\n" for i in range(count))
    emu.reset_stats()
    out = subprocess.run(
        [sys.executable, __file__, "--child", portfolio, os.path.join(folder, f"out-{count}") + "/", fmt],
        check=True,
        capture_output=True,
        text=True,
        env=os.environ.copy(),
    )
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    calls = emu.stats["calls"]
    figures["requests"] = sum(n for name, n in calls.items() if "patent-valuation-data" in name)
    figures["bytes"] = os.path.getsize(figures["uri"].removeprefix("file://"))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--qps", type=float, default=_common.env_number("BENCH_QPS", 100.0))
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--format", default="parquet", choices=("jsonl", "jsonl.gz", "parquet"))
    args = parser.parse_args()
    _common.watchdog(3 * 3600)
    with tempfile.TemporaryDirectory(prefix="patsnap-bench-portfolio-") as folder, _common.EmulatorProcess() as emu:
        _common.use_connection(emu.connection_json(qps=args.qps, max_concurrency=args.concurrency))
        small = run(emu, folder, args.small, args.format)
        large = run(emu, folder, args.large, args.format)
    ideal = _common.ceil_div(args.large, BATCH) * len(INDICATORS)
    bound = ideal / args.qps
    growth = (large["peak_kib"] - small["peak_kib"]) / 1024
    for name, figures in (("small", small), ("large", large)):
        print(
            f"# {name}: {figures['records']} records, {figures['bytes'] / 2**20:.1f} MiB {args.format}, "
            f"{figures['requests']} requests, {figures['wall']:.1f} s, peak RSS {figures['peak_kib'] / 1024:.0f} MiB"
        )
    _common.figure(
        "portfolio.requests_ratio",
        large["requests"] / ideal,
        f"{large['requests']} requests / (ceil({args.large}/{BATCH}) x {len(INDICATORS)}) = {ideal}; goal == 1",
        large["requests"] == ideal,
    )
    _common.figure(
        "portfolio.rss_growth_mib",
        growth,
        f"peak RSS {large['peak_kib'] / 1024:.0f} MiB at {args.large} patents - {small['peak_kib'] / 1024:.0f} MiB "
        f"at {args.small}; goal <= {GOAL_RSS_MIB:g}",
        growth <= GOAL_RSS_MIB,
        fmt=".0f",
    )
    _common.figure(
        "portfolio.wall_vs_rate_bound",
        large["wall"] / bound,
        f"{large['wall']:.1f} s / {bound:.1f} s = {ideal} requests at qps={args.qps:g}; goal <= {GOAL_WALL}",
        large["wall"] / bound <= GOAL_WALL,
    )


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child(*sys.argv[2:])
    else:
        main()
