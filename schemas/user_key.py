"""The per-user partition key, shared by the ingress (Kafka key) and the normalizers (``user_key`` field).

Rule: the first present id of the MMP's ordered candidate list (device ids first, chosen so that installs and later
events of one device meet on one key; see README "Schemas and normalizers"), else the customer id, else ``fp:<hex>``
— a fingerprint of the delivery, so an unkeyable delivery still has a stable key and its retries meet. Device ids are
lower-cased; ``""``, ``"null"`` and all-zero ids are absent, and so is an id that is not valid Unicode (a lone
surrogate such as JSON's ``"\\ud800"``): a key must be UTF-8 to be a Kafka key and an Avro string. :func:`user_key`
never raises.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any, Literal, get_args

from schemas.fields import device_id, get_path, loads, query_dict, text
from schemas.templates import query_to_body

Candidate = tuple[str, str]  # (type, value)
FP_HEX = 32
# Every kind of device id a key can carry. Operator views mask these (kind + 4 characters); a new MMP's id kind must
# be added here for the extractors to type-check, so it cannot be left out of the masking.
DeviceKind = Literal["appsflyer_id", "adjust_adid", "kochava_device_id", "analytics_installation_id", "idfv", "idfa",
                     "gaid", "oaid", "android_id", "advertising_id"]
DEVICE_KINDS: frozenset[str] = frozenset(get_args(DeviceKind))
CUSTOMER_KIND = "customer_user_id"  # the only other kind besides ``fp`` (a fingerprint, no identifier)


def _dev(kind: DeviceKind, v: Any) -> list[Candidate]:
    s = device_id(v)
    return [(kind, s)] if s else []


def _cust(v: Any) -> list[Candidate]:
    s = text(v)
    return [(CUSTOMER_KIND, s)] if s else []


def _appsflyer(b: dict[str, Any]) -> list[Candidate]:
    return (_dev("appsflyer_id", b.get("appsflyer_id")) + _cust(b.get("customer_user_id"))
            + _dev("idfv", b.get("idfv")) + _dev("idfa", b.get("idfa")) + _dev("gaid", b.get("advertising_id"))
            + _dev("oaid", b.get("oaid")) + _dev("android_id", b.get("android_id")))


def _adjust(b: dict[str, Any]) -> list[Candidate]:
    return (_dev("adjust_adid", b.get("adid")) + _dev("idfv", b.get("idfv")) + _dev("idfa", b.get("idfa"))
            + _dev("gaid", b.get("gps_adid")) + _dev("oaid", b.get("oaid")) + _dev("android_id", b.get("android_id"))
            + _cust(b.get("user_id") or b.get("customer_user_id")))


def _branch(b: dict[str, Any]) -> list[Candidate]:
    if "hardware_id" in b or ("event" in b and "user_data" not in b and "name" not in b):  # legacy webhooks
        os_ = (text(b.get("os")) or "").lower()
        hw = _dev("idfv" if os_ == "ios" else "android_id", b.get("hardware_id"))
        return (hw + _dev("gaid", b.get("google_advertising_id")) + _dev("idfa", b.get("idfa"))
                + _cust(b.get("identity")))
    ud = b.get("user_data")
    u: dict[str, Any] = ud if isinstance(ud, dict) else b
    return (_dev("idfv", u.get("idfv")) + _dev("android_id", u.get("android_id")) + _dev("gaid", u.get("aaid"))
            + _dev("idfa", u.get("idfa")) + _cust(u.get("developer_identity")))


def _singular(b: dict[str, Any]) -> list[Candidate]:
    return (_dev("idfv", b.get("idfv")) + _dev("gaid", b.get("aifa")) + _dev("android_id", b.get("android_id"))
            + _dev("idfa", b.get("idfa")) + _dev("oaid", b.get("oaid"))
            + _cust(b.get("custom_user_id") or b.get("customer_user_id")))


def _kochava(b: dict[str, Any]) -> list[Candidate]:
    return (_dev("kochava_device_id", b.get("kochava_device_id")) + _dev("idfv", b.get("idfv"))
            + _dev("gaid", b.get("adid")) + _dev("android_id", b.get("android_id")) + _dev("idfa", b.get("idfa"))
            + _cust(b.get("user_id") or b.get("customer_user_id")))


def _tenjin(b: dict[str, Any]) -> list[Candidate]:
    plat = (text(b.get("platform")) or "").lower()
    ad_kind: DeviceKind = "idfa" if plat == "ios" else "gaid" if plat == "android" else "advertising_id"
    return (_dev("analytics_installation_id", b.get("analytics_installation_id"))
            + _dev("idfv", b.get("developer_device_id")) + _dev(ad_kind, b.get("advertising_id"))
            + _cust(b.get("user_id") or b.get("customer_user_id")))


def _linkrunner(b: dict[str, Any]) -> list[Candidate]:
    return _dev("gaid", b.get("gaid")) + _dev("idfa", b.get("idfa")) + _cust(b.get("user_id"))


def _generic(b: dict[str, Any]) -> list[Candidate]:
    d = b.get("device")
    dev: dict[str, Any] = d if isinstance(d, dict) else {}
    out: list[Candidate] = []
    keys: tuple[tuple[DeviceKind, str], ...] = (("idfv", "idfv"), ("android_id", "android_id"), ("gaid", "gaid"),
                                                ("idfa", "idfa"))
    for kind, key in keys:
        out += _dev(kind, dev.get(key) if dev.get(key) is not None else b.get(key))
    return out + _cust(get_path(b, "user.customer_id") or b.get("customer_user_id") or b.get("user_id"))


EXTRACTORS: dict[str, Callable[[dict[str, Any]], list[Candidate]]] = {
    "appsflyer": _appsflyer, "adjust": _adjust, "branch": _branch, "branch_legacy": _branch,
    "singular": _singular, "kochava": _kochava, "tenjin": _tenjin, "linkrunner": _linkrunner, "generic": _generic,
}


def candidates(mmp: str, fields: dict[str, Any]) -> list[str]:
    """Ordered ``type:value`` candidates of a parsed delivery, best first, without duplicates."""
    seen: list[str] = []
    for kind, value in EXTRACTORS.get(mmp, _generic)(fields):
        c = f"{kind}:{value}"
        if c not in seen and _utf8(c):
            seen.append(c)
    return seen


def _utf8(s: str) -> bool:
    if s.isascii():
        return True
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates
        return False
    return True


_CANON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode


def fingerprint(fields: Any) -> str:
    """sha256 hex of the canonical JSON of ``fields``: independent of key order and whitespace of the original."""
    canon = _CANON(fields)
    return hashlib.sha256(canon.encode("utf-8", "surrogatepass")).hexdigest()


def parse_delivery(mmp: str, body: bytes, query_string: str, content_type: str | None,
                   options: dict[str, Any] | None = None) -> Any:
    """The delivery's fields: the JSON body (any JSON value), a form body, or the query as a body dict."""
    ct = (content_type or "").lower()
    stripped = body.strip() if body else b""
    if stripped:
        if "form-urlencoded" in ct:
            return query_dict(stripped.decode("utf-8", "replace"))
        return loads(stripped)  # ValueError on non-JSON: the caller decides
    return query_to_body(mmp, query_string, options)


def user_key(mmp: str, body: bytes, query_string: str, content_type: str | None,
             options: dict[str, Any] | None = None) -> str:
    """The partition key of one delivery (see module doc). Never raises."""
    try:
        fields = parse_delivery(mmp, body, query_string, content_type, options)
        if isinstance(fields, list):  # a batch body: key on its first event
            fields = next((f for f in fields if isinstance(f, dict)), fields)
        if isinstance(fields, dict):
            found = candidates(mmp, fields)
            if found:
                return found[0]
        return "fp:" + fingerprint(fields)[:FP_HEX]
    except Exception:  # noqa: BLE001 - the ingress's boundary: a key for any bytes a sender can send ("never
        # raises"); an unparsable body is keyed on its bytes, so its retries still meet
        h = hashlib.sha256(bytes(body or b"") + b"?" + str(query_string or "").encode("utf-8", "replace"))
        return "fp:" + h.hexdigest()[:FP_HEX]
