"""Branch (branch.io): Data Feeds webhooks (Event Ontology body, POST or a GET URL template) and the legacy
click/event webhooks.

Data Feeds: attribution from ``last_attributed_touch_data`` (never ``last_cta_view_data``); media_source =
``~advertising_partner_name`` else ``~channel``; organic = ``attributed`` false or no touch data.
Legacy: first-referring = first touch (kept in properties), session-referring = last touch (the columns);
``*_referring_identity`` / ``*_hardware_id`` describe the referrer, never this user, so they stay in properties.
event_id: ``id`` (Data Feeds; kept as the exact digit string even when sent as a number > 2^53) or ``click_id``
(legacy clicks); otherwise a fingerprint of name, timestamp/event_timestamp, the user key and
``event_data.transaction_id`` (Data Feeds) or event, event_timestamp, the user key and the link id (legacy).
"""

from __future__ import annotations

from typing import Any

from schemas.canonical import event_type, platform
from schemas.fields import boolean
from schemas.normalize.base import Extract, require
from schemas.normalize.payload import Payload

DEFAULTS = {"complete_registration": "signup", "login": "custom"}
T = "last_attributed_touch_data."


def is_legacy(p: Payload) -> bool:
    return "name" not in p.data and "event" in p.data and "user_data" not in p.data


def extract(p: Payload, options: dict[str, Any]) -> Extract:
    return _legacy(p, options) if is_legacy(p) else _ontology(p, options)


def _ontology(p: Payload, options: dict[str, Any]) -> Extract:
    name = require(p.text("name"), "name")
    time_ = require(p.time("event_timestamp", "timestamp"), "timestamp")
    touch = p.obj("last_attributed_touch_data")
    attributed = p.bool("attributed")
    organic = attributed is False or not touch
    partner = p.text(T + "~advertising_partner_name")
    channel = p.text(T + "~channel")
    revenue = p.decimal("event_data.revenue")
    return Extract(
        fields={
            "event_id": p.text("id"),
            "app_id": p.text("app_id"),
            "event_name": name,
            "event_type": event_type(name, options, DEFAULTS),
            "event_time": time_,
            "customer_user_id": p.text("user_data.developer_identity"),
            "platform": platform(p.text("user_data.os")) or platform(p.text("user_data.platform")),
            "os_version": p.text("user_data.os_version"),
            "app_version": p.text("user_data.app_version"),
            "idfa": p.dev("user_data.idfa"),
            "idfv": p.dev("user_data.idfv"),
            "gaid": p.dev("user_data.aaid"),
            "android_id": p.dev("user_data.android_id"),
            "oaid": p.dev("user_data.oaid"),
            "media_source": "organic" if organic else (partner or channel),
            "is_organic": organic,
            "campaign": p.text(T + "~campaign"),
            "campaign_id": p.text(T + "~campaign_id"),
            "ad_set": p.text(T + "~ad_set_name"),
            "ad_set_id": p.text(T + "~ad_set_id"),
            "ad": p.text(T + "~ad_name", T + "~creative_name"),
            "ad_id": p.text(T + "~ad_id", T + "~creative_id"),
            "channel": channel,
            "click_id": p.text(T + "~click_id"),
            "deep_link": p.text(T + "+url", T + "$deeplink_path", T + "$canonical_url"),
            "touch_type": (p.text("last_attributed_touch_type") or "").lower() or None,
            "touch_time": p.time("last_attributed_touch_timestamp", T + "+click_timestamp"),
            "revenue": revenue,
            "currency": p.currency("event_data.currency") if revenue is not None else None,
        },
        id_fields={"name": name, "timestamp": p.peek("timestamp"), "event_timestamp": p.peek("event_timestamp"),
                   "transaction_id": p.peek("event_data.transaction_id")},
    )


def _legacy(p: Payload, options: dict[str, Any]) -> Extract:
    name = require(p.text("event"), "event")
    time_ = require(p.time("event_timestamp"), "event_timestamp")
    os_ = platform(p.text("os"))
    is_click = name.lower() == "click"
    link = "link_data." if is_click else ("session_referring_link_data." if p.obj("session_referring_link_data")
                                          else "first_referring_link_data.")
    has_link = bool(p.obj(link[:-1]))
    referred = p.bool("metadata.referred")
    organic = False if is_click else (referred is False or (referred is None and not has_link))
    hw = p.dev("hardware_id")
    etype = event_type(name, options, DEFAULTS)
    if etype == "install" and boolean(p.peek("metadata.reinstall")):
        etype = "reinstall"
    touch_prefix = link.replace("link_data.", "click_timestamp") if not is_click else None
    touch_time = p.time(touch_prefix) if touch_prefix else None
    return Extract(
        fields={
            "event_id": p.text("click_id"),
            "app_id": p.text("app_id"),
            "event_name": name,
            "event_type": etype,
            "event_time": time_,
            "customer_user_id": p.text("identity"),
            "platform": os_,
            "os_version": p.text("os_version"),
            "idfa": p.dev("idfa"),
            "idfv": hw if os_ == "ios" else None,
            "gaid": p.dev("google_advertising_id"),
            "android_id": hw if os_ != "ios" else None,
            "media_source": "organic" if organic else p.text(link + "~advertising_partner_name", link + "channel"),
            "is_organic": organic,
            "campaign": p.text(link + "campaign"),
            "channel": p.text(link + "channel"),
            "deep_link": p.text(link + "data.+url", link + "data.$deeplink_path"),
            "touch_type": "click" if touch_time else None,
            "touch_time": touch_time,
        },
        id_fields={"event": name, "event_timestamp": p.peek("event_timestamp"),
                   "link": p.peek(link + "branch_id")},
        key_mmp="branch_legacy",
    )
