"""PatSnap's batch patent indicators (P035-P040): endpoints, wrappers, field types, flat records.

All six work the same way (GET, ``patent_number``/``patent_id`` comma lists of up to 100, one item
per patent found, billed per result returned); each item is ``{pn, patent_id, <wrapper>: {...}}``
with a wrapper name that cannot be derived from the path (P040's is ``patsnap_economy_value``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_provider_patsnap.errors import PatsnapInputError
from airflow_provider_patsnap.validation import batches, rendered_text

INT, FLOAT, TEXT, BOOL, TEXTS = "int", "float", "str", "bool", "list[str]"


@dataclass(frozen=True)
class Indicator:
    """One batch indicator endpoint."""

    name: str
    code: str
    path: str
    wrapper: str
    fields: Mapping[str, str]  # field -> INT | FLOAT | TEXT | BOOL | TEXTS


_BASE = "/patent-valuation-data"
INDICATORS: dict[str, Indicator] = {
    spec.name: spec
    for spec in (
        Indicator(
            "valuation",
            "P035",
            f"{_BASE}/patent_valuation",
            "patsnap_patent_valuation",
            {
                "patent_value": INT,
                "patsnap_legal": INT,
                "patsnap_market": INT,
                "patsnap_economy": INT,
                "patsnap_strategic": INT,
                "patsnap_technology": INT,
            },
        ),
        Indicator(
            "technology",
            "P036",
            f"{_BASE}/technology_indicators",
            "patsnap_technology_value",
            {
                "has_sep": INT,
                "award_no": INT,
                "claim_no": INT,
                "cited_by_no": INT,
                "ipc_scopes_no": INT,
                "self_cites_no": INT,
                "tech_scope_no": INT,
                "pdf_total_page": INT,
                "avg_sipo_ipc_tct": FLOAT,
                "avg_generality_index": FLOAT,
                "independent_claim_no": INT,
                "ipc_section_scopes_no": INT,
                "ipc_main_group_scopes_no": INT,
                "examiner_citation_category": TEXTS,
            },
        ),
        Indicator(
            "legal",
            "P037",
            f"{_BASE}/legal_indicators",
            "patsnap_legal_value",
            {
                "legal_status": TEXT,
                "granted_no": INT,
                "litigation_no": INT,
                "patent_age_day": INT,
                "invalid_fail_no": INT,
                "invalid_success_no": INT,
                "grant_waiting_day": INT,
                "has_reexam_invalid": BOOL,
                "litigation_country": TEXTS,
                "in_application_ratio": FLOAT,
                "remaining_time_ratio": FLOAT,
                "avg_originality_index": FLOAT,
            },
        ),
        Indicator(
            "market",
            "P038",
            f"{_BASE}/market_indicators",
            "patsnap_market_value",
            {
                "cites_no": INT,
                "family_size": INT,
                "patent_type": TEXT,
                "reference_no": INT,
                "examiner_cites_no": INT,
                "family_covered_country_no": INT,
            },
        ),
        Indicator(
            "strategic",
            "P039",
            f"{_BASE}/strategic_indicators",
            "patsnap_strategic_value",
            {
                "pledge_no": INT,
                "license_no": INT,
                "inventor_no": INT,
                "transfer_no": INT,
                "market_share": FLOAT,
                "market_sales_usd": FLOAT,
                "market_competition": FLOAT,
                # Counts, but typed double by PatSnap (1 or 1.0): kept as numbers, not cast to int.
                "current_assignee_no": FLOAT,
                "original_applicant_no": FLOAT,
                "current_company_assignee_ratio": FLOAT,
            },
        ),
        Indicator(
            "economic",
            "P040",
            f"{_BASE}/economic_indicators",
            "patsnap_economy_value",
            {"ipc_class_5y_incr": FLOAT, "family_trend_stability": FLOAT, "ipc_main_group_5y_incr": FLOAT},
        ),
    )
}


def indicator(value: Any, parameter: str = "indicators") -> Indicator:
    """The ``Indicator`` named ``value`` (or its code, e.g. ``P037``)."""
    text = str(value).strip().lower()
    for spec in INDICATORS.values():
        if text in (spec.name, spec.code.lower()):
            return spec
    choices = ", ".join(INDICATORS)
    raise PatsnapInputError(parameter, f"unknown indicator {value!r}; use any of {choices}")


def indicators(values: Any, parameter: str = "indicators") -> list[Indicator]:
    """Validated, de-duplicated indicators in the order given (a string is one name or a comma list)."""
    if isinstance(values, str):
        values = [v for v in rendered_text(parameter, values).split(",") if v.strip()]
    if not isinstance(values, Iterable) or isinstance(values, Mapping):
        raise PatsnapInputError(parameter, f"must be a list of indicator names, got {type(values).__name__}")
    out: list[Indicator] = []
    for value in values:
        spec = indicator(value, parameter)
        if spec not in out:
            out.append(spec)
    if not out:
        raise PatsnapInputError(parameter, f"give at least one of {', '.join(INDICATORS)}")
    return out


INT64 = 2**63 - 1


def _to_int(value: Any) -> int | None:
    """An integer a lake column can hold (int64), else None."""
    try:
        number = None if value is None or value == "" or isinstance(value, bool) else int(value)
    except (ArithmeticError, TypeError, ValueError):
        return None
    return number if number is None or -INT64 - 1 <= number <= INT64 else None


def _to_float(value: Any) -> float | None:
    try:
        return None if value is None or value == "" or isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        return None


def _to_bool(value: Any) -> bool | None:
    if isinstance(value, bool) or value is None:
        return value
    text = str(value).strip().upper()
    if text in ("TRUE", "1", "Y", "YES"):
        return True
    if text in ("FALSE", "0", "N", "NO"):
        return False
    return None


def _typed(kind: str, value: Any) -> Any:
    if kind == INT:
        return _to_int(value)
    if kind == FLOAT:
        return _to_float(value)
    if kind == BOOL:
        return _to_bool(value)
    if kind == TEXTS:
        return [_clean(str(v)) for v in value] if isinstance(value, list) else []
    return None if value is None else _clean(str(value))


def _clean(text: str) -> str:
    """``text`` as valid UTF-8 (a lone surrogate from a JSON escape becomes "?"): writable to any file."""
    return text.encode("utf-8", "replace").decode("utf-8")


def flatten(spec: Indicator, item: Any) -> dict[str, Any]:
    """One PatSnap item as a flat record: ``pn``, ``patent_id`` and the indicator's fields, typed.

    Numbers come out as plain ``int``/``float`` (never the exact parser's ``Decimal``), so the
    record is plain JSON for XCom.
    """
    item = item if isinstance(item, dict) else {}
    values = item.get(spec.wrapper)
    values = values if isinstance(values, dict) else {}
    record: dict[str, Any] = {"pn": _text(item.get("pn")), "patent_id": _text(item.get("patent_id"))}
    record.update({name: _typed(kind, values.get(name)) for name, kind in spec.fields.items()})
    return record


def _text(value: Any) -> str | None:
    return None if value is None else _clean(str(value))


def clashing_fields(specs: Sequence[Indicator]) -> set[str]:
    """Field names that more than one of ``specs`` uses (prefixed with the indicator when merged)."""
    seen: dict[str, int] = {}
    for spec in specs:
        for name in spec.fields:
            seen[name] = seen.get(name, 0) + 1
    return {name for name, count in seen.items() if count > 1}


#: When PatSnap returned a record's results (ISO 8601, UTC): a column of every merged record.
FETCHED_AT = "fetched_at"
TIMESTAMP = "timestamp"


def column_name(spec: Indicator, field: str, clashes: set[str]) -> str:
    """A field's column in a merged record (prefixed with its indicator when two requested share it)."""
    return f"{spec.name}_{field}" if field in clashes else field


def record_columns(specs: Sequence[Indicator]) -> list[tuple[str, str]]:
    """Every column of a merged record, in order, with its type: the one schema JSON Lines records
    follow and Parquet files declare."""
    clashes = clashing_fields(specs)
    columns = [("pn", TEXT), ("patent_id", TEXT), (FETCHED_AT, TIMESTAMP)]
    for spec in specs:
        columns += [(column_name(spec, field, clashes), kind) for field, kind in spec.fields.items()]
    return columns


@dataclass(frozen=True)
class Batch:
    """One request: up to 100 patents of one kind of identifier, for one indicator."""

    indicator: Indicator
    param: str  # "patent_number" or "patent_id"
    patents: tuple[str, ...]

    @property
    def key(self) -> str:
        """Stable across attempts for the same request (checkpoints are keyed by it)."""
        text = f"{self.indicator.code}|{self.param}|{','.join(self.patents)}"
        return hashlib.sha256(text.encode()).hexdigest()[:20]


def plan_batches(specs: Sequence[Indicator], numbers: Sequence[str], ids: Sequence[str]) -> list[Batch]:
    """Every request needed for ``specs`` over the given patents, in a stable order."""
    out = []
    for spec in specs:
        out += [Batch(spec, "patent_number", tuple(b)) for b in batches(list(numbers))]
        out += [Batch(spec, "patent_id", tuple(b)) for b in batches(list(ids))]
    return out
