"""Kochava custom postbacks (GET; parameter names chosen per postback — map others with options.query_map).
Default names: event, event_time, kochava_device_id, adid (Android advertising id), idfa, idfv, android_id, network,
campaign, site_id (→ ad_set), creative (→ ad), app_guid (→ app_id), revenue/currency.

event_id: none → fingerprint of app_guid, the user key (kochava_device_id first), event and event_time.
"""

from __future__ import annotations

from typing import Any

from schemas.canonical import event_type, platform
from schemas.normalize.base import Extract, require
from schemas.normalize.payload import Payload


def extract(p: Payload, options: dict[str, Any]) -> Extract:
    name = require(p.text("event", "event_name"), "event")
    time_ = require(p.time("event_time", "timestamp"), "event_time")
    network = p.text("network", "network_name")
    organic_flag = p.bool("is_organic")
    organic = organic_flag if organic_flag is not None else ((network or "").lower() in ("organic", "unattributed")
                                                              if network else None)
    revenue = p.decimal("revenue", "price", "value")
    return Extract(
        fields={
            "app_id": p.text("app_guid", "app_id"),
            "event_name": name,
            "event_type": event_type(name, options),
            "event_time": time_,
            "customer_user_id": p.text("user_id", "customer_user_id"),
            "platform": platform(p.text("platform", "os")),
            "os_version": p.text("os_version"),
            "app_version": p.text("app_version"),
            "idfa": p.dev("idfa"),
            "idfv": p.dev("idfv"),
            "gaid": p.dev("adid", "gaid"),
            "android_id": p.dev("android_id"),
            "oaid": p.dev("oaid"),
            "media_source": "organic" if organic else network,
            "is_organic": organic,
            "campaign": p.text("campaign", "campaign_name"),
            "campaign_id": p.text("campaign_id"),
            "ad_set": p.text("site_id", "tracker", "ad_set"),
            "ad": p.text("creative", "creative_name"),
            "ad_id": p.text("creative_id"),
            "click_id": p.text("click_id"),
            "deep_link": p.text("deeplink", "deep_link"),
            "touch_time": p.time("click_time", "touch_time"),
            "revenue": revenue,
            "currency": p.currency("currency") if revenue is not None else None,
        },
        id_fields={"event": name, "event_time": time_},
    )
