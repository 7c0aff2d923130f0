"""Adjust real-time callbacks (GET; parameter names = the placeholders of the callback URL template).

``{revenue}`` is in cents and ``{revenue_float}`` in whole units: revenue_float wins, else revenue / 100 — never both.
Names missing from the template fall back to ``{tracker_name}`` = ``network::campaign::adgroup::creative``.
event_id: Adjust sends none → fingerprint of app_id, the user key (adid, else gps_adid/idfa/idfv), activity_kind,
event token, event_name, created_at and the ad-revenue unit/placement.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from schemas.canonical import event_type, platform
from schemas.fields import json_in_string, text
from schemas.normalize.base import Extract, require
from schemas.normalize.payload import Payload

ACTIVITY = {"install": "install", "reinstall": "reinstall", "reattribution": "reattribution",
            "reattribution_reinstall": "reattribution", "session": "session", "click": "click",
            "impression": "click", "ad_revenue": "ad_revenue", "reengagement": "reengagement"}


def extract(p: Payload, options: dict[str, Any]) -> Extract:
    kind = text(p.peek("activity_kind"))  # kept in properties unless it is the event name
    name = require(p.text("event_name", "activity_kind"), "activity_kind", "activity_kind (or event_name) is required")
    if kind and kind.lower() in ACTIVITY:
        etype = event_type(name, options, {name.lower(): ACTIVITY[kind.lower()]})
    else:  # "event" and anything new: by the event name
        etype = event_type(name, options)
    time_ = require(p.time("created_at"), "created_at")
    tracker = (p.peek("tracker_name") or "")
    parts = [s.strip() or None for s in str(tracker).split("::")] if "::" in str(tracker) else []
    parts += [None] * (4 - len(parts))

    def part(i: int) -> str | None:
        return parts[i]
    network = p.text("network_name") or part(0)
    organic_flag = p.bool("is_organic")
    organic = organic_flag if organic_flag is not None else (network or "").lower() == "organic" if network else None
    revenue = p.decimal("revenue_float")
    if revenue is None:
        cents = p.decimal("revenue")
        revenue = (cents / 100).quantize(Decimal("1e-9")) if cents is not None else None
    if isinstance(json_in_string(p.peek("partner_parameters")), (dict, list)):
        p.replace("partner_parameters", json_in_string(p.peek("partner_parameters")))
    click_time = p.time("click_time")
    impression_time = None if click_time else p.time("impression_time")
    return Extract(
        fields={
            "app_id": p.text("app_id", "store_id"),
            "event_name": name,
            "event_type": etype,
            "event_time": time_,
            "customer_user_id": p.text("user_id", "customer_user_id"),
            "platform": platform(p.text("os_name", "platform")),
            "os_version": p.text("os_version"),
            "app_version": p.text("app_version", "app_version_short"),
            "idfa": p.dev("idfa"),
            "idfv": p.dev("idfv"),
            "gaid": p.dev("gps_adid"),
            "android_id": p.dev("android_id"),
            "oaid": p.dev("oaid"),
            "media_source": "organic" if organic else network,
            "is_organic": organic if organic is not None else (False if network else None),
            "campaign": p.text("campaign_name") or part(1),
            "campaign_id": p.text("campaign_id"),
            "ad_set": p.text("adgroup_name") or part(2),
            "ad_set_id": p.text("adgroup_id"),
            "ad": p.text("creative_name") or part(3),
            "ad_id": p.text("creative_id"),
            "channel": p.text("channel"),
            "click_id": p.text("click_id", "gclid"),
            "deep_link": p.text("deeplink", "deep_link"),
            "touch_type": "click" if click_time else "impression" if impression_time else None,
            "touch_time": click_time or impression_time,
            "revenue": revenue,
            "currency": p.currency("currency") if revenue is not None else None,
        },
        id_fields={k: p.peek(k) for k in ("activity_kind", "event", "event_name", "created_at",
                                          "ad_revenue_unit", "ad_revenue_placement")},
    )
