"""The PatSnap wire protocol as modelled: constants, error codes, routes, envelopes, gateway pages."""

from __future__ import annotations

import re
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

HOST = "127.0.0.1"
CHUNK_SIZE = 64 * 1024
MAX_BODY = 8 * 1024 * 1024
FIRST_JOB_ID = 1579434053399035905
COS_ACCESS_KEY = "AKIDemulator"
ABNORMAL_CAUSE = "服务器异常\uff0c正在修复中 (server error, being repaired)"

ENTERPRISE = "enterprise"
PATENT_VALUE = "patent_value"
KIND_IDENTIFIERS: dict[str, tuple[str, ...]] = {
    ENTERPRISE: ("company_name", "credit_code", "org_number"),
    PATENT_VALUE: ("patent_number", "patent_id"),
}
REPORT_TITLES = {
    ENTERPRISE: "PatSnap Enterprise Innovation Report",
    PATENT_VALUE: "PatSnap Patent Value Report",
}
MEDIA_TYPES = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}
CDN_PATH_RE = re.compile(r"^/tffi-export/(\d{14})/(\d{1,20})/([A-Za-z0-9_.-]+)$")
MAX_BATCH = 100

# PatSnap error codes and messages used by the model.
OK = 0
E_RATE = (67200002, "The current call rate is too fast, exceeding the current configuration limit QPS!")
E_AUTH = (67200003, "Access token expired or authentication error!")
E_BAD_CLIENT = (67200003, "The key and secret are invalid or the client is disabled!")
E_NO_APIKEY = (67200008, "apikey not Pass")
E_APIKEY_MISMATCH = (67200009, "apikey and token do not match, please check whether the token has expired!")
E_GRANT = (67200015, "Grant type error")
E_NOT_FOUND = (67200101, "Path Not Found")
E_APIKEY_AUTH = (67200202, "apikey auth error")
E_INTERNAL = (67200000, "Server Internal Error!")
E_PARAM = (68300004, "Invalid parameter!")
E_BAD_REQUEST = (68300007, "Bad request!")
E_SERVICE = (68300008, "Service error, please try again later!")

GATEWAY_503_HTML = b"<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>"
# nginx's spelling of the reason phrases it puts on its own error pages.
_NGINX_PHRASES = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Temporarily Unavailable",
    504: "Gateway Time-out",
}


def _gateway_page(status: int) -> bytes:
    """An nginx-style HTML error page, as a gateway in front of the API answers on its own."""
    try:
        phrase = _NGINX_PHRASES.get(status) or HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    title = f"{status} {phrase}"
    return (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    ).encode("ascii")


@dataclass(frozen=True)
class _Route:
    action: str  # "token" | "create" | "status" | "indicators"
    kind: str = ""
    logo: bool = True
    indicator: str = ""  # for "indicators": a key of INDICATORS

    @property
    def targets(self) -> tuple[str, ...]:
        """The outage targets a call to this route counts toward."""
        return (self.action, self.indicator) if self.indicator else (self.action,)


R001_BASE = "/innovation/company-report"
R002_BASE = "/patent-valuation-data/patent-report"
VALUATION_BASE = "/patent-valuation-data"
STATEMENT_PATH = "/open-user/statement/v2"
# Batch indicators (P035-P040): name -> (code, path, wrapper object in each item of `data`).
INDICATORS: dict[str, tuple[str, str, str]] = {
    "valuation": ("P035", VALUATION_BASE + "/patent_valuation", "patsnap_patent_valuation"),
    "technology": ("P036", VALUATION_BASE + "/technology_indicators", "patsnap_technology_value"),
    "legal": ("P037", VALUATION_BASE + "/legal_indicators", "patsnap_legal_value"),
    "market": ("P038", VALUATION_BASE + "/market_indicators", "patsnap_market_value"),
    "strategic": ("P039", VALUATION_BASE + "/strategic_indicators", "patsnap_strategic_value"),
    "economic": ("P040", VALUATION_BASE + "/economic_indicators", "patsnap_economy_value"),  # sic: "economy"
}
REPORT_CODES = {ENTERPRISE: "R001", PATENT_VALUE: "R002"}
# Outage targets (see PatsnapEmulator.outage): an endpoint group, one indicator endpoint, or the CDN.
OUTAGE_TARGETS = frozenset({"token", "create", "status", "indicators", "cdn", *INDICATORS})
ROUTES: dict[tuple[str, str], _Route] = {
    ("POST", "/oauth/token"): _Route("token"),
    ("POST", R001_BASE + "/task/create"): _Route("create", ENTERPRISE, True),
    ("POST", R001_BASE + "/task/create-no-logo"): _Route("create", ENTERPRISE, False),
    ("GET", R001_BASE + "/job_id/status"): _Route("status", ENTERPRISE),
    ("POST", R002_BASE + "/task/create"): _Route("create", PATENT_VALUE, True),
    ("POST", R002_BASE + "/task/create-no-logo"): _Route("create", PATENT_VALUE, False),
    ("GET", R002_BASE + "/job_id/status"): _Route("status", PATENT_VALUE),
    **{("GET", path): _Route("indicators", indicator=name) for name, (_, path, _) in INDICATORS.items()},
    ("POST", STATEMENT_PATH): _Route("statement"),
}


def _create_path(kind: str, logo: bool) -> str:
    """The create endpoint a job of this kind and logo variant came from (the billing key)."""
    base = R001_BASE if kind == ENTERPRISE else R002_BASE
    return base + ("/task/create" if logo else "/task/create-no-logo")


def _double_round_trip(job_id: int) -> int:
    """A job id as a double-based JSON stack echoes it (``int(float(id))``), never the id itself."""
    echoed = int(float(job_id))
    return echoed + 1 if echoed == job_id else echoed


def _ok(data: Any) -> dict[str, Any]:
    return {"data": data, "status": True, "error_code": OK}


def _error(code: int, message: str) -> dict[str, Any]:
    return {"status": False, "error_code": code, "error_msg": message}
