"""Linkrunner webhooks (flat POST JSON; every field may be null or omitted; no platform field).

Time: install → installed_at else attributed_on; signup (and others) → attributed_on else installed_at. Attribution
comes from ``network_name`` (trusted over ``ad_channel``), ad set/ad from ``meta_campaign_details`` or
``google_campaign_details``; platform is inferred from gaid (android) / idfa (ios).
event_id: none → fingerprint of event_type, campaign_id, the user key (gaid / idfa / user_id), user_id, attributed_on
and installed_at.
"""

from __future__ import annotations

from typing import Any

from schemas.canonical import event_type
from schemas.normalize.base import Extract, require
from schemas.normalize.payload import Payload

M, G = "meta_campaign_details.", "google_campaign_details."


def extract(p: Payload, options: dict[str, Any]) -> Extract:
    name = require(p.text("event_type"), "event_type")
    order = ("installed_at", "attributed_on") if name.lower() == "install" else ("attributed_on", "installed_at")
    time_ = require(p.time(*order), order[0])
    network = p.text("network_name", "ad_channel")
    organic = network.upper() == "ORGANIC" if network else None
    if organic:
        p.consume("campaign_id")  # "ORGANIC" is not a campaign
    touch = p.time("store_click_at")
    return Extract(
        fields={
            "app_id": p.text("app_id", "package_name"),
            "event_name": name,
            "event_type": event_type(name, options),
            "event_time": time_,
            "customer_user_id": p.text("user_id"),
            "app_version": p.text("app_version"),
            "idfa": p.dev("idfa"),
            "gaid": p.dev("gaid"),
            "media_source": "organic" if organic else network,
            "is_organic": organic,
            "campaign": p.text("campaign_name"),
            "campaign_id": None if organic else p.text("campaign_id"),
            "ad_set": p.text(M + "ad_set_name", G + "ad_group_name"),
            "ad_set_id": p.text(M + "ad_set_id", G + "ad_group_id"),
            "ad": p.text(M + "ad_creative_name", G + "ad_name"),
            "ad_id": p.text(M + "ad_creative_id", G + "ad_id"),
            "channel": p.text("ad_channel"),
            "click_id": p.text(G + "gclid", G + "gbraid", G + "wbraid"),
            "deep_link": p.text("link"),
            "touch_type": "click" if touch else None,
            "touch_time": touch,
        },
        id_fields={"event_type": name, "campaign_id": p.peek("campaign_id"), "user_id": p.peek("user_id"),
                   "attributed_on": p.peek("attributed_on"), "installed_at": p.peek("installed_at")},
    )
