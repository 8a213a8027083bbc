"""Writing a file so that it appears whole or not at all, survives killed workers and never clobbers.

The guarantee: a reader of the destination sees either nothing (or what was there before) or the
complete, verified, fsynced file; a published file is never truncated, replaced or deleted by a
later attempt unless ``overwrite`` says so.

A staging file's name is derived from what it is for (the final path and a key such as the job
id): ``.patsnap-<32 hex>.part``, hidden, fixed in length, and a name no sanitised file name can
take (those never start with a dot). The next attempt of a killed write finds its predecessor's
leftover, and an exclusive ``flock`` tells a live writer from a dead one (the kernel drops the lock
when its process dies). A dead leftover is *unlinked*, never truncated: it may be a second name of
the published report (a worker killed between linking and unlinking).

* Local targets stage in the target's own folder (same file system), fsync, and publish with a hard
  link, which fails if the name exists: no clobbering under a race. Without hard links (some FUSE
  and SMB mounts) a rename that refuses to replace (``renameat2``) does the same; where even that
  is missing, an existence check and a rename. ``overwrite`` publishes with an atomic rename. The
  folder is fsynced after publishing.
* Object stores have no rename and no portable "create if absent"; the file is staged in a local
  spool folder, verified, then uploaded once (an object appears whole). The existence check just
  before the upload is the best the stores offer portably.
* Other remote file systems (sftp, webhdfs, smb, ftp...) get the file under a temporary name in the
  target folder, then a move: a killed upload leaves only the temporary name, which the retry
  replaces and removes.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import hashlib
import os
import re
import secrets
import stat
import tempfile
import time
from collections.abc import Iterable, Iterator
from typing import IO, Any

from airflow_provider_patsnap.errors import PatsnapDestinationError, PatsnapDownloadError
from airflow_provider_patsnap.storage import is_local, user_uri

#: Object stores need no parent "folders"; mkdir there would create a missing bucket (a typo'd
#: bucket name must fail, not silently get a new bucket with default settings).
OBJECT_STORES = ("s3", "s3a", "s3n", "gs", "gcs", "abfs", "abfss", "az", "adl", "wasb", "wasbs", "oss", "cos")
PART_MARK = ".patsnap-"
#: Staging names: this version's, and 0.2's ``.<name>.patsnap-<16 hex>.part`` (swept when dead).
_STAGING_NAME = re.compile(r"\.patsnap-[0-9a-f]{32}\.part|\..+\.patsnap-[0-9a-f]{16}\.part")
#: Unlocked leftovers older than this are a dead attempt's, whatever their key: swept.
STALE_AFTER = 3600.0
_WRITE_ERRORS = (FileNotFoundError, PermissionError, NotADirectoryError, IsADirectoryError)
_NO_HARD_LINKS = (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS)


def spool_dir() -> str:
    """Where object-store uploads are staged (``PATSNAP_SPOOL_DIR``, else a folder of the system temp
    folder): private to this user (0700, and refused if another user owns it), since reports wait here
    between their verification and their upload."""
    path = os.environ.get("PATSNAP_SPOOL_DIR") or os.path.join(
        tempfile.gettempdir(), f"airflow-provider-patsnap-{os.getuid()}"
    )
    os.makedirs(path, mode=0o700, exist_ok=True)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise PatsnapDestinationError(
            f"the spool folder {path} is not a folder of this user's; set PATSNAP_SPOOL_DIR to a private folder"
        )
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(path, 0o700)
    return path


def _staging_name(final: Any, key: str) -> str:
    digest = hashlib.sha256(f"{user_uri(final)}\0{key}".encode()).hexdigest()[:32]
    return f"{PART_MARK}{digest}.part"


def staging_path(final: Any, key: str) -> str:
    """The local staging file for ``final`` and ``key`` (the same for every attempt)."""
    if is_local(final):
        return os.path.join(os.path.dirname(os.path.abspath(final.path)), _staging_name(final, key))
    return os.path.join(spool_dir(), _staging_name(final, key))


@contextlib.contextmanager
def staged_file(final: Any, key: str) -> Iterator[tuple[IO[bytes], str]]:
    """An exclusively created and locked, empty staging file for ``final``; removed on exit."""
    path = staging_path(final, key)
    folder = os.path.dirname(path)
    try:
        os.makedirs(folder, exist_ok=True)
        sweep_leftovers(folder)
        # Beside a local target the file becomes the report (its mode is the report's); in the spool it
        # is nobody else's business.
        fd = _create_locked(path, 0o666 if is_local(final) else 0o600)
    except _WRITE_ERRORS as exc:
        raise _destination_error(final, exc) from None
    handle = os.fdopen(fd, "w+b")
    try:
        yield handle, path
    finally:
        with contextlib.suppress(FileNotFoundError):
            if _same_file(path, handle.fileno()):
                os.unlink(path)
        handle.close()


def _create_locked(path: str, mode: int = 0o666) -> int:
    """A new file at ``path`` (``O_EXCL``), locked; a dead predecessor's leftover is unlinked first."""
    for _ in range(3):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, mode)
        except FileExistsError:
            if not _unlink_if_dead(path):
                raise _live_writer(path) from None
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise _live_writer(path) from None
        if _same_file(path, fd):  # not unlinked by a racing attempt between our create and our lock
            return fd
        os.close(fd)
    raise _live_writer(path)


