"""Protocol tests of PatsnapEmulator itself, driven with plain ``requests`` (no provider code)."""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import requests

import airflow_provider_patsnap.testing.emulator as emulator_module
from airflow_provider_patsnap.testing.emulator import PatsnapEmulator
from tests.support import (
    DOCX_TYPE,
    P037_PATH as P037,
    PN,
    R001_CREATE_NO_LOGO_PATH as R001_CREATE_NO_LOGO,
    R001_CREATE_PATH as R001_CREATE,
    R001_STATUS_PATH as R001_STATUS,
    R002_CREATE_NO_LOGO_PATH as R002_CREATE_NO_LOGO,
    R002_CREATE_PATH as R002_CREATE,
    R002_STATUS_PATH as R002_STATUS,
    call,
    check_pdf,
    create,
    download_url,
    envelope_code,
    get_token,
    indicators,
    poll_until_done,
    raw_get,
)


@pytest.fixture
def emu() -> Iterator[PatsnapEmulator]:
    with PatsnapEmulator(job_seconds=0.3) as emulator:
        yield emulator
        assert emulator.errors == []


# --------------------------------------------------------------------------------------------
# Authentication
# --------------------------------------------------------------------------------------------


def test_token_issue_and_expiry() -> None:
    with PatsnapEmulator(token_ttl=0.5) as emu:
        before = time.time() * 1000
        resp = requests.post(
            f"{emu.url}/oauth/token",
            auth=(emu.client_id, emu.client_secret),
            data={"grant_type": "client_credentials"},
            timeout=5,
        )
        payload = resp.json()
        assert resp.status_code == 200
        assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
        assert set(payload) == {"token", "token_type", "expires_in", "status", "issued_at"}
        assert payload["token_type"] == "BearerToken"
        assert payload["status"] == "approved"
        assert payload["expires_in"] == 1  # ceil(0.5)
        assert isinstance(payload["issued_at"], str)
        assert before - 1000 <= int(payload["issued_at"]) <= time.time() * 1000 + 1000
        token = payload["token"]
        assert indicators(emu, token, **PN) == 0
        time.sleep(0.6)
        expired = call(emu, "GET", P037, token, params=PN)
        assert expired.status_code == 200
        assert expired.json() == {
            "status": False,
            "error_code": 67200003,
            "error_msg": "Access token expired or authentication error!",
        }
        fresh = get_token(emu)
        assert indicators(emu, fresh, **PN) == 0
        emu.expire_tokens()
        assert indicators(emu, fresh, **PN) == 67200003
        assert emu.stats["tokens_issued"] == 2


def test_token_endpoint_rejects_bad_credentials_and_grant_type(emu: PatsnapEmulator) -> None:
    url = f"{emu.url}/oauth/token"
    grant = {"grant_type": "client_credentials"}
    wrong = requests.post(url, auth=(emu.client_id, emu.client_secret + "x"), data=grant, timeout=5)
    assert wrong.status_code == 401
    assert wrong.json()["error_code"] == 67200003
    missing = requests.post(url, data=grant, timeout=5)
    assert missing.status_code == 401
    assert missing.json()["status"] is False
    password_grant = {"grant_type": "password"}
    bad_grant = requests.post(url, auth=(emu.client_id, emu.client_secret), data=password_grant, timeout=5)
    assert bad_grant.status_code == 200
    assert bad_grant.json() == {"status": False, "error_code": 67200015, "error_msg": "Grant type error"}
    assert requests.get(url, auth=(emu.client_id, emu.client_secret), timeout=5).status_code == 404
    assert emu.stats["tokens_issued"] == 0
    assert emu.stats["auth_rejected"] == 2


