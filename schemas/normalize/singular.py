"""Singular internal-BI postbacks (POST JSON). Field names beyond the documented device ids are [2ND]/unverified:
campaign ids, revenue and user id are read under their common names and otherwise land in ``properties``.

event_id: none documented → fingerprint of longname (app), the user key (idfv / aifa / android_id), event_name,
event_utc_timestamp and the revenue amount.
"""

from __future__ import annotations

from typing import Any

from schemas.canonical import event_type, platform
from schemas.fields import boolean
from schemas.normalize.base import Extract, require
from schemas.normalize.payload import Payload


def extract(p: Payload, options: dict[str, Any]) -> Extract:
    name = require(p.text("event_name"), "event_name")
    time_ = require(p.time("event_utc_timestamp", "event_timestamp", "timestamp"), "event_utc_timestamp")
    etype = event_type(name, options)
    if etype == "install" and boolean(p.peek("is_reengagement")):
        etype = "reengagement"
    network = p.text("network", "network_name", "source")
    organic_flag = p.bool("is_organic")
    organic = organic_flag if organic_flag is not None else ((network or "").lower() == "organic" if network else None)
    revenue = p.decimal("revenue", "amount")
    return Extract(
        fields={
            "app_id": p.text("longname", "app_longname", "bundle_id"),
            "event_name": name,
            "event_type": etype,
            "event_time": time_,
            "customer_user_id": p.text("custom_user_id", "customer_user_id", "user_id"),
            "platform": platform(p.text("platform", "os")),
            "os_version": p.text("os_version"),
            "app_version": p.text("app_version"),
            "idfa": p.dev("idfa"),
            "idfv": p.dev("idfv"),
            "gaid": p.dev("aifa", "gaid"),
            "android_id": p.dev("android_id"),
            "oaid": p.dev("oaid"),
            "media_source": "organic" if organic else network,
            "is_organic": organic,
            "campaign": p.text("campaign_name", "campaign"),
            "campaign_id": p.text("campaign_id"),
            "ad_set": p.text("sub_campaign_name", "adset_name"),
            "ad_set_id": p.text("sub_campaign_id", "adset_id"),
            "ad": p.text("creative_name", "creative"),
            "ad_id": p.text("creative_id"),
            "channel": p.text("channel", "publisher_site_name"),
            "click_id": p.text("click_id"),
            "deep_link": p.text("deeplink", "deep_link"),
            "touch_type": (p.text("touch_type", "attribution_type") or "").lower() or None,
            "touch_time": p.time("click_utc_timestamp", "touch_utc_timestamp"),
            "revenue": revenue,
            "currency": p.currency("currency", "revenue_currency") if revenue is not None else None,
        },
        id_fields={"event_name": name, "event_utc_timestamp": time_, "revenue": str(revenue)},
    )
