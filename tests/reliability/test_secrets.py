"""Secrets stay secret through a whole DAG run: logs, stdout/stderr, XCom and exception texts.

The patent value DAG runs against an emulator with a known client secret and API key, once per
auth mode, with everything captured (``capfd`` for what ``dag.test()`` prints, ``caplog`` at DEBUG
for every logger). Neither the secret, the API key, any token the emulator issued, nor the signature
of any download link it handed out may appear anywhere. The CDN must never see an Authorization
header, and plain ``http://`` is refused for anything but loopback.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import responses

from airflow_provider_patsnap.errors import PatsnapInputError
from airflow_provider_patsnap.hooks.patsnap import PatsnapHook
from airflow_provider_patsnap.operators.reports import (
    PatsnapCreateEnterpriseReportOperator,
    PatsnapDownloadReportOperator,
)
from airflow_provider_patsnap.testing.emulator import PatsnapEmulator
from airflow_provider_patsnap.version_compat import AirflowFailException
from tests.support import conn_json, expect_failure, state_of, task_states, xcom_texts

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

KNOWN_SECRET = "cs-KNOWN-SECRET-7f3a9c21e4b84d0f"
KNOWN_KEY = "sk-KNOWN-KEY-52be0d9a8c174f63a1"


class SignatureLeak(AssertionError):
    """A download link's signature was found in captured output."""


@dataclass
class Captured:
    """Everything one DAG run (plus a few provoked errors) let out, and the values that must not be in it."""

    emulator: PatsnapEmulator
    job_id: str
    stdout: str = ""
    stderr: str = ""
    records: list[logging.LogRecord] = field(default_factory=list)
    xcoms: dict[tuple[str, int, str], str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)

    @property
    def credentials(self) -> list[str]:
        tokens = list(self.emulator._tokens)  # every token the emulator ever issued
        return [KNOWN_SECRET, KNOWN_KEY, *tokens]

    @property
    def signatures(self) -> list[str]:
        """Each link's ``sign`` value, as sent (percent-encoded) and decoded, and its bare HMAC."""
        out: set[str] = set()
        for link in self.links:
            raw_query = urlsplit(link).query
            for part in raw_query.split("&"):
                if part.startswith("sign="):
                    out.add(part.removeprefix("sign="))
            for sign in parse_qs(raw_query).get("sign", []):
                out.add(sign)
                out.add(quote(sign, safe=""))
                out.update(parse_qs(sign).get("q-signature", []))
        return sorted(v for v in out if v)

    def log_text(self) -> str:
        lines = []
        for record in self.records:
            lines.append(f"{record.name} {record.getMessage()}")
            if record.exc_info and record.exc_info[1] is not None:
                lines.append("".join(traceback.format_exception(*record.exc_info)))
        return "\n".join(lines)


def _fail_text(call: Callable[[], Any]) -> str:
    exc = expect_failure(call)
    return f"{exc}\n{exc!r}\n" + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


@pytest.fixture
def known_emulator() -> Iterator[PatsnapEmulator]:
    with PatsnapEmulator(job_seconds=0.6, token_ttl=2, client_secret=KNOWN_SECRET, api_key=KNOWN_KEY, seed=7) as emu:
        yield emu
    assert not emu.errors, emu.errors


def run_patent_value_dag(
    auth: str,
    emu: PatsnapEmulator,
    dagbag: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    *,
    urllib3_debug: bool = True,
) -> Captured:
    monkeypatch.setenv(
        "AIRFLOW_CONN_PATSNAP_DEFAULT",
        emu.connection_json(auth=auth, qps=0, retry_wait_min=0.01, retry_wait_max=0.05),
    )
    links: list[str] = []
    signed_url = emu._signed_url

    def recording_signed_url(job: Any) -> str:
        url = signed_url(job)
        links.append(url)
        return url

    monkeypatch.setattr(emu, "_signed_url", recording_signed_url)
    emu.truncate_first_download = True  # a retried download: its warning carries an exception text
    caplog.set_level(logging.DEBUG)
    if not urllib3_debug:  # its DEBUG request lines are the known leak, tested on their own below
        caplog.set_level(logging.INFO, logger="urllib3.connectionpool")

    run = dagbag.get_dag("patsnap_patent_value_report").test()

    assert state_of(run) == "success", task_states(run)
    (job_id,) = emu.job_ids()
    captured = Captured(emulator=emu, job_id=job_id, xcoms=xcom_texts(run.dag_id, run.run_id))

    # Provoke the errors a run can meet, and keep their texts.
    hook = PatsnapHook()
    captured.errors.append(_fail_text(lambda: hook.get_report_job("patent_value", "1")))  # 68300004
    dest = f"{tmp_path}/again/"
    download = PatsnapDownloadReportOperator(task_id="dl", job_id=job_id, report_kind="patent_value", destination=dest)
    stored = Path(urlsplit(download.execute({})["uri"]).path)
    stored.write_bytes(b"%PDF-1.4 another report\n")
    captured.errors.append(_fail_text(lambda: download.execute({})))  # exists with other content
    emu.truncate_downloads = 1
    captured.errors.append(
        _fail_text(lambda: PatsnapHook(max_retries=0).download_report("patent_value", job_id, f"{tmp_path}/cut/"))
    )
    emu.fault_rate = 1.0
    for _ in range(3):  # transient faults (68300008, a gateway's 503 page or a 429), no retries left
        captured.errors.append(_fail_text(lambda: PatsnapHook(max_retries=0).get_report_job("patent_value", job_id)))
    emu.fault_rate = 0.0
    if auth == "oauth":
        emu.expire_tokens()  # the next call meets a refused token and refreshes it

    # A link fetched after the run, as a user would (the brief's way to get one).
    captured.links = [*links, PatsnapHook().get_report_job("patent_value", job_id).download_url or ""]
    out, err = capfd.readouterr()
    captured.stdout, captured.stderr = out, err
    captured.records = list(caplog.records)
    return captured


