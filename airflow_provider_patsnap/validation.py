"""Input checks that run before any billable call; each error names the parameter to change."""

from __future__ import annotations

import ast
import datetime as _dt
from collections.abc import Iterable
from typing import Any

from airflow_provider_patsnap.errors import PatsnapInputError

REPORT_TYPES = ("pdf", "word")
_LIST_PUNCTUATION = "[]()'\"{}"
MAX_BATCH = 100
#: Longer than any patent number (e.g. ``WO2023123456A1``) or id (a UUID): refused as not a patent.
MAX_PATENT_LENGTH = 100

# GB 32100-2015 unified social credit code: 31-symbol alphabet (no I, O, Z, S, V) and weights.
_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


#: What to do about a template that rendered to text instead of the value it was meant to give.
NATIVE_HINT = (
    "if the value comes from a template, render native Python objects with "
    "DAG(..., render_template_as_native_obj=True), or make the template produce the value itself"
)
#: Python containers rendered as text are read back (safely) only up to this length.
_LITERAL_LIMIT = 100_000


def rendered_text(parameter: str, text: str) -> str:
    """The gate for text that may come from a Jinja template: refuse what only a template gone wrong
    produces (Airflow renders to strings by default), before it can be sent and billed.

    ``"None"`` is what ``{{ params.x }}`` renders when ``x`` is None (``"null"`` with ``tojson``);
    ``"['CN1', 'US2']"`` is a list rendered as text (split on commas it would be billed as ``['CN1'``
    and ``'US2']``); the same goes for tuples, sets and dicts.
    """
    stripped = text.strip()
    if stripped in ("None", "null"):
        raise PatsnapInputError(
            parameter,
            f"is the text {stripped!r} (a template that rendered None?); nothing was sent to PatSnap; {NATIVE_HINT}",
        )
    if _python_container(stripped):
        raise PatsnapInputError(
            parameter,
            f"{stripped[:60]!r} is a Python list, tuple, set or dict rendered as text; nothing was sent to PatSnap; "
            f"{NATIVE_HINT} (a comma-separated string also works)",
        )
    return text


def _python_container(text: str) -> bool:
    """Whether ``text`` reads (as a literal, never executed) as a list, tuple, set or dict."""
    if text[:1] not in ("[", "(", "{") or len(text) > _LITERAL_LIMIT:
        return False
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False
    return isinstance(value, (list, tuple, set, dict))


