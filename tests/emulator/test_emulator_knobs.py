"""Protocol tests of the emulator's failure and billing knobs, driven with plain ``requests``/``urllib``."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

import airflow_provider_patsnap.testing.emulator as emulator_module
from airflow_provider_patsnap.testing.emulator import PatsnapEmulator
from airflow_provider_patsnap.testing.emulator.protocol import _double_round_trip
from tests.support import (
    P037_PATH as P037,
    R001_CREATE_NO_LOGO_PATH as R001_CREATE_NO_LOGO,
    R001_CREATE_PATH as R001_CREATE,
    R001_STATUS_PATH as R001_STATUS,
    R002_CREATE_NO_LOGO_PATH as R002_CREATE_NO_LOGO,
    R002_CREATE_PATH as R002_CREATE,
    R002_STATUS_PATH as R002_STATUS,
    call,
    create,
    download_url,
    get_token,
    poll_until_done,
)

P035 = "/patent-valuation-data/patent_valuation"
P040 = "/patent-valuation-data/economic_indicators"
PN = {"patent_number": "CN108977442B"}
MIB = 1024 * 1024


@pytest.fixture
def emu() -> Iterator[PatsnapEmulator]:
    with PatsnapEmulator(job_seconds=0.3) as emulator:
        yield emulator
        assert emulator.errors == []


def api(emu: PatsnapEmulator, method: str, path: str, **kwargs: Any) -> requests.Response:
    """A call in API-key mode (no token needed)."""
    headers = {"Authorization": f"Bearer {emu.api_key}"}
    return requests.request(method, emu.url + path, headers=headers, timeout=5, **kwargs)


def post_create(emu: PatsnapEmulator, path: str = R001_CREATE, **body: str) -> requests.Response:
    return api(emu, "POST", path, json={"report_type": "pdf", **body})


def assert_html_page(resp: requests.Response, status: int, title: str) -> None:
    assert resp.status_code == status
    assert resp.headers["Content-Type"] == "text/html"
    assert f"<title>{status} {title}</title>".encode() in resp.content
    assert b"nginx" in resp.content
    with pytest.raises(ValueError):
        resp.json()


# --------------------------------------------------------------------------------------------
# Gateway pages after a create
# --------------------------------------------------------------------------------------------


def test_create_gateway_timeouts_create_and_bill_the_job_but_answer_html(emu: PatsnapEmulator) -> None:
    emu.create_gateway_timeouts = 1
    invalid = post_create(emu, company_name="")  # nothing created: does not use up a gateway timeout
    assert invalid.json()["error_code"] == 68300004
    assert emu.create_gateway_timeouts == 1

    emu.create_gateway_timeouts = 4
    answers = [
        post_create(emu, R001_CREATE, company_name="Example Robotics Ltd"),
        post_create(emu, R001_CREATE_NO_LOGO, company_name="Example Robotics Ltd"),
        post_create(emu, R002_CREATE, patent_number="CN108977442B"),
        post_create(emu, R002_CREATE_NO_LOGO, patent_number="CN108977442B"),
    ]
    for resp in answers:
        assert_html_page(resp, 504, "Gateway Time-out")
    assert emu.create_gateway_timeouts == 0
    stats = emu.stats
    assert stats["creates"] == stats["billable_units"] == stats["gateway_timeouts"] == 4
    assert len(emu.job_ids()) == 4

    emu.create_gateway_timeouts, emu.create_gateway_status = 1, 502
    assert_html_page(post_create(emu, company_name="Acme"), 502, "Bad Gateway")
    ok = post_create(emu, company_name="Acme")
    assert ok.status_code == 200
    assert ok.json()["data"]["job_id"] == int(emu.job_ids()[-1])
    assert emu.stats["creates"] == 6

    # The jobs behind the gateway pages are real: they finish and download.
    first = emu.job_ids()[0]
    token = get_token(emu)
    assert requests.get(download_url(emu, token, first), timeout=5).content == emu.report_bytes(first)


def test_faulted_creates_do_not_use_up_gateway_timeouts() -> None:
    with PatsnapEmulator(fault_rate=1.0, create_gateway_timeouts=2) as emu:
        for _ in range(5):
            assert post_create(emu, company_name="Acme").status_code in (200, 429, 503)
        assert emu.create_gateway_timeouts == 2
        assert emu.stats["creates"] == 0


# --------------------------------------------------------------------------------------------
# Outage windows
# --------------------------------------------------------------------------------------------


def test_outage_on_creates_answers_html_and_creates_nothing(emu: PatsnapEmulator) -> None:
    emu.outage("create", 2.0)  # long enough for four local calls on a loaded machine
    started = time.monotonic()
    for path in (R001_CREATE, R001_CREATE_NO_LOGO, R002_CREATE, R002_CREATE_NO_LOGO):
        body = {"company_name": "Acme"} if "company" in path else PN
        assert_html_page(post_create(emu, path, **body), 500, "Internal Server Error")
    assert api(emu, "GET", P037, params=PN).json()["error_code"] == 0  # other endpoints unaffected
    assert api(emu, "POST", "/nope").status_code == 404
    stats = emu.stats
    assert stats["creates"] == 0
    assert stats["billed"] == {P037: 1}
    assert stats["outage_answers"] == 4
    assert stats["calls"][f"POST {R001_CREATE}"] == 1  # answered calls are still counted
    time.sleep(max(0.0, started + 2.05 - time.monotonic()))
    assert post_create(emu, company_name="Acme").json()["status"] is True
    assert emu.stats["outage_answers"] == 4


def test_outage_after_calls_with_a_status_on_one_indicator(emu: PatsnapEmulator) -> None:
    emu.outage("legal", 30, after_calls=2, status=503)
    assert api(emu, "GET", P037, params=PN).status_code == 200
    assert api(emu, "GET", P035, params=PN).status_code == 200  # not a call to the target
    assert api(emu, "GET", P037, params=PN).status_code == 200  # the 2nd call opens the window
    for _ in range(2):
        assert_html_page(api(emu, "GET", P037, params=PN), 503, "Service Temporarily Unavailable")
    assert api(emu, "GET", P035, params=PN).status_code == 200
    assert emu.billed(P037) == 2
    emu.end_outages()
    assert api(emu, "GET", P037, params=PN).status_code == 200

    emu.outage("indicators", 30, status=502)  # every one of P035-P040
    for path in (P035, P037, P040):
        assert_html_page(api(emu, "GET", path, params=PN), 502, "Bad Gateway")
    assert api(emu, "GET", R001_STATUS, params={"job_id": "1"}).json()["error_code"] == 68300004
    emu.end_outages()
    assert emu.billed() == 5  # P037 three times, P035 twice: none during the outages


def test_outage_on_status_and_token_endpoints(emu: PatsnapEmulator) -> None:
    token = get_token(emu)
    job_id = create(emu, token, company_name="Acme")
    emu.outage("status", 30)
    emu.outage("token", 30, status=504)
    assert_html_page(call(emu, "GET", R001_STATUS, token, params={"job_id": job_id}), 500, "Internal Server Error")
    resp = requests.post(
        f"{emu.url}/oauth/token",
        auth=(emu.client_id, emu.client_secret),
        data={"grant_type": "client_credentials"},
        timeout=5,
    )
    assert_html_page(resp, 504, "Gateway Time-out")
    assert emu.stats["tokens_issued"] == 1
    assert emu.stats["status_polls"] == 0
    assert call(emu, "GET", P037, token, params=PN).status_code == 200
    emu.end_outages()
    assert poll_until_done(emu, token, R001_STATUS, job_id)[-1]["job_status"] == 2
    get_token(emu)


def test_outage_on_the_cdn_answers_cos_xml(emu: PatsnapEmulator) -> None:
    token = get_token(emu)
    job_id = create(emu, token, company_name="Acme")
    url = download_url(emu, token, job_id)
    emu.outage("cdn", 30, after_calls=1, status=503)
    assert requests.get(url, timeout=5).status_code == 200  # opens the window
    resp = requests.get(url, timeout=5)
    assert resp.status_code == 503
    assert resp.headers["Content-Type"] == "application/xml"
    assert b"<Code>ServiceUnavailable</Code>" in resp.content
    assert re.search(rb"<RequestId>[0-9a-f]+</RequestId>", resp.content)
    assert call(emu, "GET", R001_STATUS, token, params={"job_id": job_id}).status_code == 200  # API unaffected
    emu.end_outages()
    emu.outage("cdn", 30)
    resp = requests.get(url, timeout=5)
    assert resp.status_code == 500
    assert b"<Code>InternalError</Code>" in resp.content
    emu.end_outages()
    assert requests.get(url, timeout=5).content == emu.report_bytes(job_id)
    stats = emu.stats
    assert stats["downloads_started"] == stats["downloads_completed"] == 2
    assert stats["outage_answers"] == 2


def test_outage_arguments_are_checked(emu: PatsnapEmulator) -> None:
    for target, seconds, after_calls, status in (
        ("bogus", 1, 0, 500),
        ("indicator", 1, 0, 500),
        ("create", -1, 0, 500),
        ("create", 1, -1, 500),
        ("create", 1, 0, 200),
    ):
        with pytest.raises(ValueError):
            emu.outage(target, seconds, after_calls=after_calls, status=status)
    emu.outage("create", 0)  # an empty window changes nothing
    assert post_create(emu, company_name="Acme").status_code == 200


# --------------------------------------------------------------------------------------------
# A slow, large download
# --------------------------------------------------------------------------------------------


def test_throttled_large_download_takes_the_expected_time_and_is_exact() -> None:
    size, bandwidth = 10 * MIB, 2 * MIB  # about 5 s
    with PatsnapEmulator(job_seconds=0, report_size=size, cdn_bandwidth=bandwidth) as emu:
        token = get_token(emu)
        job_id = create(emu, token, company_name="Big Report Co")
        url = download_url(emu, token, job_id)
        digest, received, half_at = hashlib.sha256(), 0, None
        started = time.monotonic()
        with urllib.request.urlopen(url, timeout=30) as resp:
            assert int(resp.headers["Content-Length"]) == size
            while chunk := resp.read(256 * 1024):
                digest.update(chunk)
                received += len(chunk)
                if half_at is None and received >= size // 2:
                    half_at = time.monotonic() - started
        elapsed = time.monotonic() - started
        assert received == size
        assert digest.hexdigest() == emu.report_sha256(job_id)
        assert 4.5 <= elapsed <= 12, elapsed  # 5 s at 2 MiB/s, loose bounds
        assert half_at is not None and 2.0 <= half_at <= 7, half_at  # paced all along, not in one burst
        assert emu.stats["bytes_served"] == size


# --------------------------------------------------------------------------------------------
# Tokens, job ids, file names
# --------------------------------------------------------------------------------------------


def test_single_active_token_revokes_the_clients_earlier_tokens(emu: PatsnapEmulator) -> None:
    first, second = get_token(emu), get_token(emu)
    assert call(emu, "GET", P037, first, params=PN).json()["error_code"] == 0  # off: both stay valid
    assert call(emu, "GET", P037, second, params=PN).json()["error_code"] == 0

    emu.single_active_token = True
    third = get_token(emu)
    for old in (first, second):
        resp = call(emu, "GET", P037, old, params=PN)
        assert resp.json() == {
            "status": False,
            "error_code": 67200003,
            "error_msg": "Access token expired or authentication error!",
        }
    assert call(emu, "GET", P037, third, params=PN).json()["error_code"] == 0
    fourth = get_token(emu)
    assert call(emu, "GET", P037, third, params=PN).json()["error_code"] == 67200003
    assert call(emu, "GET", P037, fourth, params=PN).json()["error_code"] == 0
    assert call(emu, "GET", P037, emu.api_key, params=PN, apikey=None).json()["error_code"] == 0  # keys unaffected

    emu.single_active_token = False
    get_token(emu)
    assert call(emu, "GET", P037, fourth, params=PN).json()["error_code"] == 0
    assert emu.stats["tokens_issued"] == 5


def test_echo_wrong_job_id_in_status_answers(emu: PatsnapEmulator) -> None:
    token = get_token(emu)
    job_id = create(emu, token, R002_CREATE_NO_LOGO, patent_number="CN108977442B")
    wrong = int(float(job_id))
    assert wrong != int(job_id)
    emu.echo_wrong_job_id = True
    seen = poll_until_done(emu, token, R002_STATUS, job_id)
    assert [entry["job_id"] for entry in seen] == [wrong] * len(seen)
    final = seen[-1]
    assert final["job_status"] == 2
    assert f"/{job_id}/" in urlsplit(final["download_url"]).path  # everything else is about the real job
    assert requests.get(final["download_url"], timeout=5).content == emu.report_bytes(job_id)
    raw = call(emu, "GET", R002_STATUS, token, params={"job_id": job_id}).text
    assert f'"job_id":{wrong},' in raw  # a JSON number
    # The wrong id is not a job: asking for it fails.
    assert call(emu, "GET", R002_STATUS, token, params={"job_id": str(wrong)}).json()["error_code"] == 68300004
    emu.echo_wrong_job_id = False
    assert call(emu, "GET", R002_STATUS, token, params={"job_id": job_id}).json()["data"]["job_id"] == int(job_id)


def test_double_round_trip_never_echoes_the_id_itself() -> None:
    assert _double_round_trip(1579434053399035905) == 1579434053399035904
    assert _double_round_trip(1579434053399035904) == 1579434053399035905  # exact as a double: +1


def disposition_name(url: str) -> str:
    disposition = parse_qs(urlsplit(url).query)["response-content-disposition"][0]
    return disposition.removeprefix("attachment;filename*=UTF-8''")


def test_colliding_file_names(emu: PatsnapEmulator) -> None:
    token = get_token(emu)
    emu.colliding_file_names = True
    pdf_a = create(emu, token, company_name="Alpha Ltd")
    pdf_b = create(emu, token, R002_CREATE_NO_LOGO, patent_number="CN108977442B")
    resp = call(emu, "POST", R001_CREATE, token, body={"report_type": "word", "company_name": "Gamma"})
    docx = str(resp.json()["data"]["job_id"])
    urls = {
        pdf_a: download_url(emu, token, pdf_a),
        pdf_b: download_url(emu, token, pdf_b, R002_STATUS),
        docx: download_url(emu, token, docx),
    }
    for job_id, expected in ((pdf_a, "report.pdf"), (pdf_b, "report.pdf"), (docx, "report.docx")):
        url = urls[job_id]
        assert urlsplit(url).path.endswith(f"/{job_id}/{expected}")
        assert disposition_name(url) == expected
        assert emu.job(job_id)["filename"] == expected
        download = requests.get(url, timeout=5)
        assert download.status_code == 200
        assert download.headers["Content-Disposition"] == f"attachment;filename*=UTF-8''{expected}"
        assert download.content == emu.report_bytes(job_id)
    assert emu.report_bytes(pdf_a) != emu.report_bytes(pdf_b)  # same name, different reports

    emu.colliding_file_names = False
    fresh = create(emu, token, company_name="Alpha Ltd")
    assert re.fullmatch(r"Alpha_Ltd_\d{4}_\d\d_\d\d\.pdf", disposition_name(download_url(emu, token, fresh)))


# --------------------------------------------------------------------------------------------
# Billing per endpoint and per subject
# --------------------------------------------------------------------------------------------


def test_billing_per_endpoint_and_creates_by_subject(emu: PatsnapEmulator) -> None:
    for _ in range(2):
        post_create(emu, R001_CREATE, company_name="Example Robotics Ltd")
    post_create(emu, R001_CREATE_NO_LOGO, credit_code="91110000802100433B", company_name="Example Robotics Ltd")
    post_create(emu, R002_CREATE, patent_number="CN108977442B")
    patent_id = PatsnapEmulator.patent_id_for("US11205304B2")
    post_create(emu, R002_CREATE_NO_LOGO, patent_id=patent_id)
    post_create(emu, R002_CREATE_NO_LOGO, patent_number="")  # invalid: not billed
    emu.create_gateway_timeouts = 1
    post_create(emu, R002_CREATE_NO_LOGO, patent_number="CN108977442B")  # billed, answered 504
    api(emu, "GET", P037, params={"patent_number": "CN108977442B,US1234UNKNOWN,EP3456789A1"})
    api(emu, "GET", P035, params={"patent_number": "CN108977442B", "patent_id": patent_id})
    api(emu, "GET", P040, params={"patent_number": "US1234UNKNOWN"})  # nothing returned, nothing billed

    stats = emu.stats
    assert stats["billed"] == {
        R001_CREATE: 2,
        R001_CREATE_NO_LOGO: 1,
        R002_CREATE: 1,
        R002_CREATE_NO_LOGO: 2,
        P037: 2,
        P035: 2,
    }
    assert stats["billable_units"] == emu.billed() == 10
    assert stats["creates"] == 6
    assert stats["creates_by_subject"] == {
        "R001 company_name=Example Robotics Ltd": 2,
        "R001 company_name=Example Robotics Ltd, credit_code=91110000802100433B": 1,
        "R002 patent_number=CN108977442B": 2,
        f"R002 patent_id={patent_id}": 1,
    }
    assert emu.billed("/legal_indicators") == 2
    assert emu.billed("/task/create-no-logo") == 3
    assert emu.billed("/task/create") == 3
    assert emu.billed("/economic_indicators") == 0
    emu.reset_stats()
    assert emu.stats["billed"] == emu.stats["creates_by_subject"] == {}
    assert emu.billed() == 0


# --------------------------------------------------------------------------------------------
# CLI flags
# --------------------------------------------------------------------------------------------


def test_cli_flags_for_the_knobs() -> None:
    project_root = Path(emulator_module.__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(project_root), os.environ.get("PYTHONPATH", "")])}
    flags = [
        *("--port", "0", "--job-seconds", "0", "--single-active-token", "--echo-wrong-job-id"),
        *("--colliding-file-names", "--create-gateway-timeouts", "1", "--create-gateway-status", "502"),
        *("--cdn-bandwidth", "1000000", "--outage", "token:0.5:1:503", "--outage", "legal:30"),
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", emulator_module.__name__, *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    watchdog = threading.Timer(15, proc.kill)
    watchdog.start()
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip().partition("=")[2]
        conn = json.loads(proc.stdout.readline().strip().partition("=")[2])
        token_url, auth = url + "/oauth/token", (conn["login"], conn["password"])
        grant = {"grant_type": "client_credentials"}
        first = requests.post(token_url, auth=auth, data=grant, timeout=5).json()["token"]
        assert requests.post(token_url, auth=auth, data=grant, timeout=5).status_code == 503  # outage
        time.sleep(0.6)
        second = requests.post(token_url, auth=auth, data=grant, timeout=5).json()["token"]
        headers = {"Authorization": f"Bearer {first}"}
        query = {"apikey": conn["login"], **PN}
        assert requests.get(url + P035, params=query, headers=headers, timeout=5).json()["error_code"] == 67200003
        headers = {"Authorization": f"Bearer {second}"}
        assert requests.get(url + P037, params=query, headers=headers, timeout=5).status_code == 500
        created = requests.post(
            url + R001_CREATE,
            params=query,
            headers=headers,
            json={"report_type": "pdf", "company_name": "A"},
            timeout=5,
        )
        assert created.status_code == 502
        proc.terminate()
        assert proc.wait(timeout=10) == 0
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_cli_rejects_a_bad_outage_spec() -> None:
    from airflow_provider_patsnap.testing.emulator.cli import _parser

    parser = _parser()
    args = parser.parse_args(["--outage", "cdn:10:2:503", "--outage", "create:1.5"])
    assert args.outage == [("cdn", 10.0, 2, 503), ("create", 1.5, 0, 500)]
    for bad in ("bogus:1", "create", "create:x", "create:1:2:200", "create:1:2:503:9"):
        with pytest.raises(SystemExit):
            parser.parse_args(["--outage", bad])


def test_generation_slots_model_patsnaps_queue() -> None:
    with PatsnapEmulator(job_seconds=0.6, generation_slots=1) as emu:
        token = get_token(emu)
        ids = [create(emu, token, company_name=f"Queue Co {i}") for i in range(3)]
        answers = [call(emu, "GET", R001_STATUS, token, params={"job_id": i}).json()["data"] for i in ids]
        assert [(a["job_status"], a["queue_num"]) for a in answers] == [(1, 0), (0, 1), (0, 2)]
        done = [emu.job(i)["done_at"] for i in ids]
        assert all(0.55 < b - a < 0.7 for a, b in itertools.pairwise(done))  # one generator: in turn
        poll_until_done(emu, token, R001_STATUS, ids[-1])
        assert time.time() >= done[-1] - 0.05
