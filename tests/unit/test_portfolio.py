"""portfolio: a patent list from a .txt, .csv or .parquet file, checked like a list argument, before any call."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from airflow_provider_patsnap.errors import PatsnapInputError
from airflow_provider_patsnap.portfolio import Source

LOG = logging.getLogger("test_portfolio")


def read(path: Path) -> tuple[list[str], list[str]]:
    return Source.parse(str(path)).read(LOG)


def test_a_text_file_is_one_patent_number_per_line(tmp_path: Path) -> None:
    path = tmp_path / "portfolio.txt"
    path.write_bytes("\ufeffCN1A\r\n\n# a comment\n  us2b  \ncn1a\nEP3\n".encode())
    assert read(path) == (["CN1A", "us2b", "EP3"], [])  # BOM, CRLF, blanks, comments; duplicates dropped


def test_a_csv_row_is_one_patent_its_id_when_it_has_one(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "portfolio.csv"
    path.write_text(
        "title,Patent_Number ,PATENT_ID\n"
        "a,CN1A,11111111-aaaa\n"  # both: the id only (both would be billed)
        'b,"CN2A",\n'
        "c,,22222222-bbbb\n"
        "d,,\n"  # neither: skipped, and the log says so
        "e,CN2A,\n"
    )
    with caplog.at_level(logging.WARNING):
        assert read(path) == (["CN2A"], ["11111111-aaaa", "22222222-bbbb"])
    assert "1 row(s) with neither patent_number nor patent_id were skipped" in caplog.text


def test_a_parquet_file_is_read_by_column(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "portfolio.parquet"
    table = pa.table({"patent_number": ["CN1A", None, "CN3"], "patent_id": [None, "u-2", ""], "x": [1, 2, 3]})
    pq.write_table(table, path, row_group_size=2)
    assert read(path) == (["CN1A", "CN3"], ["u-2"])


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("p.txt", "CN1\nCN2,CN3\n", r"patents_from.*line 2 \('CN2,CN3'\) contains a comma"),
        ("p.txt", 'CN1\n"CN2"\n', r"patents_from.*line 2 .*quotes or brackets"),
        ("p.txt", "CN1\n['CN2']\n", r"patents_from line 2.*Python list.*rendered as text"),
        ("p.txt", "CN1\nNone\n", r"patents_from line 2.*a template that rendered None"),
        ("p.csv", "number,title\nCN1,a\n", r"patents_from.*needs a patent_number or patent_id column.*'number'"),
        ("p.txt", "\n# nothing\n", r"patents_from.*holds no patents"),
    ],
)
def test_a_bad_file_is_refused_naming_the_parameter_and_the_line(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(PatsnapInputError, match=message):
        read(path)


def test_a_file_that_is_not_text_or_not_there_is_refused(tmp_path: Path) -> None:
    (tmp_path / "latin1.txt").write_bytes(b"CN1\n\xe9\xe9\n")
    with pytest.raises(PatsnapInputError, match=r"patents_from.*is not UTF-8 text"):
        read(tmp_path / "latin1.txt")
    with pytest.raises(PatsnapInputError, match=r"patents_from.*cannot read .*FileNotFoundError"):
        read(tmp_path / "gone.txt")


@pytest.mark.parametrize("value", ["portfolio.xlsx", "s3://bucket/portfolio", "", 42, "None"])
def test_what_is_not_a_known_kind_of_file_fails_at_parse(value: object) -> None:
    with pytest.raises(PatsnapInputError, match="patents_from"):
        Source.parse(value)


def test_uris_are_read_through_object_storage(tmp_path: Path) -> None:
    path = tmp_path / "portfolio.txt"
    path.write_text("CN1\nCN2\n")
    assert Source.parse(path.as_uri()).read(LOG) == (["CN1", "CN2"], [])


@pytest.mark.parametrize("cell", ['"CN1\rX"', '"CN2\nUS3"', "CN4\x00", "CN5\tA"])
def test_a_value_with_a_control_character_is_refused(tmp_path: Path, cell: str) -> None:
    path = tmp_path / "p.csv"
    path.write_bytes(f"patent_number\nCN0\n{cell}\n".encode())
    with pytest.raises(PatsnapInputError, match=r"patents_from.*line [34] .*control character"):
        read(path)


def test_an_endless_line_or_field_is_refused_not_held(tmp_path: Path) -> None:
    (tmp_path / "long.txt").write_text("CN1\n" + "9" * 5_000_000 + "\n")
    with pytest.raises(PatsnapInputError, match=r"patents_from.*line 2 is longer than 1024"):
        read(tmp_path / "long.txt")
    (tmp_path / "long.csv").write_text("patent_number\n" + "9" * 200_000 + "\n")
    with pytest.raises(PatsnapInputError, match=r"patents_from.*not a readable CSV file at line"):
        read(tmp_path / "long.csv")


def test_a_broken_parquet_file_is_an_input_error(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    (tmp_path / "p.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(PatsnapInputError, match=r"patents_from.*not a readable Parquet file"):
        read(tmp_path / "p.parquet")


def test_a_uri_with_a_password_is_refused_without_repeating_it() -> None:
    with pytest.raises(PatsnapInputError, match="patents_from_conn_id") as info:
        Source.parse("sftp://etl:hunter2@files.example/portfolio.csv")
    assert "hunter2" not in str(info.value)
    assert Source.parse("s3://lake_conn@bucket/portfolio.csv").kind == ".csv"  # a connection id is no secret
