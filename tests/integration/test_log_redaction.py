"""Real httpx and urllib3 log records, on the task (requests) and trigger (httpx) paths, in both auth
modes with ``api_key_in_query`` on: no credential, token or link signature survives in them."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from airflow_provider_patsnap.hooks._drivers import close_shared_async_client
from airflow_provider_patsnap.hooks.patsnap import PatsnapHook
from airflow_provider_patsnap.testing.emulator import PatsnapEmulator

SECRET = "cs-REDACTION-SECRET-0f3a9c21e4b8"
KEY = "sk-REDACTION-KEY-52be0d9a8c174f"


@pytest.mark.parametrize("auth", ["oauth", "api_key"])
def test_client_library_logs_carry_no_secret(
    auth: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    with PatsnapEmulator(job_seconds=0, client_secret=SECRET, api_key=KEY) as emu:
        monkeypatch.setenv("AIRFLOW_CONN_PATSNAP_DEFAULT", emu.connection_json(auth=auth, qps=0, api_key_in_query=True))
        for name in ("urllib3", "httpx", "httpcore"):
            caplog.set_level(logging.DEBUG, logger=name)

        hook = PatsnapHook()
        job_id = hook.create_enterprise_report(company_name="Example Robotics Ltd")
        link = hook.get_report_job("enterprise", job_id).download_url or ""
        hook.download_report("enterprise", job_id, f"{tmp_path}/")

        async def poll() -> None:
            try:
                await PatsnapHook().aget_report_job("enterprise", job_id)
            finally:
                await close_shared_async_client()

        asyncio.run(poll())
        tokens = list(emu._tokens)

    messages = [f"{r.name}: {r.getMessage()}" for r in caplog.records]
    text = "\n".join(messages)
    signature = parse_qs(urlsplit(link).query)["sign"][0]
    secrets = [SECRET, KEY, *tokens, signature, parse_qs(signature)["q-signature"][0]]
    leaked = [s[:12] for s in secrets if s in text or s in caplog.text]
    assert not leaked, leaked

    # The records were there, rewritten: not silenced.
    urllib3_lines = [m for m in messages if m.startswith("urllib3.connectionpool") and "status?" in m]
    httpx_lines = [m for m in messages if m.startswith("httpx") and "HTTP Request" in m]
    assert urllib3_lines and httpx_lines, messages
    assert any("sign=***" in m for m in messages if m.startswith("urllib3")), messages
    if auth == "api_key":
        assert all("apikey=***" in m for m in urllib3_lines + httpx_lines), urllib3_lines + httpx_lines
    else:
        assert tokens and any(f"apikey={emu.client_id}" in m or "apikey=***" in m for m in httpx_lines)
