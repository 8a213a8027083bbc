"""PatsnapApiOperator / PatsnapHook.run and PatsnapPatentIndicatorsOperator against the emulator."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_patsnap.errors import PatsnapAmbiguousCreateError, PatsnapInputError, PatsnapRetryableError
from airflow_provider_patsnap.hooks.patsnap import PatsnapHook
from airflow_provider_patsnap.operators.api import PatsnapApiOperator
from airflow_provider_patsnap.operators.indicators import (
    PatsnapLegalIndicatorsOperator,
    PatsnapPatentIndicatorsOperator,
)
from airflow_provider_patsnap.testing.emulator import PatsnapEmulator
from airflow_provider_patsnap.valuation import INDICATORS
from airflow_provider_patsnap.version_compat import AirflowFailException
from tests.support import TaskStateStore

LEGAL = "/patent-valuation-data/legal_indicators"
CREATE = "/innovation/company-report/task/create"
KNOWN = ["CN108977442B", "US9876543B2"]


# ------------------------------------------------------------------------------------ any endpoint


def test_api_operator_returns_plain_json_data(emulator: PatsnapEmulator, emu_conn: str) -> None:
    data = PatsnapApiOperator(
        task_id="api", method="GET", endpoint=LEGAL, query={"patent_number": [*KNOWN, "CN000UNKNOWN1"]}
    ).execute({})

    assert [item["pn"] for item in data] == KNOWN
    ratio = data[0]["patsnap_legal_value"]["in_application_ratio"]
    assert type(ratio) is float  # not the exact parser's Decimal: XCom-safe
    json.dumps(data)
    assert emulator.stats["calls"][f"GET {LEGAL}"] == 1


def test_hook_run_keeps_decimals_exact(emulator: PatsnapEmulator, emu_conn: str) -> None:
    data = PatsnapHook().run("get", LEGAL, params={"patent_number": KNOWN[0]})
    assert isinstance(data[0]["patsnap_legal_value"]["in_application_ratio"], Decimal)


def test_a_post_is_billable_by_default_and_never_replayed_in_doubt(emulator: PatsnapEmulator, emu_conn: str) -> None:
    emulator.create_gateway_timeouts = 1
    operator = PatsnapApiOperator(
        task_id="api",
        method="POST",
        endpoint=CREATE,
        json={"report_type": "pdf", "company_name": "Example Robotics Ltd"},
    )
    with pytest.raises(AirflowFailException, match="may have run"):
        operator.execute({})
    assert emulator.stats["calls"][f"POST {CREATE}"] == 1 and emulator.stats["creates"] == 1

    with pytest.raises(PatsnapAmbiguousCreateError):
        emulator.create_gateway_timeouts = 1
        PatsnapHook().run("POST", CREATE, json={"report_type": "pdf", "company_name": "Other Co"})


def outage_until_answered(emulator: PatsnapEmulator, target: str, status: int = 502) -> None:
    """A gateway outage on ``target`` that ends once it has answered one call, however slow the machine
    (a window of fixed length can close before a loaded machine sends anything)."""
    before = emulator.stats["outage_answers"]
    emulator.outage(target, seconds=60, status=status)

    def end() -> None:
        deadline = time.monotonic() + 30
        while emulator.stats["outage_answers"] == before and time.monotonic() < deadline:
            time.sleep(0.01)
        emulator.end_outages()

    threading.Thread(target=end, daemon=True).start()


def test_a_read_through_run_is_replayed_on_a_gateway_page(emulator: PatsnapEmulator, emu_conn: str) -> None:
    hook = PatsnapHook(max_retries=8, retry_wait_min=0.1, retry_wait_max=0.2)
    job_id = hook.create_enterprise_report(company_name="ACME")
    outage_until_answered(emulator, "status")
    data = hook.run("GET", "/innovation/company-report/job_id/status", params={"job_id": job_id})
    assert emulator.stats["outage_answers"] >= 1 and "job_status" in data  # 502s, then the replay answered


def test_a_billed_product_read_through_run_is_not_replayed_unless_the_caller_says_so(
    emulator: PatsnapEmulator, emu_conn: str
) -> None:
    hook = PatsnapHook(max_retries=8, retry_wait_min=0.1, retry_wait_max=0.2)
    emulator.outage("legal", seconds=60, status=502)
    with pytest.raises(PatsnapAmbiguousCreateError, match="may have run"):  # P037 bills per result returned
        hook.run("GET", LEGAL, params={"patent_number": KNOWN[0]})
    assert emulator.stats["outage_answers"] == 1  # one 502, no replay
    emulator.end_outages()
    outage_until_answered(emulator, "legal")
    data = hook.run("GET", LEGAL, params={"patent_number": KNOWN[0]}, billable=False)  # the caller's choice
    assert data[0]["pn"] == KNOWN[0] and emulator.stats["outage_answers"] >= 2  # 502s, then replayed


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"method": "GET", "endpoint": "https://elsewhere.example/steal"}, "endpoint"),
        ({"method": "GET", "endpoint": "patent-valuation-data/legal_indicators"}, "endpoint"),
        ({"method": "GET", "endpoint": LEGAL, "query": ["patent_number"]}, "query"),
    ],
)
def test_bad_input_fails_before_any_call(
    emulator: PatsnapEmulator, emu_conn: str, kwargs: dict[str, Any], parameter: str
) -> None:
    with pytest.raises(AirflowFailException, match=f"{parameter}: "):
        PatsnapApiOperator(task_id="api", **kwargs).execute({})
    assert emulator.stats["calls"] == {}


def test_an_unknown_method_fails_at_parse_time() -> None:
    with pytest.raises(ValueError, match="method: must be one of"):
        PatsnapApiOperator(task_id="api", method="FETCH", endpoint=LEGAL)


def test_query_not_params_so_dag_params_stay_airflows() -> None:
    operator = PatsnapApiOperator(task_id="api", method="GET", endpoint=LEGAL, query={"patent_number": "CN1A"})
    assert operator.query == {"patent_number": "CN1A"} and "query" in operator.template_fields


# ------------------------------------------------------------------------------------ all six indicators


def test_every_indicator_in_one_flat_typed_record_per_patent(
    emulator: PatsnapEmulator, emu_conn: str, tmp_path: Path
) -> None:
    patents = [f"CN{200000 + i}A" for i in range(150)] + ["CN000UNKNOWN1"]
    result = PatsnapPatentIndicatorsOperator(
        task_id="all", patent_numbers=patents, indicators=list(INDICATORS), destination=f"{tmp_path}/lake/"
    ).execute({})

    assert result["records"] == 150 and result["requested"] == 151
    assert result["missing"] == {name: ["CN000UNKNOWN1"] for name in INDICATORS}
    lines = [json.loads(line) for line in Path(result["uri"].removeprefix("file://")).read_text().splitlines()]
    assert [r["pn"] for r in lines] == patents[:-1]
    fields = {"pn", "patent_id", "fetched_at"} | {f for spec in INDICATORS.values() for f in spec.fields}
    assert all(set(r) == fields for r in lines)
    first = lines[0]
    assert isinstance(first["patent_value"], int) and isinstance(first["has_reexam_invalid"], bool)
    assert isinstance(first["ipc_class_5y_incr"], float) and isinstance(first["examiner_citation_category"], list)
    assert isinstance(first["current_assignee_no"], float)  # a count PatSnap types as double: kept a number
    calls = emulator.stats["calls"]
    for spec in INDICATORS.values():
        assert calls[f"GET {spec.path}"] == math.ceil(151 / 100), spec.code  # 100 per request, per indicator
        assert emulator.billed(spec.path) == 150
    assert [p.name for p in (tmp_path / "lake").iterdir()] == ["patent_indicators.jsonl"]


def test_records_go_to_xcom_without_a_destination(emulator: PatsnapEmulator, emu_conn: str) -> None:
    records = PatsnapPatentIndicatorsOperator(
        task_id="two", patent_numbers=KNOWN, indicators=["economic", "market"]
    ).execute({})
    assert [r["pn"] for r in records] == KNOWN
    assert set(records[0]) == {"pn", "patent_id", "fetched_at"} | set(INDICATORS["economic"].fields) | set(
        INDICATORS["market"].fields
    )
    json.dumps(records)


def test_an_error_in_one_batch_cancels_the_rest(
    emulator: PatsnapEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_PATSNAP_DEFAULT", emulator.connection_json(qps=2, max_concurrency=1, retry_wait_min=0.01)
    )
    # A gateway's 403 page on one indicator: transient-looking (retried once, then left to Airflow's retries).
    emulator.outage("technology", seconds=60, status=403)
    patents = [f"CN{300000 + i}A" for i in range(1000)]  # 10 batches per indicator
    with pytest.raises(PatsnapRetryableError, match="HTTP 403: refused by a gateway page"):
        PatsnapPatentIndicatorsOperator(
            task_id="x", patent_numbers=patents, indicators=["technology", "legal"], destination=f"{tmp_path}/"
        ).execute({})
    calls = emulator.stats["calls"]
    assert calls.get(f"GET {INDICATORS['technology'].path}", 0) <= 2  # the rest were not sent
    assert calls.get(f"GET {INDICATORS['legal'].path}", 0) <= 1


def test_an_unknown_indicator_fails_at_parse_time() -> None:
    with pytest.raises(ValueError, match="indicators: unknown indicator 'legl'"):
        PatsnapPatentIndicatorsOperator(task_id="x", patent_numbers=KNOWN, indicators=["legl"])


def test_an_interrupted_portfolio_stops_at_once_and_keeps_every_answered_batch(
    emulator: PatsnapEmulator, emu_conn: str
) -> None:
    from airflow_provider_patsnap.valuation import plan_batches

    class Interrupted(BaseException):  # as Airflow's execution_timeout and SIGTERM arrive
        pass

    batches = plan_batches([INDICATORS["legal"]], [f"CN{400000 + i}A" for i in range(2000)], [])
    saved: list[str] = []

    def checkpoint(batch: Any, items: list[Any]) -> None:
        if len(saved) == 2:
            saved.append("interrupted")
            raise Interrupted("Timeout, PID: 1")
        saved.append(batch.key)

    with pytest.raises(Interrupted):
        PatsnapHook(max_concurrency=4).fetch_batches(batches, on_batch=checkpoint)

    time.sleep(0.5)  # anything still in flight has ended by now
    billed = emulator.billed(INDICATORS["legal"].path)
    kept = [k for k in saved if k != "interrupted"]
    # Billed: what was kept, the batch whose save was interrupted, and at most the 4 then in flight.
    assert len(kept) >= 2 and billed <= 100 * (len(kept) + 1 + 4), (billed, len(kept))
    assert billed < 2000  # the other batches were never sent


def test_a_retried_billable_call_returns_the_first_answer(
    emulator: PatsnapEmulator, emu_conn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_patsnap.billing import backends

    class TI:
        max_tries = 0

    monkeypatch.setattr(backends, "AIRFLOW_V_3_3_PLUS", True)
    context = {"task_state_store": TaskStateStore(), "ti": TI()}
    operator = PatsnapApiOperator(
        task_id="api", method="POST", endpoint=CREATE, json={"report_type": "pdf", "company_name": "Once Co"}
    )
    first = operator.execute(context)
    again = operator.execute(context)  # Airflow retried after the answer (a lost worker, an XCom failure)
    assert again == first and emulator.stats["creates"] == 1


def test_an_indicator_output_is_kept_unless_overwrite(
    emulator: PatsnapEmulator, emu_conn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_patsnap.operators import _indicator_stream

    # Runs without a task instance are separate runs: their bytes match only if fetched_at does.
    still = dt.datetime(2026, 12, 7, 1, 2, 3, tzinfo=dt.timezone.utc)
    monkeypatch.setattr(_indicator_stream, "utcnow", lambda: still)
    lake = tmp_path / "lake"
    lake.mkdir()
    (lake / "patent_indicators.jsonl").write_text('{"pn": "from another run"}\n')

    def run(**kwargs: Any) -> Any:
        return PatsnapPatentIndicatorsOperator(
            task_id="legal", patent_numbers=["CN200001A"], destination=f"{lake}/", **kwargs
        ).execute({})

    with pytest.raises(AirflowFailException, match=r"patent_indicators\.jsonl already exists with other content"):
        run()
    assert (lake / "patent_indicators.jsonl").read_text() == '{"pn": "from another run"}\n'
    assert run(overwrite=True)["records"] == 1
    assert run()["records"] == 1  # the same bytes again is success, not a clobber
    assert sorted(p.name for p in lake.iterdir()) == ["patent_indicators.jsonl"]


def test_indicators_stream_through_gzip_and_read_back_as_the_same_records(
    emulator: PatsnapEmulator, emu_conn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gzip

    from airflow_provider_patsnap.operators import _indicator_stream

    still = dt.datetime(2026, 12, 7, 1, 2, 3, tzinfo=dt.timezone.utc)
    monkeypatch.setattr(_indicator_stream, "utcnow", lambda: still)
    patents = [f"CN{200000 + n}A" for n in range(150)]  # two batches

    def run(folder: str, **kwargs: Any) -> Any:
        return PatsnapPatentIndicatorsOperator(
            task_id="legal", patent_numbers=patents, destination=f"{tmp_path / folder}/", **kwargs
        ).execute({})

    plain, packed = run("plain"), run("packed", output_format="jsonl.gz")
    assert packed["uri"].endswith("/packed/patent_indicators.jsonl.gz") and packed["records"] == plain["records"]
    written = (tmp_path / "packed" / "patent_indicators.jsonl.gz").read_bytes()
    assert gzip.decompress(written) == (tmp_path / "plain" / "patent_indicators.jsonl").read_bytes()
    assert run("packed", output_format="jsonl.gz")["records"] == 150  # the same bytes again: no clobber refusal
    with pytest.raises(
        AirflowFailException, match=r"destination: output_format 'jsonl\.gz' writes a file named \*\.gz"
    ):
        PatsnapPatentIndicatorsOperator(
            task_id="x", patent_numbers=patents, destination=f"{tmp_path}/out.jsonl", output_format="jsonl.gz"
        ).execute({})
    with pytest.raises(PatsnapInputError, match=r"output_format: one of 'jsonl', 'jsonl\.gz', 'parquet', not 'csv'"):
        PatsnapPatentIndicatorsOperator(task_id="x", patent_numbers=patents, output_format="csv")


def test_xcom_mode_refuses_more_records_than_max_xcom_records_before_any_call(
    emulator: PatsnapEmulator, emu_conn: str
) -> None:
    operator = PatsnapPatentIndicatorsOperator(
        task_id="legal", patent_numbers=["CN200001A", "CN200002A", "CN200003A"], max_xcom_records=2
    )
    with pytest.raises(AirflowFailException, match=r"max_xcom_records.*3 patents.*destination="):
        operator.execute({})
    assert emulator.stats["calls"] == {}  # refused before a token or a billable call
    assert len(PatsnapPatentIndicatorsOperator(task_id="ok", patent_numbers=["CN200001A"]).execute({})) == 1
    with pytest.raises(PatsnapInputError, match="max_xcom_records"):
        PatsnapPatentIndicatorsOperator(task_id="x", patent_numbers=["CN1"], max_xcom_records=-1)


def test_indicators_to_parquet_declare_the_catalogue_s_types_and_read_back_as_the_records(
    emulator: PatsnapEmulator, emu_conn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if os.environ.get("PATSNAP_REQUIRE_EXTRAS"):  # CI's Airflow 3 run installs the parquet extra
        import pyarrow.parquet as pq
    else:
        pq = pytest.importorskip("pyarrow.parquet", reason="needs the parquet extra")
    import pyarrow as pa

    from airflow_provider_patsnap.operators import _indicator_stream

    still = dt.datetime(2026, 12, 7, 1, 2, 3, tzinfo=dt.timezone.utc)
    monkeypatch.setattr(_indicator_stream, "utcnow", lambda: still)
    patents = [f"CN{200000 + n}A" for n in range(120)]
    names = ["legal", "technology", "market"]

    def run(folder: str, **kwargs: Any) -> Any:
        return PatsnapPatentIndicatorsOperator(
            task_id="lake", indicators=names, patent_numbers=patents, destination=f"{tmp_path / folder}/", **kwargs
        ).execute({})

    as_lines, as_parquet = run("jsonl"), run("parquet", output_format="parquet")
    assert as_parquet["uri"].endswith("/parquet/patent_indicators.parquet")
    table = pq.read_table(tmp_path / "parquet" / "patent_indicators.parquet")
    schema = {field.name: field.type for field in table.schema}
    assert schema["granted_no"] == pa.int64() and schema["has_reexam_invalid"] == pa.bool_()
    assert schema["avg_generality_index"] == pa.float64() and schema["legal_status"] == pa.string()
    assert schema["examiner_citation_category"] == pa.list_(pa.string())
    assert schema["fetched_at"] == pa.timestamp("ms", tz="UTC")
    lines = [json.loads(line) for line in (tmp_path / "jsonl" / "patent_indicators.jsonl").read_text().splitlines()]
    rows = table.to_pylist()
    assert len(rows) == len(lines) == as_lines["records"] == as_parquet["records"]
    for row, line in zip(rows, lines, strict=True):
        assert row["fetched_at"] == still and line["fetched_at"] == still.isoformat()
        assert {k: v for k, v in row.items() if k != "fetched_at"} == {
            k: v for k, v in line.items() if k != "fetched_at"
        }
    assert run("parquet", output_format="parquet")["records"] == 120  # the same bytes again: no clobber refusal


def test_parquet_without_pyarrow_is_refused_at_parse_time(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pyarrow" else real(name, *a))
    with pytest.raises(PatsnapInputError, match=r"output_format: 'parquet' needs pyarrow.*\[parquet\]"):
        PatsnapPatentIndicatorsOperator(task_id="x", patent_numbers=["CN1"], output_format="parquet")


def test_a_file_format_without_a_destination_is_refused_before_any_call(
    emulator: PatsnapEmulator, emu_conn: str
) -> None:
    operator = PatsnapPatentIndicatorsOperator(task_id="x", patent_numbers=["CN200001A"], output_format="jsonl.gz")
    with pytest.raises(AirflowFailException, match=r"output_format: 'jsonl\.gz' is a file format: give destination="):
        operator.execute({})
    assert emulator.stats["calls"] == {}


def test_a_broken_pyarrow_fails_the_parquet_task_before_anything_is_bought(
    emulator: PatsnapEmulator, emu_conn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("pyarrow", reason="needs the parquet extra")
    import builtins

    operator = PatsnapPatentIndicatorsOperator(
        task_id="x", patent_numbers=["CN200001A"], output_format="parquet", destination=f"{tmp_path}/"
    )
    real_import = builtins.__import__

    def broken(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("pyarrow"):
            raise ImportError("libarrow.so: cannot open shared object file")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", broken)
    with pytest.raises(AirflowFailException, match=r"output_format: 'parquet' needs pyarrow.*libarrow"):
        operator.execute({})
    assert emulator.stats["calls"] == {} and not list(tmp_path.iterdir())


# ------------------------------------------------------------------------------------ portfolios from a file


def test_a_portfolio_file_is_fetched_once_per_patent_and_written_as_parquet(
    emulator: PatsnapEmulator, emu_conn: str, tmp_path: Path
) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    rows = [f"CN{500000 + i}A,{'' if i % 3 else f'id-{i:04d}'}" for i in range(250)]
    (tmp_path / "portfolio.csv").write_text("patent_number,patent_id\n" + "\n".join(rows) + "\nCN500001A,\n")
    result = PatsnapPatentIndicatorsOperator(
        task_id="from_file",
        patents_from=str(tmp_path / "portfolio.csv"),
        indicators=["legal", "market"],
        destination=f"{tmp_path}/lake/",
        output_format="parquet",
    ).execute({})
    ids = [f"id-{i:04d}" for i in range(0, 250, 3)]
    assert result["requested"] == 250  # a row with an id is asked by its id only; the repeated row once
    for spec in (INDICATORS["legal"], INDICATORS["market"]):
        assert emulator.billed(spec.path) == result["records"]  # nothing bought twice
        assert emulator.stats["calls"][f"GET {spec.path}"] == math.ceil(166 / 100) + math.ceil(84 / 100)
    table = pq.read_table(result["uri"].removeprefix("file://"))
    assert table.num_rows == result["records"] and table.schema.field("fetched_at").type.tz == "UTC"
    # Rows with an id were asked by it alone (the emulator knows no such ids: missing, and not bought by number).
    assert result["missing"]["legal"] == ids and result["missing"]["market"] == ids
    assert table.column("pn").to_pylist() == [f"CN{500000 + i}A" for i in range(250) if i % 3]


def test_a_portfolio_file_and_a_list_together_are_refused_before_any_call(
    emulator: PatsnapEmulator, emu_conn: str, tmp_path: Path
) -> None:
    (tmp_path / "p.txt").write_text("CN1\n")
    with pytest.raises(
        AirflowFailException, match="nothing was sent to PatSnap: patents_from: give the patents either"
    ):
        PatsnapPatentIndicatorsOperator(
            task_id="both", patents_from=str(tmp_path / "p.txt"), patent_numbers=KNOWN, destination=f"{tmp_path}/"
        ).execute({})
    with pytest.raises(PatsnapInputError, match=r"patents_from.*\.txt, \.csv or \.parquet"):
        PatsnapPatentIndicatorsOperator(task_id="kind", patents_from="portfolio.xlsx")
    assert not any(name.startswith("GET /patent-valuation") for name in emulator.stats["calls"])


def test_a_retry_buys_the_list_its_run_started_with_even_if_the_file_changed(
    emulator: PatsnapEmulator, emu_conn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    monkeypatch.setenv("AIRFLOW_CONN_PATSNAP_DEFAULT", emulator.connection_json(max_concurrency=1))
    portfolio = tmp_path / "portfolio.txt"
    portfolio.write_text("".join(f"CN{600000 + i}A\n" for i in range(250)))  # three P037 batches

    class Killed(BaseException):  # as a SIGTERM or a timeout arrives in the task's thread
        pass

    class DiesAfterTwoBatches(PatsnapPatentIndicatorsOperator):
        def _keeper(self, book: Any) -> Any:
            keep = super()._keeper(book)

            def keep_then_die(batch: Any, items: list[Any]) -> None:
                keep(batch, items)
                self.kept = getattr(self, "kept", 0) + 1
                if self.kept == 2 and context["ti"].try_number == 1:
                    raise Killed

            return keep_then_die

    ti = SimpleNamespace(dag_id="d", run_id="r", task_id="legal", map_index=-1, max_tries=2, try_number=1)
    context: dict[str, Any] = {"ti": ti}
    operator = DiesAfterTwoBatches(task_id="legal", patents_from=str(portfolio), destination=f"{tmp_path}/lake/")
    with pytest.raises(Killed):
        operator.execute(context)
    first_calls = emulator.stats["calls"]["GET /patent-valuation-data/legal_indicators"]

    portfolio.write_text("".join(f"US{700000 + i}B\n" for i in range(250)))  # rewritten between the attempts
    ti.try_number = 2
    result = DiesAfterTwoBatches(task_id="legal", patents_from=str(portfolio), destination=f"{tmp_path}/lake/").execute(
        context
    )

    calls = emulator.stats["calls"]["GET /patent-valuation-data/legal_indicators"]
    assert calls - first_calls == 1  # only the batch the first attempt had not kept
    records = [json.loads(line) for line in Path(result["uri"].removeprefix("file://")).read_text().splitlines()]
    assert [r["pn"] for r in records] == [f"CN{600000 + i}A" for i in range(250)]  # the run's list, in order
    assert emulator.billed("/legal_indicators") <= 250 + 50  # at most the batch in flight at the kill, twice

    portfolio.unlink()  # success was not recorded, and the file is gone by the next attempt
    ti.try_number = 3
    again = DiesAfterTwoBatches(task_id="legal", patents_from=str(portfolio), destination=f"{tmp_path}/lake/").execute(
        context
    )
    assert again == result and emulator.stats["calls"]["GET /patent-valuation-data/legal_indicators"] == calls


def test_a_writer_that_fails_mid_stream_leaves_every_sent_batch_kept_or_counted(
    emulator: PatsnapEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_patsnap.operators import indicators

    monkeypatch.setenv("AIRFLOW_CONN_PATSNAP_DEFAULT", emulator.connection_json(max_concurrency=4))
    real_write = indicators.write_lines_atomically

    def disk_full_after_a_while(final: Any, chunks: Any, **kwargs: Any) -> int:
        def some() -> Any:
            for count, chunk in enumerate(chunks):
                if count == 500:
                    raise OSError(28, "No space left on device")
                yield chunk

        return real_write(final, some(), **kwargs)

    monkeypatch.setattr(indicators, "write_lines_atomically", disk_full_after_a_while)
    patents = [f"CN{720000 + i}A" for i in range(4000)]  # 40 batches; the window runs ahead of the writer
    with pytest.raises(OSError, match="No space left") as failure:
        PatsnapLegalIndicatorsOperator(task_id="legal", patent_numbers=patents, destination=f"{tmp_path}/").execute({})
    assert failure.traceback  # the failure (and its frames) still alive: nothing may rely on them being collected

    (folder,) = (tmp_path / ".patsnap-staging").iterdir()
    kept = [p for p in folder.iterdir() if p.suffix == ".json" and p.stem != "replays"]
    replays = folder / "replays.json"
    counted = sum(json.loads(replays.read_text()).values()) if replays.exists() else 0
    sent = emulator.stats["calls"]["GET /patent-valuation-data/legal_indicators"]
    assert 5 <= len(kept) < 40 and len(kept) + counted >= sent  # every sent batch: kept, or counted as maybe billed
    time.sleep(0.5)
    assert emulator.stats["calls"]["GET /patent-valuation-data/legal_indicators"] == sent  # nothing more sent
    assert not (tmp_path / "legal_indicators.jsonl").exists()  # and no partial output


def test_in_xcom_mode_a_retry_uses_the_pinned_list_even_if_the_file_changed_or_went(
    emulator: PatsnapEmulator, emu_conn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    from airflow_provider_patsnap.billing import backends

    monkeypatch.setattr(backends, "AIRFLOW_V_3_3_PLUS", True)
    portfolio = tmp_path / "portfolio.txt"
    portfolio.write_text("".join(f"CN{730000 + i}A\n" for i in range(5)))
    ti = SimpleNamespace(dag_id="d", run_id="r", task_id="legal", map_index=-1, max_tries=2, try_number=1)
    context: dict[str, Any] = {"ti": ti, "task_state_store": TaskStateStore()}
    first = PatsnapLegalIndicatorsOperator(task_id="legal", patents_from=str(portfolio)).execute(context)
    calls = emulator.stats["calls"]["GET /patent-valuation-data/legal_indicators"]

    portfolio.write_text("".join(f"US{740000 + i}B\n" for i in range(1500)))  # grew past the store's limit
    ti.try_number = 2  # success was not recorded (a lost worker): Airflow retries
    assert PatsnapLegalIndicatorsOperator(task_id="legal", patents_from=str(portfolio)).execute(context) == first
    portfolio.unlink()
    ti.try_number = 3
    assert PatsnapLegalIndicatorsOperator(task_id="legal", patents_from=str(portfolio)).execute(context) == first
    assert emulator.stats["calls"]["GET /patent-valuation-data/legal_indicators"] == calls  # nothing bought again
    assert [r["pn"] for r in first] == [f"CN{730000 + i}A" for i in range(5)]