def rendered_values(parameter: str, value: Any) -> Any:
    """``rendered_text`` on every string inside a JSON-like value (a generic call's query or body)."""
    if isinstance(value, str):
        return rendered_text(parameter, value)
    if isinstance(value, dict):
        return {k: rendered_values(f"{parameter}.{k}", v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rendered_values(f"{parameter}[{i}]", v) for i, v in enumerate(value)]
    return value


def report_type(value: Any) -> str:
    text = str(value).strip().lower() if value is not None else ""
    if text not in REPORT_TYPES:
        raise PatsnapInputError("report_type", f"must be 'pdf' or 'word', got {value!r}")
    return text


def optional_text(parameter: str, value: Any) -> str | None:
    """``None`` for missing/blank values, else the stripped string."""
    if value is None:
        return None
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise PatsnapInputError(parameter, f"must be a string, got {type(value).__name__}")
    text = rendered_text(parameter, str(value)).strip()
    return text or None


def uscc_check_char(first17: str) -> str:
    total = sum(_USCC_ALPHABET.index(ch) * w for ch, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return _USCC_ALPHABET[(31 - total % 31) % 31]


def credit_code(value: Any) -> str | None:
    """Validate a unified social credit code (18 characters, GB 32100 check digit)."""
    text = optional_text("credit_code", value)
    if text is None:
        return None
    text = text.upper()
    if len(text) != 18:
        raise PatsnapInputError(
            "credit_code", f"a unified social credit code has 18 characters, {text!r} has {len(text)}"
        )
    bad = sorted({ch for ch in text if ch not in _USCC_ALPHABET})
    if bad:
        raise PatsnapInputError("credit_code", f"{text!r} contains characters not allowed by GB 32100: {bad}")
    expected = uscc_check_char(text[:17])
    if text[17] != expected:
        raise PatsnapInputError(
            "credit_code", f"{text!r} fails the GB 32100 check digit (expected {expected!r} last); check for a typo"
        )
    return text


def enterprise_identifiers(company_name: Any, credit_code_value: Any, org_number: Any) -> dict[str, str]:
    ids = {
        "company_name": optional_text("company_name", company_name),
        "credit_code": credit_code(credit_code_value),
        "org_number": optional_text("org_number", org_number),
    }
    present = {k: v for k, v in ids.items() if v}
    if not present:
        raise PatsnapInputError("company_name", "give at least one of company_name, credit_code or org_number")
    return present


def patent_identifier(patent_id: Any, patent_number: Any) -> dict[str, str]:
    pid = optional_text("patent_id", patent_id)
    pn = optional_text("patent_number", patent_number)
    if pid and pn:
        raise PatsnapInputError("patent_number", "give exactly one of patent_id or patent_number, not both")
    if not pid and not pn:
        raise PatsnapInputError("patent_number", "give exactly one of patent_id or patent_number")
    return {"patent_id": pid} if pid else {"patent_number": pn}  # type: ignore[dict-item]


def patent_list(parameter: str, values: Any) -> list[str]:
    """Strip, drop duplicates (first occurrence wins, case-insensitive) and reject blanks or commas."""
    if values is None:
        return []
    if isinstance(values, str):
        # A single comma-separated string is a common way to pass a list through templating.
        values = rendered_text(parameter, values).split(",")
    if not isinstance(values, Iterable) or isinstance(values, (bytes, bytearray, dict)):
        raise PatsnapInputError(parameter, f"must be a list of strings, got {type(values).__name__}")
    checked = (patent_value(parameter, f"item {i}", raw, f"{parameter}[{i}]") for i, raw in enumerate(values))
    return unique_patents(parameter, checked)


def patent_value(parameter: str, where: str, raw: Any, name: str | None = None) -> str:
    """One patent number or id, checked (``where`` names it in an error: ``item 3``, ``line 12``;
    ``name`` is the parameter as a template gone wrong is reported)."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise PatsnapInputError(parameter, f"{where} is empty; remove blank entries")
    if not isinstance(raw, (str, int)) or isinstance(raw, bool):
        raise PatsnapInputError(parameter, f"{where} must be a string, got {type(raw).__name__}")
    text = str(raw)
    if len(text) > MAX_PATENT_LENGTH:
        raise PatsnapInputError(
            parameter, f"{where} is {len(text)} characters long; a patent number or id has at most {MAX_PATENT_LENGTH}"
        )
    text = rendered_text(name or f"{parameter} {where}", text).strip()
    if any(ch < " " or ch == "\x7f" for ch in text):
        raise PatsnapInputError(
            parameter, f"{where} ({text[:60]!r}) contains a control character (a tab, line break or NUL); remove it"
        )
    if "," in text:
        raise PatsnapInputError(parameter, f"{where} ({text[:60]!r}) contains a comma; pass one id per item")
    if any(ch in text for ch in _LIST_PUNCTUATION):
        raise PatsnapInputError(
            parameter,
            f"{where} ({text[:60]!r}) contains quotes or brackets, which no patent number or id has; "
            f"nothing was sent to PatSnap; {NATIVE_HINT}",
        )
    return text


class UniquePatents:
    """A patent list without duplicates (first occurrence wins, case-insensitive), built one value at a time."""

    def __init__(self) -> None:
        self.values: list[str] = []
        self._seen: set[str] = set()

    def add(self, text: str) -> None:
        key = text if text.isupper() else text.upper()  # the text itself when already upper: no copy
        if key not in self._seen:
            self._seen.add(key)
            self.values.append(text)


def unique_patents(parameter: str, values: Iterable[str]) -> list[str]:
    """``values`` without duplicates (first occurrence wins, case-insensitive)."""
    unique = UniquePatents()
    for text in values:
        unique.add(text)
    return unique.values


def patents(patent_numbers: Any, patent_ids: Any) -> tuple[list[str], list[str]]:
    numbers = patent_list("patent_numbers", patent_numbers)
    ids = patent_list("patent_ids", patent_ids)
    if not numbers and not ids:
        raise PatsnapInputError("patent_numbers", "no patents given; pass a non-empty patent_numbers or patent_ids")
    return numbers, ids


def batches(items: list[str], size: int = MAX_BATCH) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def statement_day(parameter: str, value: Any) -> str:
    """A day for PatSnap's statement: a date (or datetime), or ``YYYYMMDD`` / ``YYYY-MM-DD`` text."""
    if hasattr(value, "strftime"):
        return str(value.strftime("%Y%m%d"))
    text = rendered_text(parameter, str(value or "")).strip().replace("-", "")
    if len(text) != 8 or not text.isascii() or not text.isdigit():
        raise PatsnapInputError(parameter, f"give a date or 'YYYYMMDD', got {value!r}")
    try:
        _dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        raise PatsnapInputError(parameter, f"{value!r} is not a real day") from None
    return text


HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def http_method(value: Any) -> str:
    text = str(value or "").strip().upper()
    if text not in HTTP_METHODS:
        raise PatsnapInputError("method", f"must be one of {', '.join(HTTP_METHODS)}, got {value!r}")
    return text


def endpoint_path(value: Any) -> str:
    """A path on the connection's host: never a full URL, so credentials cannot be sent elsewhere."""
    text = str(value or "").strip()
    if not text.startswith("/") or "://" in text or text.startswith("//") or "?" in text or "#" in text:
        raise PatsnapInputError(
            "endpoint",
            f"give a path on the PatSnap host, like '/patent-valuation-data/legal_indicators', got {value!r}",
        )
    return text


def query(value: Any) -> dict[str, str] | None:
    """Query parameters as strings (lists become PatSnap's comma lists)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise PatsnapInputError("query", f"must be a mapping of parameter names to values, got {type(value).__name__}")
    out = {}
    for key, item in value.items():
        if item is None:
            continue
        out[str(key)] = ",".join(str(v) for v in item) if isinstance(item, (list, tuple)) else str(item)
    return out
