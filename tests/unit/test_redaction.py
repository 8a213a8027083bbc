"""redaction.py: remote text bounded and shown, credentials masked in every form they travel in."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from airflow_provider_patsnap.redaction import (
    clean_message,
    forget_secrets,
    redact,
    register_basic_credentials,
    register_secret,
    remote_text,
)

SECRET = "Zq7vK2mP9xR4/tY8wB3nL6cH+0aa=="


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    forget_secrets()
    yield
    forget_secrets()


@pytest.mark.parametrize(
    "form",
    [
        SECRET,
        quote(SECRET, safe=""),
        quote(SECRET, safe="").replace("%2F", "%2f").replace("%2B", "%2b").replace("%3D", "%3d"),
        quote(SECRET, safe="/"),
        SECRET.replace("/", "\\/"),  # as JSON escapes it
        base64.b64encode(SECRET.encode()).decode(),
    ],
    ids=["plain", "url-encoded", "lower-case-encoded", "path-encoded", "json-escaped", "base64"],
)
def test_a_registered_secret_is_masked_in_every_form_it_travels_in(form: str) -> None:
    register_secret(SECRET)
    assert redact(f"the server echoed {form} back") == "the server echoed *** back"


def test_the_basic_form_of_client_credentials_is_masked() -> None:
    register_basic_credentials("client-id", SECRET)
    basic = base64.b64encode(f"client-id:{SECRET}".encode()).decode()
    assert basic not in redact(f"got Authorization {basic}") and "client-id:" + SECRET not in redact(
        f"client-id:{SECRET}"
    )


@pytest.mark.parametrize(
    "param", ["sign", "q-signature", "X-Amz-Signature", "Signature", "Policy", "Key-Pair-Id", "auth_key", "sig"]
)
def test_signed_link_parameters_are_masked(param: str) -> None:
    assert redact(f"GET https://cdn.example/r.pdf?a=1&{param}=abcdef123456&b=2") == (
        f"GET https://cdn.example/r.pdf?a=1&{param}=***&b=2"
    )


def test_a_secret_cut_in_two_by_the_first_bound_does_not_leak_its_first_half() -> None:
    register_secret(SECRET)
    for padding in range(1000, 2400, 7):  # wherever the long text would be cut
        text = remote_text("x" * padding + SECRET + "y" * 5000)
        assert SECRET[:8] not in text, padding


def test_remote_text_is_bounded_and_its_controls_shown() -> None:
    text = remote_text("\u202eevil\x1b[2J\n" + "a" * 10_000)
    assert text.startswith("\\u202eevil\\u001b[2J\\u000a") and "more characters cut" in text and len(text) < 400


def test_an_exception_message_is_bounded_and_cannot_rewrite_a_log_line() -> None:
    message = clean_message("bad content type \x1b[31mRED\x85FAKE LINE " + "z" * 10_000)
    assert "\x1b" not in message and "\x85" not in message and len(message) < 4100
