"""OpenLineage facets: inputs are PatSnap endpoints with identifiers, outputs the files written."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from airflow_provider_patsnap import lineage
from airflow_provider_patsnap.operators.indicators import PatsnapLegalIndicatorsOperator
from airflow_provider_patsnap.operators.reports import (
    PatsnapCreateEnterpriseReportOperator,
    PatsnapDownloadReportOperator,
)
from airflow_provider_patsnap.sensors.report_job import PatsnapReportJobSensor

if os.environ.get("PATSNAP_REQUIRE_EXTRAS"):
    import airflow.providers.openlineage  # noqa: F401  (CI's Airflow 3 run installs the lineage extra)
else:
    pytest.importorskip("airflow.providers.openlineage", reason="needs the lineage extra")


def test_report_pipeline_lineage(emulator: object, emu_conn: str, tmp_path: Path) -> None:
    create = PatsnapCreateEnterpriseReportOperator(task_id="create", company_name="Lineage Co", logo=False)
    job_id = create.execute({})
    sensor = PatsnapReportJobSensor(task_id="wait", job_id=job_id, report_kind="enterprise")
    deadline = time.monotonic() + 10
    while not sensor.poke({}):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    download = PatsnapDownloadReportOperator(
        task_id="dl", job_id=job_id, report_kind="enterprise", destination=f"{tmp_path}/"
    )
    result = download.execute({})

    created = create.get_openlineage_facets_on_complete(None)
    (source,) = created.inputs
    assert source.namespace == emulator.url  # type: ignore[attr-defined]
    # The dataset is the endpoint, the same every run; the company and the job are run details.
    assert source.name == "/innovation/company-report/task/create-no-logo" and created.outputs == []
    assert created.run_facets["externalQuery"].externalQueryId == job_id

    downloaded = download.get_openlineage_facets_on_complete(None)
    assert downloaded.inputs[0].name == "/innovation/company-report/job_id/status"
    assert downloaded.run_facets["externalQuery"].externalQueryId == job_id
    assert downloaded.run_facets["externalQuery"].source == emulator.url  # type: ignore[attr-defined]
    (written,) = downloaded.outputs
    assert (written.namespace, written.name) == ("file", result["uri"].removeprefix("file://"))


def test_legal_indicators_lineage_names_the_jsonl(emulator: object, emu_conn: str, tmp_path: Path) -> None:
    op = PatsnapLegalIndicatorsOperator(task_id="p037", patent_numbers=["CN108977442B"], destination=f"{tmp_path}/")
    op.execute({})
    facets = op.get_openlineage_facets_on_complete(None)
    assert [i.name for i in facets.inputs] == ["/patent-valuation-data/legal_indicators"]  # not "?patents=1"
    assert facets.outputs[0].name == str(tmp_path / "legal_indicators.jsonl")


def test_every_indicator_requested_is_an_input(emulator: object, emu_conn: str, tmp_path: Path) -> None:
    from airflow_provider_patsnap import valuation
    from airflow_provider_patsnap.operators.indicators import PatsnapPatentIndicatorsOperator

    names = ["legal", "market", "technology"]
    op = PatsnapPatentIndicatorsOperator(
        task_id="six", indicators=names, patent_numbers=["CN108977442B"], destination=f"{tmp_path}/"
    )
    op.execute({})
    facets = op.get_openlineage_facets_on_complete(None)
    assert [i.name for i in facets.inputs] == [spec.path for spec in valuation.indicators(names)]
    assert len(facets.inputs) == 3 and "externalQuery" not in facets.run_facets


def test_s3_output_follows_openlineage_naming() -> None:
    assert lineage.storage_output("s3://archive/patsnap/enterprise/r.pdf") == (
        "s3://archive",
        "patsnap/enterprise/r.pdf",
    )


def test_without_the_provider_lineage_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lineage, "_classes", lambda: None)
    assert lineage.operator_lineage([("ns", "name")], []) is None
