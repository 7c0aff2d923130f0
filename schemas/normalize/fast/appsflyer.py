"""AppsFlyer Push API v2, compiled (the mapping and its reasons: schemas/normalize/appsflyer.py, the reference)."""

from __future__ import annotations

from typing import Any

from schemas.canonical import platform
from schemas.normalize.appsflyer import DEFAULTS
from schemas.normalize.base import require
from schemas.normalize.fast.plan import (
    CUR,
    DEC,
    DEV,
    TEXT,
    TIME,
    Extracted,
    columns,
    compile_fill,
    event_type,
    json_in_string,
    reader,
)

NAME, MEDIA, REVENUE = reader(TEXT, "event_name"), reader(TEXT, "media_source"), reader(DEC, "event_revenue")
TIME_, TOUCH_TIME = reader(TIME, "event_time"), reader(TIME, "attributed_touch_time")
CURRENCY = reader(CUR, "event_revenue_currency")
FILL = compile_fill(columns(
    ("app_id", TEXT, "app_id"), ("customer_user_id", TEXT, "customer_user_id"), ("platform", TEXT, "platform"),
    ("os_version", TEXT, "os_version"), ("app_version", TEXT, "app_version"), ("idfa", DEV, "idfa"),
    ("idfv", DEV, "idfv"), ("gaid", DEV, "advertising_id"), ("android_id", DEV, "android_id"), ("oaid", DEV, "oaid"),
    ("campaign", TEXT, "campaign"), ("campaign_id", TEXT, "af_c_id"), ("ad_set", TEXT, "af_adset"),
    ("ad_set_id", TEXT, "af_adset_id"), ("ad", TEXT, "af_ad"), ("ad_id", TEXT, "af_ad_id"),
    ("channel", TEXT, "af_channel"), ("click_id", TEXT, "af_click_id", "click_id"),
    ("deep_link", TEXT, "af_dp", "deep_link_value"), ("touch_type", TEXT, "attributed_touch_type")))


def extract(d: dict[str, Any], used: set[str], options: dict[str, Any]) -> Extracted:
    name = require(NAME(d, used), "event_name")
    etype = event_type(name, options, DEFAULTS)
    conversion = d.get("conversion_type") or ""
    campaign_type = str(d.get("campaign_type") or "").lower()
    if etype == "install" and str(conversion).lower() == "reinstall" and campaign_type != "retargeting":
        etype = "reinstall"
    media = MEDIA(d, used)
    organic = (campaign_type == "organic") or (media or "").lower() == "organic"
    if organic:
        used.add("campaign_type")
    revenue = REVENUE(d, used)
    raw_value = d.get("event_value")
    event_value = json_in_string(raw_value)
    replaced = {"event_value": event_value} if event_value is not raw_value else None
    time_ = require(TIME_(d, used), "event_time")
    f: dict[str, Any] = {"event_name": name, "event_type": etype, "event_time": time_,
                         "media_source": "organic" if organic else media,
                         "is_organic": organic if (organic or media) else None, "revenue": revenue}
    FILL(d, used, f)
    f["platform"] = platform(f.get("platform"))
    f["touch_type"] = (f.get("touch_type") or "").lower() or None
    f["touch_time"] = TOUCH_TIME(d, used)
    if revenue is not None:
        f["currency"] = CURRENCY(d, used)
    ids = {"event_name": name, "event_time": time_, "event_value": event_value,
           "event_revenue": str(revenue) if revenue is not None else None}
    return f, ids, None, replaced
