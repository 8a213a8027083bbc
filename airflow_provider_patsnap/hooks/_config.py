"""Turning an Airflow connection into the settings the hook runs with."""

from __future__ import annotations

import hashlib
import ipaddress
import math
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from airflow_provider_patsnap.errors import PatsnapInputError
from airflow_provider_patsnap.hooks._urls import Allowance, allowance_from, url_refusal

DEFAULT_HOST = "https://connect.patsnap.com"
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_RETRIES = 5
DEFAULT_QPS = 2.0
DEFAULT_CONCURRENCY = 4
#: PatSnap's JSON answers are kilobytes; anything past this is refused unread (extra ``max_response_bytes``).
DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024
#: Reports are megabytes; a download past this is refused (extra ``max_download_bytes``).
DEFAULT_MAX_DOWNLOAD_BYTES = 1024 * 1024 * 1024
#: An indicator batch whose answer was lost is sent again at most this often (extra ``max_ambiguous_replays``).
DEFAULT_AMBIGUOUS_REPLAYS = 1
#: Budget days are counted in this time zone (PatSnap's statement is in China's).
DEFAULT_BUDGET_TIMEZONE = "Asia/Shanghai"
#: One download attempt may take at most this long, however slowly bytes trickle in (extra ``download_timeout``).
DEFAULT_DOWNLOAD_TIMEOUT = 900.0
#: Every connection extra the provider reads (``scheme`` only matters for URI-form connections).
EXTRAS = (
    "api_key",
    "api_key_in_query",
    "timeout",
    "max_retries",
    "qps",
    "max_concurrency",
    "retry_wait_min",
    "retry_wait_max",
    "rate_limit_url",
    "allow_private_addresses",
    "max_response_bytes",
    "max_download_bytes",
    "download_timeout",
    "max_ambiguous_replays",
    "ledger_url",
    "ledger_conn_id",
    "budget_daily_units",
    "budget_monthly_units",
    "budget_timezone",
    "scheme",
)


@dataclass(frozen=True)
class PatsnapConfig:
    """Resolved connection settings. Secrets are excluded from ``repr``."""

    base_url: str
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    api_key: str | None = field(default=None, repr=False)
    timeout: float = DEFAULT_TIMEOUT
    max_retries: int = DEFAULT_MAX_RETRIES
    qps: float | None = DEFAULT_QPS
    max_concurrency: int = DEFAULT_CONCURRENCY
    api_key_in_query: bool = False
    retry_wait_min: float = 1.0
    retry_wait_max: float = 60.0
    #: redis:// URL of a budget every process of the deployment shares (then ``qps`` is the account's).
    rate_limit_url: str | None = field(default=None, repr=False)
    #: Links from PatSnap may point at internal IP literals: all (True) or these networks.
    allow_private_addresses: Allowance = False
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES
    download_timeout: float = DEFAULT_DOWNLOAD_TIMEOUT
    #: Times an indicator batch whose answer was lost (it may have been billed) is sent again.
    max_ambiguous_replays: int = DEFAULT_AMBIGUOUS_REPLAYS
    #: The ledger's database: a SQLAlchemy URL (may carry a password), or an Airflow connection holding it.
    ledger_url: str | None = field(default=None, repr=False)
    ledger_conn_id: str | None = None
    budget_daily_units: int | None = None
    budget_monthly_units: int | None = None
    budget_timezone: str = DEFAULT_BUDGET_TIMEZONE

    @property
    def has_ledger(self) -> bool:
        return bool(self.ledger_url or self.ledger_conn_id)

    @property
    def account(self) -> str:
        """The account in the ledger: the host and a hash of the principal (never a secret)."""
        return f"{self.base_url}#{hashlib.sha256(self.principal.encode()).hexdigest()[:16]}"

    @property
    def uses_oauth(self) -> bool:
        return self.api_key is None

    @property
    def secrets(self) -> tuple[str, ...]:
        """The values to register with the secrets masker."""
        redis_password = urlsplit(self.rate_limit_url).password if self.rate_limit_url else None
        ledger_password = urlsplit(self.ledger_url).password if self.ledger_url and "://" in self.ledger_url else None
        # A URL's password as written (percent-encoded) and as a driver's error may echo it (decoded).
        passwords = [p for raw in (redis_password, ledger_password) if raw for p in (raw, unquote(raw))]
        return tuple(dict.fromkeys(s for s in (self.client_secret, self.api_key, self.ledger_url, *passwords) if s))

    @property
    def principal(self) -> str:
        """Who the calls are billed to, for keying caches (never the secret itself)."""
        if self.api_key:
            return "api-key:" + hashlib.sha256(self.api_key.encode()).hexdigest()[:12]
        return f"client:{self.client_id}"


DEFAULT_PORTS = {"https": 443, "http": 80}


def base_url_from(host: str | None, port: int | None, scheme: str | None) -> str:
    """``https://host[:port]``; plain ``http`` is accepted only for loopback (the emulator)."""
    raw = (host or "").strip() or DEFAULT_HOST
    if "://" not in raw:
        if _is_bare_ipv6(raw):
            raw = f"[{raw}]"
        raw = f"{(scheme or 'https').strip().lower()}://{raw}"
    # Credentials belong in login/password, never in the URL (nor in this function's messages).
    raw = re.sub(r"^([^/]*//)[^/@?#]*@", r"\1", raw)
    # The administrator chose this host, so internal addresses (a gateway, a proxy) are fine.
    refusal = url_refusal(raw, allow_private=True)
    if refusal:
        raise PatsnapInputError("host", f"{raw!r}: {refusal}; use e.g. {DEFAULT_HOST}")
    parts = urlsplit(raw)
    hostname = parts.hostname or ""
    netloc = hostname if ":" not in hostname else f"[{hostname}]"
    try:
        effective_port = parts.port or port
    except ValueError:
        raise PatsnapInputError("host", f"{raw!r} has an invalid port; use e.g. {DEFAULT_HOST}:443") from None
    # The scheme's own port is no port: "https://host" and Port 443 are one account, one ledger, one budget.
    if effective_port and effective_port != DEFAULT_PORTS.get(parts.scheme):
        netloc = f"{netloc}:{effective_port}"
    return f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}"


