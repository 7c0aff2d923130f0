"""The project's vendor-neutral shape, compiled (the mapping and its reasons: schemas/normalize/generic.py, the
reference)."""

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
from schemas.normalize.generic import A, D, U

NAME, TIME_, SOURCE = reader(TEXT, "event_name"), reader(TIME, "timestamp", "event_time"), reader(
    TEXT, A + "source", A + "media_source")
ORGANIC, REVENUE = reader(BOOL, U + "is_organic", A + "is_organic", "is_organic"), reader(DEC, "revenue",
                                                                                          "revenue.amount")
TOUCH_TIME, CURRENCY = reader(TIME, A + "touch_time"), reader(CUR, "currency", "revenue.currency")
FILL = compile_fill(columns(
    ("event_id", TEXT, "event_id"), ("app_id", TEXT, "app_id", D + "app_id"),
    ("customer_user_id", TEXT, U + "customer_id", U + "id"), ("platform", TEXT, D + "platform"),
    ("os_version", TEXT, D + "os_version"), ("app_version", TEXT, D + "app_version"), ("idfa", DEV, D + "idfa"),
    ("idfv", DEV, D + "idfv"), ("gaid", DEV, D + "gaid"), ("android_id", DEV, D + "android_id"),
    ("oaid", DEV, D + "oaid"), ("campaign", TEXT, A + "campaign"), ("campaign_id", TEXT, A + "campaign_id"),
    ("ad_set", TEXT, A + "ad_set"), ("ad_set_id", TEXT, A + "ad_set_id"), ("ad", TEXT, A + "ad"),
    ("ad_id", TEXT, A + "ad_id"), ("channel", TEXT, A + "channel"), ("click_id", TEXT, A + "click_id"),
    ("deep_link", TEXT, A + "deep_link"), ("touch_type", TEXT, A + "touch_type")))


def extract(d: dict[str, Any], used: set[str], options: dict[str, Any]) -> Extracted:
    name = require(NAME(d, used), "event_name")
    time_ = require(TIME_(d, used), "timestamp")
    source = SOURCE(d, used)
    organic_flag = ORGANIC(d, used)
    organic = organic_flag if organic_flag is not None else ((source or "").lower() == "organic" if source else None)
    revenue = REVENUE(d, used)
    f: dict[str, Any] = {"event_name": name, "event_time": time_, "media_source": "organic" if organic else source,
                         "is_organic": organic, "revenue": revenue}
    FILL(d, used, f)
    f["event_type"] = event_type(name, options)
    f["platform"] = platform(f.get("platform"))
    f["touch_time"] = TOUCH_TIME(d, used)
    if revenue is not None:
        f["currency"] = CURRENCY(d, used)
    return f, {"event_name": name, "timestamp": time_}, None, None
