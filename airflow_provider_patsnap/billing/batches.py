"""Indicator batches as billable units: kept as they arrive, lost answers counted, the output recognised.

PatSnap bills P035-P040 per result returned, so for a run of an indicator task this module keeps:

* every answered batch, as soon as it is answered (the checkpoint): a retry fetches, and PatSnap
  bills, only the batches still missing;
* per batch, how many of its sends may have been billed without their results reaching us: sent
  again after a lost answer (read timeout, 502/503/504; at most ``max_ambiguous_replays`` times per
  attempt), or in flight when an attempt was interrupted (a timeout, SIGTERM). Kept across attempts
  and reported (``ambiguous_replays``): PatSnap bills at most that many batches more than the results
  returned;
* once the output is published, a *done* marker with the request's digest and the result: a retry
  after "execute returned but success was not recorded" returns the existing output, no call made.

Where it is kept:

* with a ``destination``: small files in a hidden folder beside it, on the same storage
  (``.patsnap-staging/<output>.<task instance>.r<run>/``), so a retry on another worker finds them.
  Only this task instance's folders are ever touched. Once the output is published the folder is
  removed and the done marker kept in the task state store (3.3+); before 3.3 the marker is the one
  file left in the folder (nothing else would let a retry recognise the output);
* without one (records go to XCom), on Airflow 3.3+: in the task state store while the portfolio
  is small (``MEMORY_LIMIT`` patents), kept after success so a retry re-merges without calling;
* otherwise nothing can be kept, and the log says so.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import json
from collections.abc import Sequence
from typing import Any, TypeGuard

from airflow_provider_patsnap.billing.run import TaskRun
from airflow_provider_patsnap.hooks._batches import ReplayBudget
from airflow_provider_patsnap.staging import put_checkpoint, sha256_of, write_lines_atomically
from airflow_provider_patsnap.valuation import Batch

STAGING_FOLDER = ".patsnap-staging"
BATCH_KEY = "patsnap_batch"
REPLAYS_KEY = "patsnap_batch_replays"
DONE_KEY = "patsnap_output"
PATENTS_KEY = "patsnap_patents"
#: XCom mode keeps batch results in the metadata DB: only while they are small.
MEMORY_LIMIT = 1000
_DONE = "done.json"
_REPLAYS = "replays.json"
_PATENTS = "patents.jsonl"
_NOT_BATCHES = {_DONE.removesuffix(".json"), _REPLAYS.removesuffix(".json")}


def request_digest(indicators: Sequence[str], numbers: Sequence[str], ids: Sequence[str]) -> str:
    """What was asked for, as a digest: a done marker answers only the same request."""
    text = json.dumps([list(indicators), list(numbers), list(ids)], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class BatchBook(ReplayBudget):
    """The batches of one run of an indicator task (no storage: nothing outlives the attempt)."""

    kind = "none"

    def __init__(self, run: TaskRun, replays: int) -> None:
        super().__init__(replays)
        self.run = run

    def _carry(self, counts: Any) -> None:
        """Earlier attempts' counts (their replays and losses), as this book's starting point."""
        if isinstance(counts, dict):
            self.carried.update({str(k): int(v) for k, v in counts.items() if isinstance(v, int)})

    def _all_counts(self) -> dict[str, int]:
        with self._lock:
            merged = dict(self.carried)
            for key, used in self.counts.items():
                merged[key] = merged.get(key, 0) + used
        return merged

    def load(self, batch: Batch) -> list[Any] | None:
        """The items of ``batch`` if an earlier attempt of this run kept them."""
        return None

    def checkpointed(self) -> int | None:
        """How many answered batches earlier attempts kept, where that is known without reading them."""
        return None

    def save(self, batch: Batch, items: list[Any]) -> None:
        """Keep one answered batch (called as each batch is answered; costs the same whatever came before)."""

    def pinned(self, source: str) -> tuple[list[str], list[str]] | None:
        """The patents (numbers, ids) an earlier attempt of this run read from ``source``, if kept (a
        list read from another source, after a deploy changed the argument, is not this one)."""
        return None

    def pin(self, source: str, numbers: list[str], ids: list[str]) -> tuple[list[str], list[str]]:
        """The patents of this run: what an earlier attempt pinned, else these (pinned now, where they
        can be kept), so a retry asks for the list the run started with even if its source changed."""
        pinned = self.pinned(source)
        if pinned is not None:
            return pinned
        self._pin(source, numbers, ids)
        return numbers, ids

    def _pin(self, source: str, numbers: list[str], ids: list[str]) -> None:
        """Keep the list (where this book can)."""

    def _using_pinned(self, count: int) -> None:
        self.run.log.info("Using the %d patent(s) this run started with (pinned by its first attempt).", count)

    def interrupted(self, keys: list[str]) -> None:
        self.lost(keys)
        self.run.log.warning(
            "Interrupted with %d batch(es) in flight: they may have been billed (each is counted).", len(keys)
        )

    def finished(self, digest: str) -> dict[str, Any] | None:
        """The result of an earlier attempt of this run that already published this request's output."""
        return None

    def finish(self, digest: str, result: dict[str, Any] | None) -> None:
        """The output is published (``result``; None in XCom mode): mark the run done."""


