"""hooks/_urls.py: the one URL policy (https anywhere, plain http only to loopback) and loggable links."""

from __future__ import annotations

import pytest

from airflow_provider_patsnap.hooks._urls import is_loopback, safe_link, url_refusal


@pytest.mark.parametrize(
    "host", ["localhost", "LOCALHOST", "localhost.", "127.0.0.1", "127.0.0.2", "127.255.255.254", "::1", "[::1]"]
)
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host) is True


@pytest.mark.parametrize(
    "host",
    [
        *[None, "", "10.0.0.5", "0.0.0.0", "128.0.0.1", "::2"],
        *["localhost.example.com", "127.0.0.1.example.com", "mylocalhost", "connect.patsnap.com"],
    ],
)
def test_everything_else_is_not_loopback(host: str | None) -> None:
    assert is_loopback(host) is False


@pytest.mark.parametrize(
    "url",
    [
        "https://connect.patsnap.com/oauth/token",
        "https://cdn.patsnap.test/r/Report.pdf?sign=abc",
        "http://127.0.0.1:8089/x",
        "http://127.0.0.2:8080/r/Report.pdf?sign=x",
        "http://[::1]:8080/r/Report.pdf",
        "http://localhost/r/a.pdf",
        "HTTPS://CONNECT.PATSNAP.COM/x",
    ],
)
def test_urls_that_may_be_requested(url: str) -> None:
    assert url_refusal(url) is None


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://connect.patsnap.com/x", "plain http to 'connect.patsnap.com' would travel unencrypted"),
        ("http://10.0.0.5:8080/x", "plain http to '10.0.0.5'"),
        ("http://127.0.0.1.example.com/x", "plain http to '127.0.0.1.example.com'"),
        ("ftp://cdn.patsnap.test/r.pdf", "ftp scheme"),
        ("file:///etc/passwd", "file scheme"),
        ("cdn.patsnap.test/r.pdf", "no scheme"),
        ("https:///no-host", "https scheme"),
        ("", "no scheme"),
        ("https://[::1/x", "not a valid URL"),
    ],
)
def test_urls_that_are_refused_say_why(url: str, reason: str) -> None:
    refusal = url_refusal(url)
    assert refusal is not None and reason in refusal


def test_safe_link_drops_the_signature() -> None:
    link = "https://cdn.patsnap.test:8443/tffi-export/1/2/Report.pdf?sign=q-signature%3Dsecret&x=1#frag"
    assert safe_link(link) == "https://cdn.patsnap.test:8443/tffi-export/1/2/Report.pdf"
    assert safe_link("http://127.0.0.1:9/r/a.pdf") == "http://127.0.0.1:9/r/a.pdf"
