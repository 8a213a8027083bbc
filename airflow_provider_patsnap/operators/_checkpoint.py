"""Checkpoints for batch indicator calls: a retry fetches (and PatSnap bills) only what is missing.

Each completed batch is kept as soon as PatSnap answers it:

* with a ``destination``: as a small JSON file in a hidden staging folder beside it
  (``.patsnap-staging/<task instance>/``), on the same storage, so a retry on another worker finds
  it; on Airflow 3.3+ the list of completed batches is also kept in the task state store;
* without one (results go to XCom), on Airflow 3.3+: in the task state store, while the portfolio
  is small (``MEMORY_LIMIT`` patents);
* otherwise nothing can be kept, and the log says so.

The staging folder and entries are removed once the task's output is written. A clear (a
deliberate re-run) starts a new generation, so it fetches everything afresh.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from airflow_provider_patsnap.durable import TaskMemory, generation
from airflow_provider_patsnap.staging import write_lines_atomically
from airflow_provider_patsnap.storage import user_uri
from airflow_provider_patsnap.valuation import Batch

STAGING_FOLDER = ".patsnap-staging"
PROGRESS_KEY = "patsnap_batches"
#: XCom mode keeps batch results in the metadata DB: only while they are small.
MEMORY_LIMIT = 1000


class Checkpoint:
    """No checkpoint: every attempt fetches every batch."""

    kind = "none"

    def completed(self, batches: list[Batch]) -> dict[str, list[Any]]:
        return {}

    def save(self, batch: Batch, items: list[Any]) -> None:
        """Keep one answered batch."""

    def finish(self) -> None:
        """The task's output is written: drop what was kept."""


class StagedCheckpoint(Checkpoint):
    """Batch results as files beside the destination (any ObjectStoragePath)."""

    kind = "staging"

    def __init__(self, final: Any, context: Any, memory: TaskMemory) -> None:
        self.memory = memory
        # <output>.<task instance>.g<generation>: a name of fixed length, and only this task instance's
        # folders share the prefix that ``finish`` cleans up (never a sibling's, nor another run's).
        self.prefix = f"{_digest(final.name)}.{_instance_digest(context)}."
        self.folder = final.parent / STAGING_FOLDER / f"{self.prefix}g{generation(context)}"

    def completed(self, batches: list[Batch]) -> dict[str, list[Any]]:
        wanted = {b.key for b in batches}
        progress = self.memory.get(PROGRESS_KEY)
        if progress is not None:  # 3.3+: the state store says which files are complete
            keys = [k for k in progress.get("done", []) if k in wanted]
        else:  # a file exists only once it is whole (staged, then published)
            try:
                keys = [p.stem for p in self.folder.iterdir() if p.suffix == ".json" and p.stem in wanted]
            except (FileNotFoundError, NotADirectoryError):
                keys = []
        out: dict[str, list[Any]] = {}
        for key in keys:
            try:
                out[key] = json.loads((self.folder / f"{key}.json").read_text(encoding="utf-8"))
            except (FileNotFoundError, ValueError):
                continue  # fetched again
        return out

    def save(self, batch: Batch, items: list[Any]) -> None:
        write_lines_atomically(self.folder / f"{batch.key}.json", iter([_dumps(items)]), key=batch.key)
        progress = self.memory.get(PROGRESS_KEY) or {}
        done = [*progress.get("done", []), batch.key]
        self.memory.set(PROGRESS_KEY, done=done, staging=user_uri(self.folder))

    def finish(self) -> None:
        root = self.folder.parent
        try:
            # This attempt's folder, and any an earlier generation of this task instance (before a clear) left.
            for folder in [p for p in root.iterdir() if p.name.startswith(self.prefix)]:
                _remove_tree(folder)
            if not any(True for _ in root.iterdir()):
                _remove_tree(root)
        except OSError:
            pass  # leftovers are harmless: hidden, and swept by the next run that writes here
        self.memory.delete(PROGRESS_KEY)


class MemoryCheckpoint(Checkpoint):
    """Batch results in the task state store (Airflow 3.3+, XCom mode, small portfolios)."""

    kind = "task state store"

    def __init__(self, memory: TaskMemory) -> None:
        self.memory = memory
        self.keys: list[str] = []

    def completed(self, batches: list[Batch]) -> dict[str, list[Any]]:
        out = {}
        for batch in batches:
            entry = self.memory.get(f"{PROGRESS_KEY}:{batch.key}")
            if entry is not None:
                out[batch.key] = entry["items"]
                self.keys.append(batch.key)
        return out

    def save(self, batch: Batch, items: list[Any]) -> None:
        self.memory.set(f"{PROGRESS_KEY}:{batch.key}", items=json.loads(_dumps(items)))
        self.keys.append(batch.key)

    def finish(self) -> None:
        for key in self.keys:
            self.memory.delete(f"{PROGRESS_KEY}:{key}")


def open_checkpoint(context: Any, final: Any | None, patents: int, log: Any) -> Checkpoint:
    """The best checkpoint this Airflow and this output allow, saying in the log which it is."""
    memory = TaskMemory(context)
    if final is not None:
        return StagedCheckpoint(final, context, memory)
    if memory.available and patents <= MEMORY_LIMIT:
        return MemoryCheckpoint(memory)
    reason = (
        f"more than {MEMORY_LIMIT} patents are too many to keep in the task state store"
        if memory.available
        else "results go to XCom and this Airflow has no task state store (3.3+)"
    )
    log.warning(
        "No checkpoint for the indicator batches: %s. If this task fails part-way, a retry fetches (and "
        "PatSnap bills) every batch again; give a destination to make it resumable.",
        reason,
    )
    return Checkpoint()


def _remove_tree(folder: Any) -> None:
    folder.fs.rm(folder.path, recursive=True)


def _dumps(items: list[Any]) -> bytes:
    # The exact parser's Decimals are written as JSON numbers and read back as floats, as records are.
    return json.dumps(items, default=float, ensure_ascii=False).encode("utf-8")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _instance_digest(context: Any) -> str:
    ti = context.get("ti") if hasattr(context, "get") else None
    return _digest("|".join(str(getattr(ti, name, "")) for name in ("dag_id", "run_id", "task_id", "map_index")))
