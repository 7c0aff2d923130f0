"""MMP rules the shared samples do not cover."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import pytest

from attrib.settings import SourceSettings
from schemas import avro
from schemas.errors import NormalizeError
from schemas.normalize import normalize
from tests.schemas.conftest import SAMPLES

NOW = 1_730_000_000_000


def run(mmp: str, body: Any = None, query: dict[str, str] | str | None = None, **src: Any) -> dict[str, Any]:
    qs = query if isinstance(query, str) else urlencode(query or {})
    raw = {"delivery_id": "d", "source": "s", "mmp": mmp, "app_id": None, "method": "GET" if body is None else "POST",
           "path": "/", "query_string": qs, "headers": {"content-type": "application/json"},
           "body": b"" if body is None else json.dumps(body).encode(), "remote_addr": "", "received_at": NOW,
           "user_key": ""}
    [ev] = normalize(SourceSettings(name="s", mmp=mmp, **src), raw)
    return ev


def props(ev: dict[str, Any]) -> dict[str, Any]:
    return json.loads(ev["properties"])


def test_adjust_cents_only_and_tracker_name_fallback() -> None:
    ev = run("adjust", query={"activity_kind": "event", "event_name": "Purchase", "created_at": "1719317000",
                              "adid": "AB", "revenue": "345", "currency": "eur",
                              "tracker_name": "Meta::Summer::Adults::Video 1",
                              "partner_parameters": '{"plan":"gold"}'})
    assert (ev["revenue"], ev["currency"]) == (Decimal("3.45"), "EUR")
    assert (ev["media_source"], ev["campaign"], ev["ad_set"], ev["ad"]) == ("Meta", "Summer", "Adults", "Video 1")
    assert props(ev)["partner_parameters"] == {"plan": "gold"}


def test_appsflyer_get_equals_post() -> None:
    s = next(x for x in SAMPLES if x["sample_id"].startswith("appsflyer_02"))
    post = run("appsflyer", s["body"])
    get = run("appsflyer", query=s["body"])
    assert {k: v for k, v in get.items() if k != "properties"} == {k: v for k, v in post.items() if k != "properties"}


def test_branch_get_with_custom_template_names_and_secret_dropped() -> None:
    ev = run("branch", query={"evt": "PURCHASE", "t": "1720601000250", "vendor": "ABC-1", "amt": "9.5",
                              "cur": "gbp", "secret": "x", "k": "y"},
             options={"query_map": {"evt": "name", "t": "timestamp", "vendor": "user_data.idfv",
                                    "amt": "event_data.revenue", "cur": "event_data.currency"},
                      "secret_params": ["k"]})
    assert (ev["event_type"], ev["user_key"], ev["platform"]) == ("purchase", "idfv:abc-1", "ios")
    assert (ev["revenue"], ev["currency"]) == (Decimal("9.5"), "GBP")
    assert "secret" not in props(ev) and "k" not in props(ev)
    assert ev["is_organic"] is True  # no touch data at all


def test_branch_touch_timestamp_in_seconds() -> None:
    ev = run("branch", {"name": "INSTALL", "timestamp": 1718864302417, "user_data": {"os": "ANDROID"},
                        "last_attributed_touch_data": {"~channel": "x", "+click_timestamp": 1718864211}})
    assert ev["touch_time"] == 1718864211000


def test_branch_legacy_session_referring_is_the_last_touch() -> None:
    body = {"event": "open", "event_timestamp": "2018-05-02T16:40:11.207Z", "os": "iOS", "hardware_id": "HW",
            "identity": "me", "first_referring_link_data": {"channel": "first", "campaign": "c1"},
            "session_referring_link_data": {"channel": "last", "campaign": "c2"},
            "session_referring_identity": "someone_else"}
    ev = run("branch", body)
    assert (ev["media_source"], ev["campaign"], ev["idfv"], ev["customer_user_id"]) == ("last", "c2", "hw", "me")
    assert props(ev)["first_referring_link_data"] == {"channel": "first", "campaign": "c1"}
    assert props(ev)["session_referring_identity"] == "someone_else"


def test_generic_setup_guide_shape() -> None:
    body = {"event_id": "e-1", "event_name": "purchase", "timestamp": "2024-10-23T10:15:30.250Z",
            "attribution": {"source": "google", "campaign": "c", "ad_set": "a", "deep_link": "app://x"},
            "device": {"platform": "android", "app_version": "2.4.1"},
            "user": {"customer_id": "cust-9", "is_organic": "false"}, "revenue": "12.50", "currency": "inr"}
    ev = run("generic", body)
    assert ev["event_id"] == "e-1" and ev["user_key"] == "customer_user_id:cust-9"
    assert (ev["event_type"], ev["event_time"], ev["platform"], ev["app_version"]) == (
        "purchase", 1729678530250, "android", "2.4.1")
    assert (ev["media_source"], ev["is_organic"], ev["deep_link"]) == ("google", False, "app://x")
    assert (ev["revenue"], ev["currency"]) == (Decimal("12.5"), "INR")
    assert props(ev) == {}


def test_invalid_event_type_option_is_a_config_error() -> None:
    with pytest.raises(NormalizeError) as e:
        run("generic", {"event_name": "x", "timestamp": 1729678530250}, options={"event_types": {"x": "bogus"}})
    assert (e.value.reason, e.value.field) == ("invalid_config", "options.event_types.x")


def test_source_app_id_fills_missing_app_id() -> None:
    ev = run("linkrunner", {"event_type": "install", "attributed_on": "2024-11-03T12:00:00Z"}, app_id="com.x")
    assert ev["app_id"] == "com.x" and ev["platform"] is None and ev["user_key"].startswith("fp:")


def test_decoded_raw_delivery_record_normalizes() -> None:
    """The worker's input: a RawDelivery decoded from Avro (received_at as an aware datetime) plus raw_ref."""
    s = next(x for x in SAMPLES if x["sample_id"].startswith("adjust_01"))
    rec = {"delivery_id": "d", "source": "s", "mmp": "adjust", "app_id": None, "method": "GET", "path": "/",
           "query_string": s["raw_query_string"], "headers": {}, "body": b"", "remote_addr": "1.2.3.4",
           "received_at": NOW, "user_key": "adjust_adid:x"}
    _, decoded = avro.decode(avro.encode("raw_delivery", rec), expect="raw_delivery")
    [ev] = normalize(SourceSettings(name="s", mmp="adjust"),
                     {**decoded, "raw_ref": {"topic": "raw", "partition": 1, "offset": 7}})
    assert ev["received_at"] == NOW and ev["raw"] == {"topic": "raw", "partition": 1, "offset": 7}


