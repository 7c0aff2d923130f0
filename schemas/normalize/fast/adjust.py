"""Adjust callbacks, compiled (the mapping and its reasons: schemas/normalize/adjust.py, the reference)."""

from __future__ import annotations

from typing import Any

from schemas.canonical import event_type, platform
from schemas.fields import text
from schemas.normalize.adjust import ACTIVITY
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
    json_in_string,
    reader,
    revenue_cents,
)
from schemas.normalize.fast.plan import event_type as fast_event_type

NAME, CREATED = reader(TEXT, "event_name", "activity_kind"), reader(TIME, "created_at")
NETWORK, ORGANIC = reader(TEXT, "network_name"), reader(BOOL, "is_organic")
REV_FLOAT, REV_CENTS = reader(DEC, "revenue_float"), reader(DEC, "revenue")
CLICK, IMPRESSION, CURRENCY = reader(TIME, "click_time"), reader(TIME, "impression_time"), reader(CUR, "currency")
CAMPAIGN, AD_SET, AD = reader(TEXT, "campaign_name"), reader(TEXT, "adgroup_name"), reader(TEXT, "creative_name")
FILL = compile_fill(columns(
    ("app_id", TEXT, "app_id", "store_id"), ("customer_user_id", TEXT, "user_id", "customer_user_id"),
    ("platform", TEXT, "os_name", "platform"), ("os_version", TEXT, "os_version"),
    ("app_version", TEXT, "app_version", "app_version_short"), ("idfa", DEV, "idfa"), ("idfv", DEV, "idfv"),
    ("gaid", DEV, "gps_adid"), ("android_id", DEV, "android_id"), ("oaid", DEV, "oaid"),
    ("campaign_id", TEXT, "campaign_id"), ("ad_set_id", TEXT, "adgroup_id"), ("ad_id", TEXT, "creative_id"),
    ("channel", TEXT, "channel"), ("click_id", TEXT, "click_id", "gclid"),
    ("deep_link", TEXT, "deeplink", "deep_link")))
ID_KEYS = ("activity_kind", "event", "event_name", "created_at", "ad_revenue_unit", "ad_revenue_placement")


def extract(d: dict[str, Any], used: set[str], options: dict[str, Any]) -> Extracted:
    kind = text(d.get("activity_kind"))
    name = require(NAME(d, used), "activity_kind", "activity_kind (or event_name) is required")
    if kind and kind.lower() in ACTIVITY:
        etype = event_type(name, options, {name.lower(): ACTIVITY[kind.lower()]})
    else:
        etype = fast_event_type(name, options)
    time_ = require(CREATED(d, used), "created_at")
    tracker = str(d.get("tracker_name") or "")
    parts: list[str | None] = [s.strip() or None for s in tracker.split("::")] if "::" in tracker else []
    parts += [None] * (4 - len(parts))
    network = NETWORK(d, used) or parts[0]
    organic_flag = ORGANIC(d, used)
    organic = organic_flag if organic_flag is not None else (network or "").lower() == "organic" if network else None
    revenue = REV_FLOAT(d, used)
    if revenue is None:
        cents = REV_CENTS(d, used)
        revenue = revenue_cents(cents) if cents is not None else None
    partner = json_in_string(d.get("partner_parameters"))
    replaced = {"partner_parameters": partner} if isinstance(partner, (dict, list)) else None
    click_time = CLICK(d, used)
    impression_time = None if click_time else IMPRESSION(d, used)
    f: dict[str, Any] = {
        "event_name": name, "event_type": etype, "event_time": time_,
        "media_source": "organic" if organic else network,
        "is_organic": organic if organic is not None else (False if network else None),
        "campaign": CAMPAIGN(d, used) or parts[1], "ad_set": AD_SET(d, used) or parts[2],
        "ad": AD(d, used) or parts[3],
        "touch_type": "click" if click_time else "impression" if impression_time else None,
        "touch_time": click_time or impression_time, "revenue": revenue}
    FILL(d, used, f)
    f["platform"] = platform(f.get("platform"))
    if revenue is not None:
        f["currency"] = CURRENCY(d, used)
    return f, {k: d.get(k) for k in ID_KEYS}, None, replaced