def _unlink_if_dead(path: str) -> bool:
    """Unlink ``path`` unless a live process holds it (then False): a killed attempt's leftover."""
    try:
        # Never follow a link, never block on a FIFO someone named like a staging file.
        probe = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return True
    except OSError:
        return False  # a symlink, or not ours to open: not a leftover of ours
    try:
        if not stat.S_ISREG(os.fstat(probe).st_mode):
            return False
        try:
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        # Unlink, never truncate: the leftover may be a second link to the published report.
        with contextlib.suppress(FileNotFoundError):
            if _same_file(path, probe):
                os.unlink(path)
        return True
    finally:
        os.close(probe)


def _same_file(path: str, fd: int) -> bool:
    try:
        here, ours = os.stat(path), os.fstat(fd)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (ours.st_dev, ours.st_ino)


def _live_writer(path: str) -> PatsnapDownloadError:
    return PatsnapDownloadError(f"another live attempt is writing {os.path.dirname(path)} right now; retrying later")


def sweep_leftovers(folder: str, now: float | None = None) -> list[str]:
    """Unlink staging files in ``folder`` that no live process holds and that are old enough to be dead."""
    now = time.time() if now is None else now
    swept = []
    with contextlib.suppress(FileNotFoundError, NotADirectoryError, PermissionError):
        for entry in os.scandir(folder):
            if not _STAGING_NAME.fullmatch(entry.name):
                continue
            with contextlib.suppress(OSError):
                if now - entry.stat().st_mtime < STALE_AFTER:
                    continue
                if _unlink_if_dead(entry.path):
                    swept.append(entry.name)
    return swept


def publish(final: Any, local_path: str, *, overwrite: bool) -> None:
    """Put the verified staging file at ``final``. Raises ``FileExistsError`` if ``final`` exists
    and ``overwrite`` is False (atomically so on local disks with hard links or ``renameat2``)."""
    try:
        if is_local(final):
            _publish_local(local_path, os.path.abspath(final.path), overwrite)
        elif final.protocol in OBJECT_STORES:
            if not overwrite and final.exists():
                raise FileExistsError(errno.EEXIST, "exists", user_uri(final))
            final.fs.put_file(local_path, final.path)
        else:
            _publish_by_move(final, local_path, overwrite)
    except FileExistsError:
        raise
    except _WRITE_ERRORS as exc:
        raise _destination_error(final, exc) from None


def _publish_local(source: str, target: str, overwrite: bool) -> None:
    _fsync_path(source)
    if overwrite:
        os.replace(source, target)
    else:
        try:
            os.link(source, target)
        except OSError as exc:
            if exc.errno not in _NO_HARD_LINKS:
                raise
            _rename_no_replace(source, target)
    _fsync_path(os.path.dirname(target))


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    except OSError as exc:  # some file systems cannot fsync a folder; the data itself was synced
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF):
            raise
    finally:
        os.close(fd)


_RENAME_NOREPLACE = 1
_AT_FDCWD = -100


