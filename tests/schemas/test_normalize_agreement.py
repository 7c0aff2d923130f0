"""The compiled production normalizer (schemas/normalize/__init__.py) against the reference one
(schemas/normalize/reference.py, the oracle): the same events — or the same error, reason and field — for every
sample and for generated payloads (samples mutated, arbitrary objects, query strings, bodies, source options)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attrib.settings import SourceSettings
from schemas.errors import NormalizeError
from schemas.fields import ABSENT, currency, decimal, json_in_string, query_dict, text, time_ms
from schemas.normalize import MMPS, normalize
from schemas.normalize.fast.keys import first_key
from schemas.normalize.fast.parse import Query, unquote_replace
from schemas.normalize.fast.parse import query_dict as fast_query_dict
from schemas.normalize.fast.plan import ABSENT_CASES, CUR, DEC, TIME
from schemas.normalize.fast.plan import json_in_string as fast_json_in_string
from schemas.normalize.reference import normalize as reference
from schemas.templates import query_to_body
from schemas.user_key import candidates
from tests.schemas.conftest import SAMPLES, sample_mmp
from tests.schemas.test_normalize_properties import FIELD_NAMES, _paths, _raw, json_values, scalars
from tests.schemas.test_samples import raw_delivery, source_for

# Every field a user-key rule reads (schemas/user_key.py), nested ones by their parent.
_KEY_FIELDS = {"appsflyer_id", "customer_user_id", "idfv", "idfa", "advertising_id", "oaid", "android_id", "adid",
               "gps_adid", "user_id", "hardware_id", "event", "user_data", "name", "os", "google_advertising_id",
               "identity", "aifa", "custom_user_id", "kochava_device_id", "analytics_installation_id",
               "developer_device_id", "platform", "gaid", "device", "user"}


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


_ISO_CHARS = st.sampled_from(list("0123456789 +-_:TW.,Zx٣"))


@settings(max_examples=500)
@given(c=st.lists(_ISO_CHARS, min_size=14, max_size=14), sep=st.sampled_from([" ", "T", "t", "_"]),
       tail=st.sampled_from(["", ".5", "Z", ".123Z", ".1234567", "+00:00", ".", ".x"]))
def test_iso_shaped_times_agree(c: list[str], sep: str, tail: str) -> None:
    """Every field of the ISO shape the plan reads itself, one character at a time off the digits."""
    v = f"{''.join(c[:4])}-{c[4]}{c[5]}-{c[6]}{c[7]}{sep}{c[8]}{c[9]}:{c[10]}{c[11]}:{c[12]}{c[13]}{tail}"
    assert _time_outcome(TIME, v) == _time_outcome(time_ms, v)


@given(mmp=st.sampled_from([*MMPS, "branch_legacy", "unknown"]),
       obj=st.dictionaries(st.sampled_from(sorted(_KEY_FIELDS)) | st.text(max_size=6), json_values, max_size=8))
def test_user_key_first_candidate_agrees(mmp: str, obj: dict[str, Any]) -> None:
    """fast/keys.py reads only up to the first id; the reference builds every candidate and keeps the head."""
    ref = candidates(mmp, obj)
    assert first_key(mmp)(obj) == (ref[0] if ref else None)


def _json_outcome(fn: Any, v: str) -> Any:
    try:
        return fn(v)
    except RecursionError:  # the reference's own (normalize turns it into invalid_json "nested too deeply")
        return "nested too deeply"


@given(v=json_values.map(json.dumps) | st.text(max_size=20).map(lambda s: "{" + s)
       | st.sampled_from(['{"a": NaN}', '["\\ud800"]', '{"a": 1e400, "a": 2}', "[" * 3000, '{"\ud800": 1}']))
def test_json_in_strings_agree(v: str) -> None:
    assert _json_outcome(fast_json_in_string, v) == _json_outcome(json_in_string, v)


@settings(max_examples=500)
@given(s=st.text(st.sampled_from(list("%%%0123456789aAfFgz\\x+ =&春\ud800")), max_size=24))
def test_unquote_agrees(s: str) -> None:
    assert unquote_replace(s) == unquote(s, errors="replace")


# Values a hostile or broken sender puts where a field belongs, as raw JSON text: lone surrogates, invalid UTF-8,
# numbers beyond 64 bits and beyond float, nesting deeper than msgspec goes, times with non-ASCII digits or out of
# range, numbers as odd strings.
_HOSTILE = [b'"\\ud800"', b'"x\\udfffy"', b'"\xff\xfe"', b'"\xc3("', b"123456789012345678901234567890",
            b"-123456789012345678901", b"1e400", b"-0.0", b"0.1000000000000000055511151231257827", b"1E+2",
            b"[" * 2000 + b"]" * 2000, b'{"a":' * 300 + b"1" + b"}" * 300, b'"\xd9\xa3"', b'"2026-12-06T24:00:00Z"',
            b'"2026-12-06T23:60:00Z"', b'"2026-12-06T23:59:60Z"', b'"2026-02-30 10:00:00"', b'"2026-12-06T10:00:00.Z"',
            b'"2026-12-06T10:00:00.1234567891Z"', b'"\xef\xbc\x92026-12-06 10:00:00"', b'"24."', b'"+5"',
            b'"99999999999999999.5"', b'"1,5"', b'"nil"', b'"NIL"', b'"usd"', b'"US1"', b'" usd "', b"true", b"null"]


def _hostile_bodies(body: dict[str, Any]) -> Any:
    """The sample's body with one top-level field at a time replaced by each hostile value, and with a field repeated
    (a duplicate key: the last one wins in both decoders)."""
    keys = list(body)
    for k in keys:
        for v in _HOSTILE:
            text = json.dumps({**body, k: "\u0000HOSTILE"}, ensure_ascii=False).encode()
            hostile = text.replace(b'"\\u0000HOSTILE"', v)
            assert b"HOSTILE" not in hostile
            yield hostile
        dup = json.dumps(body, ensure_ascii=False)[:-1].encode() + b", " + json.dumps(k).encode() + b': "dup"}'
        yield dup


def test_hostile_values_in_every_field_agree() -> None:
    """Every sample, every top-level field, every hostile value: the same events or the same error."""
    checked = 0
    for s in SAMPLES:
        if not isinstance(s["body"], dict):
            continue
        src = source_for(s)
        for body in _hostile_bodies(s["body"]):
            _agree(src, {**raw_delivery(s), "body": body, "headers": {"content-type": "application/json"}})
            checked += 1
    assert checked > 1000


def _value_outcome(fn: Any, v: Any) -> Any:
    try:
        got = fn(v)
    except ValueError as exc:
        return ("error", str(exc))
    return (type(got).__name__, str(got))  # str: a Decimal's sign and exponent count, not only its value


_NUMBERS = (st.decimals(allow_nan=True, allow_infinity=True) | st.integers() | st.floats()
            | st.from_regex(r"[+-]?[0-9]{0,20}(\.[0-9]{0,12})?([eE][+-]?[0-9]{1,3})?", fullmatch=True)
            | st.from_regex(r"\s?-?\d{1,18}([.,]\d{0,10})?\s?", fullmatch=True))


@settings(max_examples=500)
@given(v=_NUMBERS | scalars)
def test_decimals_agree(v: Any) -> None:
    """The plan's revenue reader (Decimal, int and plain decimal strings read directly) against F.decimal."""
    assert _value_outcome(DEC, v) == _value_outcome(decimal, v)


