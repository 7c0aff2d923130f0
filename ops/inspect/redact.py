"""Payload redaction for operator views: secrets and device ids never leave the server.

Keys are matched by their words (``access_token``, ``X-Branch-Signature``, ``user_data.aaid``); string values shaped
like a device id (UUID) are masked wherever they are, as is any literal occurrence of a configured secret.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from itertools import pairwise
from typing import Any
from urllib.parse import parse_qsl

from schemas.user_key import DEVICE_KINDS

SECRET = "[secret]"
DEVICE = "[device id]"
SHOWN_BYTES = 16_384

SECRET_WORDS = frozenset({"secret", "token", "signature", "sig", "password", "passwd", "pwd", "apikey", "auth",
                          "authorization", "hmac", "credential", "credentials", "cookie", "privatekey"})
DEVICE_KEYS = frozenset({"idfa", "idfv", "gaid", "adid", "aaid", "oaid", "aifa", "androidid", "advertisingid",
                         "deviceid", "googleadvertisingid", "imei", "mac", "macaddress", "ip", "ipaddress", "fireid",
                         "amazonfireid", "hardwareid", "installid", "installationid", "adidsha1", "idfamd5"}
                        | {kind.replace("_", "") for kind in DEVICE_KINDS})  # appsflyer_id, kochava_device_id, …
DEVICE_TAILS = (("device", "id"), ("installation", "id"))  # developer_device_id, analytics_installation_id
UUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")
_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")


def words(key: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(key)]


def key_class(key: str, extra: frozenset[str] = frozenset()) -> str | None:
    """'secret', 'device' or None for a field name."""
    ws = words(key)
    joined = "".join(ws)
    if key.lower() in extra or joined in extra:
        return "secret"
    if SECRET_WORDS & set(ws) or joined in SECRET_WORDS or any(a + b in SECRET_WORDS for a, b in pairwise(ws)):
        return "secret"
    if joined in DEVICE_KEYS or (ws and ws[-1] in DEVICE_KEYS) or tuple(ws[-2:]) in DEVICE_TAILS:
        return "device"
    return None


class Redactor:
    def __init__(self, secrets: Iterable[str] = (), extra_keys: Iterable[str] = ()) -> None:
        # longest first, so a secret containing another is masked whole; very short ones would mask noise
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)
        self.extra = frozenset(k.lower() for k in extra_keys)

    def text(self, s: str) -> str:
        for sec in self.secrets:
            if sec in s:
                s = s.replace(sec, SECRET)
        return UUID.sub(DEVICE, s)

    def value(self, key: str, v: Any) -> Any:
        kind = key_class(key, self.extra) if key else None
        if kind == "secret" and v not in (None, ""):
            return SECRET
        if kind == "device" and v not in (None, ""):
            return DEVICE
        if isinstance(v, dict):
            return {k: self.value(str(k), x) for k, x in v.items()}
        if isinstance(v, list):
            return [self.value(key, x) for x in v]
        if isinstance(v, str):
            return self.text(v)
        return v

    def pairs(self, query: str) -> list[tuple[str, str]]:
        return [(self.text(k), self.value(k, v)) for k, v in parse_qsl(query, keep_blank_values=True)]

    def headers(self, headers: dict[str, str]) -> dict[str, str]:
        return {k: self.value(k, v) for k, v in headers.items()}

    def user_key(self, key: str) -> str:
        """Device-id user keys keep their kind and 4 characters: enough to tell rows apart, not to identify. The
        kinds are the user-key rules' own (schemas.user_key.DEVICE_KINDS), so a new MMP's id kind is masked too."""
        kind, sep, ident = key.partition(":")
        if sep and kind in DEVICE_KINDS:
            return f"{kind}:{ident[:4]}…"
        return self.text(key)

    def body(self, body: bytes, content_type: str | None = None) -> str:
        """The body for display: JSON pretty-printed and masked, forms as masked key=value lines, else masked text."""
        text = body[:SHOWN_BYTES * 4].decode("utf-8", "replace")
        stripped = text.strip()
        if stripped[:1] in ("{", "["):
            try:
                out = json.dumps(self.value("", json.loads(stripped)), indent=2, ensure_ascii=False)
                return self.text(out)[:SHOWN_BYTES]  # keys themselves may hold a secret
            except ValueError:
                pass
        if "=" in stripped and "\n" not in stripped and " " not in stripped:
            return "\n".join(f"{k}={v}" for k, v in self.pairs(stripped))[:SHOWN_BYTES]
        return self.text(text)[:SHOWN_BYTES]
