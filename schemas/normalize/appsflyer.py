"""AppsFlyer Push API v2 (POST JSON or GET query; same field names).

event_id: AppsFlyer sends none → fingerprint of app_id, appsflyer_id (via the user key), event_name, event_time,
event_value (decoded, so its key order does not matter) and event_revenue.
"""

from __future__ import annotations

from typing import Any

from schemas.canonical import event_type, platform
from schemas.fields import json_in_string
from schemas.normalize.base import Extract, require
from schemas.normalize.payload import Payload

DEFAULTS = {"install": "install", "re-attribution": "reattribution", "re-engagement": "reengagement",
            "reinstall": "reinstall"}


def extract(p: Payload, options: dict[str, Any]) -> Extract:
    name = require(p.text("event_name"), "event_name")
    etype = event_type(name, options, DEFAULTS)
    conversion = (p.peek("conversion_type") or "")
    campaign_type = str(p.peek("campaign_type") or "").lower()
    if etype == "install" and str(conversion).lower() == "reinstall" and campaign_type != "retargeting":
        etype = "reinstall"
    media = p.text("media_source")
    organic = (campaign_type == "organic") or (media or "").lower() == "organic"
    if organic:
        p.consume("campaign_type")
    revenue = p.decimal("event_revenue")
    event_value = json_in_string(p.peek("event_value"))
    if event_value is not p.peek("event_value"):
        p.replace("event_value", event_value)  # properties keep it as an object
    time_ = require(p.time("event_time"), "event_time")
    return Extract(
        fields={
            "app_id": p.text("app_id"),
            "event_name": name,
            "event_type": etype,
            "event_time": time_,
            "customer_user_id": p.text("customer_user_id"),
            "platform": platform(p.text("platform")),
            "os_version": p.text("os_version"),
            "app_version": p.text("app_version"),
            "idfa": p.dev("idfa"),
            "idfv": p.dev("idfv"),
            "gaid": p.dev("advertising_id"),
            "android_id": p.dev("android_id"),
            "oaid": p.dev("oaid"),
            "media_source": "organic" if organic else media,
            "is_organic": organic if (organic or media) else None,
            "campaign": p.text("campaign"),
            "campaign_id": p.text("af_c_id"),
            "ad_set": p.text("af_adset"),
            "ad_set_id": p.text("af_adset_id"),
            "ad": p.text("af_ad"),
            "ad_id": p.text("af_ad_id"),
            "channel": p.text("af_channel"),
            "click_id": p.text("af_click_id", "click_id"),
            "deep_link": p.text("af_dp", "deep_link_value"),
            "touch_type": (p.text("attributed_touch_type") or "").lower() or None,
            "touch_time": p.time("attributed_touch_time"),
            "revenue": revenue,
            "currency": p.currency("event_revenue_currency") if revenue is not None else None,
        },
        id_fields={"event_name": name, "event_time": time_, "event_value": event_value,
                   "event_revenue": str(revenue) if revenue is not None else None},
    )
