"""AppsFlyer Push API v2, generated (the mapping and its reasons: schemas/normalize/appsflyer.py, the reference)."""

from __future__ import annotations

from schemas.normalize.appsflyer import DEFAULTS
from schemas.normalize.fast.gen import Gen
from schemas.normalize.fast.plan import CUR, DEC, DEV, TEXT, TIME

FILL = (
    ("app_id", TEXT, "app_id"), ("customer_user_id", TEXT, "customer_user_id"), ("platform", TEXT, "platform"),
    ("os_version", TEXT, "os_version"), ("app_version", TEXT, "app_version"), ("idfa", DEV, "idfa"),
    ("idfv", DEV, "idfv"), ("gaid", DEV, "advertising_id"), ("android_id", DEV, "android_id"), ("oaid", DEV, "oaid"),
    ("campaign", TEXT, "campaign"), ("campaign_id", TEXT, "af_c_id"), ("ad_set", TEXT, "af_adset"),
    ("ad_set_id", TEXT, "af_adset_id"), ("ad", TEXT, "af_ad"), ("ad_id", TEXT, "af_ad_id"),
    ("channel", TEXT, "af_channel"), ("click_id", TEXT, "af_click_id", "click_id"),
    ("deep_link", TEXT, "af_dp", "deep_link_value"))


def body(g: Gen) -> None:
    g.read("event_name", TEXT, "event_name")
    g.require("event_name", "event_name")
    g.event_type(DEFAULTS)
    g.line("conversion = d.get('conversion_type') or ''",
           "campaign_type = str(d.get('campaign_type') or '').lower()",
           "if event_type == 'install' and str(conversion).lower() == 'reinstall' and campaign_type != 'retargeting':",
           "    event_type = 'reinstall'")
    g.read("media", TEXT, "media_source")
    g.line("organic = (campaign_type == 'organic') or (media or '').lower() == 'organic'")
    with g.block("if organic:"):
        g.take("campaign_type")
    g.read("revenue", DEC, "event_revenue")
    g.line("raw_value = d.get('event_value')", "event_value = JSON_IN_STRING(raw_value)",
           "if event_value is not raw_value:", "    props['event_value'] = event_value")
    g.read("event_time", TIME, "event_time")
    g.require("event_time", "event_time")
    g.fill(FILL)
    g.platform()
    g.read("touch_type", TEXT, "attributed_touch_type")
    g.assign("touch_type", "(touch_type or '').lower() or None")
    g.read("touch_time", TIME, "attributed_touch_time")
    g.assign("media_source", "'organic' if organic else media")
    g.assign("is_organic", "organic if (organic or media) else None")
    with g.block("if revenue is not None:"):
        g.read("currency", CUR, "event_revenue_currency")
    with g.block("else:"):
        g.assign("currency", "None")
    g.ids("{'event_name': event_name, 'event_time': event_time, 'event_value': event_value, "
          "'event_revenue': str(revenue) if revenue is not None else None}")