def _rename_no_replace(source: str, target: str) -> None:
    """Rename that fails if ``target`` exists: ``renameat2(RENAME_NOREPLACE)`` where the kernel and file
    system have it, else an existence check then a rename (a race in between is not detected)."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is not None:
        if renameat2(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target), _RENAME_NOREPLACE) == 0:
            return
        code = ctypes.get_errno()
        if code == errno.EEXIST:
            raise FileExistsError(code, "exists", target)
        if code not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise OSError(code, os.strerror(code), target)
    if os.path.lexists(target):
        raise FileExistsError(errno.EEXIST, "exists", target)
    os.rename(source, target)


def _publish_by_move(final: Any, local_path: str, overwrite: bool) -> None:
    """Upload beside ``final`` under a temporary name, then move it into place."""
    if not overwrite and final.exists():
        raise FileExistsError(errno.EEXIST, "exists", user_uri(final))
    with contextlib.suppress(Exception):
        final.parent.mkdir(parents=True, exist_ok=True)
    temporary = final.parent / os.path.basename(local_path)
    final.fs.put_file(local_path, temporary.path)
    try:
        if not overwrite and final.exists():
            raise FileExistsError(errno.EEXIST, "exists", user_uri(final))
        final.fs.mv(temporary.path, final.path)
    except BaseException:
        with contextlib.suppress(Exception):
            final.fs.rm(temporary.path)
        raise


def sha256_of(path: Any, chunk: int = 1024 * 1024) -> tuple[int, str]:
    """``(size, sha256)`` of an existing file at any ObjectStoragePath, streamed."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


def copy_verified(source: Any, final: Any, *, sha256: str, key: str, overwrite: bool) -> int:
    """Copy ``source`` to ``final`` through a staging file, publishing only bytes whose sha256 is
    ``sha256``; the size. Raises ``ValueError`` on another digest (nothing is published)."""
    digest = hashlib.sha256()
    size = 0
    with staged_file(final, key) as (handle, path):
        with source.open("rb") as reader:
            while block := reader.read(1024 * 1024):
                digest.update(block)
                handle.write(block)
                size += len(block)
        handle.flush()
        if digest.hexdigest() != sha256:
            raise ValueError(f"{user_uri(source)} changed since it was archived (sha256 {digest.hexdigest()})")
        try:
            publish(final, path, overwrite=overwrite)
        except FileExistsError:
            if sha256_of(final) != (size, sha256):
                raise PatsnapDestinationError(
                    f"{user_uri(final)} already exists with other content; set overwrite=True to replace it"
                ) from None
    return size


def write_lines_atomically(final: Any, lines: Iterator[bytes], *, key: str = "lines", overwrite: bool = True) -> int:
    """Write byte lines to ``final`` via a staging file; return the byte count.

    Without ``overwrite``, an existing ``final`` with the same bytes is success (a retry after the
    publish) and one with other bytes is a ``PatsnapDestinationError`` naming it.
    """
    size = 0
    digest = hashlib.sha256()
    with staged_file(final, key) as (handle, path):
        for line in lines:
            handle.write(line)
            digest.update(line)
            size += len(line)
        handle.flush()
        try:
            publish(final, path, overwrite=overwrite)
        except FileExistsError:
            existing = sha256_of(final)
            if existing != (size, digest.hexdigest()):
                raise PatsnapDestinationError(
                    f"{user_uri(final)} already exists with other content ({existing[0]} bytes, sha256 "
                    f"{existing[1]}); set overwrite=True to replace it, or write to another destination"
                ) from None
    return size


def _destination_error(final: Any, exc: OSError) -> PatsnapDestinationError:
    return PatsnapDestinationError(
        f"cannot write {user_uri(final)}: {type(exc).__name__}; check that the bucket or folder "
        "exists and the connection may write there"
    )


def put_checkpoint(path: Any, data: bytes | Iterable[bytes], *, durable: bool = False) -> None:
    """A small checkpoint file that is whole or absent, in constant time (no folder listing, no sweep).

    Unlike a published output it may be replaced. A batch's file needs to outlive a killed process,
    not a crashed machine (one an OS crash cut short fails to parse and is read as absent: fetched
    again); ``durable`` ones (what a run cannot rebuild: its pinned list, its replay counts) are
    fsynced with their folder. Locally and on other remote file systems it is written under a
    temporary name of its own (``O_EXCL``, random) and moved into place; an object appears whole.
    """
    chunks = [data] if isinstance(data, bytes) else data
    temporary_name = f"{PART_MARK}{secrets.token_hex(8)}.tmp"
    if not is_local(path):
        target = path if path.protocol in OBJECT_STORES else path.parent / temporary_name
        with target.open("wb") as remote:
            for chunk in chunks:
                remote.write(chunk)
        if target is not path:
            target.fs.mv(target.path, path.path)
        return
    final = os.path.abspath(path.path)
    folder = os.path.dirname(final)
    os.makedirs(folder, exist_ok=True)
    temporary = os.path.join(folder, temporary_name)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(temporary, final)
        if durable:
            _fsync_path(folder)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