def test_oauth_apikey_rules(emu: PatsnapEmulator) -> None:
    token = get_token(emu)
    params = {"patent_number": "CN108977442B"}
    assert envelope_code(call(emu, "GET", P037, token, params=params)) == 0
    no_apikey = call(emu, "GET", P037, token, params=params, apikey=None)
    assert no_apikey.json() == {"status": False, "error_code": 67200008, "error_msg": "apikey not Pass"}
    assert envelope_code(call(emu, "GET", P037, token, params=params, apikey="someone-else")) == 67200009
    assert envelope_code(call(emu, "GET", P037, None, params=params)) == 67200003
    assert envelope_code(call(emu, "GET", P037, "not-a-token", params=params)) == 67200003
    assert envelope_code(call(emu, "GET", P037, emu.client_secret, params=params)) == 67200003
    # The token only works as a Bearer header, not in other places.
    resp = requests.get(emu.url + P037, params={**params, "apikey": emu.client_id, "token": token}, timeout=5)
    assert envelope_code(resp) == 67200003
    assert emu.stats["auth_rejected"] == 6
    assert emu.stats["billable_units"] == 1


def test_api_key_mode(emu: PatsnapEmulator) -> None:
    params = {"patent_number": "CN108977442B"}
    assert emu.api_key.startswith("sk-")
    assert envelope_code(call(emu, "GET", P037, emu.api_key, params=params, apikey=None)) == 0
    assert envelope_code(call(emu, "GET", P037, emu.api_key, params=params, apikey=emu.api_key)) == 0
    mismatch = call(emu, "GET", P037, emu.api_key, params=params, apikey="sk-wrong")
    assert mismatch.json() == {"status": False, "error_code": 67200202, "error_msg": "apikey auth error"}
    assert envelope_code(call(emu, "GET", P037, "sk-wrong", params=params, apikey=None)) == 67200003
    # The documented alternative: the key as the `apikey` URL parameter, without a header.
    assert envelope_code(call(emu, "GET", P037, None, params=params, apikey=emu.api_key)) == 0
    job_id = create(emu, emu.api_key, R002_CREATE_NO_LOGO, patent_number="CN108977442B")
    status = requests.get(
        emu.url + R002_STATUS,
        params={"job_id": job_id},
        headers={"Authorization": f"Bearer {emu.api_key}"},
        timeout=5,
    )
    assert status.json()["data"]["job_status"] in (0, 1, 2)


def test_custom_credentials() -> None:
    with PatsnapEmulator(client_id="my id", client_secret="s3cr:et/?", api_key="sk-fixed") as emu:
        assert (emu.client_id, emu.client_secret, emu.api_key) == ("my id", "s3cr:et/?", "sk-fixed")
        token = get_token(emu)
        assert envelope_code(call(emu, "GET", P037, token, params={"patent_number": "EP1234567B1"})) == 0
        uri = urlsplit(emu.connection_uri())
        assert (unquote(uri.username or ""), unquote(uri.password or "")) == ("my id", "s3cr:et/?")
    assert PatsnapEmulator().client_secret != PatsnapEmulator().client_secret


# --------------------------------------------------------------------------------------------
# Report tasks
# --------------------------------------------------------------------------------------------


def test_create_returns_every_digit_of_a_json_number(emu: PatsnapEmulator) -> None:
    token = get_token(emu)
    ids = []
    for path, body in (
        (R001_CREATE, {"company_name": "Acme"}),
        (R001_CREATE_NO_LOGO, {"credit_code": "91110000802100433B"}),
        (R002_CREATE, {"patent_number": "CN108977442B"}),
        (R002_CREATE_NO_LOGO, {"patent_id": PatsnapEmulator.patent_id_for("CN108977442B")}),
    ):
        resp = call(emu, "POST", path, token, body={"report_type": "word", **body})
        wire = r'\{"data":\{"job_id":\d{19}\},"status":true,"error_code":0\}'
        assert re.fullmatch(wire, resp.text), resp.text
        digits = resp.text.split(":")[2].split("}")[0]
        job_id = int(digits)
        assert resp.json()["data"]["job_id"] == job_id  # a JSON number, not a string
        assert job_id > 2**53
        assert int(float(job_id)) != job_id  # a float round-trip would corrupt it
        ids.append(digits)
    assert len(set(ids)) == 4
    assert emu.job(ids[0])["kind"] == "enterprise"
    assert emu.job(ids[0])["logo"] is True
    assert emu.job(ids[1])["logo"] is False
    assert emu.job(ids[2])["kind"] == "patent_value"
    assert emu.job(ids[3])["params"]["patent_id"] == PatsnapEmulator.patent_id_for("CN108977442B")
    assert emu.job_ids() == ids
    stats = emu.stats
    assert stats["creates"] == 4
    assert stats["creates_by_kind"] == {"enterprise": 2, "patent_value": 2}
    assert stats["billable_units"] == 4


