"""What an outage costs: results PatSnap bills per result needed when an indicator task is retried.

Two kinds of trouble, each met by the operator's real ``execute`` against the bundled emulator (own
process), attempted again as Airflow's ``retries`` would:

* **an outage** (P037 answers gateway pages, before doing any work, after 10 batches, for longer than
  the hook's budget): the first attempt fails, the outage ends, the task runs again.

  - ``outage.billed_per_needed_checkpointed``: billed results / N with a destination (completed
    batches are staged beside it, so the retry fetches only the rest). Goal 1.000.
  - ``outage.billed_per_needed_without_checkpoint``: the same in XCom mode on an Airflow without a
    task state store (before 3.3), where nothing can be kept: what an unprotected retry costs.

* **lost answers** (PatSnap computes and bills a batch, and the client sees only a 504 gateway page):
  such a batch may have been billed, so it is sent again at most ``max_ambiguous_replays`` times
  per attempt and every such send is counted (``ambiguous_replays`` in the result).

  - ``outage.extra_billed_per_counted_send``: (billed - N) / (100 x ambiguous_replays): the README's
    bound "billed <= results + 100 x ambiguous_replays" holds when this is <= 1 (each lost batch
    here is a full 100).

Size: ``--patents`` / ``BENCH_OUTAGE_PATENTS`` (default 3,000, 30 batches).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import _common

BATCH = 100
LOST_ANSWERS = 6


def attempts(
    emu: _common.EmulatorProcess, numbers: list[str], destination: str | None, setup: dict[str, Any]
) -> tuple[int, int, dict[str, Any] | list[Any]]:
    """Attempts until one succeeds (at most 4). Returns (billed results, failed attempts, the result)."""
    from airflow_provider_patsnap.operators.indicators import PatsnapLegalIndicatorsOperator

    _common.reset_process_state()
    emu.reset_stats()
    if "outage" in setup:
        emu.call("outage", "legal", 3600.0, after_calls=setup["outage"])
    emu.set(indicator_gateway_timeouts=setup.get("lost", 0))
    failed = 0
    for _ in range(4):
        operator = PatsnapLegalIndicatorsOperator(
            task_id="legal", patent_numbers=numbers, destination=destination, retries=3
        )
        try:
            result = operator.execute({})
        except Exception:
            failed += 1
            emu.call("end_outages")
        else:
            return emu.call("billed", "/legal_indicators"), failed, result
    raise AssertionError("the task never succeeded")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patents", type=int, default=int(_common.env_number("BENCH_OUTAGE_PATENTS", 3000)))
    args = parser.parse_args()
    _common.watchdog(600)
    numbers = [f"CN{10000000 + i}A" for i in range(args.patents)]
    n = len(numbers)
    with _common.EmulatorProcess(job_seconds=0) as emu:
        _common.use_connection(emu.connection_json(qps=0, max_retries=1, retry_wait_min=0.01, retry_wait_max=0.02))
        with tempfile.TemporaryDirectory(prefix="bench-outage-") as lake:
            billed, failed, _ = attempts(emu, numbers, Path(lake).as_uri() + "/a/", {"outage": 10})
        _common.figure(
            "outage.billed_per_needed_checkpointed",
            billed / n,
            f"{billed} billed for {n} patents, {failed} failed attempt(s); goal 1.000",
            billed == n,
            ".3f",
        )
        billed, failed, _ = attempts(emu, numbers, None, {"outage": 10})
        _common.figure(
            "outage.billed_per_needed_without_checkpoint",
            billed / n,
            f"{billed} billed for {n} patents, {failed} failed attempt(s) (XCom mode, no state store)",
            None,
            ".3f",
        )
        with tempfile.TemporaryDirectory(prefix="bench-outage-") as lake:
            billed, failed, result = attempts(emu, numbers, Path(lake).as_uri() + "/b/", {"lost": LOST_ANSWERS})
        counted = result["ambiguous_replays"] if isinstance(result, dict) else 0
        extra = billed - n
        _common.figure(
            "outage.extra_billed_per_counted_send",
            extra / (BATCH * counted) if counted else float(extra),
            f"{LOST_ANSWERS} answers lost after billing: {billed} billed for {n} patents (+{extra}), "
            f"{counted} send(s) counted as may-have-been-billed, {failed} failed attempt(s); goal <= 1",
            counted > 0 and extra <= BATCH * counted,
            ".2f",
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
