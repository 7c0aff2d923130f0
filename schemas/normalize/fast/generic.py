"""The project's vendor-neutral shape, generated (the mapping and its reasons: schemas/normalize/generic.py, the
reference)."""

from __future__ import annotations

from schemas.normalize.fast.gen import Gen
from schemas.normalize.fast.plan import BOOL, CUR, DEC, DEV, TEXT, TIME
from schemas.normalize.generic import A, D, U

FILL = (
    ("event_id", TEXT, "event_id"), ("app_id", TEXT, "app_id", D + "app_id"),
    ("customer_user_id", TEXT, U + "customer_id", U + "id"), ("platform", TEXT, D + "platform"),
    ("os_version", TEXT, D + "os_version"), ("app_version", TEXT, D + "app_version"), ("idfa", DEV, D + "idfa"),
    ("idfv", DEV, D + "idfv"), ("gaid", DEV, D + "gaid"), ("android_id", DEV, D + "android_id"),
    ("oaid", DEV, D + "oaid"), ("campaign", TEXT, A + "campaign"), ("campaign_id", TEXT, A + "campaign_id"),
    ("ad_set", TEXT, A + "ad_set"), ("ad_set_id", TEXT, A + "ad_set_id"), ("ad", TEXT, A + "ad"),
    ("ad_id", TEXT, A + "ad_id"), ("channel", TEXT, A + "channel"), ("click_id", TEXT, A + "click_id"),
    ("deep_link", TEXT, A + "deep_link"), ("touch_type", TEXT, A + "touch_type"))


def body(g: Gen) -> None:
    g.read("event_name", TEXT, "event_name")
    g.require("event_name", "event_name")
    g.read("event_time", TIME, "timestamp", "event_time")
    g.require("event_time", "timestamp")
    g.read("source_", TEXT, A + "source", A + "media_source")
    g.read("organic", BOOL, U + "is_organic", A + "is_organic", "is_organic")
    with g.block("if organic is None:"):
        g.line("organic = (source_ or '').lower() == 'organic' if source_ else None")
    g.read("revenue", DEC, "revenue", "revenue.amount")
    g.fill(FILL)
    g.event_type()
    g.platform()
    g.read("touch_time", TIME, A + "touch_time")
    with g.block("if revenue is not None:"):
        g.read("currency", CUR, "currency", "revenue.currency")
    with g.block("else:"):
        g.assign("currency", "None")
    g.assign("media_source", "'organic' if organic else source_")
    g.assign("is_organic", "organic")
    g.ids("{'event_name': event_name, 'timestamp': event_time}")