@pytest.mark.parametrize(
    ("path", "body", "code"),
    [
        (R001_CREATE, {"report_type": "xls", "company_name": "Acme"}, 68300004),
        (R001_CREATE, {"report_type": "PDF", "company_name": "Acme"}, 68300004),
        (R001_CREATE, {"company_name": "Acme"}, 68300004),
        (R001_CREATE, {"report_type": "pdf"}, 68300004),
        (R001_CREATE, {"report_type": "pdf", "company_name": ""}, 68300004),
        (R001_CREATE, {"report_type": "pdf", "company_name": 42}, 68300004),
        (R002_CREATE_NO_LOGO, {"report_type": "pdf"}, 68300004),
        (R002_CREATE_NO_LOGO, {"report_type": "pdf", "patent_id": "x", "patent_number": "CN1"}, 68300004),
        (R002_CREATE, {"report_type": "word", "company_name": "Acme"}, 68300004),
        (R001_CREATE, "not json", 68300007),
        (R001_CREATE, ["report_type", "pdf"], 68300007),
    ],
)
def test_create_validation(emu: PatsnapEmulator, path: str, body: Any, code: int) -> None:
    headers = {"Authorization": f"Bearer {emu.api_key}"}
    if body == "not json":
        form = "report_type=pdf&company_name=Acme"
        resp = requests.post(emu.url + path, data=form, headers=headers, timeout=5)
    else:
        resp = requests.post(emu.url + path, json=body, headers=headers, timeout=5)
    assert resp.status_code == 200
    assert resp.json()["status"] is False
    assert resp.json()["error_code"] == code
    assert emu.stats["creates"] == 0
    assert emu.job_ids() == []


def test_status_progression_and_download_link() -> None:
    with PatsnapEmulator(job_seconds=0.9) as emu:
        token = get_token(emu)
        job_id = create(emu, token, company_name="Acme Robotics GmbH")
        seen = poll_until_done(emu, token, R001_STATUS, job_id)
        statuses = [entry["job_status"] for entry in seen]
        assert statuses == sorted(statuses)
        assert statuses[0] == 0
        assert 1 in statuses
        assert statuses[-1] == 2
        for entry in seen:
            assert entry["job_id"] == int(job_id)
            assert ("download_url" in entry) == (entry["job_status"] == 2)
            assert "abnormal_cause" not in entry
            if entry["job_status"] == 0:
                assert entry["queue_num"] >= 1
            else:
                assert entry["queue_num"] == 0
        queue = [entry["queue_num"] for entry in seen if entry["job_status"] == 0]
        assert queue == sorted(queue, reverse=True)
        url = seen[-1]["download_url"]
        parts = urlsplit(url)
        assert url.startswith(emu.cdn_url + "/tffi-export/")
        assert emu.cdn_url != emu.url
        expected_path = rf"/tffi-export/\d{{14}}/{job_id}/Acme_Robotics_GmbH_\d{{4}}_\d\d_\d\d\.pdf"
        assert re.fullmatch(expected_path, parts.path)
        query = parse_qs(parts.query)
        sign = parse_qs(query["sign"][0])
        assert sign["q-sign-algorithm"] == ["sha1"]
        assert sign["q-ak"] == ["AKIDemulator"]
        assert sign["q-header-list"] == ["host"]
        assert sign["q-url-param-list"] == ["response-content-disposition"]
        assert re.fullmatch(r"[0-9a-f]{40}", sign["q-signature"][0])
        start, end = (int(part) for part in sign["q-sign-time"][0].split(";"))
        assert end - start == 604800
        assert sign["q-key-time"] == sign["q-sign-time"]
        filename = parts.path.rsplit("/", 1)[1]
        assert query["response-content-disposition"] == [f"attachment;filename*=UTF-8''{filename}"]
        stats = emu.stats
        assert stats["status_polls"] == len(seen)
        assert stats["calls"]["GET /innovation/company-report/job_id/status"] == len(seen)


