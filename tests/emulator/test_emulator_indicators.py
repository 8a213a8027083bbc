"""Protocol tests of the emulator's batch indicator endpoints P035-P040, driven with plain ``requests``."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from airflow_provider_patsnap.testing.emulator import PatsnapEmulator

BASE = "/patent-valuation-data"
# code -> (path, wrapper object in each item of `data`), per §3.6.1 of the API reference.
ENDPOINTS = {
    "P035": (BASE + "/patent_valuation", "patsnap_patent_valuation"),
    "P036": (BASE + "/technology_indicators", "patsnap_technology_value"),
    "P037": (BASE + "/legal_indicators", "patsnap_legal_value"),
    "P038": (BASE + "/market_indicators", "patsnap_market_value"),
    "P039": (BASE + "/strategic_indicators", "patsnap_strategic_value"),
    "P040": (BASE + "/economic_indicators", "patsnap_economy_value"),
}
INT, FLOAT, STR, LIST, NUMBER = int, float, str, list, (int, float)
# Field -> JSON type, per §3.5 and §3.6.2-3.6.6 (NUMBER: a double that may arrive as `1` or `1.0`).
FIELDS: dict[str, dict[str, Any]] = {
    "P035": dict.fromkeys(
        (
            "patent_value",
            "patsnap_legal",
            "patsnap_market",
            "patsnap_economy",
            "patsnap_strategic",
            "patsnap_technology",
        ),
        INT,
    ),
    "P036": {
        **dict.fromkeys(
            ("has_sep", "award_no", "claim_no", "cited_by_no", "ipc_scopes_no", "self_cites_no", "tech_scope_no"),
            INT,
        ),
        "pdf_total_page": INT,
        "avg_sipo_ipc_tct": FLOAT,
        "avg_generality_index": FLOAT,
        "independent_claim_no": INT,
        "ipc_section_scopes_no": INT,
        "ipc_main_group_scopes_no": INT,
        "examiner_citation_category": LIST,
    },
    "P037": {
        **dict.fromkeys(("granted_no", "litigation_no", "patent_age_day", "invalid_fail_no"), INT),
        "legal_status": STR,
        "grant_waiting_day": INT,
        "has_reexam_invalid": STR,
        "invalid_success_no": INT,
        "litigation_country": LIST,
        **dict.fromkeys(("in_application_ratio", "remaining_time_ratio", "avg_originality_index"), FLOAT),
    },
    "P038": {
        **dict.fromkeys(("cites_no", "family_size"), INT),
        "patent_type": STR,
        **dict.fromkeys(("reference_no", "examiner_cites_no", "family_covered_country_no"), INT),
    },
    "P039": {
        **dict.fromkeys(("pledge_no", "license_no", "inventor_no", "transfer_no"), INT),
        **dict.fromkeys(("market_share", "market_sales_usd", "market_competition"), FLOAT),
        **dict.fromkeys(("current_assignee_no", "original_applicant_no", "current_company_assignee_ratio"), NUMBER),
    },
    "P040": dict.fromkeys(("ipc_class_5y_incr", "family_trend_stability", "ipc_main_group_5y_incr"), FLOAT),
}
HUNDRED = [f"CN{110000000 + 7 * i}{'BAU'[i % 3]}" for i in range(100)]


@pytest.fixture
def emu() -> Iterator[PatsnapEmulator]:
    with PatsnapEmulator(job_seconds=0.3) as emulator:
        yield emulator
        assert emulator.errors == []


def get(emu: PatsnapEmulator, code: str, bearer: str | None = "api-key", **params: str) -> requests.Response:
    headers = {"Authorization": f"Bearer {emu.api_key if bearer == 'api-key' else bearer}"} if bearer else {}
    return requests.get(emu.url + ENDPOINTS[code][0], params=params, headers=headers, timeout=5)


def data(emu: PatsnapEmulator, code: str, **params: str) -> list[dict[str, Any]]:
    resp = get(emu, code, **params)
    assert resp.status_code == 200, resp.text
    payload = resp.json()
    assert (payload["status"], payload["error_code"]) == (True, 0), payload
    assert isinstance(payload["data"], list)
    return payload["data"]


@pytest.mark.parametrize("code", list(ENDPOINTS))
def test_indicator_endpoints_are_served_like_p037(emu: PatsnapEmulator, code: str) -> None:
    path, wrapper = ENDPOINTS[code]
    invalid = {"status": False, "error_code": 68300004, "error_msg": "Invalid parameter!"}
    too_many = ",".join(f"CN{100000 + i}B" for i in range(101))
    ids = ",".join(PatsnapEmulator.patent_id_for(f"US{100000 + i}") for i in range(101))
    for params in ({"patent_number": too_many}, {"patent_id": ids}, {}, {"patent_number": " , "}):
        assert get(emu, code, **params).json() == invalid
    assert requests.post(emu.url + path, timeout=5).status_code == 404  # GET only
    assert emu.billed() == 0

    patent_id = PatsnapEmulator.patent_id_for("EP3456789A1")
    params = {
        "patent_number": "CN108977442B,US1234UNKNOWN,cn108977442b,XX12,US20230123456A1",
        "patent_id": f"{patent_id},00000000-0000-0000-0000-000000000000,not-an-id",
    }
    records = data(emu, code, **params)
    assert [record["pn"] for record in records] == ["CN108977442B", "US20230123456A1", "EP3456789A1"]
    assert [record["patent_id"] for record in records] == [
        PatsnapEmulator.patent_id_for("CN108977442B"),
        PatsnapEmulator.patent_id_for("US20230123456A1"),
        patent_id,
    ]
    for record in records:
        assert set(record) == {"pn", "patent_id", wrapper}
        value = record[wrapper]
        assert set(value) == set(FIELDS[code]), sorted(value)
        for name, expected in FIELDS[code].items():
            assert isinstance(value[name], expected), (name, value[name])
            assert not isinstance(value[name], bool), name  # flags are ints, not JSON booleans
    assert data(emu, code, **params) == records  # deterministic
    assert emu.billed(path) == emu.stats["billable_units"] == 6  # billed once per result returned

    assert len(data(emu, code, patent_number=",".join(HUNDRED))) == 100
    assert emu.billed(path) == 106
    assert emu.stats["billed"] == {path: 106}
    assert emu.stats["calls"][f"GET {path}"] == 7


@pytest.mark.parametrize("code", list(ENDPOINTS))
def test_indicator_endpoints_share_auth_qps_and_faults(code: str) -> None:
    with PatsnapEmulator(qps_limit=2) as emu:
        pn = {"patent_number": "CN108977442B"}
        assert get(emu, code, bearer=None, **pn).json()["error_code"] == 67200003
        assert get(emu, code, bearer="sk-wrong", **pn).json()["error_code"] == 67200003
        token = requests.post(
            f"{emu.url}/oauth/token",
            auth=(emu.client_id, emu.client_secret),
            data={"grant_type": "client_credentials"},
            timeout=5,
        ).json()["token"]
        no_apikey = get(emu, code, bearer=token, **pn)
        assert no_apikey.json()["error_code"] == 67200008
        with_apikey = get(emu, code, bearer=token, apikey=emu.client_id, **pn)
        assert with_apikey.json()["error_code"] == 0
        answers = [get(emu, code, **pn) for _ in range(4)]
        assert 429 in [resp.status_code for resp in answers]
        assert emu.stats["rate_limited"] >= 1
    with PatsnapEmulator(fault_rate=1.0) as emu:
        for _ in range(5):
            resp = get(emu, code, patent_number="CN108977442B")
            assert resp.status_code in (200, 429, 503)
            assert resp.status_code != 200 or resp.json()["error_code"] == 68300008
        assert emu.stats["faults"] == 5
        assert emu.billed() == 0


def test_patents_known_to_one_indicator_are_known_to_all(emu: PatsnapEmulator) -> None:
    numbers = ",".join([*HUNDRED[:60], "US1234UNKNOWN", "XX12", "WO2020123456A1", "US11205304B2"])
    found = {code: [record["pn"] for record in data(emu, code, patent_number=numbers)] for code in ENDPOINTS}
    assert len(found["P037"]) == 62
    assert all(pns == found["P037"] for pns in found.values()), found
    assert emu.billed() == 6 * 62


def test_indicator_values_are_plausible_and_consistent(emu: PatsnapEmulator) -> None:
    numbers = ",".join(HUNDRED)
    by_code = {
        code: {r["pn"]: r[ENDPOINTS[code][1]] for r in data(emu, code, patent_number=numbers)} for code in ENDPOINTS
    }
    seen_types: set[str] = set()
    for pn in HUNDRED:
        valuation, technology, legal, market, strategic, economic = (by_code[code][pn] for code in ENDPOINTS)
        assert 1000 <= valuation["patent_value"] <= 10_000_000
        assert valuation["patent_value"] % 1000 == 0
        for name in ("patsnap_legal", "patsnap_market", "patsnap_economy", "patsnap_strategic", "patsnap_technology"):
            assert 0 <= valuation[name] <= 100
        if legal["legal_status"] in {"Abandoned", "Withdrawn", "Expired", "Non-Payment", "Ceased"}:
            assert valuation["patsnap_legal"] <= 20

        assert technology["has_sep"] in (0, 1)
        assert set(technology["examiner_citation_category"]) <= set("AXYDEPLOT")
        assert all(type(category) is str for category in technology["examiner_citation_category"])
        assert 1 <= technology["independent_claim_no"] <= technology["claim_no"]
        assert technology["self_cites_no"] <= technology["cited_by_no"]
        assert 1 <= technology["ipc_section_scopes_no"] <= technology["ipc_main_group_scopes_no"]
        assert technology["ipc_main_group_scopes_no"] <= technology["ipc_scopes_no"]
        assert 0 <= technology["avg_generality_index"] <= 1
        assert technology["avg_sipo_ipc_tct"] > 0

        assert market["cites_no"] == technology["cited_by_no"]
        assert market["patent_type"] in ("APPLICATION", "PATENT", "UTILITY", "DESIGN")
        expected_type = {"B": "PATENT", "A": "APPLICATION", "U": "UTILITY"}[pn[-1]]
        assert market["patent_type"] == expected_type
        assert 1 <= market["family_covered_country_no"] <= market["family_size"]
        assert market["examiner_cites_no"] <= market["reference_no"]

        assert strategic["inventor_no"] >= 1
        assert 0 <= strategic["market_share"] <= 100
        assert strategic["market_sales_usd"] >= 0
        assert strategic["current_assignee_no"] >= 1
        assert strategic["original_applicant_no"] >= 1
        assert 0 <= strategic["current_company_assignee_ratio"] <= 1
        seen_types.add(type(strategic["current_assignee_no"]).__name__)

        assert -1 <= economic["ipc_class_5y_incr"] <= 2
        assert -1 <= economic["ipc_main_group_5y_incr"] <= 2
        assert 0 <= economic["family_trend_stability"] <= 1
    assert seen_types == {"int", "float"}  # the double-typed counts arrive as `1` for some, `1.0` for others


def test_strategic_double_counts_on_the_wire(emu: PatsnapEmulator) -> None:
    text = get(emu, "P039", patent_number=",".join(HUNDRED)).text
    as_int = re.findall(r'"current_assignee_no":\d+[,}]', text)
    as_double = re.findall(r'"current_assignee_no":\d+\.\d+[,}]', text)
    assert as_int and as_double
    assert len(as_int) + len(as_double) == 100
    # Parsed, both are the same numbers a client should accept.
    values = [item["patsnap_strategic_value"]["current_assignee_no"] for item in json.loads(text)["data"]]
    assert all(float(value).is_integer() for value in values)


def test_documented_example_patent(emu: PatsnapEmulator) -> None:
    """The docs' example item (US11205304B2) comes back in the documented shape on every endpoint."""
    for code, (_, wrapper) in ENDPOINTS.items():
        (item,) = data(emu, code, patent_number="US11205304B2")
        assert item["pn"] == "US11205304B2"
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", item["patent_id"])
        (same,) = data(emu, code, patent_id=item["patent_id"])
        assert same == item
        assert isinstance(item[wrapper], dict)