class StagedBook(BatchBook):
    """Batches as files beside the destination (any ObjectStoragePath)."""

    kind = "staging"

    def __init__(self, run: TaskRun, replays: int, final: Any) -> None:
        super().__init__(run, replays)
        self.final = final
        name = hashlib.sha256(final.name.encode()).hexdigest()[:16]
        self.prefix = f"{name}.{run.identity.instance_digest}."
        self.folder = final.parent / STAGING_FOLDER / f"{self.prefix}r{run.identity.run}"
        self._keys: set[str] | None = None
        self._carry(self._read(_REPLAYS))

    def _read(self, name: str) -> Any:
        try:
            return json.loads((self.folder / name).read_text(encoding="utf-8"))
        except (FileNotFoundError, NotADirectoryError, ValueError):
            return None

    def _write(self, name: str, value: Any) -> None:
        write_lines_atomically(self.folder / name, iter([_dumps(value)]), key=name)  # fsynced: the done marker

    def _kept(self) -> set[str]:
        if self._keys is None:
            try:  # one listing per attempt: a file exists only once it is whole
                self._keys = {p.stem for p in self.folder.iterdir() if p.suffix == ".json"} - _NOT_BATCHES
            except (FileNotFoundError, NotADirectoryError):
                self._keys = set()
        return self._keys

    def checkpointed(self) -> int | None:
        return len(self._kept())

    def load(self, batch: Batch) -> list[Any] | None:
        if batch.key not in self._kept():
            return None
        items = self._read(f"{batch.key}.json")
        return items if isinstance(items, list) else None

    def save(self, batch: Batch, items: list[Any]) -> None:
        put_checkpoint(self.folder / f"{batch.key}.json", _dumps(items))

    def pinned(self, source: str) -> tuple[list[str], list[str]] | None:
        pinned: tuple[list[str], list[str]] = ([], [])
        end: Any = None
        try:
            with (self.folder / _PATENTS).open("rb") as handle:
                # One JSON value per line (a value cannot hide a line break); wrapped here: Airflow 2's
                # tracked file objects cannot be iterated themselves.
                for line in io.TextIOWrapper(handle, encoding="utf-8", newline="\n"):
                    entry = json.loads(line)
                    if isinstance(entry, list) and len(entry) == 2 and entry[0] in ("n", "i"):
                        pinned[entry[0] == "i"].append(str(entry[1]))
                    else:
                        end = entry
        except (FileNotFoundError, NotADirectoryError, ValueError):
            return None
        # The end line names the source and the count: a file an OS crash cut short, or the list of
        # another source, is not this run's list (read again).
        if end != {"source": source, "patents": len(pinned[0]) + len(pinned[1])}:
            return None
        self._using_pinned(end["patents"])
        return pinned

    def _pin(self, source: str, numbers: list[str], ids: list[str]) -> None:
        entries = (("n", numbers), ("i", ids))
        lines = (_line([kind, value]) for kind, values in entries for value in values)
        end = _line({"source": source, "patents": len(numbers) + len(ids)})
        put_checkpoint(self.folder / _PATENTS, itertools.chain(lines, [end]), durable=True)

    def saved(self) -> None:
        put_checkpoint(self.folder / _REPLAYS, _dumps(self._all_counts()), durable=True)

    def finished(self, digest: str) -> dict[str, Any] | None:
        done = self.run.record(DONE_KEY) if self.run.durable else self._read(_DONE)
        if not isinstance(done, dict) or done.get("digest") != digest:
            return None
        result = done.get("result")
        try:
            still_there = sha256_of(self.final) == (done.get("size"), done.get("sha256"))
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            still_there = False
        return result if still_there and isinstance(result, dict) else None

    def finish(self, digest: str, result: dict[str, Any] | None) -> None:
        size, sha = sha256_of(self.final)
        done = {"digest": digest, "result": result, "size": size, "sha256": sha}
        # The done marker goes where a retry will look: the task state store (3.3+, nothing left beside
        # the output), else a small file in this run's folder (the only thing a retry before 3.3 can see;
        # not kept without a task instance, where no retry can come).
        keep_file = not self.run.durable and bool(self.run.identity.task_id)
        if self.run.durable:
            self.run.write(DONE_KEY, **done)
        elif keep_file:
            self._write(_DONE, done)
        root = self.folder.parent
        # One listing and one bulk removal (an object store deletes a thousand keys per request).
        with contextlib.suppress(OSError):  # no folder: nothing was fetched (all reused)
            doomed = [p.path for p in self.folder.iterdir() if not (keep_file and p.name == _DONE)]
            if doomed:
                self.folder.fs.rm(doomed)
        try:
            # Earlier runs of this task instance (before a clear); never another task's, nor another run's.
            for folder in [p for p in root.iterdir() if p.name.startswith(self.prefix)]:
                if not (keep_file and folder.name == self.folder.name):
                    folder.fs.rm(folder.path, recursive=True)
            if not any(True for _ in root.iterdir()):
                root.fs.rm(root.path, recursive=True)
        except (OSError, NotADirectoryError):
            pass  # leftovers are harmless: hidden, and this task instance's own


