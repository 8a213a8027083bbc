"""What an outage costs: results PatSnap bills per result needed when an indicator task is retried.

P037 becomes unavailable after 10 batches, for longer than the hook's own retry budget, so the
first attempt fails; the outage ends and the task runs again, as Airflow's ``retries`` would run it.
Both attempts are the operator's real ``execute`` against the bundled emulator (own process):

* ``outage.billed_per_needed_checkpointed``: billed results / N with a destination (completed batches
  are staged beside it, so the retry fetches only the rest). Goal <= 1 + 100/N.
* ``outage.billed_per_needed_without_checkpoint``: the same in XCom mode on an Airflow without a task
  state store (before 3.3), where nothing can be kept: what an unprotected retry costs, for comparison.

Size: ``--patents`` / ``BENCH_OUTAGE_PATENTS`` (default 3,000, 30 batches).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import _common

BATCH = 100


def run_twice(emu: _common.EmulatorProcess, numbers: list[str], destination: str | None) -> tuple[int, int]:
    """Attempt 1 meets the outage; attempt 2 runs after it. Returns (billed results, attempts that failed)."""
    from airflow_provider_patsnap.operators.indicators import PatsnapLegalIndicatorsOperator

    _common.reset_process_state()
    emu.reset_stats()
    emu.call("outage", "legal", 3600.0, after_calls=10)
    failed = 0
    for attempt in (1, 2):
        operator = PatsnapLegalIndicatorsOperator(
            task_id="legal", patent_numbers=numbers, destination=destination, retries=1
        )
        context: dict[str, Any] = {}
        try:
            operator.execute(context)
        except Exception:
            failed += 1
            emu.call("end_outages")
        else:
            assert attempt == 2, "the outage should fail the first attempt"
    billed = emu.call("billed", "/legal_indicators")
    return billed, failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patents", type=int, default=int(_common.env_number("BENCH_OUTAGE_PATENTS", 3000)))
    args = parser.parse_args()
    _common.watchdog(600)
    numbers = [f"CN{10000000 + i}A" for i in range(args.patents)]
    with _common.EmulatorProcess(job_seconds=0) as emu:
        _common.use_connection(emu.connection_json(qps=0, max_retries=1, retry_wait_min=0.01, retry_wait_max=0.02))
        with tempfile.TemporaryDirectory(prefix="bench-outage-") as lake:
            billed, failed = run_twice(emu, numbers, Path(lake).as_uri() + "/")
        bound = 1 + BATCH / len(numbers)
        _common.figure(
            "outage.billed_per_needed_checkpointed",
            billed / len(numbers),
            f"{billed} billed for {len(numbers)} patents, {failed} failed attempt(s); goal <= {bound:.3f}",
            billed / len(numbers) <= bound,
            ".3f",
        )
        billed, failed = run_twice(emu, numbers, None)
        _common.figure(
            "outage.billed_per_needed_without_checkpoint",
            billed / len(numbers),
            f"{billed} billed for {len(numbers)} patents, {failed} failed attempt(s) (XCom mode, no state store)",
            None,
            ".3f",
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