def test_status_rejects_unknown_mangled_or_other_kind_ids(emu: PatsnapEmulator) -> None:
    token = get_token(emu)
    job_id = create(emu, token, company_name="Acme")
    mangled = str(int(float(job_id)))
    assert mangled != job_id
    for status_path, value in (
        (R002_STATUS, job_id),  # created as an enterprise report
        (R001_STATUS, mangled),
        (R001_STATUS, f"{float(job_id):.15E}"),
        (R001_STATUS, "1579434053399035904"),
        (R001_STATUS, ""),
    ):
        resp = call(emu, "GET", status_path, token, params={"job_id": value})
        assert resp.json() == {"status": False, "error_code": 68300004, "error_msg": "Invalid parameter!"}
    assert envelope_code(call(emu, "GET", R001_STATUS, token)) == 68300004
    assert envelope_code(call(emu, "GET", R001_STATUS, token, params={"job_id": job_id})) == 0


def test_failing_jobs_end_in_status_3() -> None:
    with PatsnapEmulator(job_seconds=0.3, fail_identifiers=["CN200000001B"]) as emu:
        token = get_token(emu)
        for path, status_path, body in (
            (R001_CREATE, R001_STATUS, {"company_name": "Acme fail Ltd"}),
            (R002_CREATE_NO_LOGO, R002_STATUS, {"patent_number": "CN200000001B"}),
        ):
            job_id = create(emu, token, path, **body)
            seen = poll_until_done(emu, token, status_path, job_id)
            final = seen[-1]
            assert final["job_status"] == 3
            assert final["abnormal_cause"]
            assert "download_url" not in final
            assert {entry["job_status"] for entry in seen} <= {0, 1, 3}
            assert emu.job(job_id)["status"] == 3
        ok_job = create(emu, token, R002_CREATE_NO_LOGO, patent_number="CN200000002B")
        assert poll_until_done(emu, token, R002_STATUS, ok_job)[-1]["job_status"] == 2


# --------------------------------------------------------------------------------------------
# Downloads
# --------------------------------------------------------------------------------------------


def test_pdf_download_is_unauthenticated_and_byte_exact(emu: PatsnapEmulator) -> None:
    token = get_token(emu)
    job_id = create(emu, token, company_name="Acme (Shenzhen) Co")
    url = download_url(emu, token, job_id)
    resp = requests.get(url, timeout=5)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "application/pdf"
    assert int(resp.headers["Content-Length"]) == len(resp.content)
    filename = urlsplit(url).path.rsplit("/", 1)[1]
    assert resp.headers["Content-Disposition"] == f"attachment;filename*=UTF-8''{filename}"
    check_pdf(resp.content)
    assert job_id.encode() in resp.content
    assert b"Acme \\(Shenzhen\\) Co" in resp.content
    assert resp.content == emu.report_bytes(job_id)
    assert hashlib.sha256(resp.content).hexdigest() == emu.report_sha256(job_id)
    assert requests.get(url, timeout=5).content == resp.content  # deterministic, link reusable
    head = requests.head(url, timeout=5)
    assert head.status_code == 200
    assert head.headers["Content-Length"] == resp.headers["Content-Length"]
    stats = emu.stats
    assert stats["downloads_started"] == stats["downloads_completed"] == 2
    assert stats["calls"]["GET /download"] == 2


