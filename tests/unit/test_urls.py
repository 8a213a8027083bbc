"""hooks/_urls.py: the one URL policy (https anywhere, plain http only to loopback) and loggable links."""

from __future__ import annotations

import pytest

from airflow_provider_patsnap.hooks._urls import allowance_from, is_loopback, safe_link, url_refusal


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
    assert url_refusal(url, allow_private=True) is None  # e.g. the connection's own host


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
        ("", "not a URL"),
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


@pytest.mark.parametrize(
    "url",
    [
        # urllib3 dials 169.254.169.254 (a backslash ends its authority); urlsplit names 127.0.0.2.
        "http://169.254.169.254\\@127.0.0.2:8080/x",
        "https://cdn.patsnap.test\\@evil.example/x",
        "https://cdn.patsnap.test/r.pdf\r\nX-Injected: 1",
        "https://cdn.patsnap.test/r pdf",
        "https://cdn.patsnap.test/r\u202e.pdf",
    ],
)
def test_urls_the_parsers_could_read_differently_are_refused(url: str) -> None:
    assert url_refusal(url) == "it contains whitespace, control, non-ASCII or backslash characters"


@pytest.mark.parametrize(
    "url",
    ["https://user:pw@cdn.patsnap.test/r.pdf", "https://user@cdn.patsnap.test/r.pdf", "http://127.0.0.1:80@127.0.0.1/"],
)
def test_links_with_user_information_are_refused(url: str) -> None:
    assert url_refusal(url) == "it carries user information (user:password@)"


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("https://10.0.0.1/r.pdf", "10.0.0.1"),
        ("https://192.168.1.20/r.pdf", "192.168.1.20"),
        ("https://172.16.0.1:8443/r.pdf", "172.16.0.1"),
        ("https://169.254.169.254/latest/meta-data/", "169.254.169.254"),
        ("https://100.64.0.1/r.pdf", "100.64.0.1"),  # shared address space (CGNAT)
        ("https://224.0.0.1/r.pdf", "224.0.0.1"),  # multicast
        ("https://240.0.0.1/r.pdf", "240.0.0.1"),  # reserved
        ("https://0.0.0.0/r.pdf", "0.0.0.0"),  # unspecified
        ("https://[fe80::1]/r.pdf", "fe80::1"),
        ("https://[fd00::1]/r.pdf", "fd00::1"),
        ("https://[::]/r.pdf", "::"),
        # The same addresses in the spellings the system resolver also reads as IPv4 literals.
        ("https://2852039166/r.pdf", "169.254.169.254"),
        ("https://0xa9.0xfe.0xa9.0xfe/r.pdf", "169.254.169.254"),
        ("https://10.1/r.pdf", "10.0.0.1"),
        ("https://0x0a000001/r.pdf", "10.0.0.1"),
        ("https://[::ffff:a9fe:a9fe]/r.pdf", "169.254.169.254"),
        # IPv4 carried in IPv6 by routers: NAT64, 6to4, IPv4-compatible, Teredo (its client address)
        ("https://[64:ff9b::a00:5]/r.pdf", "10.0.0.5"),
        ("https://[64:ff9b:1::a9fe:a9fe]/r.pdf", "169.254.169.254"),
        ("https://[2002:a9fe:a9fe::]/r.pdf", "169.254.169.254"),
        ("https://[::a9fe:a9fe]/r.pdf", "169.254.169.254"),
        ("https://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/r.pdf", "10.0.0.1"),
    ],
)
def test_https_to_an_internal_ip_literal_is_refused_unless_the_connection_opts_in(url: str, address: str) -> None:
    refusal = url_refusal(url)
    assert refusal is not None and refusal.startswith(f"{address} is a loopback, private, link-local")
    assert "allow_private_addresses" in refusal
    assert url_refusal(url, allow_private=True) is None
    assert url_refusal(url, allow_private=allowance_from("127.0.0.0/8")) == refusal  # other networks only


@pytest.mark.parametrize(
    "url",
    [
        "https://8.8.8.8/r.pdf",
        "https://[2606:4700::1111]/r.pdf",
        "https://cdn.zhihuiya.com/r.pdf",
    ],
)
def test_public_addresses_and_names_are_allowed(url: str) -> None:
    assert url_refusal(url) is None


@pytest.mark.parametrize(
    "url",
    ["https://127.0.0.1/r.pdf", "http://2130706433:8089/r.pdf", "http://127.1:8089/r.pdf", "http://localhost:1/x"],
)
def test_loopback_in_any_spelling_is_internal_allowed_only_by_the_connection(url: str) -> None:
    refusal = url_refusal(url)
    assert refusal is not None and refusal.startswith("127.0.0.1 is a loopback")
    assert url_refusal(url, allow_private=allowance_from("127.0.0.0/8")) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        ("true", True),
        (None, False),
        ("", False),
        ("false", False),
        ("10.8.0.0/16, 127.0.0.1", ("10.8.0.0/16", "127.0.0.1/32")),
        (["::1"], ("::1/128",)),
    ],
)
def test_the_allow_private_addresses_extra(value: object, expected: object) -> None:
    allowance = allowance_from(value)
    assert (allowance if isinstance(allowance, bool) else tuple(str(n) for n in allowance)) == expected


def test_a_signature_in_the_path_is_not_logged() -> None:
    link = "https://cdn.example/1700000000/0123456789abcdef0123456789abcdef/tffi-export/r.pdf?auth_key=x"
    assert safe_link(link) == "https://cdn.example/1700000000/***/tffi-export/r.pdf"


def test_a_huge_link_is_refused_and_its_safe_form_is_bounded() -> None:
    url = "https://cdn.patsnap.test/" + "a" * 1_000_000 + "?sign=secret-signature"
    assert url_refusal(url) == f"it is {len(url)} characters long (at most 8192)"
    shown = safe_link(url)
    assert len(shown) < 300 and "secret-signature" not in shown
