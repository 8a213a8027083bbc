"""Download links: Tencent-COS-style query-string signatures (sign and verify)."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from urllib.parse import parse_qs, quote

from .jobs import _Job
from .protocol import COS_ACCESS_KEY


class _LinkSigner:
    """The link half of :class:`PatsnapEmulator` (a mixin: the state it uses is set up there)."""

    _signing_key: bytes
    link_ttl: float

    @property
    def cdn_url(self) -> str:
        raise NotImplementedError

    def _signature(self, path: str, sign_time: str, disposition: str) -> str:
        sign_key = hmac.new(self._signing_key, sign_time.encode(), hashlib.sha1).hexdigest()
        http_string = f"get\n{path}\nresponse-content-disposition={quote(disposition, safe='')}\nhost\n"
        http_digest = hashlib.sha1(http_string.encode(), usedforsecurity=False).hexdigest()
        string_to_sign = f"sha1\n{sign_time}\n{http_digest}\n"
        return hmac.new(sign_key.encode(), string_to_sign.encode(), hashlib.sha1).hexdigest()

    def _signed_url(self, job: _Job) -> str:
        start = int(time.time())
        end = int(start + float(self.link_ttl))
        sign_time = f"{start};{end}"
        disposition = f"attachment;filename*=UTF-8''{job.filename}"
        sign = (
            f"q-sign-algorithm=sha1&q-ak={COS_ACCESS_KEY}&q-sign-time={sign_time}&q-key-time={sign_time}"
            f"&q-header-list=host&q-url-param-list=response-content-disposition"
            f"&q-signature={self._signature(job.path, sign_time, disposition)}"
        )
        return (
            f"{self.cdn_url}{job.path}?sign={quote(sign, safe='')}"
            f"&response-content-disposition={quote(disposition, safe='')}"
        )

    def _verify_signature(self, path: str, sign: str, disposition: str) -> str:
        """``"ok"``, ``"bad"`` (signature does not match) or ``"expired"``."""
        fields = {key: values[0] for key, values in parse_qs(sign, keep_blank_values=True).items()}
        sign_time = fields.get("q-sign-time", "")
        if (
            fields.get("q-sign-algorithm") != "sha1"
            or fields.get("q-ak") != COS_ACCESS_KEY
            or fields.get("q-key-time") != sign_time
            or not re.fullmatch(r"\d{1,12};\d{1,12}", sign_time)
        ):
            return "bad"
        expected = self._signature(path, sign_time, disposition)
        if not hmac.compare_digest(expected, fields.get("q-signature", "")):
            return "bad"
        start, end = (int(part) for part in sign_time.split(";"))
        now = time.time()
        if now > end or now < start - 60:
            return "expired"
        return "ok"
