"""Property tests: any input gives valid events or the typed error; fingerprints depend on content, not layout."""

from __future__ import annotations

import copy
import json
import random
import re
from typing import Any
from urllib.parse import urlencode

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attrib.settings import SourceSettings
from schemas import avro
from schemas.errors import INTERNAL, NormalizeError
from schemas.fields import time_ms
from schemas.normalize import MODULES, normalize
from tests.schemas.conftest import SAMPLES, sample_mmp
from tests.schemas.test_samples import raw_delivery, source_for

MMPS = sorted(MODULES)
scalars = (st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30)
           | st.sampled_from(["", "null", "0", "1", "true", "FALSE", "usd", "2024-06-20 09:15:02.118",
                              "2024-10-21T08:10:58Z", "1719230400", "1720425600123",
                              "00000000-0000-0000-0000-000000000000", "4.99", "1,5", "1e400", "-0", "\ud800", "春"]))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=10)
FIELD_NAMES = sorted({k for s in SAMPLES for k in (s["body"] if isinstance(s["body"], dict) else s["query"])}
                     | {"event_id", "event_name", "timestamp", "attribution", "device", "user"})


def _raw(body: bytes, qs: str = "", ct: str | None = "application/json") -> dict[str, Any]:
    return {"delivery_id": "d", "source": "s", "mmp": "x", "app_id": None, "method": "POST", "path": "/",
            "query_string": qs, "headers": {"content-type": ct} if ct else {}, "body": body, "remote_addr": "",
            "received_at": 1_730_000_000_000, "user_key": ""}


def _check(mmp: str, raw: dict[str, Any]) -> None:
    try:
        events = normalize(SourceSettings(name="s", mmp=mmp), raw)
    except NormalizeError as exc:
        assert exc.reason != INTERNAL, exc
        return
    for ev in events:
        avro.decode(avro.encode("canonical_event", ev))  # valid for the schema
        assert isinstance(json.loads(ev["properties"]), dict)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(mmp=st.sampled_from(MMPS), obj=st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=8),
                                                       json_values, max_size=12))
def test_arbitrary_objects_give_events_or_typed_error(mmp: str, obj: dict[str, Any]) -> None:
    _check(mmp, _raw(json.dumps(obj).encode()))


@settings(max_examples=150)
@given(mmp=st.sampled_from(MMPS), value=json_values)
def test_arbitrary_json_values(mmp: str, value: Any) -> None:
    _check(mmp, _raw(json.dumps(value).encode()))


@settings(max_examples=150)
@given(mmp=st.sampled_from(MMPS), body=st.binary(max_size=40), qs=st.text(max_size=40))
def test_arbitrary_bytes_and_query(mmp: str, body: bytes, qs: str) -> None:
    _check(mmp, _raw(body, qs, None))


@settings(max_examples=200)
@given(mmp=st.sampled_from(MMPS),
       params=st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=8),
                              st.text(max_size=20) | scalars.map(str), max_size=12))
def test_arbitrary_query_strings(mmp: str, params: dict[str, str]) -> None:
    _check(mmp, _raw(b"", urlencode(params, errors="surrogatepass"), None))  # invalid UTF-8 on the wire too


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), idx=st.integers(0, len(SAMPLES) - 1))
def test_mutated_samples(data: st.DataObject, idx: int) -> None:
    """Real payloads with fields dropped or replaced by arbitrary values."""
    s = SAMPLES[idx]
    body = copy.deepcopy(s["body"] if isinstance(s["body"], dict) else s["query"])
    for path in data.draw(st.lists(st.sampled_from(_paths(body)), max_size=4)):
        *parents, leaf = path
        d = body
        for p in parents:
            d = d.get(p) if isinstance(d, dict) else None
        if not isinstance(d, dict):
            continue
        if data.draw(st.booleans()):
            d.pop(leaf, None)
        else:
            d[leaf] = data.draw(json_values)
    _check(sample_mmp(s), _raw(json.dumps(body).encode()))


