"""Import cost of every provider module on top of ``import airflow.sdk`` (goal: <= +10%).

Each sample is a fresh interpreter (same venv, private ``AIRFLOW_HOME``) that times its imports
with ``time.perf_counter``: "sdk" samples run ``import airflow.sdk``; "provider" samples run
``import airflow.sdk``, then all provider modules (hook, both operator modules, sensor, trigger,
links, provider info), timing the two steps separately. The two kinds alternate, after one untimed
warm-up of each, so that ``.pyc`` files (kept in a private ``PYTHONPYCACHEPREFIX`` tree, never
beside the sources) and Airflow's config file exist.

* ``imports.provider_vs_sdk``: (sdk + provider) / sdk alone, as 1 + median(provider step) /
  median(sdk alone). The provider step is timed inside the same interpreter, so the ratio does not
  hinge on the difference of two noisy ~1 s totals; the line also shows the plain ratio of the two
  medians of whole samples. Goal <= 1.10.
* ``imports.heaviest_added_vs_sdk``: the 5 heaviest imports the provider adds beyond ``airflow.sdk``
  (``-X importtime``, median of 3 runs; another package is charged its cumulative time at the provider
  module that imports it first, a provider module its own time), relative to ``airflow.sdk``'s import
  time: where making an import lazy would pay off. For information (no goal).

Knobs: ``--runs`` / ``BENCH_IMPORT_RUNS`` (default 5).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys

import _common

PROVIDER_MODULES = (
    "airflow_provider_patsnap.hooks.patsnap",
    "airflow_provider_patsnap.operators.reports",
    "airflow_provider_patsnap.operators.indicators",
    "airflow_provider_patsnap.sensors.report_job",
    "airflow_provider_patsnap.triggers.report_job",
    "airflow_provider_patsnap.links",
    "airflow_provider_patsnap.get_provider_info",
)
PROVIDER_PREFIX = "airflow_provider_patsnap"
GOAL_RATIO = 1.10
TOP = 5
CHILD_TIMEOUT = 60

PROVIDER_IMPORTS = "\n".join(f"import {name}" for name in PROVIDER_MODULES)
WITH_PROVIDER = "import airflow.sdk\n" + PROVIDER_IMPORTS
TIMED = """import time
_started = time.perf_counter()
import airflow.sdk
_sdk = time.perf_counter()
{body}
_done = time.perf_counter()
print(_sdk - _started, _done - _sdk)
"""
IMPORTTIME_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)\s*$")


def child_env() -> dict[str, str]:
    """Children may write bytecode (imports are timed warm, as in a real worker), but only into a private
    cache tree (``PYTHONPYCACHEPREFIX``, removed with the benchmark's temp home), never beside the sources."""
    env = dict(os.environ)
    env.pop(_common.CONN_ENV, None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = os.path.join(_common.AIRFLOW_HOME, "pycache")
    return env


def timed_import(body: str) -> tuple[float, float]:
    """Seconds for ``import airflow.sdk`` and then for ``body``, in a fresh interpreter."""
    completed = subprocess.run(
        [sys.executable, "-c", TIMED.format(body=body)],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
        check=True,
    )
    sdk, rest = completed.stdout.strip().splitlines()[-1].split()
    return float(sdk), float(rest)


class Node:
    """One line of ``-X importtime`` output: a module, its own and cumulative microseconds, its children."""

    def __init__(self, name: str, level: int, self_us: int, cumulative_us: int) -> None:
        self.name = name
        self.level = level
        self.self_us = self_us
        self.cumulative_us = cumulative_us
        self.children: list[Node] = []


def parse_importtime(stderr: str) -> list[Node]:
    """Rebuild the import tree (children are printed before their parent, one indent level deeper)."""
    pending: list[Node] = []
    for line in stderr.splitlines():
        match = IMPORTTIME_LINE.match(line)
        if not match:
            continue
        node = Node(match.group(4), len(match.group(3)) // 2, int(match.group(1)), int(match.group(2)))
        while pending and pending[-1].level > node.level:
            node.children.insert(0, pending.pop())
        pending.append(node)
    return pending


def added_by_provider() -> tuple[dict[str, int], int]:
    """What importing the provider costs beyond airflow.sdk, per module, and in all (microseconds).

    Other packages are charged their cumulative time at the provider module that imports them
    first (making that one import lazy saves all of it); provider modules their own (self) time.
    """
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", WITH_PROVIDER],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
        check=True,
    )
    costs: dict[str, int] = {}

    def walk(node: Node) -> None:
        costs[node.name] = costs.get(node.name, 0) + node.self_us
        for child in node.children:
            if child.name.startswith(PROVIDER_PREFIX):
                walk(child)
            else:
                costs[child.name] = costs.get(child.name, 0) + child.cumulative_us

    total = 0
    for root in parse_importtime(completed.stderr):
        if root.name.startswith(PROVIDER_PREFIX):
            total += root.cumulative_us
            walk(root)
    return costs, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=int(_common.env_number("BENCH_IMPORT_RUNS", 5)))
    args = parser.parse_args()
    runs = max(1, args.runs)

    timed_import("")  # warm-up: Airflow writes its config, Python its .pyc files
    timed_import(PROVIDER_IMPORTS)
    sdk_alone: list[float] = []
    whole: list[float] = []
    step: list[float] = []
    for _ in range(runs):
        sdk_alone.append(timed_import("")[0])
        sdk, provider = timed_import(PROVIDER_IMPORTS)
        whole.append(sdk + provider)
        step.append(provider)
    sdk_median = statistics.median(sdk_alone)
    step_median = statistics.median(step)
    ratio = 1 + step_median / sdk_median
    _common.figure(
        "imports.provider_vs_sdk",
        ratio,
        f"airflow.sdk {sdk_median * 1000:.0f} ms + {len(PROVIDER_MODULES)} provider modules "
        f"{step_median * 1000:.0f} ms / airflow.sdk {sdk_median * 1000:.0f} ms; median of {runs} fresh interpreters "
        f"each (ratio of whole-sample medians: {statistics.median(whole) / sdk_median:.3f}); goal <= {GOAL_RATIO}",
        ratio <= GOAL_RATIO,
        fmt=".3f",
    )

    samples = [added_by_provider() for _ in range(3)]
    names = set().union(*(costs for costs, _ in samples))
    medians = {name: statistics.median(costs.get(name, 0) for costs, _ in samples) for name in names}
    provider_total_s = statistics.median(total for _, total in samples) / 1e6
    heaviest = sorted(medians.items(), key=lambda item: item[1], reverse=True)[:TOP]
    top_s = sum(us for _, us in heaviest) / 1e6
    listing = ", ".join(f"{name} {us / 1000:.1f} ms" for name, us in heaviest)
    _common.figure(
        "imports.heaviest_added_vs_sdk",
        top_s / sdk_median,
        f"top {len(heaviest)} of {len(medians)} imports the provider adds beyond airflow.sdk, "
        f"{top_s * 1000:.0f} ms / airflow.sdk {sdk_median * 1000:.0f} ms (all provider imports "
        f"{provider_total_s * 1000:.0f} ms under -X importtime): {listing}",
        None,
        fmt=".3f",
    )


if __name__ == "__main__":
    _common.watchdog(110)
    main()