def test_download_rejects_auth_header_and_bad_signatures(emu: PatsnapEmulator) -> None:
    token = get_token(emu)
    job_id = create(emu, token, company_name="Acme")
    other_id = create(emu, token, company_name="Other")
    url = download_url(emu, token, job_id)

    with_auth = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert with_auth.status_code == 400
    assert b"<Code>InvalidArgument</Code>" in with_auth.content
    assert b"Authorization header not allowed" in with_auth.content

    signature_match = re.search(r"q-signature%3D([0-9a-f]{40})", url)
    assert signature_match
    signature = signature_match.group(1)
    flipped = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    for tampered in (
        url.replace(signature, flipped),
        url.replace(".pdf?", ".docx?"),
        url.replace(f"/{job_id}/", f"/{other_id}/"),
        re.sub(r"q-sign-time%3D(\d+)%3B(\d+)", lambda m: f"q-sign-time%3D{m[1]}%3B{int(m[2]) + 9}", url),
        url.replace("UTF-8%27%27", "UTF-8%27%27x"),
    ):
        assert tampered != url
        resp = requests.get(tampered, timeout=5)
        assert resp.status_code == 403, tampered
        assert b"<Code>SignatureDoesNotMatch</Code>" in resp.content
    unsigned = requests.get(url.split("?")[0], timeout=5)
    assert unsigned.status_code == 403
    assert requests.get(url, timeout=5).status_code == 200
    stats = emu.stats
    assert stats["rejected_auth_header_downloads"] == 1
    assert stats["downloads_started"] == 1


def test_expired_link_is_refused() -> None:
    with PatsnapEmulator(job_seconds=0, link_ttl=0) as emu:
        token = get_token(emu)
        url = download_url(emu, token, create(emu, token, company_name="Acme"))
        resp = requests.get(url, timeout=5)
        assert resp.status_code == 403
        assert b"Request has expired" in resp.content
        emu.link_ttl = 3600  # a fresh status poll signs a fresh link
        job_id = create(emu, token, company_name="Acme")
        assert requests.get(download_url(emu, token, job_id), timeout=5).status_code == 200


def test_docx_report_is_a_valid_package(emu: PatsnapEmulator) -> None:
    token = get_token(emu)
    body = {"report_type": "word", "company_name": "华为技术有限公司"}
    resp = call(emu, "POST", R001_CREATE, token, body=body)
    job_id = str(resp.json()["data"]["job_id"])
    url = download_url(emu, token, job_id)
    filename = urlsplit(url).path.rsplit("/", 1)[1]
    assert re.fullmatch(r"[A-Za-z0-9_-]+_\d{4}_\d\d_\d\d\.docx", filename)
    assert job_id in filename  # a non-ASCII name falls back to the job id
    download = requests.get(url, timeout=5)
    assert download.status_code == 200
    assert download.headers["Content-Type"] == DOCX_TYPE
    assert download.content == emu.report_bytes(job_id)
    with zipfile.ZipFile(io.BytesIO(download.content)) as package:
        assert package.testzip() is None
        names = package.namelist()
        assert {"[Content_Types].xml", "_rels/.rels", "word/document.xml"} <= set(names)
        document = package.read("word/document.xml").decode("utf-8")
    assert "华为技术有限公司" in document
    assert job_id in document


def test_report_size_pads_pdfs_exactly(emu: PatsnapEmulator) -> None:
    token = get_token(emu)
    for size in [*range(2000, 2066), 99_998, 100_000, 65_536 * 3 + 1]:
        emu.report_size = size
        job_id = create(emu, token, company_name=f"Padded {size}")
        data = emu.report_bytes(job_id)
        assert len(data) == size
        check_pdf(data)
        assert hashlib.sha256(data).hexdigest() == emu.report_sha256(job_id)

    emu.report_size = 8 * 1024 * 1024 + 123
    job_id = create(emu, token, company_name="Large")
    resp = requests.get(download_url(emu, token, job_id), stream=True, timeout=10)
    digest, total = hashlib.sha256(), 0
    for chunk in resp.iter_content(256 * 1024):
        digest.update(chunk)
        total += len(chunk)
    assert total == int(resp.headers["Content-Length"]) == emu.report_size
    assert digest.hexdigest() == emu.report_sha256(job_id)


def test_truncated_downloads_stop_short_of_content_length() -> None:
    with PatsnapEmulator(job_seconds=0, truncate_first_download=True, report_size=300_000) as emu:
        token = get_token(emu)
        job_id = create(emu, token, company_name="Acme")
        url = download_url(emu, token, job_id)
        status, headers, body, complete = raw_get(url)
        assert status == 200
        assert not complete
        assert int(headers["Content-Length"]) == 300_000
        assert len(body) == 150_000
        assert body == emu.report_bytes(job_id)[:150_000]
        status, _, body, complete = raw_get(url)  # only the first attempt per job is cut
        assert complete
        assert len(body) == 300_000

        emu.truncate_first_download = False
        emu.truncate_downloads = 1
        assert raw_get(url)[3] is False
        assert raw_get(url)[3] is True
        assert emu.truncate_downloads == 0
        stats = emu.stats
        assert stats["downloads_started"] == 4
        assert stats["downloads_completed"] == 2


