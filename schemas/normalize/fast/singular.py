"""Singular postbacks, compiled (the mapping and its reasons: schemas/normalize/singular.py, the reference)."""

from __future__ import annotations

from typing import Any

from schemas.canonical import platform
from schemas.fields import boolean
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

NAME, TIME_ = reader(TEXT, "event_name"), reader(TIME, "event_utc_timestamp", "event_timestamp", "timestamp")
NETWORK, ORGANIC = reader(TEXT, "network", "network_name", "source"), reader(BOOL, "is_organic")
REVENUE, TOUCH_TIME = reader(DEC, "revenue", "amount"), reader(TIME, "click_utc_timestamp", "touch_utc_timestamp")
CURRENCY = reader(CUR, "currency", "revenue_currency")
FILL = compile_fill(columns(
    ("app_id", TEXT, "longname", "app_longname", "bundle_id"),
    ("customer_user_id", TEXT, "custom_user_id", "customer_user_id", "user_id"),
    ("platform", TEXT, "platform", "os"), ("os_version", TEXT, "os_version"), ("app_version", TEXT, "app_version"),
    ("idfa", DEV, "idfa"), ("idfv", DEV, "idfv"), ("gaid", DEV, "aifa", "gaid"), ("android_id", DEV, "android_id"),
    ("oaid", DEV, "oaid"), ("campaign", TEXT, "campaign_name", "campaign"), ("campaign_id", TEXT, "campaign_id"),
    ("ad_set", TEXT, "sub_campaign_name", "adset_name"), ("ad_set_id", TEXT, "sub_campaign_id", "adset_id"),
    ("ad", TEXT, "creative_name", "creative"), ("ad_id", TEXT, "creative_id"),
    ("channel", TEXT, "channel", "publisher_site_name"), ("click_id", TEXT, "click_id"),
    ("deep_link", TEXT, "deeplink", "deep_link"), ("touch_type", TEXT, "touch_type", "attribution_type")))


def extract(d: dict[str, Any], used: set[str], options: dict[str, Any]) -> Extracted:
    name = require(NAME(d, used), "event_name")
    time_ = require(TIME_(d, used), "event_utc_timestamp")
    etype = event_type(name, options)
    if etype == "install" and boolean(d.get("is_reengagement")):
        etype = "reengagement"
    network = NETWORK(d, used)
    organic_flag = ORGANIC(d, used)
    organic = organic_flag if organic_flag is not None else ((network or "").lower() == "organic" if network else None)
    revenue = REVENUE(d, used)
    f: dict[str, Any] = {"event_name": name, "event_type": etype, "event_time": time_,
                         "media_source": "organic" if organic else network, "is_organic": organic, "revenue": revenue}
    FILL(d, used, f)
    f["platform"] = platform(f.get("platform"))
    f["touch_type"] = (f.get("touch_type") or "").lower() or None
    f["touch_time"] = TOUCH_TIME(d, used)
    if revenue is not None:
        f["currency"] = CURRENCY(d, used)
    return f, {"event_name": name, "event_utc_timestamp": time_, "revenue": str(revenue)}, None, None
