"""The compiled Avro writer (schemas/avro_writer.py) gives exactly fastavro's bytes, and falls back to fastavro for
anything it does not handle (so errors stay fastavro's)."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import avro

TOUCH = ("event_id", "event_type", "media_source", "campaign", "campaign_id", "ad_set", "ad_set_id", "ad", "ad_id",
         "channel", "click_id", "touch_type")


def reference(name: str, rec: dict[str, Any]) -> bytes:
    c = avro.codec(name)
    buf = io.BytesIO()
    buf.write(avro.MAGIC + c.fingerprint)
    fastavro.schemaless_writer(buf, c.schema, rec)
    return buf.getvalue()


texts = st.one_of(st.none(), st.text(max_size=80))
longs = st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1)
revenue = st.one_of(st.none(), st.decimals(min_value=Decimal("-1e18") + 1, max_value=Decimal("1e18") - 1,
                                           allow_nan=False, allow_infinity=False, places=9))


@st.composite
def touch(draw: Any) -> dict[str, Any] | None:
    if draw(st.booleans()):
        return None
    t: dict[str, Any] = {k: draw(texts) for k in TOUCH}
    t["event_id"] = draw(st.text(max_size=20))
    t["event_type"] = "install"
    t["event_time"] = draw(longs)
    t["touch_time"] = draw(st.one_of(st.none(), longs))
    t["is_organic"] = draw(st.one_of(st.none(), st.booleans()))
    return t


@st.composite
def enriched(draw: Any) -> dict[str, Any]:
    schema = avro.codec("enriched_event").schema
    rec: dict[str, Any] = {}
    for f in schema["fields"]:
        ft = f["type"]
        if f["name"] in ("first_touch", "last_touch"):
            rec[f["name"]] = draw(touch())
        elif f["name"] == "revenue":
            rec["revenue"] = draw(revenue)
        elif f["name"] == "raw":
            rec["raw"] = draw(st.one_of(st.none(), st.fixed_dictionaries(
                {"topic": st.text(max_size=10), "partition": st.integers(-(1 << 31), (1 << 31) - 1),
                 "offset": longs})))
        elif f["name"] == "is_organic":
            rec["is_organic"] = draw(st.one_of(st.none(), st.booleans()))
        elif isinstance(ft, list) and "long" in str(ft):
            rec[f["name"]] = draw(st.one_of(st.none(), longs))
        elif isinstance(ft, list):
            rec[f["name"]] = draw(texts)
        elif "long" in str(ft):
            rec[f["name"]] = draw(longs)
        elif ft == "int":
            rec[f["name"]] = draw(st.integers(-(1 << 31), (1 << 31) - 1))
        else:
            rec[f["name"]] = draw(st.text(max_size=80))
    return rec


@settings(max_examples=300)
@given(enriched())
def test_same_bytes_as_fastavro(rec: dict[str, Any]) -> None:
    assert avro.codec("enriched_event").body is not None
    assert avro.encode("enriched_event", rec) == reference("enriched_event", rec)


@given(enriched())
def test_canonical_event_same_bytes(rec: dict[str, Any]) -> None:
    canon = {f["name"]: rec.get(f["name"]) for f in avro.codec("canonical_event").schema["fields"]}
    assert avro.codec("canonical_event").body is not None
    assert avro.encode("canonical_event", canon) == reference("canonical_event", canon)


@given(enriched())
def test_fallbacks_give_the_same_bytes(rec: dict[str, Any]) -> None:
    rec["event_time"] = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)  # datetime: fastavro's job
    del rec["properties"]  # missing field with a default
    rec["version"] = True  # bool where an int belongs
    assert avro.encode("enriched_event", rec) == reference("enriched_event", rec)


def test_errors_stay_fastavros() -> None:
    rec = {f["name"]: None for f in avro.codec("canonical_event").schema["fields"]}
    with pytest.raises(Exception) as fast:
        avro.encode("canonical_event", rec)
    with pytest.raises(Exception) as ref:
        reference("canonical_event", rec)
    assert type(fast.value) is type(ref.value)
    rec2 = dict(rec, event_id="\ud800")  # lone surrogate
    with pytest.raises(Exception) as fast2:
        avro.encode("canonical_event", rec2)
    with pytest.raises(Exception) as ref2:
        reference("canonical_event", rec2)
    assert type(fast2.value) is type(ref2.value)


@given(enriched(), st.data())
def test_shared_touch_and_missing_keys_same_bytes(rec: dict[str, Any], data: st.DataObject) -> None:
    """The first touch object reused as the last (its bytes are reused), and records lacking keys that have defaults
    (read by the defaults-applying variant of the writer) still give fastavro's bytes."""
    rec["last_touch"] = rec["first_touch"]
    assert avro.encode("enriched_event", rec) == reference("enriched_event", rec)
    body = avro.codec("enriched_event").body
    assert body is not None and avro.MAGIC + avro.codec("enriched_event").fingerprint + body(rec) == reference(
        "enriched_event", rec)  # (no fallback to fastavro behind it)
    nullable = [f["name"] for f in avro.codec("enriched_event").schema["fields"] if "default" in f]
    for k in data.draw(st.lists(st.sampled_from(nullable), unique=True)):
        del rec[k]
    if rec.get("first_touch"):
        for k in data.draw(st.lists(st.sampled_from(sorted(rec["first_touch"])), unique=True)):
            del rec["first_touch"][k]
    assert avro.encode("enriched_event", rec) == reference("enriched_event", rec)


@st.composite
def raw_delivery(draw: Any) -> dict[str, Any]:
    names = st.text(max_size=30)
    return {"delivery_id": draw(st.text(max_size=32)), "source": draw(names), "mmp": draw(names),
            "app_id": draw(texts), "method": draw(st.sampled_from(["POST", "GET"])), "path": draw(names),
            "query_string": draw(st.text(max_size=200)),
            "headers": draw(st.dictionaries(names, st.text(max_size=100), max_size=80)),  # > 63: a 2-byte count
            "body": draw(st.binary(max_size=300)), "remote_addr": draw(names), "received_at": draw(longs),
            "user_key": draw(names),
            "header_bytes": draw(st.one_of(st.none(), st.dictionaries(names, st.binary(max_size=40), max_size=5)))}


@settings(max_examples=300)
@given(raw_delivery())
def test_raw_delivery_same_bytes(rec: dict[str, Any]) -> None:
    """The ingress's record (maps of strings and of bytes, empty or not) takes the compiled path, fastavro's bytes."""
    assert avro.codec("raw_delivery").body is not None
    assert avro.encode("raw_delivery", rec) == reference("raw_delivery", rec)


@given(raw_delivery())
def test_map_fallbacks_give_the_same_bytes(rec: dict[str, Any]) -> None:
    from collections import OrderedDict

    rec["headers"] = OrderedDict(rec["headers"])  # not a plain dict: fastavro's job
    if rec["header_bytes"]:
        rec["header_bytes"] = {k: bytearray(v) for k, v in rec["header_bytes"].items()}  # bytearray values too
    assert avro.encode("raw_delivery", rec) == reference("raw_delivery", rec)
