"""Deterministic batch indicator values (P035-P040) per patent number, in plausible ranges.

Every value is a pure function of the patent number, so any process serves the same answer. The
indicators agree with each other where they overlap (P036 ``cited_by_no`` is P038 ``cites_no``; a
dead patent in P037 gets a low legal score in P035; P038 ``patent_type`` follows the kind code).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Any

LEGAL_STATUSES = (
    "Published",
    "Examining",
    "Granted",
    "Abandoned",
    "Withdrawn",
    "Expired",
    "Non-Payment",
    "Ceased",
)
DEAD_STATUSES = frozenset({"Abandoned", "Withdrawn", "Expired", "Non-Payment", "Ceased"})
LITIGATION_COUNTRIES = ("US", "CN", "DE", "JP", "EP", "KR", "GB", "FR")
EXAMINER_CATEGORIES = ("A", "X", "Y", "D", "E", "P", "L", "O", "T")
_KIND_CODE_RE = re.compile(r"\d([A-Z])\d?$")
_PATENT_TYPES = {"B": "PATENT", "C": "PATENT", "E": "PATENT", "U": "UTILITY", "Y": "UTILITY", "S": "DESIGN"}


def _digest(label: str, number: str) -> bytes:
    return hashlib.sha256(label.encode("ascii") + b":" + number.encode("utf-8")).digest()


def _unit(data: bytes) -> float:
    """A fraction in [0, 1) from some hash bytes."""
    return int.from_bytes(data, "big") / (1 << (8 * len(data)))


def _facts(number: str) -> dict[str, Any]:
    """Facts shared by several indicators, so they agree with each other."""
    h = _digest("facts", number)
    family_size = 1 + h[0] % 12
    references = h[5] % 40
    claim_no = 1 + h[7] % 30
    match = _KIND_CODE_RE.search(number)
    kind_code = match.group(1) if match else ("B" if h[9] % 2 else "A")  # no kind code: either
    patent_type = _PATENT_TYPES.get(kind_code, "APPLICATION")
    return {
        "family_size": family_size,
        "family_covered_country_no": 1 + h[1] % family_size,
        "cited_by_no": (h[2] * h[3]) % 180 if h[4] % 4 else 0,
        "reference_no": references,
        "examiner_cites_no": min(references, h[6] % 9),
        "claim_no": claim_no,
        "independent_claim_no": 1 + h[8] % min(claim_no, 4),
        "patent_type": patent_type,
    }


def _legal_value(number: str) -> dict[str, Any]:
    """P037 ``patsnap_legal_value``."""
    h = hashlib.sha256(b"legal:" + number.encode("utf-8")).digest()
    status = LEGAL_STATUSES[h[0] % len(LEGAL_STATUSES)]
    litigation_no = h[2] % 6 if h[2] % 3 == 0 else 0
    n_countries = len(LITIGATION_COUNTRIES)
    countries = [LITIGATION_COUNTRIES[(h[13] + i) % n_countries] for i in range(min(litigation_no, 3))]
    return {
        "granted_no": h[1] % 12 + (1 if status == "Granted" else 0),
        "legal_status": status,
        "litigation_no": litigation_no,
        "patent_age_day": 30 + int.from_bytes(h[3:5], "big") % 7300,
        "invalid_fail_no": h[5] % 3,
        "grant_waiting_day": int.from_bytes(h[6:8], "big") % 1500,
        "has_reexam_invalid": "TRUE" if h[8] % 4 == 0 else "FALSE",
        "invalid_success_no": h[9] % 2,
        "litigation_country": countries,
        "in_application_ratio": round(h[10] / 255, 4),
        "remaining_time_ratio": round(h[11] / 255, 4),
        "avg_originality_index": round(h[12] / 255 * 2, 4),
    }


def _valuation_value(number: str) -> dict[str, Any]:
    """P035 ``patsnap_patent_valuation``: a US-dollar value and five scores out of 100."""
    h = _digest("valuation", number)
    dead = _legal_value(number)["legal_status"] in DEAD_STATUSES
    scores = {
        "patsnap_legal": h[0] % 21 if dead else 30 + h[0] % 70,
        "patsnap_market": 5 + h[1] % 91,
        "patsnap_economy": 5 + h[2] % 91,
        "patsnap_strategic": 5 + h[3] % 91,
        "patsnap_technology": 5 + h[4] % 91,
    }
    mean = sum(scores.values()) / len(scores) / 100
    dollars = mean * mean * (20 + int.from_bytes(h[5:7], "big") % 4000)
    return {"patent_value": max(1, round(dollars)) * 1000, **scores}


def _technology_value(number: str) -> dict[str, Any]:
    """P036 ``patsnap_technology_value`` (``has_sep`` is an int flag; categories a list of strings)."""
    facts = _facts(number)
    h = _digest("technology", number)
    ipc_scopes = 1 + h[0] % 8
    main_groups = 1 + h[1] % ipc_scopes
    categories = sorted({EXAMINER_CATEGORIES[h[3 + i] % len(EXAMINER_CATEGORIES)] for i in range(h[2] % 4)})
    return {
        "has_sep": 1 if h[9] % 10 == 0 else 0,
        "award_no": h[10] % 3 if h[11] % 5 == 0 else 0,
        "claim_no": facts["claim_no"],
        "cited_by_no": facts["cited_by_no"],
        "ipc_scopes_no": ipc_scopes,
        "self_cites_no": min(facts["cited_by_no"], h[12] % 4),
        "tech_scope_no": 1 + h[13] % 6,
        "pdf_total_page": 4 + h[14] % 60,
        "avg_sipo_ipc_tct": round(500 + _unit(h[15:18]) * 6000, 6),
        "avg_generality_index": round(_unit(h[18:20]), 5),
        "independent_claim_no": facts["independent_claim_no"],
        "ipc_section_scopes_no": 1 + h[20] % min(main_groups, 3),
        "ipc_main_group_scopes_no": main_groups,
        "examiner_citation_category": categories,
    }


def _market_value(number: str) -> dict[str, Any]:
    """P038 ``patsnap_market_value``."""
    facts = _facts(number)
    return {
        "cites_no": facts["cited_by_no"],
        "family_size": facts["family_size"],
        "patent_type": facts["patent_type"],
        "reference_no": facts["reference_no"],
        "examiner_cites_no": facts["examiner_cites_no"],
        "family_covered_country_no": facts["family_covered_country_no"],
    }


def _double(value: float, whole_as_int: bool) -> float | int:
    """A double as PatSnap's JSON writer sends it: a whole number arrives as ``1`` or as ``1.0``."""
    return int(value) if whole_as_int and float(value).is_integer() else float(value)


