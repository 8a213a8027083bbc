"""Bad input is rejected before any call, through each operator's ``execute``, naming the parameter.

The emulator counts every request it receives (the token endpoint included), so ``stats["calls"]
== {}`` proves nothing at all was sent. Values are set on the operator after construction, as
Airflow's template rendering does (literal typos in ``report_type``/``report_kind`` are already
refused at DAG parse time). Duplicate patents are not an error: they are asked for once.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_patsnap.operators.indicators import PatsnapLegalIndicatorsOperator
from airflow_provider_patsnap.operators.reports import (
    PatsnapCreateEnterpriseReportOperator,
    PatsnapCreatePatentValueReportOperator,
    PatsnapDownloadReportOperator,
)
from airflow_provider_patsnap.sensors.report_job import PatsnapReportJobSensor
from airflow_provider_patsnap.testing.emulator import PatsnapEmulator
from airflow_provider_patsnap.validation import uscc_check_char
from airflow_provider_patsnap.version_compat import AirflowFailException
from tests.support import expect_failure

P037_CALLS = "GET /patent-valuation-data/legal_indicators"
VALID_CREDIT_CODE = "91350100M000100Y43"
assert uscc_check_char(VALID_CREDIT_CODE[:17]) == VALID_CREDIT_CODE[17]
JOB_ID = "1579434053399035905"


def enterprise(**values: Any) -> PatsnapCreateEnterpriseReportOperator:
    op = PatsnapCreateEnterpriseReportOperator(task_id="create")
    for name, value in values.items():
        setattr(op, name, value)
    return op


def patent_value(**values: Any) -> PatsnapCreatePatentValueReportOperator:
    op = PatsnapCreatePatentValueReportOperator(task_id="create")
    for name, value in values.items():
        setattr(op, name, value)
    return op


def indicators(**values: Any) -> PatsnapLegalIndicatorsOperator:
    op = PatsnapLegalIndicatorsOperator(task_id="p037")
    for name, value in values.items():
        setattr(op, name, value)
    return op


def download(**values: Any) -> PatsnapDownloadReportOperator:
    op = PatsnapDownloadReportOperator(
        task_id="download", job_id=JOB_ID, report_kind="enterprise", destination="/tmp/unused-patsnap-dest/"
    )
    for name, value in values.items():
        setattr(op, name, value)
    return op


def sensor(**values: Any) -> PatsnapReportJobSensor:
    op = PatsnapReportJobSensor(task_id="wait", job_id=JOB_ID, report_kind="enterprise", deferrable=False)
    for name, value in values.items():
        setattr(op, name, value)
    return op


def _run(op: Any) -> Callable[[], Any]:
    return (lambda: op.poke({})) if isinstance(op, PatsnapReportJobSensor) else (lambda: op.execute({}))


BAD_INPUT = [
    # report_type
    pytest.param(lambda: enterprise(company_name="Acme", report_type="xlsx"), "report_type", id="r001-type-xlsx"),
    pytest.param(lambda: enterprise(company_name="Acme", report_type=""), "report_type", id="r001-type-empty"),
    pytest.param(lambda: enterprise(company_name="Acme", report_type=None), "report_type", id="r001-type-none"),
    pytest.param(lambda: patent_value(patent_number="CN1A", report_type="docx"), "report_type", id="r002-type-docx"),
    # enterprise identifiers
    pytest.param(lambda: enterprise(), "company_name", id="r001-no-identifier"),
    pytest.param(lambda: enterprise(company_name="   ", org_number="\t\n"), "company_name", id="r001-blank-ids"),
    pytest.param(lambda: enterprise(company_name=["Acme"]), "company_name", id="r001-name-list"),
    pytest.param(lambda: enterprise(credit_code="91350100M000100Y44"), "credit_code", id="credit-check-digit"),
    pytest.param(
        lambda: enterprise(company_name="Acme", credit_code="91350100M000100Y44"), "credit_code", id="credit-with-name"
    ),
    pytest.param(lambda: enterprise(credit_code="91350100M000100Y4"), "credit_code", id="credit-17-chars"),
    pytest.param(lambda: enterprise(credit_code="91350100M000100Y433"), "credit_code", id="credit-19-chars"),
    pytest.param(lambda: enterprise(credit_code="91350100M000100YI3"), "credit_code", id="credit-letter-I"),
    pytest.param(lambda: enterprise(credit_code="91350100M000100YO3"), "credit_code", id="credit-letter-O"),
    # patent value identifiers
    pytest.param(lambda: patent_value(), "patent_number", id="r002-no-identifier"),
    pytest.param(lambda: patent_value(patent_number="   "), "patent_number", id="r002-blank-number"),
    pytest.param(
        lambda: patent_value(patent_number="CN108977442B", patent_id="6f2b51ac-83a6-4a3b-8e5b-5b0e2d6cbb41"),
        "patent_number",
        id="r002-both",
    ),
    # patent lists
    pytest.param(lambda: indicators(patent_numbers=[]), "patent_numbers", id="p037-empty-list"),
    pytest.param(lambda: indicators(), "patent_numbers", id="p037-none"),
    pytest.param(lambda: indicators(patent_numbers=""), "patent_numbers", id="p037-empty-string"),
    pytest.param(lambda: indicators(patent_numbers=["  ", "\t"]), "patent_numbers", id="p037-whitespace-only"),
    pytest.param(lambda: indicators(patent_numbers=" , "), "patent_numbers", id="p037-blank-csv"),
    pytest.param(lambda: indicators(patent_numbers=["CN1000000A", ""]), "patent_numbers", id="p037-one-blank"),
    pytest.param(lambda: indicators(patent_numbers=["CN1000000A", None]), "patent_numbers", id="p037-one-none"),
    pytest.param(lambda: indicators(patent_numbers=["CN1000000A,CN1000001A"]), "patent_numbers", id="p037-comma"),
    pytest.param(lambda: indicators(patent_numbers=[{"pn": "CN1A"}]), "patent_numbers", id="p037-dict-item"),
    pytest.param(lambda: indicators(patent_numbers=42), "patent_numbers", id="p037-not-a-list"),
    pytest.param(lambda: indicators(patent_ids=["  "]), "patent_ids", id="p037-blank-id"),
    pytest.param(
        lambda: indicators(patent_numbers=[f"CN{1000000 + i}A" for i in range(150)] + ["  "]),
        "patent_numbers",
        id="p037-blank-in-second-batch",
    ),
    # report kind, job id, destination
    pytest.param(lambda: download(report_kind="bogus"), "report_kind", id="download-kind"),
    pytest.param(lambda: download(job_id=""), "job_id", id="download-empty-job"),
    pytest.param(lambda: download(job_id="   "), "job_id", id="download-blank-job"),
    pytest.param(lambda: download(job_id=None), "job_id", id="download-none-job"),
    pytest.param(lambda: download(job_id=1.579434053399036e18), "job_id", id="download-float-job"),
    pytest.param(lambda: download(destination=""), "destination", id="download-empty-destination"),
    pytest.param(lambda: download(destination="   "), "destination", id="download-blank-destination"),
    pytest.param(lambda: sensor(report_kind="R001"), "report_kind", id="sensor-kind"),
    pytest.param(lambda: sensor(job_id=""), "job_id", id="sensor-empty-job"),
]


@pytest.mark.parametrize(("make", "parameter"), BAD_INPUT)
def test_bad_input_fails_before_any_call_naming_the_parameter(
    emulator: PatsnapEmulator, emu_conn: str, make: Callable[[], Any], parameter: str
) -> None:
    exc = expect_failure(_run(make()))

    assert isinstance(exc, AirflowFailException), f"{type(exc).__name__}: {exc}"  # no Airflow retry
    assert f"{parameter}: " in str(exc), str(exc)
    assert emulator.stats["calls"] == {}  # not even a token request


def test_unknown_destination_scheme_fails_before_any_call(emulator: PatsnapEmulator, emu_conn: str) -> None:
    job_id = enterprise(company_name="Acme").execute({})  # a real, finished job: only the destination is wrong
    deadline = time.monotonic() + 10
    while emulator.job(job_id)["status"] != 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    emulator.reset_stats()
    op = download(job_id=job_id, destination="nosuchproto://bucket/reports/")
    try:
        op.execute({})
    except AirflowFailException as exc:
        assert "destination: " in str(exc), str(exc)
    except Exception as exc:
        raise AssertionError(f"{type(exc).__name__} escaped: {exc}") from None
    else:
        raise AssertionError("an unknown storage scheme was accepted")
    assert emulator.stats["calls"] == {}


def test_valid_identifiers_do_reach_patsnap(emulator: PatsnapEmulator, emu_conn: str) -> None:
    """The other side of the table: the same operators with good input do call PatSnap."""
    assert enterprise(credit_code=VALID_CREDIT_CODE.lower(), report_type=" PDF ").execute({})
    assert patent_value(patent_number=" CN108977442B ", patent_id="  ").execute({})
    assert emulator.stats["creates"] == 2
    params = [emulator.job(j)["params"] for j in emulator.job_ids()]
    assert params == [
        {"report_type": "pdf", "credit_code": VALID_CREDIT_CODE},
        {"report_type": "pdf", "patent_number": "CN108977442B"},
    ]


# --------------------------------------------------------------------------- duplicates and batching


def records_of(op: PatsnapLegalIndicatorsOperator) -> list[Any]:
    result = op.execute({})
    assert isinstance(result, list), result  # no destination: the records themselves
    return result


def numbers(count: int) -> list[str]:
    return [f"CN{1000000 + i}A" for i in range(count)]


@pytest.mark.parametrize("unique", [1, 99, 100, 101, 250])
def test_more_than_100_patents_are_batched_100_per_request(
    emulator: PatsnapEmulator, emu_conn: str, unique: int
) -> None:
    records = records_of(indicators(patent_numbers=numbers(unique)))

    stats = emulator.stats
    assert stats["calls"][P037_CALLS] == math.ceil(unique / 100), stats  # the emulator refuses > 100
    assert stats["billable_units"] == unique  # no patent asked (and billed) twice
    assert [r["pn"] for r in records] == numbers(unique)


def test_duplicates_are_asked_for_once_not_rejected(emulator: PatsnapEmulator, emu_conn: str) -> None:
    unique = numbers(150)
    # Exact repeats, lower-case and padded variants: 450 inputs, 150 patents, 2 batches (not 5).
    noisy = unique + [n.lower() for n in reversed(unique)] + [f"  {n}\t" for n in unique[::2]] + unique[::3]
    assert len(noisy) > 400

    records = records_of(indicators(patent_numbers=noisy))

    stats = emulator.stats
    assert stats["calls"][P037_CALLS] == 2, stats  # one request per unique batch
    assert stats["billable_units"] == 150
    assert [r["pn"] for r in records] == unique  # first occurrence wins, order kept


def test_duplicates_within_patent_ids_are_asked_for_once(emulator: PatsnapEmulator, emu_conn: str) -> None:
    ids = [emulator.patent_id_for(n) for n in numbers(120)]
    noisy = ids + [i.upper() for i in ids] + ids[:10]

    records = records_of(indicators(patent_ids=noisy))

    assert emulator.stats["calls"][P037_CALLS] == 2
    assert emulator.stats["billable_units"] == 120
    assert sorted(r["patent_id"] for r in records) == sorted(ids)
