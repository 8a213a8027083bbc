"""The gate for text on its way into our logs, exceptions and XCom: bounded, and free of credentials.

Two sources of danger meet here. Remote text (PatSnap's ``error_msg`` and ``abnormal_cause``, a
gateway page, a link's path) is attacker-sized and may echo what it was sent: the client secret,
the token, the ``sk-`` key, the Basic header. And our own messages may quote URLs whose query is a
signature. So every such text passes :func:`remote_text` (bounded, control characters made
visible, redacted) and every exception message passes :func:`redact` (see ``errors.PatsnapError``).

Redaction knows two things: the credentials this process has been given or fetched
(:func:`register_secret`, with the forms they travel in: Basic's base64, URL-encoding), and the
shapes of credentials in general (bearer/basic headers, ``sk-`` keys, the query parameters that
carry signatures in Tencent COS, AWS SigV4, Alibaba OSS, CloudFront and Google Cloud Storage
links). Airflow's own masker is fed as well, but ``airflow dags test`` output is not masked, and an
exception text outlives any log handler: the text itself must be clean.

No imports from the rest of the provider: everything may use this module.
"""

from __future__ import annotations

import base64
import re
import threading
from urllib.parse import quote

#: Longest remote text kept in a message (characters); the rest is cut, saying how much.
REMOTE_TEXT_LIMIT = 300
#: Longest message an exception carries (our words plus bounded remote text).
MESSAGE_LIMIT = 4000
#: Values this short are never treated as secrets (as Airflow's masker: they would blank out words).
MIN_SECRET_LENGTH = 6
#: Registered secrets kept (tokens rotate; the oldest are dropped first).
MAX_SECRETS = 256
MASK = "***"

#: Query parameters that carry signatures or credentials in the link styles PatSnap's CDNs use.
SIGNED_QUERY_PARAMS = (
    # PatSnap's own, and API keys in URLs
    "apikey",
    "api_key",
    "access_token",
    "token",
    # Tencent COS
    "sign",
    "q-signature",
    "q-ak",
    "q-key-time",
    "q-sign-time",
    # AWS SigV4 (S3, and PatSnap's other exports)
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
    # Alibaba OSS (v1 and v4) and CloudFront
    "signature",
    "ossaccesskeyid",
    "security-token",
    "x-oss-signature",
    "x-oss-credential",
    "policy",
    "key-pair-id",
    # Alibaba CDN URL signing (type A)
    "auth_key",
    # Google Cloud Storage
    "x-goog-signature",
    "x-goog-credential",
    "googleaccessid",
    # Azure SAS
    "sig",
)
_SECRET_QUERY = re.compile(
    r"((?:^|[?&;\s'\"(,])(?:" + "|".join(re.escape(p) for p in SIGNED_QUERY_PARAMS) + r")=)[^&\s\"'<>),]+",
    re.IGNORECASE,
)
_BEARER = re.compile(r"(\b(?:Bearer|Basic)\s+)[A-Za-z0-9._~+/=\-]+", re.IGNORECASE)
_API_KEY = re.compile(r"\bsk-[A-Za-z0-9_\-]{6,}")
#: C0/C1 controls, DEL, and the format/separator characters that rewrite how a log line reads
#: (bidi overrides and isolates, zero-width characters, line and paragraph separators).
_UNPRINTABLE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]"
)

_lock = threading.Lock()
_secrets: dict[str, None] = {}  # insertion-ordered set
_pattern: re.Pattern[str] | None = None


def register_secret(value: str | None) -> None:
    """Redact ``value`` (and its URL-encoded and base64 forms) from every text from now on."""
    if not value or len(value) < MIN_SECRET_LENGTH:
        return
    quoted = quote(value, safe="")
    forms = {
        value,
        quoted,
        re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), quoted),  # lower-case percent-encoding
        quote(value, safe="/"),
        value.replace("/", "\\/"),  # as JSON may escape it
        base64.b64encode(value.encode()).decode(),
    }
    global _pattern
    with _lock:
        for form in forms:
            if len(form) >= MIN_SECRET_LENGTH:
                _secrets.pop(form, None)
                _secrets[form] = None
        while len(_secrets) > MAX_SECRETS:
            _secrets.pop(next(iter(_secrets)))
        _pattern = None


def register_basic_credentials(user: str | None, password: str | None) -> None:
    """Redact the HTTP Basic form of ``user:password`` (what the token request sends)."""
    if user is not None and password:
        register_secret(f"{user}:{password}")


def forget_secrets() -> None:
    """Drop every registered secret (tests)."""
    global _pattern
    with _lock:
        _secrets.clear()
        _pattern = None


def _secret_pattern() -> re.Pattern[str] | None:
    global _pattern
    with _lock:
        if _pattern is None and _secrets:
            # Longest first, so a secret inside a longer registered form is replaced as a whole.
            _pattern = re.compile("|".join(re.escape(s) for s in sorted(_secrets, key=len, reverse=True)))
        return _pattern


def redact(text: str) -> str:
    """``text`` with registered secrets, bearer/basic credentials, ``sk-`` keys and signed-link
    query values replaced by ``***``."""
    pattern = _secret_pattern()
    if pattern is not None:
        text = pattern.sub(MASK, text)
    text = _SECRET_QUERY.sub(r"\1" + MASK, text)
    text = _BEARER.sub(r"\1" + MASK, text)
    return _API_KEY.sub("sk-" + MASK, text)


def bound(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters cut)"


def _longest_secret() -> int:
    with _lock:
        return max((len(s) for s in _secrets), default=0)


def remote_text(value: object, limit: int = REMOTE_TEXT_LIMIT) -> str:
    """Text from outside, fit for a message: unprintable characters escaped, redacted, bounded."""
    text = value if isinstance(value, str) else repr(value)
    original = len(text)
    # Cut generously first so redaction never scans megabytes (the final cut is far shorter); a
    # secret the cut split in two would escape redaction, so the cut drops a secret's length more.
    if original > limit * 4 + 1024:
        text = text[: max(limit * 4 + 1024 - _longest_secret(), limit)]
    text = bound(escape_unprintable(redact(text)), limit)
    if original > limit and not text.endswith("cut)"):
        text += f"... ({original - limit} more characters cut)"
    return text


def escape_unprintable(text: str) -> str:
    """Controls, bidi and invisible characters shown as ``\\uXXXX`` (they cannot rewrite a log line)."""
    return _UNPRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def clean_message(text: str) -> str:
    """An exception message: redacted, unprintable characters shown, bounded (the backstop for every
    ``PatsnapError``)."""
    return bound(escape_unprintable(redact(text)), MESSAGE_LIMIT)
