"""Kochava postbacks, compiled (the mapping and its reasons: schemas/normalize/kochava.py, the reference)."""

from __future__ import annotations

from typing import Any

from schemas.canonical import platform
from schemas.normalize.base import require
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
    reader,
)

NAME, TIME_, NETWORK = reader(TEXT, "event", "event_name"), reader(TIME, "event_time", "timestamp"), reader(
    TEXT, "network", "network_name")
ORGANIC, REVENUE = reader(BOOL, "is_organic"), reader(DEC, "revenue", "price", "value")
TOUCH_TIME, CURRENCY = reader(TIME, "click_time", "touch_time"), reader(CUR, "currency")
FILL = compile_fill(columns(
    ("app_id", TEXT, "app_guid", "app_id"), ("customer_user_id", TEXT, "user_id", "customer_user_id"),
    ("platform", TEXT, "platform", "os"), ("os_version", TEXT, "os_version"), ("app_version", TEXT, "app_version"),
    ("idfa", DEV, "idfa"), ("idfv", DEV, "idfv"), ("gaid", DEV, "adid", "gaid"), ("android_id", DEV, "android_id"),
    ("oaid", DEV, "oaid"), ("campaign", TEXT, "campaign", "campaign_name"), ("campaign_id", TEXT, "campaign_id"),
    ("ad_set", TEXT, "site_id", "tracker", "ad_set"), ("ad", TEXT, "creative", "creative_name"),
    ("ad_id", TEXT, "creative_id"), ("click_id", TEXT, "click_id"), ("deep_link", TEXT, "deeplink", "deep_link")))


def extract(d: dict[str, Any], used: set[str], options: dict[str, Any]) -> Extracted:
    name = require(NAME(d, used), "event")
    time_ = require(TIME_(d, used), "event_time")
    network = NETWORK(d, used)
    organic_flag = ORGANIC(d, used)
    organic = organic_flag if organic_flag is not None else ((network or "").lower() in ("organic", "unattributed")
                                                              if network else None)
    revenue = REVENUE(d, used)
    f: dict[str, Any] = {"event_name": name, "event_time": time_, "media_source": "organic" if organic else network,
                         "is_organic": organic, "revenue": revenue}
    FILL(d, used, f)
    f["event_type"] = event_type(name, options)
    f["platform"] = platform(f.get("platform"))
    f["touch_time"] = TOUCH_TIME(d, used)
    if revenue is not None:
        f["currency"] = CURRENCY(d, used)
    return f, {"event": name, "event_time": time_}, None, None