def _strategic_value(number: str) -> dict[str, Any]:
    """P039 ``patsnap_strategic_value``: three counts typed double arrive as ``1`` for some patents,
    ``1.0`` for others (deterministic per patent)."""
    h = _digest("strategic", number)
    as_int = h[0] % 2 == 0
    assignees = 1 + (h[1] % 3 if h[2] % 4 == 0 else 0)
    companies = assignees - (h[3] % (assignees + 1) if h[4] % 4 == 0 else 0)
    return {
        "pledge_no": h[5] % 3 if h[6] % 6 == 0 else 0,
        "license_no": h[7] % 4 if h[8] % 3 == 0 else 0,
        "inventor_no": 1 + h[9] % 12,
        "transfer_no": h[10] % 4,
        "market_share": round(_unit(h[11:13]) * 30, 2),
        "market_sales_usd": round(_unit(h[13:16]) * 50_000, 2),
        "market_competition": round(_unit(h[16:19]) * 200_000, 1),
        "current_assignee_no": _double(assignees, as_int),
        "original_applicant_no": _double(1 + h[19] % 3, as_int),
        "current_company_assignee_ratio": _double(round(companies / assignees, 4), as_int),
    }


def _economic_value(number: str) -> dict[str, Any]:
    """P040 ``patsnap_economy_value``: three doubles."""
    h = _digest("economic", number)
    return {
        "ipc_class_5y_incr": float(round(-0.3 + _unit(h[0:2]) * 1.8, 4)),
        "family_trend_stability": float(round(_unit(h[2:4]), 2)),
        "ipc_main_group_5y_incr": float(round(-0.4 + _unit(h[4:6]) * 2.0, 4)),
    }


# Indicator name (a key of protocol.INDICATORS) -> the values of its wrapper object.
INDICATOR_VALUES: dict[str, Callable[[str], dict[str, Any]]] = {
    "valuation": _valuation_value,
    "technology": _technology_value,
    "legal": _legal_value,
    "market": _market_value,
    "strategic": _strategic_value,
    "economic": _economic_value,
}
