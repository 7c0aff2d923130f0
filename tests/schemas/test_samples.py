"""Every shared MMP sample normalizes to its `expected` canonical fields (one data-driven comparison)."""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from attrib.settings import SourceSettings
from schemas import avro
from schemas.fields import get_path
from schemas.normalize import normalize
from tests.schemas.conftest import SAMPLES, sample_mmp, wire

RECEIVED = 1_730_000_000_000
# The samples' vocabulary → the canonical schema's.
EVENT_TYPE = {"revenue": "ad_revenue"}
SIMPLE = ("event_name", "media_source", "campaign", "ad_set", "ad", "is_organic", "currency", "platform", "app_id")


def raw_delivery(s: dict[str, Any], **extra: Any) -> dict[str, Any]:
    body, qs, ct = wire(s)
    return {"delivery_id": "d1", "source": "src", "mmp": sample_mmp(s), "app_id": None, "method": s["method"],
            "path": "/hooks/src", "query_string": qs, "headers": {"content-type": ct} if ct else {}, "body": body,
            "remote_addr": "127.0.0.1", "received_at": RECEIVED, "user_key": "", **extra}


def source_for(s: dict[str, Any], **kw: Any) -> SourceSettings:
    return SourceSettings(name="src", mmp=sample_mmp(s), **kw)


def iso_ms(ts: str) -> int:
    return int(datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(UTC).timestamp() * 1000)


def test_sample_matches_expected(sample: dict[str, Any]) -> None:
    [ev] = normalize(source_for(sample), raw_delivery(sample))
    exp = sample["expected"]
    got = {k: ev[k] for k in SIMPLE}
    want = {k: exp[k] for k in SIMPLE}
    assert got == want
    assert ev["event_type"] == EVENT_TYPE.get(exp["event_type_canonical"], exp["event_type_canonical"])
    assert ev["event_time"] == iso_ms(exp["timestamp_utc"])
    assert ev["revenue"] == (None if exp["revenue"] is None else Decimal(str(exp["revenue"])))
    keys = exp["user_key_candidates"]
    assert ev["user_key"] == keys[0] if keys else ev["user_key"].startswith("fp:")
    if exp["event_id"] is not None:
        assert ev["event_id"] == exp["event_id"]
    else:
        assert ev["event_id"].startswith("fp:") and len(ev["event_id"]) == 35
    assert ev["received_at"] == RECEIVED and ev["mmp"] == sample_mmp(sample) and ev["source"] == "src"


def test_sample_avro_round_trip(sample: dict[str, Any]) -> None:
    raw = raw_delivery(sample, raw_ref={"topic": "attrib.raw", "partition": 3, "offset": 42})
    [ev] = normalize(source_for(sample), raw)
    name, back = avro.decode(avro.encode("canonical_event", ev), expect="canonical_event")
    assert name == "canonical_event"
    for k in ("event_time", "received_at", "touch_time"):
        if back[k] is not None:
            back[k] = int(back[k].timestamp() * 1000)
    assert back == ev
    assert back["raw"] == {"topic": "attrib.raw", "partition": 3, "offset": 42}


def test_properties_keep_every_other_field(sample: dict[str, Any]) -> None:
    [ev] = normalize(source_for(sample), raw_delivery(sample))
    props = json.loads(ev["properties"])
    assert isinstance(props, dict)
    body = sample["body"] if isinstance(sample["body"], dict) else sample["query"]
    # every top-level field is either a canonical column's source or still in properties
    columns = {str(v) for v in ev.values() if v is not None}
    for k, v in body.items():
        if k in ("secret",):
            assert k not in props  # URL secrets never reach properties
            continue
        if k not in props and not isinstance(v, dict):
            assert v in (None, "", "null") or str(v) in columns or str(v).lower() in columns or k.endswith(
                ("_at", "_on", "time", "timestamp", "ts", "_ms", "revenue", "revenue_float", "currency", "is_organic",
                 "attributed", "campaign_type", "campaign_id")), k


def test_configured_event_types_override_defaults() -> None:
    s = next(x for x in SAMPLES if x["sample_id"].startswith("appsflyer_02"))
    src = source_for(s, options={"event_types": {"AF_PURCHASE": "custom"}})
    [ev] = normalize(src, raw_delivery(s))
    assert ev["event_type"] == "custom"


def test_retry_pair_gets_one_event_id() -> None:
    by_id = {s["sample_id"]: s for s in SAMPLES}
    a, b = by_id["linkrunner_02_signup_organic_unicode"], by_id["linkrunner_03_signup_organic_retry_duplicate"]
    [ea] = normalize(source_for(a), raw_delivery(a))
    [eb] = normalize(source_for(b), raw_delivery(b))
    assert ea["event_id"] == eb["event_id"]


def test_distinct_samples_get_distinct_event_ids() -> None:
    ids = [normalize(source_for(s), raw_delivery(s))[0]["event_id"] for s in SAMPLES
           if s["sample_id"] != "linkrunner_03_signup_organic_retry_duplicate"]
    assert len(ids) == len(set(ids))


def _bump(v: Any) -> Any:
    """A different but still valid value of the same kind."""
    if isinstance(v, int):
        return v + 1
    if v.isdigit():
        return str(int(v) + 1)
    if re.match(r"^\d{4}-", v):
        return str(int(v[:4]) + 1) + v[4:]
    return v + "x"


def test_each_natural_dedupe_field_changes_the_fingerprint(sample: dict[str, Any]) -> None:
    """Each of the sample's `derived.dedupe_key_fields` (first present alternative of a|b; sha1(x) = x) identifies the
    event: changing it changes the fingerprint event_id."""
    [base] = normalize(source_for(sample), raw_delivery(sample))
    if not base["event_id"].startswith("fp:"):
        return
    body = sample["body"] if isinstance(sample["body"], dict) else sample["query"]
    for written in sample["derived"]["dedupe_key_fields"]:
        spec = re.sub(r"^sha1\((.*)\)$", r"\1", written)
        first, *alts = spec.split("|")
        prefix = first.rsplit(".", 1)[0] + "." if "." in first else ""
        paths = [first] + [prefix + a for a in alts]
        path = next((p for p in paths if get_path(body, p) not in (None, "")), None)
        if path is None:
            continue
        changed = copy.deepcopy(body)
        *parents, leaf = path.split(".")
        d = changed
        for p in parents:
            d = d[p]
        d[leaf] = _bump(d[leaf])
        s2 = {**sample, "body": changed} if isinstance(sample["body"], dict) else {
            **sample, "raw_query_string": urlencode(changed)}
        [other] = normalize(source_for(s2), raw_delivery(s2))
        assert other["event_id"] != base["event_id"], path
