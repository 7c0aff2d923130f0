"""Vendor presets, pure: any enriched event becomes a request the vendor's validator accepts, or a clear skip or
rejection; batches stay within the vendor's limits; the vendor's answers map to per-event outcomes."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attrib.errors import ConfigurationError
from attrib.settings import PresetSettings
from schemas.canonical import EVENT_TYPES
from sinks.route import view as view_mod
from sinks.route.presets import PRESETS
from sinks.route.presets.base import Rejected, Skip, customer_id, device_id
from tests.sinks.route.events import T0, decoded
from tests.sinks.route.fakes import CHECKS, CREDS, REJECT

KINDS = sorted(PRESETS)
texts = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=12)
maybe = st.none() | texts
json_values = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | texts,
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(texts, c, max_size=3), max_leaves=8)
touch = st.fixed_dictionaries({"event_id": maybe, "event_type": st.none() | st.just("install"), "media_source": maybe,
                               "campaign": maybe, "ad_set": maybe, "ad": maybe, "channel": maybe})


def opts(kind: str, **over: Any) -> PresetSettings:
    base: dict[str, Any] = {**CREDS[kind], "endpoint": "http://fake"}
    return PresetSettings.model_validate({**base, **over})


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    ft = draw(st.none() | touch)
    return decoded(
        event_id=draw(st.uuids().map(str) | st.text("abcdef0123456789:_-", min_size=1, max_size=120)),
        event_name=draw(texts.filter(lambda s: s != REJECT)),
        event_type=draw(st.sampled_from(sorted(EVENT_TYPES))),
        event_time=draw(st.integers(0, 4_000_000_000_000) | st.just(T0)),
        customer_user_id=draw(st.none() | st.sampled_from(["null", "anon", "42"]) | texts),
        idfv=draw(maybe), gaid=draw(maybe),
        user_key=draw(st.sampled_from(["fp:", "idfv:", "customer_user_id:", "appsflyer_id:"])) + draw(texts),
        media_source=draw(maybe), campaign=draw(maybe), channel=draw(maybe),
        revenue=draw(st.none() | st.decimals(-10**6, 10**6, places=2, allow_nan=False).map(Decimal)),
        currency=draw(st.none() | st.sampled_from(["EUR", "USD"])),
        properties=draw(st.dictionaries(texts, json_values, max_size=8)),
        first_touch=None if ft is None else {**decoded()["first_touch"], **ft},
    )


def check(kind: str, o: PresetSettings, body: bytes, url: str, headers: dict[str, str]) -> Any:
    parts = urlsplit(url)
    return CHECKS[kind](parts.path, dict(parse_qsl(parts.query)), headers, body, CREDS[kind])


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rec=records(), anonymous=st.booleans())
def test_any_event_is_accepted_or_clearly_skipped(kind: str, rec: dict[str, Any], anonymous: bool) -> None:
    p, o = PRESETS[kind], opts(kind, anonymous=anonymous)
    try:
        item = p.item(rec, view_mod.build(rec), o, p.mapping(o))
    except Skip as s:
        assert s.reason == "no_identity"
        cid, dev = customer_id(rec), device_id(rec) if anonymous else None
        assert not cid or (kind == "amplitude" and len(cid) < 5)  # Amplitude ids have ≥ 5 characters
        assert kind == "clevertap" or not dev or (kind == "amplitude" and len(dev) < 5)
        return
    except Rejected as r:
        assert r.reason in {"time_out_of_range", "too_many_properties", "record_too_large"}
        return
    req = p.request([item], o)
    v = check(kind, o, req.body, req.url, req.headers)
    assert 200 <= v.status < 300 and not v.errors, (v.status, v.body)
    assert v.accepted


@pytest.mark.parametrize(("kind", "per_request"), [("segment", 2500), ("braze", 75), ("clevertap", 1000),
                                                  ("amplitude", 2000), ("mixpanel", 2000)])
def test_batches_pack_within_the_vendor_limits(kind: str, per_request: int) -> None:
    p, o = PRESETS[kind], opts(kind)
    events = [decoded(event_type="install" if i % 2 else "purchase", customer_user_id=f"user-{i:05d}")
              for i in range(per_request + 40)]
    items = [p.item(r, view_mod.build(r), o, p.mapping(o)) for r in events]
    batches: list[list[Any]] = [[]]
    for it in items:
        if batches[-1] and not p.fits(batches[-1], it, o):
            batches.append([])
        batches[-1].append(it)
    assert len(batches) >= 2 and sum(len(b) for b in batches) == len(items)
    accepted = 0
    for b in batches:
        req = p.request(b, o)
        v = check(kind, o, req.body, req.url, req.headers)
        assert v.status < 300 and not v.errors, v.body
        accepted += len(v.accepted)
    assert accepted == sum(sum(len(r) for r in it.records.values()) for it in items)
    # one more event than the first batch held is refused by the validator: the limit is real
    if kind in ("braze", "clevertap", "amplitude", "mixpanel"):
        over = p.request(batches[0] + [items[-1]] * (per_request + 1 - sum(i.cost for i in batches[0])), o)
        assert check(kind, o, over.body, over.url, over.headers).status >= 400


def test_attribution_travels_where_each_vendor_expects_it() -> None:
    rec = decoded(event_type="install", event_name="INSTALL", customer_user_id="user-42", media_source="Meta",
                  campaign="Spring", channel="paid", ad_set="AS1", ad="Ad9", first_touch=None)
    v = view_mod.build(rec)

    def body(kind: str, **o: Any) -> Any:
        p = PRESETS[kind]
        return json.loads(p.request([p.item(rec, v, opts(kind, **o), p.mapping(opts(kind, **o)))], opts(kind)).body)

    seg = body("segment")["batch"]
    assert [c["type"] for c in seg] == ["identify", "track"]
    assert seg[1]["context"]["campaign"] == {"source": "Meta", "medium": "paid", "name": "Spring", "content": "Ad9",
                                             "term": "AS1"}
    assert seg[0]["traits"]["install_partner"] == "Meta" and seg[1]["userId"] == "user-42"
    braze = body("braze")
    assert braze["attributes"] == [{"external_id": "user-42", "install_partner": "Meta", "install_campaign": "Spring",
                                    "install_adgroup": "AS1", "install_ad": "Ad9"}]
    amp = body("amplitude")["events"][0]
    assert amp["user_properties"]["$setOnce"]["install_campaign"] == "Spring" and amp["user_id"] == "user-42"
    mp = body("mixpanel")[0]["properties"]
    assert (mp["utm_source"], mp["utm_campaign"], mp["distinct_id"]) == ("Meta", "Spring", "user-42")
    ct = body("clevertap")["d"]
    assert ct[0]["type"] == "profile" and ct[0]["profileData"]["install_partner"] == "Meta"
    # the user's table overrides a default and drops another
    seg = body("segment", mapping={"campaign.name": "campaign_id|attribution.campaign", "campaign.term": ""})["batch"]
    assert seg[1]["context"]["campaign"] == {"source": "Meta", "medium": "paid", "name": "Spring", "content": "Ad9"}


def test_identity_falls_back_to_the_device_where_the_vendor_allows() -> None:
    rec = decoded(customer_user_id=None, idfv="6D0F0000-AAAA", user_key="idfv:6d0f0000-aaaa")
    v = view_mod.build(rec)
    got = {}
    for kind, p in PRESETS.items():
        o = opts(kind)
        try:
            got[kind] = json.loads(p.request([p.item(rec, v, o, p.mapping(o))], o).body)
        except Skip:
            got[kind] = None
    assert got["segment"]["batch"][-1]["anonymousId"] == "6D0F0000-AAAA"
    assert got["amplitude"]["events"][0]["device_id"] == "6D0F0000-AAAA"
    assert got["mixpanel"][0]["properties"]["distinct_id"] == "$device:6D0F0000-AAAA"
    assert got["braze"]["attributes"][0]["_update_existing_only"] is False  # creates the alias-only profile
    assert got["clevertap"] is None
    with pytest.raises(Skip):
        PRESETS["segment"].item(rec, v, opts("segment", anonymous=False), {})


def test_missing_credentials_and_bad_mapping_fail_at_start_naming_the_key() -> None:
    with pytest.raises(ConfigurationError, match=r"preset.write_key"):
        PRESETS["segment"].check(PresetSettings(), "seg")
    with pytest.raises(ConfigurationError, match=r"preset.region"):
        PRESETS["braze"].check(PresetSettings.model_validate({"api_key": "k"}), "b")
    with pytest.raises(ConfigurationError, match=r"preset.mapping: 'context.x'"):
        PRESETS["segment"].check(PresetSettings.model_validate({"write_key": "k", "mapping": {"context.x": "a"}}),
                                 "seg")
    with pytest.raises(ConfigurationError, match=r"preset.region: 'mars'"):
        PRESETS["clevertap"].check(
            PresetSettings.model_validate({"account_id": "a", "passcode": "p", "region": "mars"}), "ct")
    assert PRESETS["braze"].url(PresetSettings(region="EU-01")) == "https://rest.fra-01.braze.eu/users/track"
    assert PRESETS["clevertap"].url(PresetSettings(region="in1")) == "https://in1.api.clevertap.com/1/upload"
    assert PRESETS["amplitude"].url(PresetSettings(region="eu", api="batch")) == "https://api.eu.amplitude.com/batch"
    assert PRESETS["mixpanel"].url(PresetSettings.model_validate({"project_token": "t"})) == "https://api.mixpanel.com/import?strict=1"


def _req(kind: str, events: list[dict[str, Any]]) -> Any:
    p, o = PRESETS[kind], opts(kind)
    return p.request([p.item(r, view_mod.build(r), o, p.mapping(o)) for r in events], o)


def _users(n: int, **over: Any) -> list[dict[str, Any]]:
    return [decoded(customer_user_id=f"user-{uuid.uuid4().hex[:6]}", **over) for _ in range(n)]


def test_vendor_answers_map_to_per_event_outcomes() -> None:
    three = _users(2) + _users(1, event_name=REJECT)
    for kind in KINDS:
        p, req = PRESETS[kind], _req(kind, three)
        v = check(kind, opts(kind), req.body, req.url, req.headers)
        o = p.outcome(v.status, v.headers, json.dumps(v.body), req, 3, 0.0)
        if kind == "segment":  # Segment has no per-call refusals: 200 for the batch
            assert o.ok == {0, 1, 2} and not o.failed
        else:
            assert o.failed.keys() == {2}, (kind, o)
            assert o.ok == ({0, 1} if kind != "amplitude" else set())  # Amplitude ingested nothing: resend the rest
            assert o.retry == ({0, 1} if kind == "amplitude" else set())
        for status in (429, 500, 503):
            assert PRESETS[kind].outcome(status, {}, "", req, 3, 0.0).retry == {0, 1, 2}
        assert p.outcome(413, {}, "", req, 3, 0.0).split
        whole = p.outcome(401, {}, '{"error": "Invalid credentials"}', req, 3, 0.0)
        assert whole.failed == dict.fromkeys(range(3), "Invalid credentials")


def test_retry_hints() -> None:
    req = _req("braze", _users(1))
    assert PRESETS["braze"].outcome(429, {"X-RateLimit-Reset": "1012"}, "", req, 1, 1000.0).hint_s == 12
    assert PRESETS["segment"].outcome(429, {"Retry-After": "7"}, "", req, 1, 0.0).hint_s == 7
    assert PRESETS["amplitude"].outcome(429, {}, "", req, 1, 0.0).hint_s == 30
    assert PRESETS["mixpanel"].outcome(429, {}, "", req, 1, 0.0).hint_s is None


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(recs=st.lists(records(), min_size=1, max_size=12), cap=st.integers(1, 5))
def test_any_batch_packs_within_batch_size_and_is_accepted_whole(kind: str, recs: list[dict[str, Any]],
                                                                  cap: int) -> None:
    p, o = PRESETS[kind], opts(kind, batch_size=cap)
    items = []
    for r in recs:
        try:
            items.append(p.item(r, view_mod.build(r), o, p.mapping(o)))
        except (Skip, Rejected):
            continue
    batches: list[list[Any]] = []
    for it in items:
        if not batches or not p.fits(batches[-1], it, o):
            batches.append([])
        batches[-1].append(it)
    for b in batches:
        assert sum(i.cost for i in b) <= cap or len(b) == 1
        req = p.request(b, o)
        v = check(kind, o, req.body, req.url, req.headers)
        assert 200 <= v.status < 300 and not v.errors, v.body
        assert len(v.accepted) == sum(sum(len(x) for x in i.records.values()) for i in b)