def _paths(d: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for k, v in d.items():
        out.append((*prefix, k))
        if isinstance(v, dict):
            out += _paths(v, (*prefix, k))
    return out


@settings(max_examples=60)
@given(idx=st.integers(0, len(SAMPLES) - 1), seed=st.integers(0, 2**32), indent=st.sampled_from([None, 0, 2, "\t"]))
def test_event_id_stable_across_key_order_and_whitespace(idx: int, seed: int, indent: Any) -> None:
    s = SAMPLES[idx]
    if not isinstance(s["body"], dict):
        return
    items = list(s["body"].items())
    random.Random(seed).shuffle(items)
    shuffled = json.dumps(dict(items), indent=indent, ensure_ascii=bool(seed % 2)).encode()
    [a] = normalize(source_for(s), raw_delivery(s))
    [b] = normalize(source_for(s), {**raw_delivery(s), "body": shuffled})
    assert a["event_id"] == b["event_id"] and a["user_key"] == b["user_key"]


def test_query_parameter_order_does_not_change_event_id() -> None:
    for s in SAMPLES:
        if not s["raw_query_string"] if "raw_query_string" in s else True:
            continue
        parts = s["raw_query_string"].split("&")
        [a] = normalize(source_for(s), raw_delivery(s))
        [b] = normalize(source_for(s), {**raw_delivery(s), "query_string": "&".join(reversed(parts))})
        assert a["event_id"] == b["event_id"]


def _time_or_none(v: Any) -> int | None:
    try:
        return time_ms(v)
    except ValueError:
        return None


def test_a_different_event_gets_a_different_id() -> None:
    """Changing any identifying field (time, name, device) of a sample changes the fingerprint event_id."""
    checked = 0
    for s in SAMPLES:
        [base] = normalize(source_for(s), raw_delivery(s))
        if not base["event_id"].startswith("fp:") or not isinstance(s["body"], dict):
            continue
        body = s["body"]
        changed = dict(body)
        for k, t in body.items():  # every field carrying the event time (install_time may equal event_time)
            if _time_or_none(t) == base["event_time"]:
                changed[k] = re.sub(r"^\d{4}", lambda m: str(int(m[0]) + 1), t) if isinstance(t, str) else t + 1
        [other] = normalize(source_for(s), {**raw_delivery(s), "body": json.dumps(changed).encode()})
        assert other["event_time"] != base["event_time"] and other["event_id"] != base["event_id"], s["sample_id"]
        checked += 1
    assert checked >= 5


def test_batch_body_gives_one_event_per_object() -> None:
    s = next(x for x in SAMPLES if x["sample_id"].startswith("appsflyer_01"))
    second = {**s["body"], "event_time": "2024-06-19 14:49:00.000", "appsflyer_id": "1718808123456-999"}
    events = normalize(source_for(s), {**raw_delivery(s), "body": json.dumps([s["body"], second]).encode()})
    assert [e["user_key"] for e in events] == ["appsflyer_id:1718808123456-4821937465012345678",
                                               "appsflyer_id:1718808123456-999"]


def test_errors_name_the_field() -> None:
    s = next(x for x in SAMPLES if x["sample_id"].startswith("appsflyer_02"))
    cases = {"event_time": ("2024-13-45 99:00:00", "invalid_field"), "event_revenue": ("4,99.0x", "invalid_field"),
             "event_revenue_currency": ("US Dollar", "invalid_field"), "event_name": ("", "missing_field")}
    for key, (value, reason) in cases.items():
        body = {**s["body"], key: value}
        try:
            normalize(source_for(s), {**raw_delivery(s), "body": json.dumps(body).encode()})
        except NormalizeError as exc:
            assert (exc.reason, exc.field) == (reason, key)
        else:
            raise AssertionError(f"{key}={value!r} was accepted")


def test_bad_bodies_have_reasons() -> None:
    src = SourceSettings(name="s", mmp="generic")
    for body, reason in ((b"", "empty_body"), (b"{not json", "invalid_json"), (b"[1]", "not_an_object"),
                         (b"{}", "empty_body"), (b"\xff\xfe", "invalid_json"), (b"[]", "not_an_object")):
        try:
            normalize(src, _raw(body))
        except NormalizeError as exc:
            assert exc.reason == reason, body
        else:
            raise AssertionError(body)


@settings(max_examples=100)
@given(idx=st.integers(0, len(SAMPLES) - 1),
       options=st.dictionaries(st.sampled_from(["event_types", "query_map", "secret_params", "url_secret_param"]),
                               json_values, max_size=3))
def test_arbitrary_source_options(idx: int, options: dict[str, Any]) -> None:
    """A malformed options table is a typed error (invalid_config) or ignored — never a crash."""
    s = SAMPLES[idx]
    try:
        normalize(source_for(s, options=options), raw_delivery(s))
    except NormalizeError as exc:
        assert exc.reason == "invalid_config", exc
