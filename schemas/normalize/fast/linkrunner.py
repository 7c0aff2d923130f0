"""Linkrunner webhooks, compiled (the mapping and its reasons: schemas/normalize/linkrunner.py, the reference)."""

from __future__ import annotations

from typing import Any

from schemas.normalize.base import require
from schemas.normalize.fast.plan import DEV, TEXT, TIME, Extracted, columns, compile_fill, event_type, reader
from schemas.normalize.linkrunner import G, M

NAME, NETWORK, TOUCH, CAMPAIGN_ID = reader(TEXT, "event_type"), reader(TEXT, "network_name", "ad_channel"), reader(
    TIME, "store_click_at"), reader(TEXT, "campaign_id")
# The time paths in the event's order, and the field a missing time is reported as (the first of them).
INSTALL_ORDER = reader(TIME, "installed_at", "attributed_on"), "installed_at"
OTHER_ORDER = reader(TIME, "attributed_on", "installed_at"), "attributed_on"
FILL = compile_fill(columns(
    ("app_id", TEXT, "app_id", "package_name"), ("customer_user_id", TEXT, "user_id"),
    ("app_version", TEXT, "app_version"), ("idfa", DEV, "idfa"), ("gaid", DEV, "gaid"),
    ("campaign", TEXT, "campaign_name"), ("ad_set", TEXT, M + "ad_set_name", G + "ad_group_name"),
    ("ad_set_id", TEXT, M + "ad_set_id", G + "ad_group_id"), ("ad", TEXT, M + "ad_creative_name", G + "ad_name"),
    ("ad_id", TEXT, M + "ad_creative_id", G + "ad_id"), ("channel", TEXT, "ad_channel"),
    ("click_id", TEXT, G + "gclid", G + "gbraid", G + "wbraid"), ("deep_link", TEXT, "link")))


def extract(d: dict[str, Any], used: set[str], options: dict[str, Any]) -> Extracted:
    name = require(NAME(d, used), "event_type")
    read_time, missing = INSTALL_ORDER if name.lower() == "install" else OTHER_ORDER
    time_ = require(read_time(d, used), missing)
    network = NETWORK(d, used)
    organic = network.upper() == "ORGANIC" if network else None
    if organic:
        used.add("campaign_id")  # "ORGANIC" is not a campaign
    touch = TOUCH(d, used)
    f: dict[str, Any] = {"event_name": name, "event_time": time_, "media_source": "organic" if organic else network,
                         "is_organic": organic, "campaign_id": None if organic else CAMPAIGN_ID(d, used),
                         "touch_type": "click" if touch else None, "touch_time": touch}
    FILL(d, used, f)
    f["event_type"] = event_type(name, options)
    ids = {"event_type": name, "campaign_id": d.get("campaign_id"), "user_id": d.get("user_id"),
           "attributed_on": d.get("attributed_on"), "installed_at": d.get("installed_at")}
    return f, ids, None, None