# --------------------------------------------------------------------------------------------
# P037 legal indicators
# --------------------------------------------------------------------------------------------


def test_legal_indicators(emu: PatsnapEmulator) -> None:
    key = emu.api_key
    too_many = ",".join(f"CN{100000 + i}B" for i in range(101))
    assert indicators(emu, key, apikey=None, patent_number=too_many) == 68300004
    ids = ",".join(PatsnapEmulator.patent_id_for(f"US{100000 + i}") for i in range(101))
    assert indicators(emu, key, apikey=None, patent_id=ids) == 68300004
    assert indicators(emu, key, apikey=None) == 68300004
    assert indicators(emu, key, apikey=None, patent_number=" , ") == 68300004
    assert emu.stats["billable_units"] == 0

    patent_id = PatsnapEmulator.patent_id_for("EP3456789A1")
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", patent_id)
    assert PatsnapEmulator.patent_id_for("EP3456789A1") == patent_id
    params = {
        "patent_number": "CN108977442B,US1234UNKNOWN,cn108977442b,XX12,US20230123456A1",
        "patent_id": f"{patent_id},00000000-0000-0000-0000-000000000000,not-an-id",
    }
    resp = call(emu, "GET", P037, key, params=params, apikey=None)
    records = resp.json()["data"]
    assert [record["pn"] for record in records] == ["CN108977442B", "US20230123456A1", "EP3456789A1"]
    assert records[0]["patent_id"] == PatsnapEmulator.patent_id_for("CN108977442B")
    assert records[2]["patent_id"] == patent_id
    for record in records:
        value = record["patsnap_legal_value"]
        assert value["legal_status"] in {
            "Published", "Examining", "Granted", "Abandoned", "Withdrawn", "Expired", "Non-Payment", "Ceased",
        }  # fmt: skip
        assert value["has_reexam_invalid"] in ("TRUE", "FALSE")
        for name in ("granted_no", "litigation_no", "patent_age_day", "invalid_fail_no", "grant_waiting_day"):
            assert type(value[name]) is int
        assert type(value["invalid_success_no"]) is int
        for name in ("in_application_ratio", "remaining_time_ratio", "avg_originality_index"):
            assert type(value[name]) is float
        assert all(isinstance(country, str) for country in value["litigation_country"])
    assert call(emu, "GET", P037, key, params=params, apikey=None).json()["data"] == records  # deterministic
    assert emu.stats["billable_units"] == 6

    hundred = ",".join(f"JP{200000 + i}A" for i in range(100))
    batch = call(emu, "GET", P037, key, params={"patent_number": hundred}, apikey=None)
    assert len(batch.json()["data"]) == 100
    assert emu.stats["billable_units"] == 106


# --------------------------------------------------------------------------------------------
# Rate limits, faults, latency, routing
# --------------------------------------------------------------------------------------------


def test_qps_limit_answers_429_with_retry_after() -> None:
    with PatsnapEmulator(qps_limit=2) as emu:
        params = {"patent_number": "CN108977442B"}
        answers = [call(emu, "GET", P037, emu.api_key, params=params, apikey=None) for _ in range(5)]
        limited = [resp for resp in answers if resp.status_code == 429]
        assert [resp.status_code for resp in answers[:2]] == [200, 200]
        assert len(limited) >= 2
        for resp in limited:
            assert resp.headers["Retry-After"] == "1"
            assert resp.json()["error_code"] == 67200002
            assert resp.json()["status"] is False
        for _ in range(4):  # the token endpoint is not limited
            get_token(emu)
        assert emu.stats["rate_limited"] == len(limited)
        time.sleep(1.05)
        assert call(emu, "GET", P037, emu.api_key, params=params, apikey=None).status_code == 200

    with PatsnapEmulator(qps_limit=1, rate_limit_http_status=200) as emu:
        call(emu, "GET", P037, emu.api_key, params=PN, apikey=None)
        resp = call(emu, "GET", P037, emu.api_key, params=PN, apikey=None)
        assert resp.status_code == 200
        assert resp.headers["Retry-After"] == "1"
        assert resp.json()["error_code"] == 67200002