@settings(max_examples=300)
@given(v=st.text(st.sampled_from(list("usdUSDnilNIL1 ÄéSß")), max_size=5) | scalars)
def test_currencies_agree(v: Any) -> None:
    assert _value_outcome(CUR, v) == _value_outcome(currency, v)


@settings(max_examples=500)
@given(v=st.from_regex(r"\d{4}-[01]\d-[0-3]\d[ Tt][0-2]\d:[0-6]\d:[0-6]\d(\.\d{0,10})?[Z z]{0,2}", fullmatch=True))
def test_times_with_every_clock_and_tail_agree(v: str) -> None:
    """Hours to 29, minutes and seconds to 69, fractions of 0-10 digits, Z / space / doubled tails, non-ASCII
    digits (hypothesis draws them for \\d): the cached day / minute / second / fraction reads against F.time_ms."""
    assert _time_outcome(TIME, v) == _time_outcome(time_ms, v)


@settings(max_examples=1000)
@given(parts=st.lists(st.sampled_from(["%", "%2", "%26", "%3D", "%3d", "%E6", "%98%A5", "%C3", "%ff", "%zz", "&", "=",
                                       "+", "a", "B", "2", "6", "D", "e", ".", "春", "\ud800", "%00", " ", ";"]),
                      max_size=16))
