"""valuation.py: the six batch indicators, typed flat records, stable batch keys, clashing names."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from airflow_provider_patsnap import valuation
from airflow_provider_patsnap.errors import PatsnapInputError
from airflow_provider_patsnap.operators._indicator_stream import merge
from airflow_provider_patsnap.valuation import INDICATORS, Indicator, flatten, plan_batches


def test_the_family_matches_patsnaps_paths_and_wrappers() -> None:
    assert {s.code: (s.path.rsplit("/", 1)[1], s.wrapper) for s in INDICATORS.values()} == {
        "P035": ("patent_valuation", "patsnap_patent_valuation"),
        "P036": ("technology_indicators", "patsnap_technology_value"),
        "P037": ("legal_indicators", "patsnap_legal_value"),
        "P038": ("market_indicators", "patsnap_market_value"),
        "P039": ("strategic_indicators", "patsnap_strategic_value"),
        "P040": ("economic_indicators", "patsnap_economy_value"),
    }


def test_indicators_by_name_or_code_deduplicated_in_order() -> None:
    chosen = valuation.indicators(["Legal", "P035", "legal", "economic"])
    assert [s.name for s in chosen] == ["legal", "valuation", "economic"]
    assert [s.name for s in valuation.indicators("market,strategic")] == ["market", "strategic"]


@pytest.mark.parametrize("value", [[], "", ["legl"], 42, {"legal": 1}])
def test_bad_indicator_lists_name_the_parameter(value: object) -> None:
    with pytest.raises(PatsnapInputError, match=r"^indicators: "):
        valuation.indicators(value)


def test_flatten_types_every_field() -> None:
    item = {
        "pn": "US11205304B2",
        "patent_id": "718ead9c-4f3c-4674-8f5a-24e126827269",
        "patsnap_strategic_value": {
            "pledge_no": 4,
            "market_share": Decimal("2.05"),
            "current_assignee_no": 1,
            "original_applicant_no": Decimal("2.0"),
            "license_no": "junk",
        },
    }
    record = flatten(INDICATORS["strategic"], item)
    assert record["pledge_no"] == 4 and record["license_no"] is None
    assert record["market_share"] == 2.05 and type(record["market_share"]) is float
    assert record["current_assignee_no"] == 1.0 and type(record["original_applicant_no"]) is float
    assert record["transfer_no"] is None  # absent: present as None, so every record has every field
    assert flatten(INDICATORS["technology"], {"pn": "X"})["examiner_citation_category"] == []
    assert flatten(INDICATORS["legal"], {"patsnap_legal_value": {"has_reexam_invalid": "TRUE"}})["has_reexam_invalid"]


def test_batch_keys_are_stable_and_distinct() -> None:
    numbers = [f"CN{i}A" for i in range(250)]
    first = plan_batches([INDICATORS["legal"], INDICATORS["market"]], numbers, ["uuid-1"])
    again = plan_batches([INDICATORS["legal"], INDICATORS["market"]], numbers, ["uuid-1"])
    assert [b.key for b in first] == [b.key for b in again]
    assert len({b.key for b in first}) == len(first) == 8  # 3 + 1 per indicator
    assert all(len(b.patents) <= 100 for b in first)


def test_a_field_two_indicators_share_is_prefixed_with_the_indicator() -> None:
    a = Indicator("alpha", "X1", "/a", "w_a", {"cites_no": valuation.INT, "only_a": valuation.INT})
    b = Indicator("beta", "X2", "/b", "w_b", {"cites_no": valuation.INT})
    planned = plan_batches([a, b], ["CN1A"], [])
    pages = {
        planned[0].key: [{"pn": "CN1A", "w_a": {"cites_no": 3, "only_a": 1}}],
        planned[1].key: [{"pn": "CN1A", "w_b": {"cites_no": 5}}],
    }
    records, missing = merge([a, b], planned, pages, ["CN1A"], [])
    assert records[0].pop("fetched_at") <= dt.datetime.now(dt.timezone.utc).isoformat()  # when PatSnap answered
    assert records == [{"pn": "CN1A", "patent_id": None, "alpha_cites_no": 3, "only_a": 1, "beta_cites_no": 5}]
    assert missing == {"alpha": [], "beta": []}


def test_merge_keeps_input_order_and_what_matches_no_input() -> None:
    spec = INDICATORS["market"]
    planned = plan_batches([spec], ["cn2b", "CN1A"], [])
    pages = {planned[0].key: [{"pn": "CN1A"}, {"pn": "CN-2-B"}, {"pn": "CN2B"}]}
    records, missing = merge([spec], planned, pages, ["cn2b", "CN1A"], [])
    assert [r["pn"] for r in records] == ["CN2B", "CN1A", "CN-2-B"]  # paid for, so kept
    assert missing == {"market": []}


def test_record_columns_are_the_catalogue_s_typed_fields_with_shared_names_prefixed() -> None:
    from airflow_provider_patsnap.valuation import TIMESTAMP, Indicator, record_columns

    one = Indicator("one", "X1", "/x1", "w1", {"score": "int", "label": "str"})
    two = Indicator("two", "X2", "/x2", "w2", {"score": "float", "tags": "list[str]"})
    assert record_columns([one, two]) == [
        ("pn", "str"),
        ("patent_id", "str"),
        ("fetched_at", TIMESTAMP),
        ("one_score", "int"),
        ("label", "str"),
        ("two_score", "float"),
        ("tags", "list[str]"),
    ]


def test_values_a_lake_file_cannot_hold_become_empty_or_valid_text() -> None:
    from decimal import Decimal

    from airflow_provider_patsnap.valuation import INDICATORS, flatten

    spec = INDICATORS["legal"]
    item = {
        "pn": "CN1\ud800A",  # a lone surrogate, as a JSON escape can produce
        "patent_id": None,
        spec.wrapper: {
            "granted_no": Decimal("1E+20"),
            "litigation_no": 2**63,
            "patent_age_day": -(2**63),
            "legal_status": "\udfff",
        },
    }
    flat = flatten(spec, item)
    assert flat["granted_no"] is None and flat["litigation_no"] is None  # beyond int64
    assert flat["patent_age_day"] == -(2**63)  # int64's own minimum fits
    assert flat["pn"] == "CN1?A" and flat["legal_status"] == "?"
    assert (flat["pn"] + flat["legal_status"]).encode("utf-8")
