"""The one gate for every URL the provider requests: the API host, the token endpoint, signed download
links and each redirect hop they take.

A URL is judged by the host the HTTP client will dial, so the gate parses it with urllib3's parser
(what ``requests`` uses) and refuses it outright when the standard library or httpx would read a
different host out of it (``http://169.254.169.254\\@127.0.0.1/`` dials the first address in urllib3
and names the second in ``urlsplit``). On top of that:

* only ``https``, or plain ``http`` to a loopback address (the emulator);
* no user information (``user:pass@``) in a link;
* an IP literal in a loopback, private, link-local, shared (CGNAT), multicast, reserved or unspecified
  range is refused for links from PatSnap unless the connection allows it (extra
  ``allow_private_addresses``: ``true``, or the networks allowed, e.g. ``["127.0.0.0/8"]`` for the
  bundled emulator). Literals are read the way the system resolver reads them (``2852039166`` and
  ``0xa9.0xfe.169.254`` are 169.254.169.254), and an IPv4 address carried inside an IPv6 one (mapped,
  compatible, NAT64, 6to4, Teredo) is judged as that IPv4 address. Host *names* are not resolved here
  (see the README's Security section).
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
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: What a link may point at besides public addresses: everything internal (True), or these networks.
Allowance = bool | tuple[IPNetwork, ...]
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))


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
    return _embedded_ipv4(address) or address


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (and a router would reach), if any."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]  # the client's address
    if any(address in net for net in _NAT64) or (int(address) >> 32 == 0 and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)  # NAT64, or IPv4-compatible (::a.b.c.d)
    return None


def is_loopback(host: str | None) -> bool:
    """``localhost``, any 127.0.0.0/8 address (in any spelling), or ``::1``."""
    if not host:
        return False
    if host.rstrip(".").lower() == "localhost":
        return True
    address = ip_literal(host)
    return address is not None and address.is_loopback


def _is_internal(address: IPAddress) -> bool:
    return not address.is_global or address.is_multicast or address.is_loopback


def _allowed(address: IPAddress, allowance: Allowance) -> bool:
    if allowance is True:
        return True
    if not allowance:
        return False
    return any(address.version == net.version and address in net for net in allowance)  # type: ignore[union-attr]


def allowance_from(value: object) -> Allowance:
    """The ``allow_private_addresses`` extra: a flag, or networks (a list, or a comma-separated string)."""
    if isinstance(value, bool):
        return value
    if value is None or value == "":
        return False
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        value = [part for part in text.split(",") if part.strip()]
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"expected true/false or a list of networks, got {type(value).__name__}")
    return tuple(ipaddress.ip_network(str(item).strip(), strict=False) for item in value)


def _hosts_agree(url: str, host: str) -> bool:
    """Whether the standard library and httpx read the same host as urllib3 (case-insensitive)."""
    try:
        others = (urlsplit(url).hostname or "", httpx.URL(url).host)
    except (ValueError, httpx.InvalidURL):
        return False
    wanted = host.strip("[]").lower()
    return all(other.strip("[]").lower() == wanted for other in others)


def url_refusal(url: str, *, allow_private: Allowance = False) -> str | None:
    """Why ``url`` may not be requested, or None when it may.

    ``allow_private`` admits IP literals in internal ranges, loopback included: all of them (True, the
    connection's own host, which is the administrator's choice) or those networks (links from
    PatSnap, per the ``allow_private_addresses`` extra).
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
    address = ip_literal("127.0.0.1" if host.rstrip(".").lower() == "localhost" else host)
    if address is not None and _is_internal(address) and not _allowed(address, allow_private):
        return (
            f"{address} is a loopback, private, link-local, shared, multicast or reserved address; set the "
            "connection extra allow_private_addresses (true, or the networks allowed) if PatSnap's links really "
            "point into your network"
        )
    return None


#: Path segments that look like a signature (CDN URL signing that puts it in the path: a hex digest).
_SIGNATURE_SEGMENT = re.compile(r"(?<=/)[0-9a-fA-F]{32,}(?=/|$)")


def safe_link(url: str) -> str:
    """A link as scheme, host and path, bounded: what may be logged (the query carries the signature;
    a digest-like path segment, which some CDNs sign with, is masked too)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return remote_text(url.split("?", 1)[0], 200)
    return remote_text(f"{parts.scheme}://{host}{port}{_SIGNATURE_SEGMENT.sub('***', parts.path)}", 200)
