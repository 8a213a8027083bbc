"""Redaction of credentials in the log records of the HTTP libraries the hook drives.

urllib3 logs each request line (the URL with its query) at DEBUG, httpx at INFO (``request.url``
as an ``httpx.URL``, not a ``str``), httpcore its traces as bytes. With ``api_key_in_query`` the
query carries the key; a signed download link carries its signature. Registering secrets with
Airflow's masker is not enough (``airflow dags test`` output is not masked), so the records are
rewritten at the source: whatever the argument types, the rendered message is redacted by the
provider's one redactor (``airflow_provider_patsnap.redaction``).
"""

from __future__ import annotations

import logging

from airflow_provider_patsnap.redaction import redact

#: The loggers that write request lines or headers (a filter only sees its own logger's records).
HTTP_LOGGERS = (
    "urllib3.connectionpool",
    "urllib3.util.retry",
    "httpx",
    "httpcore.http11",
    "httpcore.connection",
    "httpcore.proxy",
)

__all__ = ["HTTP_LOGGERS", "RedactSecrets", "install_log_redaction", "redact"]


class RedactSecrets(logging.Filter):
    """Renders the record's message (any argument types) and keeps the redacted text."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # a malformed record is logging's problem to report, not ours
            return True
        clean = redact(text)
        if clean != text:
            record.msg, record.args = clean, ()
        return True


def install_log_redaction() -> None:
    """Attach the filter to the HTTP libraries' loggers, once per process (the hook calls this)."""
    for name in HTTP_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())
