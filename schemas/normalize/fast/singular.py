"""Singular postbacks, generated (the mapping and its reasons: schemas/normalize/singular.py, the reference)."""

from __future__ import annotations

from schemas.normalize.fast.gen import Gen
from schemas.normalize.fast.plan import BOOL, CUR, DEC, DEV, TEXT, TIME

FILL = (
    ("app_id", TEXT, "longname", "app_longname", "bundle_id"),
    ("customer_user_id", TEXT, "custom_user_id", "customer_user_id", "user_id"),
    ("platform", TEXT, "platform", "os"), ("os_version", TEXT, "os_version"), ("app_version", TEXT, "app_version"),
    ("idfa", DEV, "idfa"), ("idfv", DEV, "idfv"), ("gaid", DEV, "aifa", "gaid"), ("android_id", DEV, "android_id"),
    ("oaid", DEV, "oaid"), ("campaign", TEXT, "campaign_name", "campaign"), ("campaign_id", TEXT, "campaign_id"),
    ("ad_set", TEXT, "sub_campaign_name", "adset_name"), ("ad_set_id", TEXT, "sub_campaign_id", "adset_id"),
    ("ad", TEXT, "creative_name", "creative"), ("ad_id", TEXT, "creative_id"),
    ("channel", TEXT, "channel", "publisher_site_name"), ("click_id", TEXT, "click_id"),
    ("deep_link", TEXT, "deeplink", "deep_link"), ("touch_type", TEXT, "touch_type", "attribution_type"))


def body(g: Gen) -> None:
    g.read("event_name", TEXT, "event_name")
    g.require("event_name", "event_name")
    g.read("event_time", TIME, "event_utc_timestamp", "event_timestamp", "timestamp")
    g.require("event_time", "event_utc_timestamp")
    g.event_type()
    g.line("if event_type == 'install' and BOOLEAN(d.get('is_reengagement')):", "    event_type = 'reengagement'")
    g.read("network", TEXT, "network", "network_name", "source")
    g.read("organic", BOOL, "is_organic")
    with g.block("if organic is None:"):
        g.line("organic = (network or '').lower() == 'organic' if network else None")
    g.read("revenue", DEC, "revenue", "amount")
    g.fill(FILL)
    g.platform()
    g.assign("touch_type", "(touch_type or '').lower() or None")
    g.read("touch_time", TIME, "click_utc_timestamp", "touch_utc_timestamp")
    with g.block("if revenue is not None:"):
        g.read("currency", CUR, "currency", "revenue_currency")
    with g.block("else:"):
        g.assign("currency", "None")
    g.assign("media_source", "'organic' if organic else network")
    g.assign("is_organic", "organic")
    g.ids("{'event_name': event_name, 'event_utc_timestamp': event_time, 'revenue': str(revenue)}")
