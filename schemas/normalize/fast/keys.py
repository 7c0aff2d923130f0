"""The user key of one event object: ``schemas.user_key.candidates(mmp, item)[0]`` (or None), computed lazily — the
first present id wins, so the ids after it are never read, lower-cased or formatted (the reference builds the whole
candidate list to keep its head). The per-MMP order and rules are the reference's (schemas/user_key.py), line by line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from schemas.fields import ABSENT, device_id, text
from schemas.user_key import CUSTOMER_KIND


def _dev(kind: str, v: Any) -> str | None:
    if v is None:
        return None
    if v.__class__ is str:  # device_id's string case inline (an all-zero id — _ZERO_ID — starts with one of them)
        s: str | None = v.strip()
        if not s or (len(s) <= _ABSENT_MAX and s.lower() in ABSENT) or (s[0] in "0-" and not s.strip("0-")):
            return None
        s = s.lower()
    else:
        s = device_id(v)
        if not s:
            return None
    return kind + ":" + s if s.isascii() or _utf8(s) else None


def _cust(v: Any) -> str | None:
    if v is None:
        return None
    if v.__class__ is str:  # text's string case inline
        s: str | None = v.strip()
        if not s or (len(s) <= _ABSENT_MAX and s.lower() in ABSENT):
            return None
    else:
        s = text(v)
        if not s:
            return None
    return CUSTOMER_KIND + ":" + s if s.isascii() or _utf8(s) else None


_ABSENT_MAX = max(map(len, ABSENT))


def _utf8(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: not a key (the reference's user_key._utf8)
        return False
    return True


def _branch(b: dict[str, Any]) -> str | None:
    if "hardware_id" in b or ("event" in b and "user_data" not in b and "name" not in b):  # legacy webhooks
        os_ = (text(b.get("os")) or "").lower()
        return (_dev("idfv" if os_ == "ios" else "android_id", b.get("hardware_id"))
                or _dev("gaid", b.get("google_advertising_id")) or _dev("idfa", b.get("idfa"))
                or _cust(b.get("identity")))
    ud = b.get("user_data")
    u: dict[str, Any] = ud if isinstance(ud, dict) else b
    g = u.get
    return (_dev("idfv", g("idfv")) or _dev("android_id", g("android_id")) or _dev("gaid", g("aaid"))
            or _dev("idfa", g("idfa")) or _cust(g("developer_identity")))


# The flat MMPs' rules as data — (kind, key) device ids and ("customer", (key, …)) customer ids (the first of those
# keys with a truthy value), in order: read by ``flat_rule`` here and inlined by the generated normalizers
# (fast/gen.py), one table for both.
Rule = tuple[tuple[str, str | tuple[str, ...]], ...]
FLAT: dict[str, Rule] = {
    "appsflyer": (("appsflyer_id", "appsflyer_id"), ("customer", ("customer_user_id",)), ("idfv", "idfv"),
                  ("idfa", "idfa"), ("gaid", "advertising_id"), ("oaid", "oaid"), ("android_id", "android_id")),
    "adjust": (("adjust_adid", "adid"), ("idfv", "idfv"), ("idfa", "idfa"), ("gaid", "gps_adid"), ("oaid", "oaid"),
               ("android_id", "android_id"), ("customer", ("user_id", "customer_user_id"))),
    "singular": (("idfv", "idfv"), ("gaid", "aifa"), ("android_id", "android_id"), ("idfa", "idfa"), ("oaid", "oaid"),
                 ("customer", ("custom_user_id", "customer_user_id"))),
    "kochava": (("kochava_device_id", "kochava_device_id"), ("idfv", "idfv"), ("gaid", "adid"),
                ("android_id", "android_id"), ("idfa", "idfa"), ("customer", ("user_id", "customer_user_id"))),
    "linkrunner": (("gaid", "gaid"), ("idfa", "idfa"), ("customer", ("user_id",))),
}


def flat_rule(rule: Rule) -> Callable[[dict[str, Any]], str | None]:
    def first(b: dict[str, Any]) -> str | None:
        g = b.get
        for kind, key in rule:
            if isinstance(key, tuple):
                v = None
                for k in key:
                    v = v or g(k)
                c = _cust(v)
            else:
                c = _dev(kind, g(key))
            if c:
                return c
        return None
    return first


def _tenjin(b: dict[str, Any]) -> str | None:
    g = b.get
    first = _dev("analytics_installation_id", g("analytics_installation_id")) or _dev("idfv", g("developer_device_id"))
    if first:
        return first
    plat = (text(g("platform")) or "").lower()
    ad_kind = "idfa" if plat == "ios" else "gaid" if plat == "android" else "advertising_id"
    return _dev(ad_kind, g("advertising_id")) or _cust(g("user_id") or g("customer_user_id"))


_GENERIC_DEV = (("idfv", "idfv"), ("android_id", "android_id"), ("gaid", "gaid"), ("idfa", "idfa"))


def _generic(b: dict[str, Any]) -> str | None:
    g = b.get
    d = g("device")
    if isinstance(d, dict):
        for kind, key in _GENERIC_DEV:
            v = d.get(key)
            c = _dev(kind, v if v is not None else g(key))
            if c:
                return c
    else:
        for kind, key in _GENERIC_DEV:
            v = g(key)
            if v is not None:
                c = _dev(kind, v)
                if c:
                    return c
    u = g("user")  # get_path(b, "user.customer_id")
    return _cust((u.get("customer_id") if isinstance(u, dict) else None) or g("customer_user_id") or g("user_id"))


FIRST_KEY: dict[str, Callable[[dict[str, Any]], str | None]] = {
    "branch": _branch, "branch_legacy": _branch, "tenjin": _tenjin, "generic": _generic,
    **{mmp: flat_rule(rule) for mmp, rule in FLAT.items()},
}


def first_key(mmp: str) -> Callable[[dict[str, Any]], str | None]:
    """The user-key rule of ``mmp`` (an unknown one keys as generic, as the reference)."""
    return FIRST_KEY.get(mmp, _generic)