def _is_bare_ipv6(text: str) -> bool:
    try:
        return ipaddress.ip_address(text).version == 6
    except ValueError:
        return False


def _number(extra: dict[str, Any], name: str, default: float | None, cast: type = float) -> Any:
    value = extra.get(name)
    if value is None or value == "":
        return default
    try:
        number = cast(value)
    except (TypeError, ValueError):
        raise PatsnapInputError(f"extra.{name}", f"must be a number, got {value!r}") from None
    if number < 0:
        raise PatsnapInputError(f"extra.{name}", f"must not be negative, got {value!r}")
    return number


def _positive(extra: dict[str, Any], name: str, default: float, cast: type = float) -> Any:
    number = _number(extra, name, default, cast)
    if not number or not math.isfinite(number):
        raise PatsnapInputError(f"extra.{name}", f"must be a positive number, got {extra.get(name)!r}")
    return number


def _allowance(value: Any) -> Allowance:
    try:
        return allowance_from(value)
    except ValueError as exc:
        raise PatsnapInputError(
            "extra.allow_private_addresses", f"give true, false or a list of networks like ['10.8.0.0/16']: {exc}"
        ) from None


def _ledger_settings(extra: dict[str, Any]) -> dict[str, Any]:
    url = str(extra.get("ledger_url") or "").strip() or None
    conn_id = str(extra.get("ledger_conn_id") or "").strip() or None
    daily = _number(extra, "budget_daily_units", None, int)
    monthly = _number(extra, "budget_monthly_units", None, int)
    zone = str(extra.get("budget_timezone") or DEFAULT_BUDGET_TIMEZONE).strip()
    try:
        ZoneInfo(zone)
    except (ValueError, ZoneInfoNotFoundError):
        raise PatsnapInputError("extra.budget_timezone", f"{zone!r} is not a time zone, e.g. Asia/Shanghai") from None
    if (daily is not None or monthly is not None) and not (url or conn_id):
        name = "budget_daily_units" if daily is not None else "budget_monthly_units"
        raise PatsnapInputError(
            f"extra.{name}", "a budget needs a ledger to count against: set the extra ledger_url or ledger_conn_id"
        )
    return {
        "ledger_url": url,
        "ledger_conn_id": conn_id,
        "budget_daily_units": daily,
        "budget_monthly_units": monthly,
        "budget_timezone": zone,
    }


def _flag(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def config_from_connection(conn: Any, overrides: dict[str, Any] | None = None) -> PatsnapConfig:
    """Build a ``PatsnapConfig`` from an Airflow ``Connection`` (plus hook-argument overrides)."""
    extra: dict[str, Any] = dict(conn.extra_dejson or {})
    extra.update({k: v for k, v in (overrides or {}).items() if v is not None})
    api_key = (extra.get("api_key") or "").strip() or None
    login = (conn.login or "").strip() or None
    password = conn.password or None
    if api_key is None and login is None and password and password.strip().startswith("sk-"):
        api_key = password.strip()  # an API key typed into the form's password field
    if api_key is None and not (login and password):
        raise PatsnapInputError(
            "connection",
            "set login/password (OAuth client id/secret), or an sk- API key (in the password with no login, "
            "or as extra 'api_key') on the patsnap connection",
        )
    qps = _number(extra, "qps", DEFAULT_QPS)
    return PatsnapConfig(
        base_url=base_url_from(conn.host, conn.port, extra.get("scheme")),
        client_id=None if api_key else login,
        client_secret=None if api_key else password,
        api_key=api_key,
        timeout=_number(extra, "timeout", DEFAULT_TIMEOUT) or DEFAULT_TIMEOUT,
        max_retries=_number(extra, "max_retries", DEFAULT_MAX_RETRIES, int),
        qps=qps or None,
        max_concurrency=max(1, _number(extra, "max_concurrency", DEFAULT_CONCURRENCY, int)),
        api_key_in_query=_flag(extra.get("api_key_in_query", False)),
        retry_wait_min=_number(extra, "retry_wait_min", 1.0),
        retry_wait_max=_number(extra, "retry_wait_max", 60.0),
        rate_limit_url=str(extra.get("rate_limit_url") or "").strip() or None,
        allow_private_addresses=_allowance(extra.get("allow_private_addresses")),
        max_response_bytes=_positive(extra, "max_response_bytes", DEFAULT_MAX_RESPONSE_BYTES, int),
        max_download_bytes=_positive(extra, "max_download_bytes", DEFAULT_MAX_DOWNLOAD_BYTES, int),
        download_timeout=_positive(extra, "download_timeout", DEFAULT_DOWNLOAD_TIMEOUT),
        max_ambiguous_replays=_number(extra, "max_ambiguous_replays", DEFAULT_AMBIGUOUS_REPLAYS, int),
        **_ledger_settings(extra),
    )
