"""Tenjin S2S callbacks (GET ``{{macros}}``, names [2ND]): event (``{{value}}``), time_in_ms (event time) else
acquired_at_ms (install), engaged_at_ms (touch), advertising_id (IDFA on iOS, GAID on Android), ad_network, campaign,
site_id (→ ad_set), creative (→ ad), store_id/bundle_id (→ app_id), revenue_usd_gross (USD).

event_id: none → fingerprint of store_id, the user key (analytics_installation_id, else advertising id), event and the
event time.
"""

from __future__ import annotations

from typing import Any

from schemas.canonical import event_type, platform
from schemas.normalize.base import Extract, require
from schemas.normalize.payload import Payload


def extract(p: Payload, options: dict[str, Any]) -> Extract:
    name = require(p.text("event", "value", "event_name"), "event")
    time_ = require(p.time("time_in_ms", "event_at_ms", "created_at_ms", "acquired_at_ms"), "time_in_ms")
    plat = platform(p.text("platform"))
    ad_id = p.dev("advertising_id")
    network = p.text("ad_network", "network")
    organic = (network or "").lower() == "organic" if network else None
    revenue = p.decimal("revenue_usd_gross", "revenue")
    currency = "USD" if p.peek("revenue_usd_gross") is not None else p.currency("currency")
    touch = p.time("engaged_at_ms")
    return Extract(
        fields={
            "app_id": p.text("store_id", "bundle_id", "app_id"),
            "event_name": name,
            "event_type": event_type(name, options),
            "event_time": time_,
            "customer_user_id": p.text("user_id", "customer_user_id"),
            "platform": plat,
            "os_version": p.text("os_version"),
            "app_version": p.text("app_version"),
            "idfa": ad_id if plat == "ios" else None,
            "gaid": ad_id if plat == "android" else None,
            "idfv": p.dev("developer_device_id"),
            "media_source": "organic" if organic else network,
            "is_organic": organic,
            "campaign": p.text("campaign", "campaign_name"),
            "campaign_id": p.text("campaign_id"),
            "ad_set": p.text("site_id"),
            "ad": p.text("creative", "creative_name"),
            "click_id": p.text("click_id"),
            "touch_type": "click" if touch and p.peek("click_id") else None,
            "touch_time": touch,
            "revenue": revenue,
            "currency": currency if revenue is not None else None,
        },
        id_fields={"event": name, "time": time_},
    )
