"""storage.py: safe file names and where a report goes (the staged writes are staging.py's)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import responses

from airflow_provider_patsnap.errors import PatsnapInputError
from airflow_provider_patsnap.operators.reports import PatsnapDownloadReportOperator
from airflow_provider_patsnap.storage import (
    Destination,
    filename_from_link,
    is_local,
    sanitize_filename,
    user_uri,
)
from airflow_provider_patsnap.version_compat import AirflowFailException

# --------------------------------------------------------------------------- file names


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Report_2026_01_07.pdf", "Report_2026_01_07.pdf"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\Windows\\evil.pdf", "evil.pdf"),
        ("/abs/path/report.pdf", "report.pdf"),
        ("a\x00b\x1f.pdf", "ab.pdf"),  # control characters are dropped
        ("invoice\u202efdp.exe", "invoicefdp.exe"),  # a bidi override would show "invoiceexe.pdf"
        ("re\u200bport\u2060.pdf", "report.pdf"),  # zero-width and invisible characters
        ("line\u2028break\u2029.pdf", "linebreak.pdf"),
        ("CON", "_CON"),
        ("nul.pdf", "_nul.pdf"),
        ("COM1.pdf", "_COM1.pdf"),
        ("lpt\u00b9.docx", "_lpt\u00b9.docx"),
        ("aux .pdf", "_aux .pdf"),
        ("console.pdf", "console.pdf"),  # only the exact device names are reserved
        ("x.patsnap-0123456789abcdef.part", "x.patsnap-0123456789abcdef.part"),  # kept, and never swept (see staging)
        (".patsnap-" + "0" * 32 + ".part", "patsnap-" + "0" * 32 + ".part"),  # never a staging file's name
        ("cafe\u0301.pdf", "caf\u00e9.pdf"),  # NFC
        ("what?*<>|:.pdf", "what_.pdf"),
        (".hidden.pdf", "hidden.pdf"),  # never a dot file (staging files are dot files)
        ("  spaced out .pdf . ", "spaced out .pdf"),
        ("企业创新报告 (2026).docx", "企业创新报告 (2026).docx"),
    ],
)
def test_sanitize_filename_keeps_one_safe_segment(name: str, expected: str) -> None:
    assert sanitize_filename(name, "fallback") == expected


@pytest.mark.parametrize("name", [None, "", "..", ".", "a/..", "../", "/", " . "])
def test_sanitize_filename_falls_back_when_nothing_usable_is_left(name: str | None) -> None:
    assert sanitize_filename(name, "enterprise_42") == "enterprise_42"


@pytest.mark.parametrize(
    ("name", "expected_end"),
    [
        ("a" * 300 + ".pdf", "a.pdf"),
        ("报" * 150 + ".docx", "报.docx"),
        ("x" * 400, "x"),
        ("y" * 300 + ".tar.gz", "y.gz"),
    ],
)
def test_long_names_fit_in_255_bytes_and_keep_their_extension(name: str, expected_end: str) -> None:
    safe = sanitize_filename(name, "fallback")
    assert 245 < len(safe.encode("utf-8")) <= 255  # file systems count bytes (staging names do not embed it)
    assert safe.endswith(expected_end)
    assert safe.encode("utf-8").decode("utf-8") == safe  # not cut inside a character


@pytest.mark.parametrize(
    ("url", "disposition", "expected"),
    [
        ("https://cdn/r/x.pdf", 'attachment; filename="Report 2026.pdf"', "Report 2026.pdf"),
        ("https://cdn/r/x.pdf", "attachment; filename=Plain.pdf", "Plain.pdf"),
        ("https://cdn/r/x.pdf", "attachment; filename*=UTF-8''%E6%8A%A5%E5%91%8A.pdf", "报告.pdf"),
        ("https://cdn/r/x.pdf", "attachment; filename=\"a.pdf\"; filename*=UTF-8''b%20c.pdf", "b c.pdf"),
        ("https://cdn/r/x.pdf", "attachment; filename*=UTF-8'zh'%E6%8A%A5%E5%91%8A.pdf", "报告.pdf"),  # a language
        ("https://cdn/r/x.pdf", 'attachment; filename="a;b.pdf"', "a;b.pdf"),  # a quoted ";"
        ("https://cdn/r/x.pdf", 'attachment; filename="say \\"hi\\".pdf"', 'say "hi".pdf'),  # escaped quotes
        ("https://cdn/r/x.pdf", "attachment; filename*=utf-8''r%C3%A9sum%C3%A9.pdf; filename=ascii.pdf", "résumé.pdf"),
        ("https://cdn/r/x.pdf", "attachment; filename=", "x.pdf"),  # an empty name: the path's
        ("https://cdn/r/x.pdf", "inline", "x.pdf"),  # no name in the header: the path's
        (
            "https://cdn/r/x.pdf?response-content-disposition=attachment%3B%20filename%3D%22Signed.pdf%22&sign=s",
            None,
            "Signed.pdf",
        ),
        ("https://cdn/r/Report%202026.pdf?sign=q-signature%3Dabc", None, "Report 2026.pdf"),
        ("https://cdn/r/", None, None),
        ("https://cdn", None, None),
    ],
)
def test_filename_from_link(url: str, disposition: str | None, expected: str | None) -> None:
    assert filename_from_link(url, disposition) == expected


@pytest.mark.parametrize(
    "disposition",
    [
        "attachment; filename*=idna''x.pdf",  # a codec that cannot decode
        "attachment; filename*=undefined''x.pdf",
        "attachment; filename*0*=a; filename*=b",  # broken RFC 2231 continuations
        "attachment; filename*; filename*1*=a",
        "attachment; filename*=utf-8\x00''a.pdf",  # a NUL (e.g. %00 in a signed link's disposition)
        "attachment; filename*=utf-8''a%00b.pdf",
        'attachment; filename="' + ";" * 65_000,  # quadratic for the parser: refused by length
    ],
)
def test_a_disposition_the_parser_cannot_take_offers_no_name(disposition: str) -> None:
    assert filename_from_link("https://cdn/r/path.pdf", disposition) == "path.pdf"  # the path's, never an exception


def test_an_unusable_extended_name_falls_back_to_the_plain_one() -> None:
    assert filename_from_link("https://cdn/r/x.pdf", "attachment; filename*=; filename=plain.pdf") == "plain.pdf"
    unknown_charset = "attachment; filename*=undefined''x.pdf; filename=plain.pdf"
    assert filename_from_link("https://cdn/r/path.pdf", unknown_charset) == "plain.pdf"


def test_the_header_beats_the_signed_query_which_beats_the_path() -> None:
    url = "https://cdn/r/path.pdf?response-content-disposition=attachment%3Bfilename%3DQuery.pdf"
    assert filename_from_link(url, 'attachment; filename="Header.pdf"') == "Header.pdf"
    assert filename_from_link(url) == "Query.pdf"


# --------------------------------------------------------------------------- destinations


def test_a_trailing_slash_makes_a_folder(tmp_path: Path) -> None:
    folder = Destination.parse(f" {tmp_path}/reports/ ", conn_id="")
    assert folder.is_folder and folder.conn_id is None and folder.raw == f"{tmp_path}/reports/"
    assert folder.resolve("r.pdf").path == str(tmp_path / "reports" / "r.pdf")

    file = Destination.parse(f"{tmp_path}/reports/r.pdf", conn_id="aws_archive")
    assert not file.is_folder and file.conn_id == "aws_archive"
    assert file.resolve("ignored.pdf").path == str(tmp_path / "reports" / "r.pdf")


def test_relative_and_home_paths_are_made_absolute(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert Destination.parse("out/").resolve("r.pdf").path == str(tmp_path / "out" / "r.pdf")
    assert Destination.parse("~/r.pdf").resolve("x").path == str(tmp_path / "home" / "r.pdf")


def test_file_uris_are_accepted(tmp_path: Path) -> None:
    assert Destination.parse(f"file://{tmp_path}/").resolve("r.pdf").path == str(tmp_path / "r.pdf")


@pytest.mark.parametrize("value", [None, "", "   "])
def test_an_empty_destination_is_refused(value: Any) -> None:
    with pytest.raises(PatsnapInputError, match="folder ending with '/'") as info:
        Destination.parse(value)
    assert info.value.parameter == "destination"


def test_an_unknown_scheme_is_refused_naming_the_destination() -> None:
    with pytest.raises(PatsnapInputError, match="nosuchproto://bucket/reports/") as info:
        Destination.parse("nosuchproto://bucket/reports/")
    assert info.value.parameter == "destination"


def test_an_existing_folder_without_a_trailing_slash_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PatsnapInputError, match="is an existing folder; end it with '/'") as info:
        Destination.parse(str(tmp_path))
    assert info.value.parameter == "destination"
    assert Destination.parse(f"{tmp_path}/").is_folder  # with the slash it is fine


def test_existing_folder_without_trailing_slash_fails_the_task_before_any_call(oauth_conn: str, tmp_path: Path) -> None:
    with responses.RequestsMock() as rsps, pytest.raises(AirflowFailException, match="end it with '/'"):
        PatsnapDownloadReportOperator(
            task_id="dl", job_id="1", report_kind="enterprise", destination=str(tmp_path)
        ).execute({})
    assert len(rsps.calls) == 0


def test_user_uri_has_a_scheme_and_no_connection_id(tmp_path: Path) -> None:
    local = Destination.parse(f"{tmp_path}/", conn_id="some_conn").resolve("r.pdf")
    assert is_local(local) and user_uri(local) == f"file://{tmp_path}/r.pdf"
    remote = SimpleNamespace(protocol="s3", path="archive/patsnap/r.pdf")
    assert not is_local(remote) and user_uri(remote) == "s3://archive/patsnap/r.pdf"
