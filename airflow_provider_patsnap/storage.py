"""Where files go: destinations (a file, or a folder ending in ``/``) on any ObjectStoragePath, safe names, URIs."""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass
from email.message import Message
from email.utils import collapse_rfc2231_value
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from airflow_provider_patsnap.errors import PatsnapInputError
from airflow_provider_patsnap.validation import rendered_text
from airflow_provider_patsnap.version_compat import object_storage_path

_LOCAL_PROTOCOLS = ("", "file", "local")
#: fsspec protocols that read but cannot publish a file.
_READ_ONLY_PROTOCOLS = frozenset({"http", "https", "zip", "tar", "github", "git", "libarchive", "reference"})
_UNSAFE = re.compile(r"[^A-Za-z0-9._\- ()\u00a0-\uffff]+")
#: Unicode categories that are never part of a file name: controls, format characters (bidi
#: overrides and isolates, zero-width joiners and spaces), line/paragraph separators, surrogates,
#: private-use and unassigned code points.
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})
#: Device names Windows (and SMB shares) reserve whatever the extension: ``CON``, ``nul.pdf``, ``COM1.pdf``.
_RESERVED_NAMES = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$", "CLOCK$"}
    | {f"{dev}{n}" for dev in ("COM", "LPT") for n in (*"0123456789", "\u00b9", "\u00b2", "\u00b3")}
)
#: File systems count bytes, not characters.
MAX_NAME_BYTES = 255


def sanitize_filename(name: str | None, fallback: str) -> str:
    """The one gate for file names, whatever their source (a link, a header, a job id): one safe path
    segment. NFC; no directories or traversal; no control, format, separator or bidi characters; no
    leading dot (so never hidden, and never a staging file's name); no trailing dots or spaces; no
    reserved device names; at most 255 bytes of UTF-8, keeping the extension. ``fallback`` (itself
    sanitised) is used when nothing usable is left."""
    text = unicodedata.normalize("NFC", name or "")
    text = "".join(ch for ch in text if unicodedata.category(ch) not in _DROPPED_CATEGORIES)
    text = text.replace("\\", "/").split("/")[-1]  # keep the last segment only
    text = _UNSAFE.sub("_", text)
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"_+", "_", text).strip(" .").lstrip(". ")
    if not text:
        return sanitize_filename(fallback, "report") if fallback != "report" else "report"
    if text.split(".", 1)[0].rstrip(" ").upper() in _RESERVED_NAMES:
        text = f"_{text}"
    return _fit_bytes(text, MAX_NAME_BYTES)


def _fit_bytes(text: str, limit: int) -> str:
    """Shorten to ``limit`` UTF-8 bytes, keeping the extension."""
    if len(text.encode("utf-8")) <= limit:
        return text
    stem, dot, ext = text.rpartition(".")
    if not dot or len(ext) > 10:
        stem, ext = text, ""
    suffix = f".{ext}" if ext else ""
    budget = limit - len(suffix.encode("utf-8"))
    stem = stem.encode("utf-8")[:budget].decode("utf-8", "ignore").rstrip(" .")
    return (stem or "report") + suffix


#: Longest Content-Disposition value parsed (the standard library's parameter split is quadratic).
MAX_DISPOSITION = 4096


def _disposition_filename(value: str | None) -> str | None:
    """The file name a Content-Disposition value offers, parsed by the standard library (RFC 2231/5987
    extended values, quoted ``;`` and escaped quotes); ``filename*`` wins over ``filename`` (RFC 6266),
    which is the fallback when the extended value is unusable. A value the parser cannot take (too
    long, an unknown charset, a NUL, broken continuations) offers no name: the link's or the path's is
    used, never an exception."""
    if not value or len(value) > MAX_DISPOSITION:
        return None
    try:
        header = Message()
        header["Content-Disposition"] = value
        params = header.get_params(header="content-disposition", failobj=[])
    except (ValueError, TypeError, LookupError):
        return None
    names = [found for key, found in params if key.lower() == "filename"]
    extended = [name for name in names if isinstance(name, tuple)]
    plain = [name for name in names if isinstance(name, str)]
    for name in (*extended, *plain):
        try:
            text = collapse_rfc2231_value(name, errors="replace")
        except (ValueError, TypeError, LookupError):
            continue  # e.g. an unknown charset: the next name may do
        if text and "\x00" not in text:
            return text
    return None


def filename_from_link(url: str, content_disposition: str | None = None) -> str | None:
    """The report's file name: Content-Disposition, else the signed link's own, else its path."""
    name = _disposition_filename(content_disposition)
    if name:
        return name
    parts = urlsplit(url)
    signed = parse_qs(parts.query).get("response-content-disposition")
    name = _disposition_filename(signed[0]) if signed else None
    return name or (unquote(parts.path.rsplit("/", 1)[-1]) or None)


@dataclass(frozen=True)
class Destination:
    """A validated destination: a file, or a folder (raw value ends with ``/``) to put the file in."""

    raw: str
    conn_id: str | None
    is_folder: bool

    @classmethod
    def parse(cls, destination: Any, conn_id: str | None = None) -> Destination:
        text = str(destination).strip() if destination is not None else ""
        if not text:
            raise PatsnapInputError("destination", "give a file path or URI, or a folder ending with '/'")
        rendered_text("destination", text)
        protocol = text.split("://", 1)[0].lower() if "://" in text else ""
        if protocol in _READ_ONLY_PROTOCOLS:
            raise PatsnapInputError(
                "destination", f"{protocol}:// cannot be written; archive to a path, file://, s3://, gs:// or similar"
            )
        parsed = cls(raw=text, conn_id=conn_id or None, is_folder=text.endswith("/"))
        try:
            parsed.resolve("probe").fs  # noqa: B018 - resolves the scheme's filesystem, no I/O
        except (ValueError, ImportError) as exc:
            raise PatsnapInputError("destination", f"cannot store reports at {text!r}: {exc}") from None
        return parsed

    def resolve(self, filename: str) -> Any:
        """ObjectStoragePath of the final file."""
        raw = self.raw
        if "://" not in raw:
            raw = os.path.abspath(os.path.expanduser(raw)) + ("/" if self.is_folder else "")
        base = object_storage_path(raw, conn_id=self.conn_id)
        if self.is_folder:
            return base / sanitize_filename(filename, "report")
        if base.is_dir():
            raise PatsnapInputError("destination", f"{self.raw!r} is an existing folder; end it with '/'")
        return base


def is_local(path: Any) -> bool:
    return path.protocol in _LOCAL_PROTOCOLS


def user_uri(path: Any) -> str:
    """URI for people and XCom: no connection id, ``file://`` for local paths."""
    protocol = path.protocol or "file"
    key = path.path if protocol != "file" else os.path.abspath(path.path)
    return f"{protocol}://{key}"
