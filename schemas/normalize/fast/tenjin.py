"""Tenjin postbacks, generated (the mapping and its reasons: schemas/normalize/tenjin.py, the reference)."""

from __future__ import annotations

from schemas.normalize.fast.gen import Gen
from schemas.normalize.fast.plan import CUR, DEC, DEV, TEXT, TIME

FILL = (
    ("app_id", TEXT, "store_id", "bundle_id", "app_id"), ("customer_user_id", TEXT, "user_id", "customer_user_id"),
    ("os_version", TEXT, "os_version"), ("app_version", TEXT, "app_version"), ("idfv", DEV, "developer_device_id"),
    ("campaign", TEXT, "campaign", "campaign_name"), ("campaign_id", TEXT, "campaign_id"),
    ("ad_set", TEXT, "site_id"), ("ad", TEXT, "creative", "creative_name"), ("click_id", TEXT, "click_id"))


def body(g: Gen) -> None:
    g.read("event_name", TEXT, "event", "value", "event_name")
    g.require("event_name", "event")
    g.read("event_time", TIME, "time_in_ms", "event_at_ms", "created_at_ms", "acquired_at_ms")
    g.require("event_time", "time_in_ms")
    g.read("platform", TEXT, "platform")
    g.platform()
    g.read("ad_id_", DEV, "advertising_id")
    g.read("network", TEXT, "ad_network", "network")
    g.line("organic = (network or '').lower() == 'organic' if network else None")
    g.read("revenue", DEC, "revenue_usd_gross", "revenue")
    with g.block("if d.get('revenue_usd_gross') is not None:"):
        g.assign("currency", "'USD'")
    with g.block("else:"):
        g.read("currency", CUR, "currency")
    g.read("touch_time", TIME, "engaged_at_ms")
    g.assign("idfa", "ad_id_ if platform == 'ios' else None")
    g.assign("gaid", "ad_id_ if platform == 'android' else None")
    g.assign("media_source", "'organic' if organic else network")
    g.assign("is_organic", "organic")
    g.assign("touch_type", "'click' if touch_time and d.get('click_id') else None")
    g.line("if revenue is None:", "    currency = None")
    g.fill(FILL)
    g.event_type()
    g.ids("{'event': event_name, 'time': event_time}")