def test_fault_rate_one_only_faults_and_never_creates() -> None:
    with PatsnapEmulator(fault_rate=1.0, job_seconds=0) as emu:
        token = get_token(emu)  # the token endpoint never faults
        kinds = set()
        for _ in range(30):
            resp = call(emu, "POST", R001_CREATE, token, body={"report_type": "pdf", "company_name": "Acme"})
            if resp.status_code == 503:
                assert resp.headers["Content-Type"].startswith("text/html")
                assert b"503 Service Temporarily Unavailable" in resp.content
                kinds.add("503")
            elif resp.status_code == 429:
                assert resp.headers["Retry-After"] == "1"
                assert resp.json()["error_code"] == 67200002
                kinds.add("429")
            else:
                assert resp.status_code == 200
                assert resp.json() == {
                    "status": False,
                    "error_code": 68300008,
                    "error_msg": "Service error, please try again later!",
                }
                kinds.add("68300008")
        assert kinds == {"503", "429", "68300008"}
        assert call(emu, "GET", P037, token, params=PN).status_code in (200, 429, 503)
        stats = emu.stats
        assert stats["faults"] == 31
        assert stats["creates"] == 0
        assert stats["billable_units"] == 0
        assert emu.job_ids() == []

        emu.fault_rate = 0.0
        job_id = create(emu, token, company_name="Acme")
        assert emu.job_ids() == [job_id]


def test_latency_delays_api_answers() -> None:
    with PatsnapEmulator(latency=0.25) as emu:
        started = time.monotonic()
        get_token(emu)
        assert time.monotonic() - started >= 0.25
        emu.latency = 0
        started = time.monotonic()
        get_token(emu)
        assert time.monotonic() - started < 0.25


def test_unknown_paths_and_methods_are_404(emu: PatsnapEmulator) -> None:
    headers = {"Authorization": f"Bearer {emu.api_key}"}
    for method, path in (
        ("GET", "/nope"),
        ("GET", R001_CREATE),
        ("POST", R001_STATUS),
        ("DELETE", P037),
        ("GET", R001_STATUS + "/"),
    ):
        resp = requests.request(method, emu.url + path, headers=headers, timeout=5)
        assert resp.status_code == 404
        assert resp.json() == {"status": False, "error_code": 67200101, "error_msg": "Path Not Found"}
    assert emu.stats["calls"]["GET /nope"] == 1


def test_stats_snapshot_and_reset(emu: PatsnapEmulator) -> None:
    token = get_token(emu)
    job_id = create(emu, token, R002_CREATE_NO_LOGO, patent_number="CN108977442B")
    url = download_url(emu, token, job_id, R002_STATUS)
    requests.get(url, timeout=5)
    call(emu, "GET", P037, token, params={"patent_number": "CN108977442B,US1234567B2"})
    stats = emu.stats
    polls = stats["status_polls"]
    assert stats["calls"]["POST /oauth/token"] == 1
    assert stats["calls"]["POST /patent-valuation-data/patent-report/task/create-no-logo"] == 1
    assert stats["calls"]["GET /patent-valuation-data/patent-report/job_id/status"] == polls
    assert stats["calls"]["GET /patent-valuation-data/legal_indicators"] == 1
    assert stats["calls"]["GET /download"] == 1
    assert stats["tokens_issued"] == 1
    assert stats["creates_by_kind"] == {"enterprise": 0, "patent_value": 1}
    assert stats["billable_units"] == 3
    assert stats["downloads_started"] == stats["downloads_completed"] == 1
    assert stats["faults"] == stats["rate_limited"] == stats["auth_rejected"] == 0
    stats["calls"].clear()
    assert emu.stats["calls"]["GET /download"] == 1  # a copy, not the live dict
    emu.reset_stats()
    cleared = emu.stats
    assert cleared["calls"] == {}
    assert cleared["creates"] == cleared["billable_units"] == cleared["tokens_issued"] == 0
    assert emu.job(job_id)["status"] == 2  # jobs survive a stats reset


