"""The one gate for every URL the provider requests: the API host, the token endpoint, signed download
links and each redirect hop they take.

A URL is judged by the host the HTTP client will dial, so the gate parses it with urllib3's parser
(what ``requests`` uses) and refuses it outright when the standard library or httpx would read a
different host out of it (``http://169.254.169.254\\@127.0.0.1/`` dials the first address in urllib3
and names the second in ``urlsplit``). On top of that:

* only ``https``, or plain ``http`` to a loopback address (the emulator);
* no user information (``user:pass@``) in a link;
* an IP literal in a private, link-local, shared (CGNAT), multicast, reserved or unspecified range is
  refused for links from PatSnap unless the connection opts in (extra ``allow_private_addresses``).
  Literals are read the way the system resolver reads them, so ``2852039166`` and ``0xa9.0xfe.169.254``
  are 169.254.169.254. Host *names* are not resolved here (see the README's Security section).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit

import httpx
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from airflow_provider_patsnap.redaction import remote_text

#: Longer links are refused (PatSnap's signed links are a few hundred characters).
MAX_URL_LENGTH = 8192
_ASCII_PRINTABLE = re.compile(r"[\x21-\x7e]+")
_NUMERIC_HOST = re.compile(r"[0-9a-fx.]+", re.IGNORECASE)
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def ip_literal(host: str) -> IPAddress | None:
    """The address ``host`` denotes when it is an IP literal (as the resolver reads it), else None."""
    text = host.strip("[]").split("%", 1)[0].rstrip(".")
    try:
        address: IPAddress = ipaddress.ip_address(text)
    except ValueError:
        if not _NUMERIC_HOST.fullmatch(text) or not any(ch.isdigit() for ch in text):
            return None
        try:  # inet_aton's shorthand forms: "127.1", "2130706433", "0x7f.0.0.1"
            address = ipaddress.IPv4Address(socket.inet_aton(text))
        except (OSError, ValueError):
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_loopback(host: str | None) -> bool:
    """``localhost``, any 127.0.0.0/8 address (in any spelling), or ``::1``."""
    if not host:
        return False
    if host.rstrip(".").lower() == "localhost":
        return True
    address = ip_literal(host)
    return address is not None and address.is_loopback


def _is_internal(address: IPAddress) -> bool:
    return not address.is_global or address.is_multicast


def _hosts_agree(url: str, host: str) -> bool:
    """Whether the standard library and httpx read the same host as urllib3 (case-insensitive)."""
    try:
        others = (urlsplit(url).hostname or "", httpx.URL(url).host)
    except (ValueError, httpx.InvalidURL):
        return False
    wanted = host.strip("[]").lower()
    return all(other.strip("[]").lower() == wanted for other in others)


def url_refusal(url: str, *, allow_private: bool = False) -> str | None:
    """Why ``url`` may not be requested, or None when it may.

    ``allow_private`` admits IP literals in internal ranges (the connection's own host is the
    administrator's choice; links from PatSnap need the ``allow_private_addresses`` extra).
    """
    if not isinstance(url, str) or not url:
        return "it is not a URL"
    if len(url) > MAX_URL_LENGTH:
        return f"it is {len(url)} characters long (at most {MAX_URL_LENGTH})"
    if not _ASCII_PRINTABLE.fullmatch(url) or "\\" in url:
        return "it contains whitespace, control, non-ASCII or backslash characters"
    try:
        parts = parse_url(url)
    except (LocationParseError, ValueError):
        return "it is not a valid URL"
    scheme, host = (parts.scheme or "").lower(), parts.host or ""
    if scheme not in ("http", "https") or not host:
        return f"{scheme or 'no'} scheme: only https URLs (or http to loopback) are used"
    if not _hosts_agree(url, host):
        return "its host reads differently to different URL parsers"
    if parts.auth is not None:
        return "it carries user information (user:password@)"
    loopback = is_loopback(host)
    if scheme == "http" and not loopback:
        return (
            f"plain http to {host!r} would travel unencrypted; use https "
            "(http is allowed only for loopback addresses, such as the bundled emulator)"
        )
    address = ip_literal(host)
    if address is not None and not loopback and not allow_private and _is_internal(address):
        return (
            f"{address} is a private, link-local, shared, multicast or reserved address; set the connection "
            "extra allow_private_addresses to true if PatSnap's links really point into your network"
        )
    return None


def safe_link(url: str) -> str:
    """A link as scheme, host and path, bounded: what may be logged (the query carries the signature)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return remote_text(url.split("?", 1)[0], 200)
    return remote_text(f"{parts.scheme}://{host}{port}{parts.path}", 200)