class StoredBook(BatchBook):
    """Batch results in the task state store (Airflow 3.3+, XCom mode, small portfolios)."""

    kind = "task state store"

    def __init__(self, run: TaskRun, replays: int) -> None:
        super().__init__(run, replays)
        self._carry((run.record(REPLAYS_KEY) or {}).get("counts"))

    def load(self, batch: Batch) -> list[Any] | None:
        entry = self.run.record(f"{BATCH_KEY}:{batch.key}")
        items = entry.get("items") if entry is not None else None
        return items if isinstance(items, list) else None

    def pinned(self, source: str) -> tuple[list[str], list[str]] | None:
        pinned = self.run.record(PATENTS_KEY) or {}
        numbers, ids = pinned.get("numbers"), pinned.get("ids")
        if pinned.get("source") != source or not (_texts(numbers) and _texts(ids)):
            return None
        self._using_pinned(len(numbers) + len(ids))
        return numbers, ids

    def save(self, batch: Batch, items: list[Any]) -> None:
        self.run.write(f"{BATCH_KEY}:{batch.key}", items=json.loads(_dumps(items)))

    def _pin(self, source: str, numbers: list[str], ids: list[str]) -> None:
        self.run.write(PATENTS_KEY, source=source, numbers=numbers, ids=ids)

    def saved(self) -> None:
        self.run.write(REPLAYS_KEY, counts=self._all_counts())


def open_book(run: TaskRun, final: Any | None, patents: int, replays: int) -> BatchBook:
    """The best keeping this Airflow and this output allow, saying in the log which it is."""
    if final is not None:
        return StagedBook(run, replays, final)
    if run.durable and patents <= MEMORY_LIMIT:
        return StoredBook(run, replays)
    reason = (
        f"more than {MEMORY_LIMIT} patents are too many to keep in the task state store"
        if run.durable
        else "results go to XCom and this Airflow has no task state store (3.3+)"
    )
    run.log.warning(
        "No checkpoint for the indicator batches: %s. If this task fails part-way, a retry fetches (and "
        "PatSnap bills) every batch again; give a destination to make it resumable.",
        reason,
    )
    return BatchBook(run, replays)


def _texts(value: Any) -> TypeGuard[list[str]]:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _line(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=True).encode() + b"\n"


def _dumps(value: Any) -> bytes:
    # The exact parser's Decimals are written as JSON numbers and read back as floats, as records are.
    return json.dumps(value, default=float, ensure_ascii=False).encode("utf-8")