# --------------------------------------------------------------------------------------------
# Lifecycle, connections and CLI
# --------------------------------------------------------------------------------------------


def request_on(conn: http.client.HTTPConnection) -> bytes:
    conn.request("GET", "/nope")
    return conn.getresponse().read()


def test_keep_alive_and_quick_idempotent_stop() -> None:
    emu = PatsnapEmulator().start()
    assert emu.start() is emu
    conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=5)
    for _ in range(3):
        conn.request("GET", "/nope")
        resp = conn.getresponse()
        assert resp.version == 11
        assert resp.status == 404
        resp.read()
    first_socket = conn.sock
    conn.request("GET", "/nope")
    conn.getresponse().read()
    assert conn.sock is first_socket  # the same connection served every request
    started = time.monotonic()
    emu.stop()
    assert time.monotonic() - started < 2
    emu.stop()
    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        request_on(conn)
    conn.close()
    with pytest.raises(requests.ConnectionError):
        requests.get(emu.url + "/nope", timeout=2)


def test_connection_uri_and_json(emu: PatsnapEmulator) -> None:
    uri = urlsplit(emu.connection_uri(timeout=30, verify=False))
    assert uri.scheme == "patsnap"
    assert (uri.hostname, uri.port) == ("127.0.0.1", emu.port)
    assert (unquote(uri.username or ""), unquote(uri.password or "")) == (emu.client_id, emu.client_secret)
    loopback = "127.0.0.0/8,::1/128"  # its CDN's links are on loopback: the connection allows them
    assert parse_qs(uri.query) == {
        "scheme": ["http"],
        "timeout": ["30"],
        "verify": ["false"],
        "allow_private_addresses": [loopback],
    }
    key_uri = urlsplit(emu.connection_uri("api_key"))
    assert key_uri.username is None
    assert parse_qs(key_uri.query) == {
        "scheme": ["http"],
        "api_key": [emu.api_key],
        "allow_private_addresses": [loopback],
    }

    conn = json.loads(emu.connection_json(qps=5))
    assert conn == {
        "conn_type": "patsnap",
        "host": emu.url,
        "login": emu.client_id,
        "password": emu.client_secret,
        "extra": {"allow_private_addresses": loopback, "qps": 5},
    }
    key_conn = json.loads(emu.connection_json("api_key"))
    assert key_conn == {
        "conn_type": "patsnap",
        "host": emu.url,
        "extra": {"api_key": emu.api_key, "allow_private_addresses": loopback},
    }
    with pytest.raises(ValueError, match="auth"):
        emu.connection_uri("basic")


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_cli_prints_connection_and_stops_on_signal(stop_signal: int) -> None:
    # <root>/airflow_provider_patsnap/testing/emulator/__init__.py (the emulator is a package)
    project_root = Path(emulator_module.__file__).resolve().parents[3]
    assert (project_root / "airflow_provider_patsnap" / "__init__.py").is_file(), project_root
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(project_root), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, "-m", emulator_module.__name__, "--port", "0", "--job-seconds", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    watchdog = threading.Timer(15, proc.kill)
    watchdog.start()
    try:
        assert proc.stdout is not None
        url_line = proc.stdout.readline().strip()
        conn_line = proc.stdout.readline().strip()
        assert re.fullmatch(r"PATSNAP_EMULATOR_URL=http://127\.0\.0\.1:\d+", url_line), url_line
        name, _, value = conn_line.partition("=")
        assert name == "AIRFLOW_CONN_PATSNAP_DEFAULT"
        conn = json.loads(value)
        assert conn["host"] == url_line.partition("=")[2]
        resp = requests.post(
            conn["host"] + "/oauth/token",
            auth=(conn["login"], conn["password"]),
            data={"grant_type": "client_credentials"},
            timeout=5,
        )
        assert resp.status_code == 200
        assert resp.json()["token_type"] == "BearerToken"
        proc.send_signal(stop_signal)
        assert proc.wait(timeout=10) == 0
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
