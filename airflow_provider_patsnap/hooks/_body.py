"""The gate for response bodies from PatSnap's API: bounded bytes, bounded decoding, guarded JSON.

The drivers read at most ``max_response_bytes`` (plus one, to know it was more) of the raw body
and never let their HTTP library inflate it; this module then undoes a ``Content-Encoding`` under
the same cap and parses JSON with numbers kept exact, a nesting limit and no exception escaping as
anything but the provider's own error naming the endpoint. Report downloads have their own
stricter rule: they are never decoded at all (``_download``).
"""

from __future__ import annotations

import json
import zlib
from decimal import Decimal
from typing import Any

from airflow_provider_patsnap.errors import Outcome, PatsnapResponseError

#: PatSnap's envelopes nest four or five levels; anything deeper is not an answer of theirs.
MAX_JSON_DEPTH = 32
_DECODE_STEP = 64 * 1024


class BodyError(ValueError):
    """A body the gate refuses; the caller turns it into a ``PatsnapError`` naming the endpoint."""


def decode_content(raw: bytes, encoding: str | None, limit: int) -> bytes:
    """``raw`` with its ``Content-Encoding`` undone, never growing past ``limit`` bytes."""
    coding = (encoding or "identity").strip().lower()
    if coding in ("", "identity"):
        return raw
    if coding in ("gzip", "x-gzip"):
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif coding == "deflate":
        inflater = zlib.decompressobj(zlib.MAX_WBITS if raw[:1] == b"\x78" else -zlib.MAX_WBITS)
    else:
        raise BodyError(f"the answer is encoded as {coding!r}, which the provider does not decode")
    out = bytearray()
    data = raw
    try:
        while True:
            # max_length bounds each step's output: a small bomb cannot expand past the limit in one go.
            out += inflater.decompress(data, _DECODE_STEP)
            if len(out) > limit:
                raise BodyError(f"the answer inflates to more than {limit} bytes")
            data = inflater.unconsumed_tail
            if not data:
                break
        out += inflater.flush()
    except zlib.error:
        raise BodyError(f"the answer claims {coding} encoding but does not decode") from None
    if len(out) > limit:
        raise BodyError(f"the answer inflates to more than {limit} bytes")
    return bytes(out)


def _depth_exceeds(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def loads_exact(raw: bytes | str) -> Any:
    """JSON with integers kept exact and decimals as ``Decimal`` (nothing passes through a float),
    at most ``MAX_JSON_DEPTH`` levels deep. Raises ``ValueError`` (``BodyError`` for depth)."""
    try:
        value = json.loads(raw, parse_float=Decimal)
    except RecursionError:
        raise BodyError(f"the JSON nests deeper than {MAX_JSON_DEPTH} levels") from None
    if _depth_exceeds(value, MAX_JSON_DEPTH):
        raise BodyError(f"the JSON nests deeper than {MAX_JSON_DEPTH} levels")
    return value


def refuse(endpoint: str, http_status: int, problem: str, *, call_sent: bool = True) -> PatsnapResponseError:
    """The provider's error for a body the gate refused: PatSnap may have run the call, unless the
    body was the answer to a step before it (the token fetch)."""
    outcome = Outcome.MAY_HAVE_RUN if call_sent else Outcome.NOT_SENT
    return PatsnapResponseError(
        f"unusable answer: {problem}", endpoint=endpoint, http_status=http_status, outcome=outcome
    )
