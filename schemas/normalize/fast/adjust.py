"""Adjust callbacks, generated (the mapping and its reasons: schemas/normalize/adjust.py, the reference)."""

from __future__ import annotations

from schemas.normalize.adjust import ACTIVITY
from schemas.normalize.fast.gen import Gen
from schemas.normalize.fast.plan import BOOL, CUR, DEC, DEV, TEXT, TIME

FILL = (
    ("app_id", TEXT, "app_id", "store_id"), ("customer_user_id", TEXT, "user_id", "customer_user_id"),
    ("platform", TEXT, "os_name", "platform"), ("os_version", TEXT, "os_version"),
    ("app_version", TEXT, "app_version", "app_version_short"), ("idfa", DEV, "idfa"), ("idfv", DEV, "idfv"),
    ("gaid", DEV, "gps_adid"), ("android_id", DEV, "android_id"), ("oaid", DEV, "oaid"),
    ("campaign_id", TEXT, "campaign_id"), ("ad_set_id", TEXT, "adgroup_id"), ("ad_id", TEXT, "creative_id"),
    ("channel", TEXT, "channel"), ("click_id", TEXT, "click_id", "gclid"),
    ("deep_link", TEXT, "deeplink", "deep_link"))
ID_KEYS = ("activity_kind", "event", "event_name", "created_at", "ad_revenue_unit", "ad_revenue_placement")


def body(g: Gen) -> None:
    activity = g.const(ACTIVITY, "ACTIVITY")
    g.line("kind = TEXTF(d.get('activity_kind'))")
    g.read("event_name", TEXT, "event_name", "activity_kind")
    g.require("event_name", "activity_kind", "activity_kind (or event_name) is required")
    with g.block(f"if kind and kind.lower() in {activity}:"):
        g.assign("event_type",
                 f"CANONICAL_ETYPE(event_name, OPTIONS, {{event_name.lower(): {activity}[kind.lower()]}})")
    with g.block("else:"):
        g.event_type()
    g.read("event_time", TIME, "created_at")
    g.require("event_time", "created_at")
    g.line("tracker = str(d.get('tracker_name') or '')",
           "parts = [s.strip() or None for s in tracker.split('::')] if '::' in tracker else []",
           "parts += [None] * (4 - len(parts))")
    g.read("network", TEXT, "network_name")
    g.line("network = network or parts[0]")
    g.read("organic", BOOL, "is_organic")
    g.line("organic = organic if organic is not None else (network or '').lower() == 'organic' if network else None")
    g.read("revenue", DEC, "revenue_float")
    with g.block("if revenue is None:"):
        g.read("cents", DEC, "revenue")
        g.line("revenue = REV_CENTS(cents) if cents is not None else None")
    g.line("partner = JSON_IN_STRING(d.get('partner_parameters'))",
           "if isinstance(partner, (dict, list)):", "    props['partner_parameters'] = partner")
    g.read("click_time", TIME, "click_time")
    with g.block("if click_time:"):
        g.assign("impression_time", "None")
    with g.block("else:"):
        g.read("impression_time", TIME, "impression_time")
    g.assign("media_source", "'organic' if organic else network")
    g.assign("is_organic", "organic if organic is not None else (False if network else None)")
    g.read("campaign", TEXT, "campaign_name")
    g.line("campaign = campaign or parts[1]")
    g.read("ad_set", TEXT, "adgroup_name")
    g.line("ad_set = ad_set or parts[2]")
    g.read("ad", TEXT, "creative_name")
    g.line("ad = ad or parts[3]")
    g.assign("touch_type", "'click' if click_time else 'impression' if impression_time else None")
    g.assign("touch_time", "click_time or impression_time")
    g.fill(FILL)
    g.platform()
    with g.block("if revenue is not None:"):
        g.read("currency", CUR, "currency")
    with g.block("else:"):
        g.assign("currency", "None")
    g.ids("{" + ", ".join(f"{k!r}: d.get({k!r})" for k in ID_KEYS) + "}")
