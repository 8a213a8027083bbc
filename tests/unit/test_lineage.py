"""lineage.py, its pure parts: dataset names for PatSnap inputs and written files (the facets built
by real operators are in tests/integration/test_lineage.py)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from airflow_provider_patsnap import lineage


def test_a_patsnap_input_is_the_endpoint_the_same_every_run() -> None:
    # What a run asked for (a company, a job id, how many patents) is not part of the dataset's name:
    # otherwise every run would be a new dataset.
    assert lineage.patsnap_input("https://connect.patsnap.com", "/innovation/company-report/task/create") == (
        "https://connect.patsnap.com",
        "/innovation/company-report/task/create",
    )


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("file:///data/reports/r.pdf", ("file", "/data/reports/r.pdf")),
        ("/data/reports/r.pdf", ("file", "/data/reports/r.pdf")),
        ("s3://archive/patsnap/enterprise/r.pdf", ("s3://archive", "patsnap/enterprise/r.pdf")),
        ("gs://bucket/a/b.jsonl", ("gs://bucket", "a/b.jsonl")),
        ("s3://bucket-only", ("s3://bucket-only", "")),
    ],
)
def test_storage_output_follows_openlineage_naming(uri: str, expected: tuple[str, str]) -> None:
    assert lineage.storage_output(uri) == expected


@dataclass
class _Dataset:
    namespace: str
    name: str


@dataclass
class _Lineage:
    inputs: list[_Dataset]
    outputs: list[_Dataset]
    run_facets: dict[str, object]


@dataclass
class _Query:
    externalQueryId: str  # OpenLineage's field name
    source: str


def test_operator_lineage_builds_one_dataset_per_pair_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lineage, "_classes", lambda: (_Lineage, _Dataset, _Query))
    facets = lineage.operator_lineage([("https://h", "/a"), ("https://h", "/b")], [("file", "/out/r.pdf")])
    assert facets == _Lineage(
        inputs=[_Dataset("https://h", "/a"), _Dataset("https://h", "/b")],
        outputs=[_Dataset("file", "/out/r.pdf")],
        run_facets={},
    )
    with_job = lineage.operator_lineage([("https://h", "/a")], [], job_id="1579434053399035905", source="https://h")
    assert with_job.run_facets == {"externalQuery": _Query("1579434053399035905", "https://h")}


def test_operator_lineage_is_none_without_the_openlineage_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_openlineage(name: str, *args: object, **kwargs: object) -> object:
        if name.startswith(("airflow.providers.openlineage", "openlineage")):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_openlineage)
    assert lineage._classes() is None
    assert lineage.operator_lineage([("ns", "name")], []) is None
