"""hooks/_config.py: an Airflow connection turned into the settings the hook runs with."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_patsnap.errors import PatsnapInputError
from airflow_provider_patsnap.hooks._config import (
    DEFAULT_CONCURRENCY,
    DEFAULT_HOST,
    DEFAULT_MAX_RETRIES,
    DEFAULT_QPS,
    DEFAULT_TIMEOUT,
    PatsnapConfig,
    base_url_from,
    config_from_connection,
)
from airflow_provider_patsnap.hooks.patsnap import PatsnapHook
from tests.support import API_KEY, CLIENT_ID, CLIENT_SECRET, FAKE_HOST, conn_json


def connection(
    host: str | None = "https://patsnap.test",
    *,
    port: int | None = None,
    login: str | None = CLIENT_ID,
    password: str | None = CLIENT_SECRET,
    **extra: Any,
) -> SimpleNamespace:
    """What ``config_from_connection`` reads of an Airflow ``Connection``."""
    return SimpleNamespace(host=host, port=port, login=login, password=password, extra_dejson=extra)


def refused(call: Any, parameter: str) -> PatsnapInputError:
    with pytest.raises(PatsnapInputError) as info:
        call()
    assert info.value.parameter == parameter and str(info.value).startswith(f"{parameter}: ")
    return info.value


# --------------------------------------------------------------------------- base URL


@pytest.mark.parametrize(
    ("host", "port", "scheme", "expected"),
    [
        (None, None, None, DEFAULT_HOST),
        ("   ", None, None, DEFAULT_HOST),
        ("patsnap.test", None, None, "https://patsnap.test"),
        ("patsnap.test", 8443, None, "https://patsnap.test:8443"),
        ("https://patsnap.test:9443", 8443, None, "https://patsnap.test:9443"),  # the URL's own port wins
        ("https://patsnap.test/api/", None, None, "https://patsnap.test/api"),
        ("https://user:pw@patsnap.test", None, None, "https://patsnap.test"),  # no credentials in the URL
        ("patsnap.test", None, " HTTPS ", "https://patsnap.test"),
        ("https://connect.patsnap.com", 443, None, "https://connect.patsnap.com"),  # the form's Port 443
        ("https://connect.patsnap.com:443/", None, None, "https://connect.patsnap.com"),
    ],
)
def test_base_url_defaults_to_https(host: str | None, port: int | None, scheme: str | None, expected: str) -> None:
    assert base_url_from(host, port, scheme) == expected


@pytest.mark.parametrize(
    ("host", "port", "scheme", "expected"),
    [
        ("http://127.0.0.1:8089", None, None, "http://127.0.0.1:8089"),
        ("127.0.0.2", 8080, "http", "http://127.0.0.2:8080"),
        ("http://[::1]:8089", None, None, "http://[::1]:8089"),
        ("[::1]", 8089, "http", "http://[::1]:8089"),
        ("localhost", 8089, "http", "http://localhost:8089"),
    ],
)
def test_plain_http_is_accepted_for_loopback(host: str, port: int | None, scheme: str | None, expected: str) -> None:
    assert base_url_from(host, port, scheme) == expected


@pytest.mark.parametrize(
    ("host", "scheme"),
    [
        ("http://connect.patsnap.com", None),
        ("http://10.0.0.5:8080", None),
        ("connect.patsnap.com", "http"),
        ("ftp://x", None),
        ("http://127.0.0.1.example.com", None),
    ],
)
def test_plain_http_to_a_remote_host_is_refused_naming_host(host: str, scheme: str | None) -> None:
    exc = refused(lambda: base_url_from(host, None, scheme), "host")
    assert DEFAULT_HOST in str(exc)  # says what to use instead


def test_the_hook_refuses_remote_http_before_any_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_PATSNAP_DEFAULT", conn_json("http://connect.patsnap.com"))
    refused(lambda: PatsnapHook().config, "host")
    monkeypatch.setenv("AIRFLOW_CONN_PATSNAP_DEFAULT", conn_json("http://127.0.0.1:8089"))
    assert PatsnapHook().config.base_url == "http://127.0.0.1:8089"


# --------------------------------------------------------------------------- credentials


def test_oauth_connection() -> None:
    config = config_from_connection(connection())
    assert config.uses_oauth
    assert (config.client_id, config.client_secret, config.api_key) == (CLIENT_ID, CLIENT_SECRET, None)


def test_api_key_wins_over_login_and_password() -> None:
    config = config_from_connection(connection(api_key=f"  {API_KEY} "))
    assert not config.uses_oauth
    assert (config.client_id, config.client_secret, config.api_key) == (None, None, API_KEY)


@pytest.mark.parametrize(
    "conn",
    [
        connection(login=None, password=None),
        connection(login=CLIENT_ID, password=None),
        connection(login="  ", password=CLIENT_SECRET),
        connection(login=None, password=None, api_key="   "),
    ],
)
def test_missing_credentials_name_the_connection(conn: SimpleNamespace) -> None:
    exc = refused(lambda: config_from_connection(conn), "connection")
    assert "login/password" in str(exc) and "api_key" in str(exc)


# --------------------------------------------------------------------------- extras


def test_defaults() -> None:
    config = config_from_connection(connection())
    assert config.timeout == DEFAULT_TIMEOUT and config.max_retries == DEFAULT_MAX_RETRIES
    assert config.qps == DEFAULT_QPS and config.max_concurrency == DEFAULT_CONCURRENCY
    assert config.api_key_in_query is False
    assert (config.retry_wait_min, config.retry_wait_max) == (1.0, 60.0)


def test_extras_are_read_from_strings_or_numbers() -> None:
    conn = connection(
        timeout="12.5", max_retries="2", qps=0.5, max_concurrency="8", retry_wait_min="0.1", retry_wait_max=3
    )
    config = config_from_connection(conn)
    assert config.timeout == 12.5 and config.max_retries == 2 and type(config.max_retries) is int
    assert config.qps == 0.5 and config.max_concurrency == 8
    assert (config.retry_wait_min, config.retry_wait_max) == (0.1, 3.0)


def test_zero_and_empty_extras() -> None:
    config = config_from_connection(connection(qps=0, timeout=0, max_concurrency=0, max_retries=0, retry_wait_min=""))
    assert config.qps is None  # 0 disables client-side pacing
    assert config.timeout == DEFAULT_TIMEOUT  # no timeout would hang a task: fall back
    assert config.max_concurrency == 1
    assert config.max_retries == 0  # one attempt, no retries
    assert config.retry_wait_min == 1.0


@pytest.mark.parametrize(
    ("name", "value", "detail"),
    [
        ("timeout", "thirty", "must be a number"),
        ("max_retries", "2.5", "must be a number"),
        ("max_concurrency", [4], "must be a number"),
        ("qps", "-1", "must not be negative"),
        ("retry_wait_max", -0.5, "must not be negative"),
    ],
)
def test_bad_extras_name_the_extra(name: str, value: Any, detail: str) -> None:
    exc = refused(lambda: config_from_connection(connection(**{name: value})), f"extra.{name}")
    assert detail in str(exc) and repr(value) in str(exc)


@pytest.mark.parametrize(
    ("value", "expected"), [(True, True), ("true", True), ("1", True), (" Yes ", True), ("on", True)]
)
def test_api_key_in_query_flag(value: Any, expected: bool) -> None:
    assert config_from_connection(connection(api_key=API_KEY, api_key_in_query=value)).api_key_in_query is expected


@pytest.mark.parametrize("value", [False, "false", "0", "no", "", None])
def test_api_key_in_query_is_off_unless_clearly_on(value: Any) -> None:
    assert config_from_connection(connection(api_key=API_KEY, api_key_in_query=value)).api_key_in_query is False


def test_hook_arguments_override_extras_and_none_means_not_given() -> None:
    conn = connection(timeout=10, max_retries=4, qps=3)
    config = config_from_connection(conn, {"timeout": 5, "max_retries": None, "qps": 0})
    assert config.timeout == 5 and config.max_retries == 4 and config.qps is None


def test_extras_from_a_real_airflow_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_PATSNAP_DEFAULT", conn_json(qps="1.5", max_retries=1, api_key_in_query="true"))
    config = PatsnapHook(timeout=7).config
    assert (config.qps, config.max_retries, config.timeout, config.api_key_in_query) == (1.5, 1, 7, True)
    assert config.base_url == FAKE_HOST


# --------------------------------------------------------------------------- secrets


def test_secrets_are_the_values_to_mask() -> None:
    assert config_from_connection(connection()).secrets == (CLIENT_SECRET,)
    assert config_from_connection(connection(api_key=API_KEY)).secrets == (API_KEY,)
    assert PatsnapConfig(base_url=DEFAULT_HOST, client_id="c").secrets == ()


def test_a_url_password_is_masked_as_written_and_decoded() -> None:
    url = "postgresql+psycopg2://ledger:p%40ss%2Fw0rd@db.internal/patsnap"
    secrets = config_from_connection(connection(ledger_url=url)).secrets
    assert {url, "p%40ss%2Fw0rd", "p@ss/w0rd"} <= set(secrets) and len(secrets) == len(set(secrets))


def test_repr_never_shows_a_secret() -> None:
    for config in (config_from_connection(connection()), config_from_connection(connection(api_key=API_KEY))):
        assert CLIENT_SECRET not in repr(config) and API_KEY not in repr(config)


def test_principal_names_the_account_without_its_key() -> None:
    assert config_from_connection(connection()).principal == f"client:{CLIENT_ID}"
    principal = config_from_connection(connection(api_key=API_KEY)).principal
    assert API_KEY not in principal and principal.startswith("api-key:")
    longer = config_from_connection(connection(api_key=API_KEY + "X")).principal
    assert longer != principal and API_KEY not in longer


@pytest.mark.parametrize("host", ["https://patsnap.example:abc", "https://patsnap.example:99999"])
def test_a_bad_port_names_the_host_field(host: str) -> None:
    with pytest.raises(PatsnapInputError, match=r"^host: .*(invalid port|not a valid URL)"):
        base_url_from(host, None, None)


def test_a_bare_ipv6_loopback_host_is_bracketed() -> None:
    assert base_url_from("::1", 8089, "http") == "http://[::1]:8089"


def test_a_short_api_key_never_shows_in_the_principal() -> None:
    config = config_from_connection(connection(api_key="sk-ab"))
    assert "sk-ab" not in config.principal and config.principal.startswith("api-key:")
    other = config_from_connection(connection(api_key="sk-ac"))
    assert other.principal != config.principal


def test_an_api_key_in_the_password_field_with_no_login_is_the_api_key() -> None:
    config = config_from_connection(connection(login=None, password=API_KEY))
    assert config.api_key == API_KEY and not config.uses_oauth and config.client_secret is None
    # With a client id, the password is a client secret, whatever it looks like.
    oauth = config_from_connection(connection(login=CLIENT_ID, password="sk-looks-like-a-key"))
    assert oauth.uses_oauth and oauth.client_secret == "sk-looks-like-a-key"


def test_port_443_on_the_form_is_the_same_account_ledger_and_budget() -> None:
    """The README asks for Port 443 (Airflow 3.3.2's Test button needs a stored port): filling it in must
    not open a second account in the ledger, the token cache or the shared rate budget."""
    without = config_from_connection(connection("https://connect.patsnap.com"))
    with_port = config_from_connection(connection("https://connect.patsnap.com", port=443))
    assert with_port.base_url == without.base_url == "https://connect.patsnap.com"
    assert with_port.account == without.account