def test_query_dicts_agree(parts: list[str]) -> None:
    """The whole-string unquote (no escaped separators) and the per-part one against parse_qsl."""
    s = "".join(parts)
    assert list(fast_query_dict(s).items()) == list(query_dict(s).items())  # order too: first wins in the body


@pytest.mark.parametrize("s", [
    "", "&", "&&", "=", "==", "a", "a=", "=b", "a=b", "a=b&", "&a=b", "a=b&&c=d", "a=b=c", "a=b=c&d=e", "a&b=c",
    "a=b&c", "a=1&a=2", "a=1&b=2&a=3", "a=b;c=d", "a;b=c&d=e;f", "a+b=c+d", "a%20b=c%2", "a=%", "a=b%", "%=%&%",
    "a%26b=c&d=e%3De", "a=%3d&b=%26", "k=%E6%98%A5&k2=%C3", "k=%ff&x=\ud800", "a=b&A=c", "a.b=1&a.b=2",
])
def test_query_dict_edge_cases_agree(s: str) -> None:
    """Each part with no "=", one, or two; empty parts; repeated names (first wins); ";" (no separator since
    Python 3.10); "+" and "%" escapes, malformed and at the end; escaped separators — against parse_qsl."""
    assert list(fast_query_dict(s).items()) == list(query_dict(s).items())


def test_null_word_spellings_are_exactly_the_ascii_case_variants() -> None:
    """The generated readers test ``v in ABSENT_CASES`` for ``F.text``'s ``len(v) <= 9 and v.lower() in ABSENT``:
    equal only if no character outside ASCII lower-cases into a null word's letters — checked over all of Unicode."""
    letters = set("".join(ABSENT))
    for cp in range(0x110000):
        c = chr(cp)
        low = c.lower()
        assert c.isascii() or not (low and set(low) <= letters), f"U+{cp:04X} lower-cases to {low!r}"
    for w in ABSENT:
        assert w in ABSENT_CASES and w.upper() in ABSENT_CASES
    assert all(len(v) <= 9 and v.lower() in ABSENT for v in ABSENT_CASES)


@given(v=st.text(st.sampled_from(list("nulNULoOeEdDfFiI() \tx\u212a\u0130")), max_size=10) | st.text(max_size=10))
def test_null_words_read_as_text_does(v: str) -> None:
    s = v.strip()
    assert (None if s in ABSENT_CASES else s) == text(v)


_PARAM_NAMES = st.sampled_from(["token", "TOKEN", "Sig", "auth", "a.b", "a", "a.c", "e", "event_name", "x.y.z", "id",
                                "ts", "name", "campaign"]) | st.text(max_size=5)


@settings(max_examples=500)
@given(mmp=st.sampled_from(["branch", "adjust", ""]),
       params=st.lists(st.tuples(_PARAM_NAMES, st.text(max_size=6)), max_size=8),
       options=st.sampled_from([{}, {"secret_params": ["auth"]}, {"query_map": {"e": "event_name", "a": "x.y"}},
                                {"url_secret_param": "Auth", "query_map": {"campaign": "a.b"}},
                                {"query_map": {"e": "", "a": "a.", "ts": "id", "x.y.z": "x"}}]))
def test_query_bodies_agree(mmp: str, params: list[tuple[str, str]], options: dict[str, Any]) -> None:
    """The query → body mapping (the parameters as they are when nothing is secret, mapped or dotted) against
    schemas.templates.query_to_body, repeated and colliding names included."""
    qs = urlencode(params)
    assert Query(mmp, options).body(qs) == query_to_body(mmp, qs, options)
    shared = _SHARED.setdefault((mmp, repr(options)), Query(mmp, options))  # names resolved by earlier examples
    assert shared.body(qs) == query_to_body(mmp, qs, options)


_SHARED: dict[tuple[str, str], Query] = {}


