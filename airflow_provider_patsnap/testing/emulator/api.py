"""The PatSnap API host: OAuth token, authentication, R001/R002 create and status, P035-P040 indicators."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import math
import re
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .indicators import INDICATOR_VALUES
from .patents import _known_patent_number, _number_for_patent_id, _patent_id_for
from .protocol import (
    ABNORMAL_CAUSE,
    E_APIKEY_AUTH,
    E_APIKEY_MISMATCH,
    E_AUTH,
    E_BAD_CLIENT,
    E_BAD_REQUEST,
    E_GRANT,
    E_NO_APIKEY,
    E_NOT_FOUND,
    E_PARAM,
    E_RATE,
    E_SERVICE,
    GATEWAY_503_HTML,
    INDICATORS,
    KIND_IDENTIFIERS,
    MAX_BATCH,
    PATENT_VALUE,
    ROUTES,
    _double_round_trip,
    _error,
    _gateway_page,
    _ok,
    _Route,
)
from .server import _first, _Handler


class _ApiHandler(_Handler):
    """The PatSnap API host (``connect.patsnap.com`` in production)."""

    def dispatch(self, body: bytes) -> None:
        emu = self.emu
        split = urlsplit(self.path)
        path = split.path
        query = parse_qs(split.query, keep_blank_values=True)
        emu._count_call(f"{self.command} {path}")
        emu._pause()
        route = ROUTES.get((self.command, path))
        if route is None:
            self._send_json(404, _error(*E_NOT_FOUND))
            return
        outage = emu._outage_status(route.targets)
        if outage is not None:
            self._send(outage, _gateway_page(outage), "text/html")
            return
        if route.action == "token":
            self._token(body)
            return
        credential = self._authenticate(query)
        if credential is None:
            return
        if not emu._admit(credential):
            self._rate_limited(emu.rate_limit_http_status)
            return
        fault = emu._draw_fault(route.action)
        if fault == "service_error":
            self._send_json(200, _error(*E_SERVICE))
        elif fault == "gateway_503":
            self._send(503, GATEWAY_503_HTML, "text/html")
        elif fault == "rate_limited":
            self._rate_limited(429)
        elif route.action == "create":
            self._create(route, body)
        elif route.action == "status":
            self._status(route, query)
        elif route.action == "statement":
            self._statement(credential, body)
        else:
            self._indicators(route.indicator, query)

    def _statement(self, credential: str, body: bytes) -> None:
        """The statement of account: the body carries the apikey (client id or key) and the client secret."""
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            self._send_json(200, _error(*E_PARAM))
            return
        days = [str(payload.get("time_start") or ""), str(payload.get("time_end") or "")]
        secret_ok = credential == self.emu.api_key or hmac.compare_digest(
            str(payload.get("client_secret") or "").encode(), self.emu.client_secret.encode()
        )
        if payload.get("apikey") != credential or not secret_ok:
            self._send_json(200, _error(*E_AUTH))
            return
        if not all(len(d) == 8 and d.isdigit() for d in days) or days[0] > days[1]:
            self._send_json(200, _error(*E_PARAM))
            return
        self._send_json(200, _ok(self.emu.statement(*days)))

    def _rate_limited(self, status: int) -> None:
        self._send_json(status, _error(*E_RATE), headers=[("Retry-After", "1")])

    def _token(self, body: bytes) -> None:
        emu = self.emu
        client = _basic_credentials(self.headers.get("Authorization", ""))
        if client is None or not emu._valid_client(*client):
            emu._bump("auth_rejected")
            challenge = [("WWW-Authenticate", 'Basic realm="patsnap"')]
            self._send_json(401, _error(*E_BAD_CLIENT), headers=challenge)
            return
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        if _first(form, "grant_type") != "client_credentials":
            self._send_json(200, _error(*E_GRANT))
            return
        token, ttl = emu._issue_token(client[0])
        self._send_json(
            200,
            {
                "token": token,
                "token_type": "BearerToken",
                "expires_in": math.ceil(ttl),
                "status": "approved",
                "issued_at": str(int(time.time() * 1000)),
            },
        )

    def _authenticate(self, query: dict[str, list[str]]) -> str | None:
        """Return the call's credential (client id or API key); None after answering a rejection."""
        emu = self.emu
        apikey = _first(query, "apikey")
        header = self.headers.get("Authorization", "").strip()
        scheme, _, bearer = header.partition(" ")
        bearer = bearer.strip() if scheme.lower() == "bearer" else ""
        error: tuple[int, str] | None = None
        credential: str | None = None
        if bearer and hmac.compare_digest(bearer.encode(), emu.api_key.encode()):
            if apikey is not None and not hmac.compare_digest(apikey.encode(), emu.api_key.encode()):
                error = E_APIKEY_AUTH
            else:
                credential = emu.api_key
        elif bearer.startswith("sk-"):
            error = E_AUTH  # an unknown API key
        elif bearer:
            if not apikey:
                error = E_NO_APIKEY
            else:
                owner = emu._token_owner(bearer)
                if owner is None:
                    error = E_AUTH
                elif apikey != owner:
                    error = E_APIKEY_MISMATCH
                else:
                    credential = owner
        elif apikey and hmac.compare_digest(apikey.encode(), emu.api_key.encode()):
            credential = emu.api_key  # API-key mode, key passed as the `apikey` URL parameter
        else:
            error = E_AUTH
        if error is not None:
            emu._bump("auth_rejected")
            self._send_json(200, _error(*error))
        return credential

    def _create(self, route: _Route, body: bytes) -> None:
        try:
            payload = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            payload = None
        if not isinstance(payload, dict):
            self._send_json(200, _error(*E_BAD_REQUEST))
            return
        params = _validate_create(route.kind, payload)
        if params is None:
            self._send_json(200, _error(*E_PARAM))
            return
        job = self.emu._create_job(route.kind, route.logo, params)
        gateway = self.emu._take_gateway_timeout(indicators=False)
        if gateway is not None:  # the job exists and is billed, but the client only sees the gateway
            self._send(gateway, _gateway_page(gateway), "text/html")
            return
        self._send_json(200, _ok({"job_id": job.job_id}))

    def _status(self, route: _Route, query: dict[str, list[str]]) -> None:
        emu = self.emu
        emu._bump("status_polls")
        raw = _first(query, "job_id") or ""
        job = emu._find_job(raw) if re.fullmatch(r"\d{1,20}", raw) else None
        if job is None or job.kind != route.kind:
            self._send_json(200, _error(*E_PARAM))
            return
        status, queue_num = emu._job_state(job)
        # echo_wrong_job_id: the id as a double round trip leaves it, as PatSnap's own docs show it.
        echoed = _double_round_trip(job.job_id) if emu.echo_wrong_job_id else job.job_id
        data: dict[str, Any] = {"job_id": echoed, "queue_num": queue_num, "job_status": status}
        if status == 2:
            data["download_url"] = emu._signed_url(job)
        elif status == 3:
            data["abnormal_cause"] = ABNORMAL_CAUSE
        self._send_json(200, _ok(data))

    def _indicators(self, name: str, query: dict[str, list[str]]) -> None:
        numbers = _split_list(_first(query, "patent_number"))
        ids = _split_list(_first(query, "patent_id"))
        if (not numbers and not ids) or len(numbers) > MAX_BATCH or len(ids) > MAX_BATCH:
            self._send_json(200, _error(*E_PARAM))
            return
        records: list[dict[str, Any]] = []
        for number in numbers:
            if _known_patent_number(number):
                records.append({"pn": number, "patent_id": _patent_id_for(number)})
        for patent_id in ids:
            resolved = _number_for_patent_id(patent_id)
            if resolved is not None and _known_patent_number(resolved):
                records.append({"pn": resolved, "patent_id": patent_id})
        _, path, wrapper = INDICATORS[name]
        values = INDICATOR_VALUES[name]
        for record in records:
            record[wrapper] = values(record["pn"])
        self.emu._bill(path, len(records))  # once per result returned
        gateway = self.emu._take_gateway_timeout(indicators=True)
        if gateway is not None:  # billed, but the client only sees the gateway's page
            self._send(gateway, _gateway_page(gateway), "text/html")
            return
        self._send_json(200, _ok(records))


def _basic_credentials(header: str) -> tuple[str, str] | None:
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    return (client_id, secret) if sep else None


def _split_list(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def _validate_create(kind: str, payload: dict[str, Any]) -> dict[str, Any] | None:
    """Return the normalised create parameters, or None when PatSnap would answer 68300004."""
    if payload.get("report_type") not in ("word", "pdf"):
        return None
    params: dict[str, Any] = {"report_type": payload["report_type"]}
    for key in KIND_IDENTIFIERS[kind]:
        value = payload.get(key)
        if value is None or value == "":
            continue
        if not isinstance(value, str) or not value.strip():
            return None
        params[key] = value
    given = len(params) - 1
    if given == 0 or (kind == PATENT_VALUE and given > 1):
        return None
    return params
