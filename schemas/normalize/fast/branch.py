"""Branch Data Feeds and legacy webhooks, generated (the mapping and its reasons: schemas/normalize/branch.py, the
reference)."""

from __future__ import annotations

from schemas.normalize.branch import DEFAULTS, T
from schemas.normalize.fast.gen import Gen
from schemas.normalize.fast.keys import FIRST_KEY
from schemas.normalize.fast.plan import BOOL, CUR, DEC, DEV, TEXT, TIME

FILL = (
    ("event_id", TEXT, "id"), ("app_id", TEXT, "app_id"), ("customer_user_id", TEXT, "user_data.developer_identity"),
    ("os_version", TEXT, "user_data.os_version"), ("app_version", TEXT, "user_data.app_version"),
    ("idfa", DEV, "user_data.idfa"), ("idfv", DEV, "user_data.idfv"), ("gaid", DEV, "user_data.aaid"),
    ("android_id", DEV, "user_data.android_id"), ("oaid", DEV, "user_data.oaid"),
    ("campaign", TEXT, T + "~campaign"), ("campaign_id", TEXT, T + "~campaign_id"),
    ("ad_set", TEXT, T + "~ad_set_name"), ("ad_set_id", TEXT, T + "~ad_set_id"),
    ("ad", TEXT, T + "~ad_name", T + "~creative_name"), ("ad_id", TEXT, T + "~ad_id", T + "~creative_id"),
    ("click_id", TEXT, T + "~click_id"),
    ("deep_link", TEXT, T + "+url", T + "$deeplink_path", T + "$canonical_url"),
    ("touch_type", TEXT, "last_attributed_touch_type"))
L_FILL = (
    ("event_id", TEXT, "click_id"), ("app_id", TEXT, "app_id"), ("customer_user_id", TEXT, "identity"),
    ("os_version", TEXT, "os_version"), ("idfa", DEV, "idfa"), ("gaid", DEV, "google_advertising_id"))
LINKS = ("link_data.", "session_referring_link_data.", "first_referring_link_data.")  # click, session, first


def body(g: Gen) -> None:
    g.key_var = True
    g.branches("'name' not in d and 'event' in d and 'user_data' not in d", _legacy, _ontology)


def _ontology(g: Gen) -> None:
    g.line(f"key_of = {g.const(FIRST_KEY['branch'], 'KEY_BRANCH')}")
    g.read("event_name", TEXT, "name")
    g.require("event_name", "name")
    g.read("event_time", TIME, "event_timestamp", "timestamp")
    g.require("event_time", "timestamp")
    g.line("touch = d.get('last_attributed_touch_data')")
    g.read("attributed", BOOL, "attributed")
    g.line("organic = attributed is False or not (touch if isinstance(touch, dict) else {})")
    g.read("partner", TEXT, T + "~advertising_partner_name")
    g.read("channel", TEXT, T + "~channel")
    g.read("revenue", DEC, "event_data.revenue")
    g.assign("media_source", "'organic' if organic else (partner or channel)")
    g.assign("is_organic", "organic")
    g.fill(FILL)
    g.event_type(DEFAULTS)
    g.read("platform", TEXT, "user_data.os")
    g.platform()
    with g.block("if not platform:"):
        g.read("platform", TEXT, "user_data.platform")
        g.platform()
    g.assign("touch_type", "(touch_type or '').lower() or None")
    g.read("touch_time", TIME, "last_attributed_touch_timestamp", T + "+click_timestamp")
    with g.block("if revenue is not None:"):
        g.read("currency", CUR, "event_data.currency")
    with g.block("else:"):
        g.assign("currency", "None")
    g.assign("ids", "{'name': event_name, 'timestamp': d.get('timestamp'), 'event_timestamp': "
                    f"d.get('event_timestamp'), 'transaction_id': {g.peek_expr('event_data.transaction_id')}}}")


def _legacy(g: Gen) -> None:
    g.line(f"key_of = {g.const(FIRST_KEY['branch_legacy'], 'KEY_LEGACY')}")
    g.read("event_name", TEXT, "event")
    g.require("event_name", "event")
    g.read("event_time", TIME, "event_timestamp")
    g.require("event_time", "event_timestamp")
    g.read("platform", TEXT, "os")
    g.platform()
    g.line("is_click = event_name.lower() == 'click'", "session = d.get('session_referring_link_data')",
           "link = 0 if is_click else 1 if isinstance(session, dict) and session else 2")
    g.line("link_obj = d.get('link_data') if link == 0 else session if link == 1 else "
           "d.get('first_referring_link_data')",
           "has_link = isinstance(link_obj, dict) and bool(link_obj)")
    g.read("referred", BOOL, "metadata.referred")
    g.line("organic = False if is_click else (referred is False or (referred is None and not has_link))")
    g.read("hw", DEV, "hardware_id")
    g.event_type(DEFAULTS)
    g.line(f"if event_type == 'install' and BOOLEAN({g.peek_expr('metadata.reinstall')}):",
           "    event_type = 'reinstall'")
    for i, link in enumerate(LINKS):
        with g.block(f"{'if' if i == 0 else 'elif' if i == 1 else 'else:'}{f' link == {i}:' if i < 2 else ''}"):
            if i == 0:
                g.assign("touch_time", "None")
            else:
                g.read("touch_time", TIME, link.replace("link_data.", "click_timestamp"))
            with g.block("if organic:"):
                g.assign("media_source", "'organic'")
            with g.block("else:"):
                g.read("media_source", TEXT, link + "~advertising_partner_name", link + "channel")
            g.read("campaign", TEXT, link + "campaign")
            g.read("channel", TEXT, link + "channel")
            g.read("deep_link", TEXT, link + "data.+url", link + "data.$deeplink_path")
            g.assign("link_id", g.peek_expr(link + "branch_id"))
    g.assign("idfv", "hw if platform == 'ios' else None")
    g.assign("android_id", "hw if platform != 'ios' else None")
    g.assign("is_organic", "organic")
    g.assign("touch_type", "'click' if touch_time else None")
    g.fill(L_FILL)
    g.assign("ids", "{'event': event_name, 'event_timestamp': d.get('event_timestamp'), 'link': link_id}")
