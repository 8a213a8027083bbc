"""Report jobs: the job record, and the emulator's job book (ids, creation, state by wall time,
download truncation, the report file each job serves)."""

from __future__ import annotations

import datetime as dt
import heapq
import math
import random
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

from .protocol import KIND_IDENTIFIERS, MEDIA_TYPES, REPORT_CODES, REPORT_TITLES, _create_path
from .reports import _build_docx, _build_pdf, _ReportFile
from .stats import _Counters


@dataclass
class _Job:
    job_id: int
    kind: str
    logo: bool
    report_type: str
    params: dict[str, Any]
    created_at: float  # epoch seconds
    created_mono: float
    fails: bool
    name: str
    filename: str
    path: str
    download_attempts: int = 0
    #: With ``generation_slots``: when a generator picks the job up and when it is done (monotonic).
    started_mono: float | None = None
    done_mono: float | None = None

    @property
    def subject(self) -> tuple[str, str]:
        """(label, value) of the identifier the report is about."""
        labels = {
            "company_name": "Company",
            "credit_code": "Credit code",
            "org_number": "Organization code",
            "patent_number": "Patent number",
            "patent_id": "Patent id",
        }
        for key in KIND_IDENTIFIERS[self.kind]:
            if self.params.get(key):
                return labels[key], str(self.params[key])
        return "Subject", ""

    @property
    def billing_subject(self) -> str:
        """What the job is a report on, readably: ``"R002 patent_number=CN108977442B"``."""
        given = [f"{key}={self.params[key]}" for key in KIND_IDENTIFIERS[self.kind] if self.params.get(key)]
        return f"{REPORT_CODES[self.kind]} {', '.join(given)}"


def _safe_name(value: str, job_id: int) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "_", value).strip("_-")[:80]
    return cleaned or f"report_{job_id}"


class _JobBook(_Counters):
    """The jobs half of :class:`PatsnapEmulator` (a mixin: the state it uses is set up there)."""

    _lock: threading.RLock
    _files_lock: threading.Lock
    _stats: dict[str, Any]
    _id_rng: random.Random
    _last_job_id: int
    _jobs: dict[str, _Job]
    _files: dict[str, _ReportFile]
    fail_identifiers: frozenset[str]
    job_seconds: float
    report_size: int | None
    truncate_downloads: int
    truncate_first_download: bool
    colliding_file_names: bool
    generation_slots: int | None
    job_seconds_range: tuple[float, float] | None
    _slot_free: list[float]

    def _next_job_id(self) -> int:
        while True:
            self._last_job_id += self._id_rng.randint(1, 1 << 20)
            candidate = self._last_job_id
            if int(float(candidate)) != candidate:
                return candidate

    def _create_job(self, kind: str, logo: bool, params: dict[str, Any]) -> _Job:
        identifiers = [str(params[key]) for key in KIND_IDENTIFIERS[kind] if key in params]
        fails = any("FAIL" in value.upper() or value in self.fail_identifiers for value in identifiers)
        now = time.time()
        stamp = dt.datetime.fromtimestamp(now, tz=dt.timezone.utc)
        ext = "pdf" if params["report_type"] == "pdf" else "docx"
        with self._lock:
            job_id = self._next_job_id()
            name = _safe_name(identifiers[0], job_id)
            filename = f"report.{ext}" if self.colliding_file_names else f"{name}_{stamp:%Y_%m_%d}.{ext}"
            job = _Job(
                job_id=job_id,
                kind=kind,
                logo=logo,
                report_type=params["report_type"],
                params=dict(params),
                created_at=now,
                created_mono=time.monotonic(),
                fails=fails,
                name=name,
                filename=filename,
                path=f"/tffi-export/{stamp:%Y%m%d%H%M%S}/{job_id}/{filename}",
            )
            self._schedule(job)
            self._jobs[str(job_id)] = job
            self._stats["creates"] += 1
            self._stats["creates_by_kind"][kind] += 1
            by_subject = self._stats["creates_by_subject"]
            by_subject[job.billing_subject] = by_subject.get(job.billing_subject, 0) + 1
            self._bill(_create_path(kind, logo), 1)
        return job

    def _schedule(self, job: _Job) -> None:
        """With ``generation_slots``, PatSnap's queue: jobs wait in creation order for one of that many
        generators, each taking ``job_seconds`` (or a seeded draw from ``job_seconds_range``)."""
        if not self.generation_slots:
            return
        low, high = self.job_seconds_range or (self.job_seconds, self.job_seconds)
        seconds = random.Random(f"duration:{job.job_id}").uniform(low, high)
        while len(self._slot_free) < self.generation_slots:
            heapq.heappush(self._slot_free, 0.0)
        start = max(job.created_mono, heapq.heappop(self._slot_free))
        job.started_mono, job.done_mono = start, start + seconds
        heapq.heappush(self._slot_free, job.done_mono)

    def _find_job(self, job_id: str) -> _Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def _require_job(self, job_id: str | int) -> _Job:
        job = self._find_job(str(job_id))
        if job is None:
            raise KeyError(job_id)
        return job

    def _job_state(self, job: _Job) -> tuple[int, int]:
        """(job_status, queue_num) by wall time since creation."""
        if job.started_mono is not None and job.done_mono is not None:
            now = time.monotonic()
            if now >= job.done_mono:
                return (3 if job.fails else 2), 0
            if now >= job.started_mono:
                return 1, 0
            with self._lock:
                ahead = sum(
                    1
                    for other in self._jobs.values()
                    if other.created_mono < job.created_mono and (other.started_mono or 0) > now
                )
            return 0, ahead + 1
        total = float(self.job_seconds)
        elapsed = time.monotonic() - job.created_mono
        if total <= 0 or elapsed >= total:
            return (3 if job.fails else 2), 0
        fraction = elapsed / total
        if fraction < 1 / 3:
            return 0, max(1, math.ceil(3 * (1 - 3 * fraction)))
        return 1, 0

    def _take_truncation(self, job: _Job) -> bool:
        with self._lock:
            job.download_attempts += 1
            if self.truncate_first_download and job.download_attempts == 1:
                return True
            if self.truncate_downloads > 0:
                self.truncate_downloads -= 1
                return True
            return False

    def _report_file(self, job: _Job) -> _ReportFile:
        key = str(job.job_id)
        with self._files_lock:
            cached = self._files.get(key)
            if cached is not None:
                return cached
            label, subject = job.subject
            title = REPORT_TITLES[job.kind]
            lines = [
                f"{label}: {subject}",
                f"Job ID: {job.job_id}",
                f"Report type: {job.report_type}{'' if job.logo else ' (no logo)'}",
                "Synthetic document generated by PatsnapEmulator for testing.",
            ]
            if job.report_type == "pdf":
                head, pad, tail = _build_pdf(title, lines, f"{title} - {subject}", self.report_size)
                report = _ReportFile(job.filename, MEDIA_TYPES["pdf"], head, pad, tail)
            else:
                report = _ReportFile(job.filename, MEDIA_TYPES["docx"], _build_docx(title, lines), 0, b"")
            self._files[key] = report
            return report
