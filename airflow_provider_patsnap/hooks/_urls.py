"""The one URL policy for every request the provider makes: the API host, the token endpoint and
signed download links. https anywhere; plain http only to a loopback address (the emulator)."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def is_loopback(host: str | None) -> bool:
    """``localhost``, any 127.0.0.0/8 address, or ``::1``."""
    if not host:
        return False
    if host.rstrip(".").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def url_refusal(url: str) -> str | None:
    """Why ``url`` may not be requested, or None when it may."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return "it is not a valid URL"
    if parts.scheme not in ("http", "https") or not host:
        return f"{parts.scheme or 'no'} scheme: only https URLs (or http to loopback) are used"
    if parts.scheme == "http" and not is_loopback(host):
        return (
            f"plain http to {host!r} would travel unencrypted; use https "
            "(http is allowed only for loopback addresses, such as the bundled emulator)"
        )
    return None


def safe_link(url: str) -> str:
    """A signed link as scheme, host and path: what may be logged (the query carries the signature)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"
