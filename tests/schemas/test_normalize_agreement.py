"""The compiled production normalizer (schemas/normalize/__init__.py) against the reference one
(schemas/normalize/reference.py, the oracle): the same events — or the same error, reason and field — for every
sample and for generated payloads (samples mutated, arbitrary objects, query strings, bodies, source options)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attrib.settings import SourceSettings
from schemas.errors import NormalizeError
from schemas.fields import time_ms
from schemas.normalize import MMPS, normalize
from schemas.normalize.fast.plan import TIME
from schemas.normalize.reference import normalize as reference
from tests.schemas.conftest import SAMPLES, sample_mmp
from tests.schemas.test_normalize_properties import FIELD_NAMES, _paths, _raw, json_values, scalars
from tests.schemas.test_samples import raw_delivery, source_for


def _outcome(fn: Any, source: SourceSettings, raw: dict[str, Any]) -> Any:
    try:
        return fn(source, raw)
    except NormalizeError as exc:
        return ("error", exc.reason, exc.field, str(exc))


def _agree(source: SourceSettings, raw: dict[str, Any]) -> Any:
    fast, ref = _outcome(normalize, source, raw), _outcome(reference, source, raw)
    assert fast == ref
    return fast


def test_every_sample_agrees() -> None:
    events = 0
    for s in SAMPLES:
        got = _agree(source_for(s), {**raw_delivery(s), "raw_ref": {"topic": "t", "partition": 1, "offset": 7}})
        assert isinstance(got, list), (s["sample_id"], got)
        events += len(got)
    assert events >= len(SAMPLES)


def test_every_sample_agrees_with_options() -> None:
    opts = {"event_types": {"Purchase": "purchase", "af_app_opened": "session"}, "query_map": {"e": "event_name"},
            "secret_params": ["auth"]}
    for s in SAMPLES:
        _agree(source_for(s, options=opts), {**raw_delivery(s), "query_string": "auth=x&e=%E6%98%A5&a+b=c%20d"})


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), idx=st.integers(0, len(SAMPLES) - 1))
def test_mutated_samples_agree(data: st.DataObject, idx: int) -> None:
    s = SAMPLES[idx]
    body = copy.deepcopy(s["body"] if isinstance(s["body"], dict) else s["query"])
    for path in data.draw(st.lists(st.sampled_from(_paths(body)), max_size=4)):
        *parents, leaf = path
        d = body
        for p in parents:
            d = d.get(p) if isinstance(d, dict) else None
        if isinstance(d, dict):
            if data.draw(st.booleans()):
                d.pop(leaf, None)
            else:
                d[leaf] = data.draw(json_values)
    _agree(SourceSettings(name="s", mmp=sample_mmp(s)), _raw(json.dumps(body).encode()))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(mmp=st.sampled_from(MMPS), obj=st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=8),
                                                       json_values, max_size=12),
       batch=st.booleans(), ascii_only=st.booleans(), qs=st.sampled_from(["", "k=v&token=s", "x=%ff&_query=1"]))
def test_arbitrary_objects_agree(mmp: str, obj: dict[str, Any], batch: bool, ascii_only: bool, qs: str) -> None:
    body = json.dumps([obj, obj] if batch else obj, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    _agree(SourceSettings(name="s", mmp=mmp), _raw(body, qs))


@settings(max_examples=200)
@given(mmp=st.sampled_from(MMPS),
       params=st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=8),
                              st.text(max_size=20) | scalars.map(str), max_size=12),
       form=st.booleans())
def test_query_strings_and_forms_agree(mmp: str, params: dict[str, str], form: bool) -> None:
    qs = urlencode(params, errors="surrogatepass")
    raw = _raw(qs.encode(), "", "application/x-www-form-urlencoded") if form else _raw(b"", qs, None)
    _agree(SourceSettings(name="s", mmp=mmp), raw)


@settings(max_examples=200)
@given(mmp=st.sampled_from(MMPS), body=st.binary(max_size=40) | st.sampled_from(
    [b'{"a":NaN}', b'\xef\xbb\xbf{"event_name":"x"}', b'{"event_name":"\\ud800","timestamp":1719230400}',
     b'{"event_name":"x","timestamp":1719230400,"big":123456789012345678901234567890}', b"[" * 50 + b"]" * 50,
     b'{"event_name":"x","timestamp":1719230400,"v":1e400,"w":0.1000000000000000055511151231257827}']),
       qs=st.text(max_size=40))
def test_arbitrary_bytes_agree(mmp: str, body: bytes, qs: str) -> None:
    _agree(SourceSettings(name="s", mmp=mmp), _raw(body, qs, None))


@settings(max_examples=100)
@given(idx=st.integers(0, len(SAMPLES) - 1),
       options=st.dictionaries(st.sampled_from(["event_types", "query_map", "secret_params", "url_secret_param"]),
                               json_values, max_size=3))
def test_arbitrary_source_options_agree(idx: int, options: dict[str, Any]) -> None:
    s = SAMPLES[idx]
    _agree(source_for(s, options=options), raw_delivery(s))


def _time_outcome(fn: Any, v: Any) -> Any:
    try:
        return fn(v)
    except ValueError as exc:
        return ("error", str(exc))


@settings(max_examples=500)
@given(when=st.datetimes(min_value=datetime(1999, 12, 31), max_value=datetime(2100, 1, 2)),
       fmt=st.sampled_from(["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%dT%H:%M:%SZ",
                            "%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%d %H:%M", "%s"]),
       cut=st.integers(0, 8), noise=st.sampled_from(["", " ", "z", "+02:00", "0", ".", "x"]))
def test_times_agree(when: datetime, fmt: str, cut: int, noise: str) -> None:
    """The plan's time reader (integer arithmetic for the common shapes) against schemas.fields.time_ms."""
    text = when.replace(tzinfo=UTC).strftime(fmt) if fmt != "%s" else str(int(when.replace(tzinfo=UTC).timestamp()))
    for v in (text, text[:len(text) - cut] + noise, noise + text, int(text) if text.isdigit() else text):
        assert _time_outcome(TIME, v) == _time_outcome(time_ms, v)


@given(v=scalars | st.from_regex(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d{1,9})?Z?", fullmatch=True))
def test_time_of_arbitrary_values_agrees(v: Any) -> None:
    assert _time_outcome(TIME, v) == _time_outcome(time_ms, v)
