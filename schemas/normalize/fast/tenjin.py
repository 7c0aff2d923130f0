"""Tenjin postbacks, compiled (the mapping and its reasons: schemas/normalize/tenjin.py, the reference)."""

from __future__ import annotations

from typing import Any

from schemas.canonical import platform
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
    reader,
)

NAME, TIME_ = reader(TEXT, "event", "value", "event_name"), reader(
    TIME, "time_in_ms", "event_at_ms", "created_at_ms", "acquired_at_ms")
PLATFORM, AD_ID, NETWORK = reader(TEXT, "platform"), reader(DEV, "advertising_id"), reader(
    TEXT, "ad_network", "network")
REVENUE, CURRENCY, TOUCH = reader(DEC, "revenue_usd_gross", "revenue"), reader(CUR, "currency"), reader(
    TIME, "engaged_at_ms")
FILL = compile_fill(columns(
    ("app_id", TEXT, "store_id", "bundle_id", "app_id"), ("customer_user_id", TEXT, "user_id", "customer_user_id"),
    ("os_version", TEXT, "os_version"), ("app_version", TEXT, "app_version"), ("idfv", DEV, "developer_device_id"),
    ("campaign", TEXT, "campaign", "campaign_name"), ("campaign_id", TEXT, "campaign_id"),
    ("ad_set", TEXT, "site_id"), ("ad", TEXT, "creative", "creative_name"), ("click_id", TEXT, "click_id")))


def extract(d: dict[str, Any], used: set[str], options: dict[str, Any]) -> Extracted:
    name = require(NAME(d, used), "event")
    time_ = require(TIME_(d, used), "time_in_ms")
    plat = platform(PLATFORM(d, used))
    ad_id = AD_ID(d, used)
    network = NETWORK(d, used)
    organic = (network or "").lower() == "organic" if network else None
    revenue = REVENUE(d, used)
    currency = "USD" if d.get("revenue_usd_gross") is not None else CURRENCY(d, used)
    touch = TOUCH(d, used)
    f: dict[str, Any] = {
        "event_name": name, "event_time": time_, "platform": plat,
        "idfa": ad_id if plat == "ios" else None, "gaid": ad_id if plat == "android" else None,
        "media_source": "organic" if organic else network, "is_organic": organic,
        "touch_type": "click" if touch and d.get("click_id") else None, "touch_time": touch, "revenue": revenue,
        "currency": currency if revenue is not None else None}
    FILL(d, used, f)
    f["event_type"] = event_type(name, options)
    return f, {"event": name, "time": time_}, None, None