def test_branch_legacy_reinstall_flag() -> None:
    ev = run("branch", {"event": "install", "event_timestamp": "2018-05-02T16:40:11.207Z", "os": "Android",
                        "hardware_id": "hw", "metadata": {"reinstall": "true", "referred": "false"}})
    assert (ev["event_type"], ev["is_organic"], ev["media_source"]) == ("reinstall", True, "organic")


def test_body_delivery_keeps_url_parameters_but_not_secrets() -> None:
    raw = {"delivery_id": "d", "source": "s", "mmp": "linkrunner", "app_id": None, "method": "POST", "path": "/",
           "query_string": "env=prod&token=abc", "headers": {"content-type": "application/json"},
           "body": b'{"event_type":"install","attributed_on":"2024-11-03T12:00:00Z"}', "remote_addr": "",
           "received_at": NOW, "user_key": ""}
    [ev] = normalize(SourceSettings(name="s", mmp="linkrunner"), raw)
    assert props(ev)["_query"] == {"env": "prod"}


@pytest.mark.parametrize("value", [["purchase"], {"a": 1}, 3, "Purchase"])
def test_non_string_event_type_option_is_a_config_error(value: Any) -> None:
    with pytest.raises(NormalizeError) as e:
        run("generic", {"event_name": "x", "timestamp": 1729678530250}, options={"event_types": {"X": value}})
    assert e.value.reason == "invalid_config"
