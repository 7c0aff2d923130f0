"""Linkrunner webhooks, generated (the mapping and its reasons: schemas/normalize/linkrunner.py, the reference)."""

from __future__ import annotations

from schemas.normalize.fast.gen import Gen
from schemas.normalize.fast.plan import DEV, TEXT, TIME
from schemas.normalize.linkrunner import G, M

FILL = (
    ("app_id", TEXT, "app_id", "package_name"), ("customer_user_id", TEXT, "user_id"),
    ("app_version", TEXT, "app_version"), ("idfa", DEV, "idfa"), ("gaid", DEV, "gaid"),
    ("campaign", TEXT, "campaign_name"), ("ad_set", TEXT, M + "ad_set_name", G + "ad_group_name"),
    ("ad_set_id", TEXT, M + "ad_set_id", G + "ad_group_id"), ("ad", TEXT, M + "ad_creative_name", G + "ad_name"),
    ("ad_id", TEXT, M + "ad_creative_id", G + "ad_id"), ("channel", TEXT, "ad_channel"),
    ("click_id", TEXT, G + "gclid", G + "gbraid", G + "wbraid"), ("deep_link", TEXT, "link"))


def body(g: Gen) -> None:
    g.read("event_name", TEXT, "event_type")
    g.require("event_name", "event_type")

    def install(g: Gen) -> None:  # the time paths in the event's order; a missing time is named by the first
        g.read("event_time", TIME, "installed_at", "attributed_on")
        g.require("event_time", "installed_at")

    def other(g: Gen) -> None:
        g.read("event_time", TIME, "attributed_on", "installed_at")
        g.require("event_time", "attributed_on")

    g.branches("event_name.lower() == 'install'", install, other)
    g.read("network", TEXT, "network_name", "ad_channel")
    g.line("organic = network.upper() == 'ORGANIC' if network else None")
    with g.block("if organic:"):
        g.take("campaign_id")  # "ORGANIC" is not a campaign
    g.read("touch_time", TIME, "store_click_at")
    g.assign("media_source", "'organic' if organic else network")
    g.assign("is_organic", "organic")
    with g.block("if organic:"):
        g.assign("campaign_id", "None")
    with g.block("else:"):
        g.read("campaign_id", TEXT, "campaign_id")
    g.assign("touch_type", "'click' if touch_time else None")
    g.fill(FILL)
    g.event_type()
    g.ids("{'event_type': event_name, 'campaign_id': d.get('campaign_id'), 'user_id': d.get('user_id'), "
          "'attributed_on': d.get('attributed_on'), 'installed_at': d.get('installed_at')}")