def test_query_names_past_the_resolved_cache_bound_agree() -> None:
    """Names from input are resolved once each into a bounded cache: past the bound, still resolved, the same."""
    options = {"query_map": {"e": "x.y"}, "secret_params": ["auth"]}
    q = Query("branch", options)
    for i in range(0, 6000, 50):
        qs = urlencode([(f"n{j}", "v") for j in range(i, i + 50)] + [("e", "1"), ("AUTH", "s"), ("n.1", "2")])
        assert q.body(qs) == query_to_body("branch", qs, options)
    assert len(q.where) <= 4096


@settings(max_examples=200)
@given(mmp=st.sampled_from(MMPS), qs=st.text(st.sampled_from(list("ab=&%+.\ud800\udfff春éx0")), max_size=30),
       form=st.binary(max_size=30))
def test_unclean_queries_and_forms_agree(mmp: str, qs: str, form: bytes) -> None:
    """Lone surrogates in the query string itself and invalid UTF-8 in form bodies: repaired alike."""
    _agree(SourceSettings(name="s", mmp=mmp), _raw(b"", "event_name=x&timestamp=1719230400&" + qs, None))
    _agree(SourceSettings(name="s", mmp=mmp), _raw(b"event_name=x&event=y&" + form, "",
                                                  "application/x-www-form-urlencoded"))


_ID_VALUES = (st.sampled_from(["", " ", "null", "NULL", "0000-00", "-", "00000000-0000-0000-0000-000000000001", "AbC",
                               "x\ud800", "é", " id ", "0"]) | scalars)
_NAMES_TIMES = {"event_name": "install", "event_type": "install", "event": "install", "event_time": 1719230400,
                "installed_at": 1719230400, "attributed_on": 1719230400, "created_at": 1719230400,
                "event_utc_timestamp": 1719230400, "activity_kind": "install"}


@settings(max_examples=400)
@given(mmp=st.sampled_from(["appsflyer", "adjust", "singular", "kochava", "linkrunner"]),
       ids=st.dictionaries(st.sampled_from(sorted(_KEY_FIELDS | {"appsflyer_id", "kochava_device_id", "aifa"})),
                           _ID_VALUES, max_size=5))
def test_inlined_user_keys_agree(mmp: str, ids: dict[str, Any]) -> None:
    """The flat MMPs' user-key rules inlined in the generated functions: every id present, absent, null-worded,
    all zeros, not a string, or not UTF-8, in every order of precedence."""
    body = json.dumps({**_NAMES_TIMES, **ids}).encode("utf-8", "surrogatepass")
    _agree(SourceSettings(name="s", mmp=mmp), _raw(body))


def test_times_past_the_minute_cache_bound_agree() -> None:
    """More distinct minutes (and a day per 1,440 of them) than the minute cache keeps, twice over (the cache cleared
    and refilled between): each read through the caches agrees with F.time_ms, hit or miss."""
    start = int(datetime(2024, 2, 28, 23, 0, tzinfo=UTC).timestamp())
    for rnd in range(2):
        for i in range(0, 6000 * 60, 60):
            t = datetime.fromtimestamp(start + i + rnd * 7, UTC)
            v = t.strftime("%Y-%m-%dT%H:%M:%S") + (".5Z" if i % 3 else "")
            assert _time_outcome(TIME, v) == _time_outcome(time_ms, v), v


def test_events_of_two_sources_of_one_mmp_keep_their_own_source_and_schema_order() -> None:
    """The generated code copies a per-source event template: two sources of one MMP, interleaved, each get their
    own ``source``; the event's keys are the schema's, in its order; an event changed by its consumer changes
    nothing the next delivery gets."""
    from schemas import canonical

    s = next(x for x in SAMPLES if sample_mmp(x) == "appsflyer")
    one = source_for(s)
    two = SourceSettings(name="other", mmp=one.mmp, app_id=one.app_id, options=one.options)
    raw = raw_delivery(s)
    for _ in range(2):
        a, b = _agree(one, raw), _agree(two, raw)
        assert [e["source"] for e in a + b] == [one.name] * len(a) + ["other"] * len(b)
        assert all(list(e) == list(canonical.FIELDS) for e in a + b)
        for e in a + b:
            e.update(mmp="changed", source="changed", campaign="changed")
