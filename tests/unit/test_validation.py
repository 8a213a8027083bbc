"""validation.py: the input checks that run before any billable call, each naming its parameter."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_patsnap import validation
from airflow_provider_patsnap.errors import PatsnapInputError

VALID_USCC = "91350100M000100Y43"


def refused(call: Any, parameter: str) -> PatsnapInputError:
    """``call()`` must raise a ``PatsnapInputError`` naming ``parameter`` (first, as users read it)."""
    with pytest.raises(PatsnapInputError) as info:
        call()
    assert info.value.parameter == parameter
    assert str(info.value).startswith(f"{parameter}: ")
    return info.value


# --------------------------------------------------------------------------- report_type


@pytest.mark.parametrize(("value", "expected"), [("pdf", "pdf"), (" PDF ", "pdf"), ("Word", "word")])
def test_report_type_accepts_pdf_and_word_in_any_case(value: str, expected: str) -> None:
    assert validation.report_type(value) == expected


@pytest.mark.parametrize("value", ["xlsx", "docx", "", "   ", None, "pdf,word"])
def test_report_type_refuses_anything_else(value: Any) -> None:
    exc = refused(lambda: validation.report_type(value), "report_type")
    assert "'pdf' or 'word'" in str(exc)


# --------------------------------------------------------------------------- credit codes (GB 32100)


@pytest.mark.parametrize("code", [VALID_USCC, "914403001922038216"])
def test_valid_credit_codes_pass_the_check_digit(code: str) -> None:
    assert validation.credit_code(code) == code
    assert validation.uscc_check_char(code[:17]) == code[17]


def test_valid_credit_code_is_normalised() -> None:
    assert validation.credit_code(" 91350100m000100y43 ") == VALID_USCC


@pytest.mark.parametrize("value", [None, "", "   "])
def test_missing_credit_code_is_none(value: Any) -> None:
    assert validation.credit_code(value) is None


def test_wrong_check_digit_names_the_expected_one() -> None:
    exc = refused(lambda: validation.credit_code("91350100M000100Y44"), "credit_code")
    assert "check digit" in str(exc) and "'3'" in str(exc)


@pytest.mark.parametrize("value", ["9135010", "91350100M000100Y4", "91350100M000100Y433"])
def test_credit_code_must_have_18_characters(value: str) -> None:
    exc = refused(lambda: validation.credit_code(value), "credit_code")
    assert "18 characters" in str(exc)


@pytest.mark.parametrize("letter", ["I", "O", "Z", "S", "V"])
def test_letters_outside_the_gb32100_alphabet_are_refused(letter: str) -> None:
    exc = refused(lambda: validation.credit_code(f"91350100M000100Y{letter}3"), "credit_code")
    assert letter in str(exc) and "GB 32100" in str(exc)


def test_every_single_character_typo_is_caught() -> None:
    # The check digit exists to catch one mistyped character: any substitution in the first 17 fails.
    for position in range(17):
        for ch in validation._USCC_ALPHABET:
            if ch == VALID_USCC[position]:
                continue
            typo = VALID_USCC[:position] + ch + VALID_USCC[position + 1 :]
            with pytest.raises(PatsnapInputError, match="check digit"):
                validation.credit_code(typo)


# --------------------------------------------------------------------------- identifiers


def test_optional_text_strips_and_blanks_are_none() -> None:
    assert validation.optional_text("x", "  ACME  ") == "ACME"
    assert validation.optional_text("x", 123) == "123"
    assert validation.optional_text("x", " \t\n") is None
    assert validation.optional_text("x", None) is None


@pytest.mark.parametrize("value", [["ACME"], {"name": "ACME"}, True, 1.5])
def test_optional_text_refuses_non_strings(value: Any) -> None:
    exc = refused(lambda: validation.optional_text("company_name", value), "company_name")
    assert "must be a string" in str(exc)


def test_enterprise_identifiers_keep_only_what_was_given() -> None:
    assert validation.enterprise_identifiers(" ACME ", None, "  ") == {"company_name": "ACME"}
    assert validation.enterprise_identifiers(None, VALID_USCC.lower(), 12345) == {
        "credit_code": VALID_USCC,
        "org_number": "12345",
    }


@pytest.mark.parametrize(("name", "code", "org"), [(None, None, None), ("   ", "", "\t\n")])
def test_enterprise_identifiers_need_at_least_one(name: Any, code: Any, org: Any) -> None:
    exc = refused(lambda: validation.enterprise_identifiers(name, code, org), "company_name")
    assert "at least one of company_name, credit_code or org_number" in str(exc)


def test_a_bad_credit_code_is_refused_even_next_to_a_good_name() -> None:
    refused(lambda: validation.enterprise_identifiers("ACME", "91350100M000100Y44", None), "credit_code")


def test_patent_identifier_is_exactly_one_of_id_or_number() -> None:
    assert validation.patent_identifier(None, " CN108977442B ") == {"patent_number": "CN108977442B"}
    assert validation.patent_identifier("6f2b51ac", "") == {"patent_id": "6f2b51ac"}
    assert "not both" in str(refused(lambda: validation.patent_identifier("x", "CN1"), "patent_number"))
    refused(lambda: validation.patent_identifier(None, None), "patent_number")
    refused(lambda: validation.patent_identifier("  ", "  "), "patent_number")


# --------------------------------------------------------------------------- patent lists and batches


def test_patent_list_strips_and_drops_duplicates_case_insensitively_keeping_order() -> None:
    assert validation.patent_list("patent_numbers", [" CN2A", "cn1a", "CN2A", "CN1A", 7]) == ["CN2A", "cn1a", "7"]


def test_patent_list_accepts_one_comma_separated_string() -> None:
    assert validation.patent_list("patent_numbers", "CN1A, CN2B,cn1a") == ["CN1A", "CN2B"]


def test_patent_list_of_nothing_is_empty() -> None:
    assert validation.patent_list("patent_numbers", None) == []
    assert validation.patent_list("patent_numbers", []) == []


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        (["CN1A", ""], "item 1 is empty"),
        (["CN1A", None], "item 1 is empty"),
        (["  "], "item 0 is empty"),
        (" , ", "item 0 is empty"),
        ("", "item 0 is empty"),
        (["CN1A,CN2B"], "contains a comma"),
        ([{"pn": "CN1A"}], "item 0 must be a string"),
        ([True], "item 0 must be a string"),
        (42, "must be a list of strings"),
    ],
)
def test_patent_list_refuses_blanks_commas_and_non_strings(value: Any, detail: str) -> None:
    exc = refused(lambda: validation.patent_list("patent_numbers", value), "patent_numbers")
    assert detail in str(exc)


def test_a_blank_far_down_the_list_is_still_refused() -> None:
    numbers = [f"CN{1000000 + i}A" for i in range(150)] + ["  "]
    assert "item 150" in str(refused(lambda: validation.patent_list("patent_numbers", numbers), "patent_numbers"))


def test_patents_needs_numbers_or_ids_and_names_the_right_list() -> None:
    assert validation.patents(["CN1A"], None) == (["CN1A"], [])
    assert validation.patents(None, "id-1,id-2") == ([], ["id-1", "id-2"])
    assert "no patents given" in str(refused(lambda: validation.patents([], None), "patent_numbers"))
    refused(lambda: validation.patents(None, ["id-1", " "]), "patent_ids")


@pytest.mark.parametrize(("count", "sizes"), [(0, []), (1, [1]), (100, [100]), (101, [100, 1]), (250, [100, 100, 50])])
def test_batches_hold_at_most_100_and_keep_every_item_in_order(count: int, sizes: list[int]) -> None:
    items = [f"CN{i}A" for i in range(count)]
    chunks = validation.batches(items)
    assert [len(c) for c in chunks] == sizes
    assert [n for c in chunks for n in c] == items
    assert validation.MAX_BATCH == 100


@pytest.mark.parametrize("value", [b"CN1,CN2", bytearray(b"CN1"), {"CN1": 1}])
def test_bytes_and_mappings_are_not_patent_lists(value: object) -> None:
    with pytest.raises(PatsnapInputError, match="patent_numbers: must be a list of strings"):
        validation.patent_list("patent_numbers", value)


# --------------------------------------------------------------------------- templates rendered to text


@pytest.mark.parametrize(
    ("call", "parameter"),
    [
        (lambda: validation.enterprise_identifiers("None", None, None), "company_name"),
        (lambda: validation.enterprise_identifiers("ACME", None, " None "), "org_number"),
        (lambda: validation.patent_identifier(None, "None"), "patent_number"),
        (lambda: validation.patents("None", None), "patent_numbers"),
        (lambda: validation.patents(["CN1", "None"], None), "patent_numbers[1]"),
        (lambda: validation.patents("['CN108977442B', 'US5012236A']", None), "patent_numbers"),
        (lambda: validation.patents(None, '("a",)'), "patent_ids"),
        (lambda: validation.patents("[1, 2]", None), "patent_numbers"),
        (lambda: validation.patents("[]", None), "patent_numbers"),
    ],
)
def test_text_only_a_template_gone_wrong_renders_is_refused_naming_the_parameter(call: Any, parameter: str) -> None:
    with pytest.raises(PatsnapInputError) as info:
        call()
    assert info.value.parameter == parameter
    assert "nothing was sent to PatSnap" in str(info.value) and "render_template_as_native_obj=True" in str(info.value)


@pytest.mark.parametrize("item", ["['CN1'", "'US2']", '"CN1"', "[CN1]"])
def test_list_items_with_quotes_or_brackets_are_refused(item: str) -> None:
    with pytest.raises(PatsnapInputError, match="contains quotes or brackets"):
        validation.patents(["CN108977442B", item], None)


@pytest.mark.parametrize(
    "name", ["(Beijing) Example Technology Co. (Ltd)", "Example (Shanghai) Co., Ltd.", "None of the Above Ltd", "[A]"]
)
def test_company_names_that_merely_look_odd_are_kept(name: str) -> None:
    assert validation.enterprise_identifiers(name, None, None) == {"company_name": name}


@pytest.mark.parametrize("text", ["[None]", "['ACME', None]", "{'name': 'ACME'}", "null", "{1, 2}", "('a', 'b')"])
def test_every_python_container_or_null_rendered_as_text_is_refused(text: str) -> None:
    with pytest.raises(PatsnapInputError, match="nothing was sent to PatSnap"):
        validation.enterprise_identifiers(text, None, None)


def test_a_generic_calls_query_and_body_pass_the_same_gate() -> None:
    with pytest.raises(PatsnapInputError, match=r"^query\.patent_number: is the text 'None'"):
        validation.rendered_values("query", {"patent_number": "None"})
    with pytest.raises(PatsnapInputError, match=r"^json\.patents\[0\]: "):
        validation.rendered_values("json", {"patents": ["['CN1', 'US2']"]})
    assert validation.rendered_values("json", {"q": "(CN1 OR US2) AND TA:battery", "n": 3}) == {
        "q": "(CN1 OR US2) AND TA:battery",
        "n": 3,
    }
