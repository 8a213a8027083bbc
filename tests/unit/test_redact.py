"""Redaction of what the HTTP libraries really pass to ``logging`` (not only ``str`` arguments)."""

from __future__ import annotations

import logging

import httpx
import pytest

from airflow_provider_patsnap.hooks._redact import HTTP_LOGGERS, RedactSecrets, install_log_redaction, redact

KEY = "sk-SECRET0123456789"
URL = f"https://patsnap.test/status?job_id=1&apikey={KEY}&sign=q-signature%3Ddeadbeef"


def record(msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("httpx", logging.INFO, __file__, 1, msg, args, None)


@pytest.mark.parametrize(
    ("msg", "args"),
    [
        pytest.param("HTTP Request: %s %s", ("GET", httpx.URL(URL)), id="httpx-URL-object"),
        pytest.param(
            '%s://%s:%s "%s %s %s" %s %s',
            ("https", "patsnap.test", 443, "GET", URL[22:], "HTTP/1.1", 200, 5),
            id="urllib3-request-line",
        ),
        pytest.param("send_request_headers.started request=%r", (URL.encode(),), id="bytes"),
        pytest.param("Incremented Retry for (url='%s'): %r", (URL[22:], "Retry(total=0)"), id="urllib3-retry"),
        pytest.param(f"preformatted {URL}", (), id="no-args"),
        pytest.param("headers %s", ({"Authorization": f"Bearer {KEY}"},), id="header-dict"),
    ],
)
def test_filter_redacts_whatever_the_argument_types(msg: str, args: tuple[object, ...]) -> None:
    rec = record(msg, *args)
    assert RedactSecrets().filter(rec) is True  # redacts, never drops
    text = rec.getMessage()
    assert KEY not in text and "deadbeef" not in text, text
    assert "***" in text


def test_text_without_secrets_is_left_alone() -> None:
    rec = record("HTTP Request: %s %s", "GET", httpx.URL("https://patsnap.test/status?job_id=1"))
    RedactSecrets().filter(rec)
    assert rec.args and rec.getMessage().endswith("job_id=1")


def test_redact_keeps_what_is_not_a_secret() -> None:
    assert redact("GET /x?job_id=42&apikey=client-7") == "GET /x?job_id=42&apikey=***"
    assert redact("Authorization: Basic Y2lkOnNlY3JldA==") == "Authorization: Basic ***"
    assert redact("job 1579434053399035905 done") == "job 1579434053399035905 done"


def test_installing_is_explicit_and_idempotent() -> None:
    install_log_redaction()
    install_log_redaction()
    for name in HTTP_LOGGERS:
        assert sum(isinstance(f, RedactSecrets) for f in logging.getLogger(name).filters) == 1
