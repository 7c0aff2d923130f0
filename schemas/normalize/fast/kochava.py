"""Kochava postbacks, generated (the mapping and its reasons: schemas/normalize/kochava.py, the reference)."""

from __future__ import annotations

from schemas.normalize.fast.gen import Gen
from schemas.normalize.fast.plan import BOOL, CUR, DEC, DEV, TEXT, TIME

FILL = (
    ("app_id", TEXT, "app_guid", "app_id"), ("customer_user_id", TEXT, "user_id", "customer_user_id"),
    ("platform", TEXT, "platform", "os"), ("os_version", TEXT, "os_version"), ("app_version", TEXT, "app_version"),
    ("idfa", DEV, "idfa"), ("idfv", DEV, "idfv"), ("gaid", DEV, "adid", "gaid"), ("android_id", DEV, "android_id"),
    ("oaid", DEV, "oaid"), ("campaign", TEXT, "campaign", "campaign_name"), ("campaign_id", TEXT, "campaign_id"),
    ("ad_set", TEXT, "site_id", "tracker", "ad_set"), ("ad", TEXT, "creative", "creative_name"),
    ("ad_id", TEXT, "creative_id"), ("click_id", TEXT, "click_id"), ("deep_link", TEXT, "deeplink", "deep_link"))


def body(g: Gen) -> None:
    g.read("event_name", TEXT, "event", "event_name")
    g.require("event_name", "event")
    g.read("event_time", TIME, "event_time", "timestamp")
    g.require("event_time", "event_time")
    g.read("network", TEXT, "network", "network_name")
    g.read("organic", BOOL, "is_organic")
    with g.block("if organic is None:"):
        g.line("organic = (network or '').lower() in ('organic', 'unattributed') if network else None")
    g.read("revenue", DEC, "revenue", "price", "value")
    g.fill(FILL)
    g.event_type()
    g.platform()
    g.read("touch_time", TIME, "click_time", "touch_time")
    with g.block("if revenue is not None:"):
        g.read("currency", CUR, "currency")
    with g.block("else:"):
        g.assign("currency", "None")
    g.assign("media_source", "'organic' if organic else network")
    g.assign("is_organic", "organic")
    g.ids("{'event': event_name, 'event_time': event_time}")
