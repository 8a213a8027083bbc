"""Reports and JSON Lines archived to S3 for real: moto's S3 on loopback, reached through Airflow's
``ObjectStoragePath`` and an Airflow AWS connection, checked with boto3 against the same server.

Buckets are versioned, so ``list_object_versions`` shows every object ever written: "no partial
object was ever published" is checked, not just "none is left". A socket guard refuses any
connection or DNS lookup that is not loopback, so nothing here can reach AWS.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import io
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_patsnap.operators.indicators import PatsnapLegalIndicatorsOperator
from airflow_provider_patsnap.operators.reports import (
    PatsnapCreateEnterpriseReportOperator,
    PatsnapDownloadReportOperator,
)
from airflow_provider_patsnap.sensors.report_job import PatsnapReportJobSensor
from airflow_provider_patsnap.testing.emulator import PatsnapEmulator
from airflow_provider_patsnap.version_compat import AirflowFailException
from tests.integration.s3_server import LoopbackOnly, LoopbackS3

if os.environ.get("PATSNAP_REQUIRE_EXTRAS"):
    # CI's Airflow 3 run installs the s3 extra: there, a missing piece must fail, not skip.
    import airflow.providers.amazon  # noqa: F401
    import moto.server  # noqa: F401
    import s3fs  # noqa: F401
else:
    pytest.importorskip("moto", reason="needs the test extra (moto[server]) and the s3 extra")
    pytest.importorskip("moto.server", reason="needs moto's server (moto[server])")
    pytest.importorskip("s3fs", reason="needs the s3 extra (apache-airflow-providers-amazon[s3fs])")
    pytest.importorskip("airflow.providers.amazon", reason="needs apache-airflow-providers-amazon")

pytestmark = [pytest.mark.s3, pytest.mark.timeout(60)]

CONN_ID = "archive_s3"
DAY = "2026-01-01"


# --------------------------------------------------------------------------- fixtures


def _forget_cached_stores() -> None:
    """Airflow caches one filesystem per (protocol, connection): never reuse one across servers."""
    for module in ("airflow.sdk.io.store", "airflow.io.store"):
        with contextlib.suppress(ImportError, AttributeError):
            cache = __import__(module, fromlist=["_STORE_CACHE"])._STORE_CACHE
            for alias in [a for a in cache if a.endswith(f"-{CONN_ID}")]:
                cache.pop(alias, None)


@pytest.fixture(scope="module")
def network_guard() -> Iterator[LoopbackOnly]:
    guard = LoopbackOnly().install()
    try:
        yield guard
    finally:
        guard.uninstall()


@pytest.fixture(scope="module")
def s3(network_guard: LoopbackOnly, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackS3]:
    """One S3 server for the module; ``AIRFLOW_CONN_ARCHIVE_S3`` and fake AWS credentials point at it."""
    nowhere = tmp_path_factory.mktemp("aws") / "absent"
    with LoopbackS3() as server, pytest.MonkeyPatch.context() as mp:
        mp.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", server.airflow_connection_json())
        # Whatever the process falls back to must be fake and local too: no profile, no IMDS, no proxy.
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        mp.setenv("AWS_CONFIG_FILE", str(nowhere))
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(nowhere))
        mp.setenv("NO_PROXY", "127.0.0.1,localhost")
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_CA_BUNDLE"):
            mp.delenv(name, raising=False)
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
            mp.delenv(name, raising=False)
        _forget_cached_stores()
        try:
            yield server
        finally:
            _forget_cached_stores()


@pytest.fixture
def bucket(s3: LoopbackS3, network_guard: LoopbackOnly) -> Iterator[str]:
    """A fresh versioned bucket per test; afterwards, prove only loopback was contacted."""
    name = s3.new_bucket()
    yield name
    assert network_guard.refused == [], f"non-loopback network use: {network_guard.refused}"
    assert all(host.startswith("127.") for host, _ in network_guard.contacted), network_guard.contacted
    assert ("127.0.0.1", s3.port) in network_guard.contacted


def finished_enterprise_job(emulator: PatsnapEmulator, company: str, **kwargs: Any) -> str:
    job_id = PatsnapCreateEnterpriseReportOperator(task_id="create", company_name=company, **kwargs).execute({})
    sensor = PatsnapReportJobSensor(task_id="wait", job_id=job_id, report_kind="enterprise", deferrable=False)
    deadline = time.monotonic() + 10
    while not sensor.poke({}):
        assert time.monotonic() < deadline, "emulator job did not finish"
        time.sleep(0.05)
    return job_id


def download(job_id: str, destination: str, **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("destination_conn_id", CONN_ID)
    op = PatsnapDownloadReportOperator(
        task_id="download", job_id=job_id, report_kind="enterprise", destination=destination, **kwargs
    )
    return op.execute({})


def serve_html_instead_of_the_report(emulator: PatsnapEmulator, job_id: str) -> None:
    """Make the emulator's CDN answer 200 with an HTML page for this job (a proxy or CDN error page).

    The emulator only ever serves real PDF/DOCX files, so this swaps its cached file for the job
    (emulator internals, on the server side only): the client code under test runs unchanged.
    """
    report = emulator._report_file(emulator._require_job(job_id))
    page = b"<!DOCTYPE html><html><body><h1>Access through this gateway is not allowed</h1></body></html>\n"
    with emulator._files_lock:
        emulator._files[str(job_id)] = dataclasses.replace(report, media_type="text/html", head=page, pad=0, tail=b"")


# --------------------------------------------------------------------------- reports


@pytest.mark.parametrize("spelling", ["destination_conn_id", "conn_id_in_uri"])
def test_report_lands_as_one_exact_object(
    emulator: PatsnapEmulator, emu_conn: str, s3: LoopbackS3, bucket: str, spelling: str
) -> None:
    job_id = finished_enterprise_job(emulator, "Archive Robotics Ltd")
    folder = f"archive/enterprise/{DAY}/"
    if spelling == "destination_conn_id":
        result = download(job_id, f"s3://{bucket}/{folder}", destination_conn_id=CONN_ID)
    else:
        result = download(job_id, f"s3://{CONN_ID}@{bucket}/{folder}", destination_conn_id=None)

    expected = emulator.report_bytes(job_id)
    filename = emulator.job(job_id)["filename"]
    key = folder + filename
    assert result["uri"] == f"s3://{bucket}/{key}"
    assert CONN_ID not in result["uri"]
    assert result["filename"] == filename
    assert result["size"] == len(expected)
    assert result["sha256"] == hashlib.sha256(expected).hexdigest() == emulator.report_sha256(job_id)
    assert result["media_type"] == "application/pdf"

    assert s3.get(bucket, key) == expected
    assert s3.keys(bucket) == [key]  # no temp, staging or "directory" keys
    assert s3.history(bucket) == [(key, len(expected))]  # written exactly once
    assert s3.open_multipart_uploads(bucket) == []
    assert emulator.stats["downloads_started"] == 1
    assert emulator.stats["rejected_auth_header_downloads"] == 0


def test_cut_short_download_never_publishes_a_partial_object(
    emulator: PatsnapEmulator, emu_conn: str, s3: LoopbackS3, bucket: str
) -> None:
    job_id = finished_enterprise_job(emulator, "Cut Short Co")
    emulator.truncate_downloads = 1

    result = download(job_id, f"s3://{bucket}/archive/enterprise/{DAY}/")

    expected = emulator.report_bytes(job_id)
    key = result["uri"].removeprefix(f"s3://{bucket}/")
    assert emulator.stats["downloads_started"] == 2
    assert emulator.stats["downloads_completed"] == 1
    assert s3.keys(bucket) == [key]
    # Versioning keeps every object ever stored: the half download was never uploaded, not even briefly.
    assert s3.history(bucket) == [(key, len(expected))]
    assert s3.open_multipart_uploads(bucket) == []
    assert s3.get(bucket, key) == expected
    assert result["sha256"] == hashlib.sha256(expected).hexdigest()


def test_existing_object_is_kept_unless_overwrite(
    emulator: PatsnapEmulator, emu_conn: str, s3: LoopbackS3, bucket: str
) -> None:
    job_id = finished_enterprise_job(emulator, "Keep Me Co")
    key = f"archive/enterprise/{DAY}/keep-me.pdf"
    previous = b"%PDF-1.4 previous archive\n"
    s3.put(bucket, key, previous)

    with pytest.raises(AirflowFailException, match="already exists") as info:
        download(job_id, f"s3://{bucket}/{key}")
    assert f"s3://{bucket}/{key}" in str(info.value) and CONN_ID not in str(info.value)
    assert s3.get(bucket, key) == previous
    assert s3.history(bucket) == [(key, len(previous))]

    expected = emulator.report_bytes(job_id)
    result = download(job_id, f"s3://{bucket}/{key}", overwrite=True)

    assert result["uri"] == f"s3://{bucket}/{key}"
    assert s3.get(bucket, key) == expected
    assert s3.keys(bucket) == [key]
    assert s3.history(bucket) == sorted([(key, len(previous)), (key, len(expected))])
    assert s3.open_multipart_uploads(bucket) == []


def test_rejected_content_leaves_nothing_in_the_bucket(
    emulator: PatsnapEmulator,
    emu_conn: str,
    s3: LoopbackS3,
    bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job_id = finished_enterprise_job(emulator, "Gateway Page Co")
    serve_html_instead_of_the_report(emulator, job_id)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))  # where remote targets are spooled

    with pytest.raises(AirflowFailException, match="not a PDF or DOCX"):
        download(job_id, f"s3://{bucket}/archive/enterprise/{DAY}/")

    assert emulator.stats["downloads_started"] == 1  # rejected content is not retried
    assert emulator.stats["downloads_completed"] == 1  # it did arrive whole...
    assert s3.history(bucket) == []  # ...and was never uploaded
    assert s3.open_multipart_uploads(bucket) == []
    assert list(tmp_path.glob("patsnap-*")) == []  # and the local spool file is gone


def test_missing_bucket_is_not_created(emulator: PatsnapEmulator, emu_conn: str, s3: LoopbackS3, bucket: str) -> None:
    job_id = finished_enterprise_job(emulator, "Typo Bucket Co")
    missing = f"{bucket}-typo"

    # A typo'd bucket is permanent: fail without retries, name the target, create nothing.
    with pytest.raises(AirflowFailException, match=f"cannot write s3://{missing}/"):
        download(job_id, f"s3://{missing}/archive/enterprise/{DAY}/")
    assert missing not in s3.bucket_names()


# --------------------------------------------------------------------------- JSON Lines


def test_legal_indicators_write_json_lines_to_s3(
    emulator: PatsnapEmulator, emu_conn: str, s3: LoopbackS3, bucket: str
) -> None:
    known = ["CN108977442B", "US9876543B2"]
    op = PatsnapLegalIndicatorsOperator(
        task_id="p037",
        patent_numbers=[*known, "CN000UNKNOWN1"],
        destination=f"s3://{bucket}/lake/dt={DAY}/",
        destination_conn_id=CONN_ID,
    )

    result = op.execute({})

    key = f"lake/dt={DAY}/legal_indicators.jsonl"
    assert result == {
        "uri": f"s3://{bucket}/{key}",
        "records": 2,
        "requested": 3,
        "missing": ["CN000UNKNOWN1"],
        "ambiguous_replays": 0,
        "billed_units": 2,  # per result returned
        "reused_units": 0,
    }
    assert s3.keys(bucket) == [key]
    body = s3.get(bucket, key)
    history = s3.history(bucket)
    assert [h for h in history if ".patsnap-staging/" not in h[0]] == [(key, len(body))]  # one upload
    staged = {k for k, size in history if ".patsnap-staging/" in k and size >= 0}
    assert staged and staged == {k for k, size in history if size == -1}  # batch checkpoints, all removed
    assert body.endswith(b"\n")
    lines = [json.loads(line) for line in body.decode("utf-8").splitlines()]
    assert [line["pn"] for line in lines] == known
    assert [line["patent_id"] for line in lines] == [PatsnapEmulator.patent_id_for(n) for n in known]
    assert all(isinstance(line["legal_status"], str) and line["legal_status"] for line in lines)

    # The file holds exactly what the operator returns as XCom without a destination.
    in_xcom = PatsnapLegalIndicatorsOperator(task_id="p037_xcom", patent_numbers=[*known, "CN000UNKNOWN1"]).execute({})
    # ... but when it was fetched: each record says (ISO 8601, UTC), and the two fetches differ in nothing else.
    assert all(dt.datetime.fromisoformat(line["fetched_at"]).utcoffset() == dt.timedelta(0) for line in lines)
    assert [{**line, "fetched_at": None} for line in lines] == [
        {**record, "fetched_at": None} for record in json.loads(json.dumps(in_xcom))
    ]


def test_a_portfolio_in_s3_lands_in_s3_as_parquet_and_its_checkpoints_go(
    emulator: PatsnapEmulator, emu_conn: str, s3: LoopbackS3, bucket: str
) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    numbers = [f"CN{710000 + i}A" for i in range(230)]  # three P037 batches
    s3.client.put_object(
        Bucket=bucket, Key="in/portfolio.csv", Body=("patent_number\n" + "\n".join(numbers) + "\n").encode()
    )

    result = PatsnapLegalIndicatorsOperator(
        task_id="p037_parquet",
        patents_from=f"s3://{bucket}/in/portfolio.csv",
        patents_from_conn_id=CONN_ID,
        destination=f"s3://{bucket}/lake/dt={DAY}/",
        destination_conn_id=CONN_ID,
        output_format="parquet",
    ).execute({})

    key = f"lake/dt={DAY}/legal_indicators.parquet"
    assert result["uri"] == f"s3://{bucket}/{key}" and result["records"] == 230 and result["missing"] == []
    assert s3.keys(bucket) == sorted(["in/portfolio.csv", key])  # the checkpoints are gone
    history = s3.history(bucket)
    staged = {k for k, size in history if ".patsnap-staging/" in k and size >= 0}
    assert len([k for k in staged if k.endswith(".json")]) == 3  # one object per answered batch
    assert any(k.endswith("/patents.jsonl") for k in staged)  # the run's list, pinned beside them
    assert staged == {k for k, size in history if size == -1}  # every one removed after the publish
    table = pq.read_table(io.BytesIO(s3.get(bucket, key)))
    assert table.column("pn").to_pylist() == numbers
