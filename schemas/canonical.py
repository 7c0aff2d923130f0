"""The canonical attributed event: field list, event-type mapping, and the builder every normalizer ends with.

The builder is the single place that guarantees an output ``avro.encode("canonical_event", …)`` accepts: required
fields present and non-empty, enums in range, times as int ms, revenue as Decimal(38,9), strings valid UTF-8,
``properties`` a JSON object text.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from schemas.errors import INVALID_CONFIG, INVALID_FIELD, MISSING_FIELD, NormalizeError

EVENT_TYPES = frozenset({"install", "reinstall", "reattribution", "reengagement", "open", "session", "click",
                         "signup", "purchase", "ad_revenue", "custom"})
PLATFORMS = frozenset({"ios", "android", "web"})

# Field order of schemas/canonical_event.avsc.
FIELDS = ("event_id", "mmp", "source", "app_id", "event_name", "event_type", "event_time", "received_at", "user_key",
          "customer_user_id", "platform", "os_version", "app_version", "idfa", "idfv", "gaid", "android_id", "oaid",
          "media_source", "campaign", "campaign_id", "ad_set", "ad_set_id", "ad", "ad_id", "channel", "click_id",
          "deep_link", "is_organic", "touch_type", "touch_time", "revenue", "currency", "properties", "raw")
# What an attribution touch keeps (first/last touch on enriched events): the worker's state and the sink's columns.
TOUCH_FIELDS = ("event_id", "event_type", "event_time", "media_source", "campaign", "campaign_id", "ad_set",
                "ad_set_id", "ad", "ad_id", "channel", "click_id", "touch_type", "touch_time", "is_organic")
REQUIRED_TEXT = ("event_id", "mmp", "source", "event_name", "event_type", "user_key")

# Default event-name → event_type, matched on the name lower-cased with surrounding underscores stripped
# (so Singular "__INSTALL__", Kochava "_install" and Branch "INSTALL" all hit "install").
DEFAULT_EVENT_TYPES: dict[str, str] = {
    "install": "install", "first_open": "install", "organic-install": "install", "organic_install": "install",
    "reinstall": "reinstall", "organic-reinstall": "reinstall",
    "reattribution": "reattribution", "re-attribution": "reattribution", "reattribution_reinstall": "reattribution",
    "reengagement": "reengagement", "re-engagement": "reengagement", "re_engagement": "reengagement",
    "open": "open", "af_app_opened": "open", "app_open": "open", "deep_link_open": "open",
    "session": "session", "web_session_start": "session", "session_start": "session",
    "click": "click", "web_click": "click",
    "signup": "signup", "sign_up": "signup", "registration": "signup", "complete_registration": "signup",
    "af_complete_registration": "signup", "registration_complete": "signup",
    "purchase": "purchase", "af_purchase": "purchase", "iap": "purchase", "revenue": "purchase",
    "in_app_purchase": "purchase", "order": "purchase",
    "ad_revenue": "ad_revenue", "af_ad_revenue": "ad_revenue", "admon_user_level_revenue": "ad_revenue",
    "ad_impression": "ad_revenue",
}
# Last resort for custom names before "custom": substrings that are unambiguous in practice.
_HINTS = (("purchase", "purchase"), ("registration", "signup"), ("signup", "signup"), ("sign_up", "signup"),
          ("ad_revenue", "ad_revenue"))


def event_type(name: str, options: dict[str, Any], mmp_defaults: dict[str, str] | None = None) -> str:
    """``options["event_types"]`` (exact, then case-insensitive) over per-MMP defaults over the global defaults."""
    custom = options.get("event_types") or {}
    if not isinstance(custom, dict):
        raise NormalizeError(INVALID_CONFIG, "options.event_types", "must be a table of event name -> event type")
    hit = custom.get(name)
    if hit is None:
        low = name.lower()
        hit = next((v for k, v in custom.items() if str(k).lower() == low), None)
    if hit is not None:
        if not isinstance(hit, str) or hit not in EVENT_TYPES:
            raise NormalizeError(INVALID_CONFIG, f"options.event_types.{name}",
                                 f"{hit!r} is not one of {', '.join(sorted(EVENT_TYPES))}")
        return str(hit)
    key = name.lower().strip("_ ")
    if mmp_defaults and key in mmp_defaults:
        return mmp_defaults[key]
    if key in DEFAULT_EVENT_TYPES:
        return DEFAULT_EVENT_TYPES[key]
    return next((t for hint, t in _HINTS if hint in key), "custom")


_PLATFORM = {"ios": "ios", "ios_app": "ios", "iphone": "ios", "ipad": "ios", "ipados": "ios",
             "android": "android", "android_app": "android", "android_tv": "android",
             "web": "web", "desktop_web": "web", "mobile_web": "web", "desktop": "web", "webapp": "web"}


def platform(v: str | None) -> str | None:
    return _PLATFORM.get(v.strip().lower()) if v else None


def _json_default(v: Any) -> Any:
    if isinstance(v, Decimal):  # exact numbers stay numbers when a float carries them exactly, else exact text
        f = float(v)
        return f if Decimal(repr(f)) == v else str(v)
    if isinstance(v, (bytes, bytearray)):
        return v.decode("utf-8", "replace")
    return str(v)


def properties_json(rest: dict[str, Any]) -> str:
    """JSON object text of the fields no canonical column took; unicode kept verbatim when it is valid UTF-8."""
    s = _PROPS_UNICODE(rest)
    try:
        s.isascii() or s.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates (from \ud800 escapes) cannot be UTF-8: fall back to escapes
        s = _PROPS_ASCII(rest)
    return s


# json.dumps(..., options) builds an encoder per call; these are the same encoders, built once.
_PROPS_UNICODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_json_default,
                                  sort_keys=True).encode
_PROPS_ASCII = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), default=_json_default,
                                sort_keys=True).encode


def _clean(s: str) -> str:
    if s.isascii():
        return s
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        return s.encode("utf-8", "replace").decode("utf-8")


_REV_SCALE = Decimal("1e-9")
_FIELD_SET = frozenset(FIELDS)


def build(**kw: Any) -> dict[str, Any]:
    """A canonical event dict from keyword fields (unknown keywords are a programming error)."""
    if not _FIELD_SET.issuperset(kw):
        raise TypeError(f"unknown canonical fields: {sorted(set(kw) - _FIELD_SET)}")
    ev: dict[str, Any] = {}
    for f in FIELDS:
        v = kw.get(f)
        ev[f] = (v if v.isascii() else _clean(v)) if isinstance(v, str) else v
    for f in REQUIRED_TEXT:
        if not ev[f]:
            raise NormalizeError(MISSING_FIELD, f, f"no value for {f}")
    if ev["event_type"] not in EVENT_TYPES:
        raise NormalizeError(INVALID_FIELD, "event_type", f"unknown event type {ev['event_type']!r}")
    for f in ("event_time", "received_at"):
        if not isinstance(ev[f], int) or isinstance(ev[f], bool):
            raise NormalizeError(MISSING_FIELD, f, f"{f} must be epoch milliseconds")
    if ev["platform"] is not None and ev["platform"] not in PLATFORMS:
        ev["platform"] = None
    if ev["is_organic"] is True and not ev["media_source"]:
        ev["media_source"] = "organic"
    if ev["revenue"] is not None:
        ev["revenue"] = Decimal(ev["revenue"]).quantize(_REV_SCALE)
    else:
        ev["currency"] = None  # a currency without an amount (AppsFlyer installs) means nothing
    if ev["properties"] is None:
        ev["properties"] = "{}"
    return ev