def assert_absent(values: list[str], haystacks: dict[str, str], error: type[AssertionError] = AssertionError) -> None:
    found = [(where, value[:12] + "...") for value in values for where, text in haystacks.items() if value in text]
    if found:
        raise error(f"leaked (where, value prefix): {found}")


@pytest.mark.parametrize("auth", ["oauth", "api_key"])
def test_dag_run_keeps_secret_key_tokens_and_signatures_out_of_output_xcom_and_errors(
    airflow_db: None,
    dagbag: Any,
    known_emulator: PatsnapEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    auth: str,
) -> None:
    """Everything at DEBUG except urllib3's request lines (the test below checks those too)."""
    captured = run_patent_value_dag(
        auth, known_emulator, dagbag, tmp_path, monkeypatch, capfd, caplog, urllib3_debug=False
    )
    emu = known_emulator

    # The capture really saw the run (else "nothing leaked" proves nothing).
    everything = captured.stdout + captured.stderr + captured.log_text()
    assert captured.job_id in everything
    assert "Downloading R002 report" in everything
    assert urlsplit(captured.links[0]).path in everything  # the link was logged, as host + path only
    assert len(captured.xcoms) >= 3 and len(captured.errors) == 6
    assert captured.signatures and all(len(s) >= 40 for s in captured.signatures)
    if auth == "oauth":
        assert len(list(emu._tokens)) >= 2
    else:
        assert list(emu._tokens) == []  # API-key mode never asks for a token
        assert emu.stats["calls"].get("POST /oauth/token") is None

    haystacks = {
        "stdout": captured.stdout,
        "stderr": captured.stderr,
        "logs": captured.log_text(),
        **{f"xcom {key}": text for key, text in captured.xcoms.items()},
        **{f"error {i}": text for i, text in enumerate(captured.errors)},
    }
    assert_absent(captured.credentials, haystacks)
    assert_absent(captured.signatures, haystacks)

    stats = emu.stats
    assert stats["rejected_auth_header_downloads"] == 0, stats
    assert stats["calls"].get("GET /download", 0) >= 3 and stats["downloads_completed"] >= 2, stats


def test_dag_run_keeps_download_signatures_out_of_debug_logs(
    airflow_db: None,
    dagbag: Any,
    known_emulator: PatsnapEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    captured = run_patent_value_dag("oauth", known_emulator, dagbag, tmp_path, monkeypatch, capfd, caplog)
    output = {"stdout": captured.stdout, "stderr": captured.stderr, "logs": captured.log_text()}

    assert captured.signatures
    assert_absent(captured.credentials, output)  # a plain AssertionError: a real failure, not this xfail
    assert_absent(captured.signatures, output, error=SignatureLeak)


# --------------------------------------------------------------------------- plain http


@pytest.mark.parametrize(
    "host",
    [
        "http://connect.patsnap.com",
        "http://10.0.0.5:8080",
        "http://192.168.1.20",
        "http://0.0.0.0:8089",
        "http://localhost.evil.example",
        "http://127.0.0.1.nip.io:8089",
        "http://127.0.0.1@evil.example",
        "http://[2001:db8::1]:8089",
        "ftp://connect.patsnap.com",
    ],
)
@pytest.mark.parametrize("auth", ["oauth", "api_key"])
def test_plain_http_to_a_remote_host_is_refused_before_any_call(
    monkeypatch: pytest.MonkeyPatch, host: str, auth: str
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_PATSNAP_DEFAULT", conn_json(host, api_key=KNOWN_KEY if auth == "api_key" else None, qps=0)
    )
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        with pytest.raises(PatsnapInputError) as info:
            PatsnapHook().config  # noqa: B018
        assert info.value.parameter == "host" and str(info.value).startswith("host: ")

        exc = expect_failure(lambda: PatsnapCreateEnterpriseReportOperator(task_id="c", company_name="A").execute({}))
        assert isinstance(exc, AirflowFailException) and "host" in str(exc), str(exc)
        assert KNOWN_KEY not in str(exc)
        assert len(rsps.calls) == 0


@pytest.mark.parametrize(
    ("host", "base_url"),
    [
        ("http://127.0.0.1:8089", "http://127.0.0.1:8089"),
        ("http://localhost:8089", "http://localhost:8089"),
        ("http://[::1]:8089", "http://[::1]:8089"),
        ("http://127.0.0.2:8089", "http://127.0.0.2:8089"),
        ("https://connect.patsnap.com", "https://connect.patsnap.com"),
        ("connect.patsnap.com", "https://connect.patsnap.com"),
    ],
)
def test_loopback_http_and_https_are_accepted(monkeypatch: pytest.MonkeyPatch, host: str, base_url: str) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_PATSNAP_DEFAULT", conn_json(host))
    assert PatsnapHook().config.base_url == base_url
