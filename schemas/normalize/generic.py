"""The project's own vendor-neutral shape (the setup guide's): ``event_id``, ``event_name``, ``timestamp``,
``attribution{source, campaign, ad_set, deep_link, …}``, ``device{platform, app_version, …}``,
``user{customer_id, is_organic}``, optional ``revenue``/``currency``.

event_id: the sender's ``event_id``; else a fingerprint of event_name, timestamp and the user key (customer id).
"""

from __future__ import annotations

from typing import Any

from schemas.canonical import event_type, platform
from schemas.normalize.base import Extract, require
from schemas.normalize.payload import Payload

A, D, U = "attribution.", "device.", "user."


def extract(p: Payload, options: dict[str, Any]) -> Extract:
    name = require(p.text("event_name"), "event_name")
    time_ = require(p.time("timestamp", "event_time"), "timestamp")
    source = p.text(A + "source", A + "media_source")
    organic_flag = p.bool(U + "is_organic", A + "is_organic", "is_organic")
    organic = organic_flag if organic_flag is not None else ((source or "").lower() == "organic" if source else None)
    revenue = p.decimal("revenue", "revenue.amount")
    return Extract(
        fields={
            "event_id": p.text("event_id"),
            "app_id": p.text("app_id", D + "app_id"),
            "event_name": name,
            "event_type": event_type(name, options),
            "event_time": time_,
            "customer_user_id": p.text(U + "customer_id", U + "id"),
            "platform": platform(p.text(D + "platform")),
            "os_version": p.text(D + "os_version"),
            "app_version": p.text(D + "app_version"),
            "idfa": p.dev(D + "idfa"),
            "idfv": p.dev(D + "idfv"),
            "gaid": p.dev(D + "gaid"),
            "android_id": p.dev(D + "android_id"),
            "oaid": p.dev(D + "oaid"),
            "media_source": "organic" if organic else source,
            "is_organic": organic,
            "campaign": p.text(A + "campaign"),
            "campaign_id": p.text(A + "campaign_id"),
            "ad_set": p.text(A + "ad_set"),
            "ad_set_id": p.text(A + "ad_set_id"),
            "ad": p.text(A + "ad"),
            "ad_id": p.text(A + "ad_id"),
            "channel": p.text(A + "channel"),
            "click_id": p.text(A + "click_id"),
            "deep_link": p.text(A + "deep_link"),
            "touch_type": p.text(A + "touch_type"),
            "touch_time": p.time(A + "touch_time"),
            "revenue": revenue,
            "currency": p.currency("currency", "revenue.currency") if revenue is not None else None,
        },
        id_fields={"event_name": name, "timestamp": time_},
    )
