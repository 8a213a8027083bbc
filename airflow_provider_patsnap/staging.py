"""Writing a file so that it appears whole or not at all, survives killed workers and never clobbers.

A staging file has a name derived from what it is for (the final path and a key such as the job
id), so the next attempt of a killed download finds and reuses its predecessor's leftover instead
of leaving it behind. An exclusive ``flock`` tells a live writer from a dead one's leftover: the
kernel drops the lock when its process dies.

* Local targets stage in the target's own folder as ``.<name>.patsnap-<key>.part`` (hidden, same
  file system) and are published with a hard link, which fails if the name exists: no clobbering
  under a race. ``overwrite`` publishes with an atomic rename instead.
* Object stores have no atomic rename and no portable "create if absent"; the file is staged in a
  local spool folder, verified, then uploaded once. The existence check just before the upload is
  the best the stores offer portably (a race inside that window is not detected).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from typing import IO, Any

from airflow_provider_patsnap.errors import PatsnapDestinationError, PatsnapDownloadError
from airflow_provider_patsnap.storage import is_local, user_uri

#: Object stores need no parent "folders"; mkdir there would create a missing bucket (a typo'd
#: bucket name must fail, not silently get a new bucket with default settings).
_OBJECT_STORES = ("s3", "s3a", "s3n", "gs", "gcs", "abfs", "abfss", "az", "adl", "wasb", "wasbs")
PART_MARK = ".patsnap-"
#: Unlocked leftovers older than this are a dead attempt's, whatever their key: swept.
STALE_AFTER = 3600.0
_WRITE_ERRORS = (FileNotFoundError, PermissionError, NotADirectoryError, IsADirectoryError)


def spool_dir() -> str:
    """Where object-store uploads are staged (``PATSNAP_SPOOL_DIR``, else the system temp folder)."""
    path = os.environ.get("PATSNAP_SPOOL_DIR") or os.path.join(tempfile.gettempdir(), "airflow-provider-patsnap")
    os.makedirs(path, exist_ok=True)
    return path


def staging_path(final: Any, key: str) -> str:
    """The staging file for ``final`` and ``key`` (the same for every attempt)."""
    digest = hashlib.sha256(f"{user_uri(final)}\0{key}".encode()).hexdigest()[:16]
    if is_local(final):
        target = os.path.abspath(final.path)
        return os.path.join(os.path.dirname(target), f".{os.path.basename(target)}{PART_MARK}{digest}.part")
    return os.path.join(spool_dir(), f"upload{PART_MARK}{digest}.part")


@contextlib.contextmanager
def staged_file(final: Any, key: str) -> Iterator[tuple[IO[bytes], str]]:
    """An exclusively locked, empty staging file for ``final``; removed on exit (published or not)."""
    path = staging_path(final, key)
    folder = os.path.dirname(path)
    try:
        os.makedirs(folder, exist_ok=True)
        sweep_leftovers(folder)
        handle = open(path, "a+b")  # noqa: SIM115 - closed below, after the lock is released
    except _WRITE_ERRORS as exc:
        raise _destination_error(final, exc) from None
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()  # the file is a live writer's: not ours to remove
        raise PatsnapDownloadError(
            f"another live attempt is writing {user_uri(final)} right now; retrying later"
        ) from None
    try:
        handle.seek(0)
        handle.truncate()  # a killed predecessor's bytes, if any
        yield handle, path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        handle.close()


def sweep_leftovers(folder: str, now: float | None = None) -> list[str]:
    """Delete staging files in ``folder`` that no live process holds and that are old enough to be dead."""
    now = time.time() if now is None else now
    swept = []
    with contextlib.suppress(FileNotFoundError, NotADirectoryError, PermissionError):
        for entry in os.scandir(folder):
            if PART_MARK not in entry.name or not entry.name.endswith(".part"):
                continue
            with contextlib.suppress(OSError):
                if now - entry.stat().st_mtime < STALE_AFTER:
                    continue
                with open(entry.path, "rb") as probe:
                    fcntl.flock(probe.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises if held
                    os.unlink(entry.path)
                    swept.append(entry.name)
    return swept


def publish(final: Any, local_path: str, *, overwrite: bool) -> None:
    """Put the verified staging file at ``final``. Raises ``FileExistsError`` if ``final`` exists
    and ``overwrite`` is False (atomically so on local disks)."""
    try:
        if is_local(final):
            target = os.path.abspath(final.path)
            if overwrite:
                os.replace(local_path, target)
            else:
                _link_no_clobber(local_path, target)
            return
        if not overwrite and final.exists():
            raise FileExistsError(errno.EEXIST, "exists", user_uri(final))
        if final.protocol not in _OBJECT_STORES:
            with contextlib.suppress(Exception):
                final.parent.mkdir(parents=True, exist_ok=True)
        final.fs.put_file(local_path, final.path)
    except FileExistsError:
        raise
    except _WRITE_ERRORS as exc:
        raise _destination_error(final, exc) from None


def _link_no_clobber(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        # No hard links here (some FUSE and SMB mounts): exclusive create, then copy in.
        with open(target, "xb") as out, open(source, "rb") as src:
            shutil.copyfileobj(src, out, 1024 * 1024)


def sha256_of(path: Any, chunk: int = 1024 * 1024) -> tuple[int, str]:
    """``(size, sha256)`` of an existing file at any ObjectStoragePath, streamed."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


def write_lines_atomically(final: Any, lines: Iterator[bytes], *, key: str = "lines") -> int:
    """Write byte lines to ``final`` (replacing it) via a staging file; return the byte count."""
    size = 0
    with staged_file(final, key) as (handle, path):
        for line in lines:
            handle.write(line)
            size += len(line)
        handle.flush()
        publish(final, path, overwrite=True)
    return size


def _destination_error(final: Any, exc: OSError) -> PatsnapDestinationError:
    return PatsnapDestinationError(
        f"cannot write {user_uri(final)}: {type(exc).__name__}; check that the bucket or folder "
        "exists and the connection may write there"
    )
