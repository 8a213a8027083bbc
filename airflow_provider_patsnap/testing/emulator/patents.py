"""Deterministic patent identity: reversible patent ids (any process can resolve an id to its number)
and which patent numbers are known (the indicator values themselves are in ``indicators.py``)."""

from __future__ import annotations

import hashlib
import re
import threading

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
