"""Branch Data Feeds and legacy webhooks, compiled (the mapping and its reasons: schemas/normalize/branch.py, the
reference)."""

from __future__ import annotations

from typing import Any

from schemas.canonical import platform
from schemas.fields import boolean
from schemas.normalize.base import require
from schemas.normalize.branch import DEFAULTS, T
from schemas.normalize.fast.plan import (
    BOOL,
    CUR,
    DEC,
    DEV,
    TEXT,
    TIME,
    Extracted,
    columns,
    compile_fill,
    event_type,
    paths,
    peek,
    reader,
)

NAME, TIME_, ATTRIBUTED = reader(TEXT, "name"), reader(TIME, "event_timestamp", "timestamp"), reader(
    BOOL, "attributed")
PARTNER, CHANNEL = reader(TEXT, T + "~advertising_partner_name"), reader(TEXT, T + "~channel")
REVENUE, OS, PLATFORM = reader(DEC, "event_data.revenue"), reader(TEXT, "user_data.os"), reader(
    TEXT, "user_data.platform")
TOUCH_TIME = reader(TIME, "last_attributed_touch_timestamp", T + "+click_timestamp")
CURRENCY, TX = reader(CUR, "event_data.currency"), paths("event_data.transaction_id")[0]
FILL = compile_fill(columns(
    ("event_id", TEXT, "id"), ("app_id", TEXT, "app_id"), ("customer_user_id", TEXT, "user_data.developer_identity"),
    ("os_version", TEXT, "user_data.os_version"), ("app_version", TEXT, "user_data.app_version"),
    ("idfa", DEV, "user_data.idfa"), ("idfv", DEV, "user_data.idfv"), ("gaid", DEV, "user_data.aaid"),
    ("android_id", DEV, "user_data.android_id"), ("oaid", DEV, "user_data.oaid"),
    ("campaign", TEXT, T + "~campaign"), ("campaign_id", TEXT, T + "~campaign_id"),
    ("ad_set", TEXT, T + "~ad_set_name"), ("ad_set_id", TEXT, T + "~ad_set_id"),
    ("ad", TEXT, T + "~ad_name", T + "~creative_name"), ("ad_id", TEXT, T + "~ad_id", T + "~creative_id"),
    ("click_id", TEXT, T + "~click_id"),
    ("deep_link", TEXT, T + "+url", T + "$deeplink_path", T + "$canonical_url"),
    ("touch_type", TEXT, "last_attributed_touch_type")))


def is_legacy(d: dict[str, Any]) -> bool:
    return "name" not in d and "event" in d and "user_data" not in d


def extract(d: dict[str, Any], used: set[str], options: dict[str, Any]) -> Extracted:
    return _legacy(d, used, options) if is_legacy(d) else _ontology(d, used, options)


def _ontology(d: dict[str, Any], used: set[str], options: dict[str, Any]) -> Extracted:
    name = require(NAME(d, used), "name")
    time_ = require(TIME_(d, used), "timestamp")
    touch = d.get("last_attributed_touch_data")
    attributed = ATTRIBUTED(d, used)
    organic = attributed is False or not (touch if isinstance(touch, dict) else {})
    partner = PARTNER(d, used)
    channel = CHANNEL(d, used)
    revenue = REVENUE(d, used)
    f: dict[str, Any] = {"event_name": name, "event_time": time_, "channel": channel, "revenue": revenue,
                         "media_source": "organic" if organic else (partner or channel), "is_organic": organic}
    FILL(d, used, f)
    f["event_type"] = event_type(name, options, DEFAULTS)
    f["platform"] = platform(OS(d, used)) or platform(PLATFORM(d, used))
    f["touch_type"] = (f.get("touch_type") or "").lower() or None
    f["touch_time"] = TOUCH_TIME(d, used)
    if revenue is not None:
        f["currency"] = CURRENCY(d, used)
    ids = {"name": name, "timestamp": d.get("timestamp"), "event_timestamp": d.get("event_timestamp"),
           "transaction_id": peek(d, TX)}
    return f, ids, None, None


class _Link:
    """The legacy paths under one link object (link_data, session_referring_…, first_referring_…), compiled."""

    def __init__(self, link: str, is_click: bool) -> None:
        self.obj = link[:-1]
        self.touch = reader(TIME, link.replace("link_data.", "click_timestamp")) if not is_click else None
        self.media = reader(TEXT, link + "~advertising_partner_name", link + "channel")
        self.fill = compile_fill(columns(("campaign", TEXT, link + "campaign"), ("channel", TEXT, link + "channel"),
                               ("deep_link", TEXT, link + "data.+url", link + "data.$deeplink_path")))
        self.branch_id = paths(link + "branch_id")[0]


CLICK, SESSION, FIRST = (_Link("link_data.", True), _Link("session_referring_link_data.", False),
                         _Link("first_referring_link_data.", False))
L_NAME, L_TIME, L_OS = reader(TEXT, "event"), reader(TIME, "event_timestamp"), reader(TEXT, "os")
REFERRED, HW, REINSTALL = reader(BOOL, "metadata.referred"), reader(DEV, "hardware_id"), paths("metadata.reinstall")[0]
L_FILL = compile_fill(columns(
    ("event_id", TEXT, "click_id"), ("app_id", TEXT, "app_id"), ("customer_user_id", TEXT, "identity"),
    ("os_version", TEXT, "os_version"), ("idfa", DEV, "idfa"), ("gaid", DEV, "google_advertising_id")))


def _legacy(d: dict[str, Any], used: set[str], options: dict[str, Any]) -> Extracted:
    name = require(L_NAME(d, used), "event")
    time_ = require(L_TIME(d, used), "event_timestamp")
    os_ = platform(L_OS(d, used))
    is_click = name.lower() == "click"
    session = d.get("session_referring_link_data")
    link = CLICK if is_click else SESSION if isinstance(session, dict) and session else FIRST
    link_obj = d.get(link.obj)
    has_link = isinstance(link_obj, dict) and bool(link_obj)
    referred = REFERRED(d, used)
    organic = False if is_click else (referred is False or (referred is None and not has_link))
    hw = HW(d, used)
    etype = event_type(name, options, DEFAULTS)
    if etype == "install" and boolean(peek(d, REINSTALL)):
        etype = "reinstall"
    touch_time = link.touch(d, used) if link.touch is not None else None
    f: dict[str, Any] = {"event_name": name, "event_type": etype, "event_time": time_, "platform": os_,
                         "idfv": hw if os_ == "ios" else None, "android_id": hw if os_ != "ios" else None,
                         "media_source": "organic" if organic else link.media(d, used),
                         "is_organic": organic, "touch_type": "click" if touch_time else None,
                         "touch_time": touch_time}
    L_FILL(d, used, f)
    link.fill(d, used, f)
    ids = {"event": name, "event_timestamp": d.get("event_timestamp"), "link": peek(d, link.branch_id)}
    return f, ids, "branch_legacy", None
