"""Deterministic patent data: reversible patent ids (any process can resolve an id to its number),
which patent numbers are known, and their legal indicators (P037)."""

from __future__ import annotations

import hashlib
import re
import threading
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
LITIGATION_COUNTRIES = ("US", "CN", "DE", "JP", "EP", "KR", "GB", "FR")
PATENT_NUMBER_RE = re.compile(r"^[A-Z]{2}\d{4,}[A-Z]?\d?$")
PATENT_ID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_MAX_REVERSIBLE_LEN = 18  # bijective base-36 of 18 symbols fits in 96 bits


def _id_keystream(check: bytes) -> bytes:
    return hashlib.sha256(b"patsnap-emulator-patent-id" + check).digest()[:12]


def _encode_number(number: str) -> int | None:
    if len(number) > _MAX_REVERSIBLE_LEN or any(ch not in _ALPHABET for ch in number):
        return None
    value = 0
    for ch in number:
        value = value * 36 + _ALPHABET.index(ch) + 1
    return value


def _decode_number(value: int) -> str:
    chars = []
    while value > 0:
        digit = value % 36 or 36
        chars.append(_ALPHABET[digit - 1])
        value = (value - digit) // 36
    return "".join(reversed(chars))


def _format_uuid(raw: bytes) -> str:
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


_LONG_NUMBER_IDS: dict[str, str] = {}
_LONG_NUMBER_LOCK = threading.Lock()


def _patent_id_for(number: str) -> str:
    check = hashlib.sha256(number.encode("utf-8")).digest()[:4]
    encoded = _encode_number(number)
    if encoded is None:  # too long/odd to encode: hash-based id, resolvable in this process only
        pid = _format_uuid(hashlib.sha256(b"patent-id:" + number.encode("utf-8")).digest()[:16])
        with _LONG_NUMBER_LOCK:
            _LONG_NUMBER_IDS[pid] = number
        return pid
    payload = bytes(a ^ b for a, b in zip(encoded.to_bytes(12, "big"), _id_keystream(check), strict=True))
    return _format_uuid(check + payload)


def _number_for_patent_id(patent_id: str) -> str | None:
    if not PATENT_ID_RE.match(patent_id):
        return None
    with _LONG_NUMBER_LOCK:
        if patent_id in _LONG_NUMBER_IDS:
            return _LONG_NUMBER_IDS[patent_id]
    raw = bytes.fromhex(patent_id.replace("-", ""))
    check, payload = raw[:4], raw[4:]
    encoded = int.from_bytes(bytes(a ^ b for a, b in zip(payload, _id_keystream(check), strict=True)), "big")
    number = _decode_number(encoded)
    if not number or hashlib.sha256(number.encode("utf-8")).digest()[:4] != check:
        return None
    return number


def _known_patent_number(number: str) -> bool:
    return "UNKNOWN" not in number.upper() and bool(PATENT_NUMBER_RE.match(number))


def _legal_value(number: str) -> dict[str, Any]:
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
