"""The fast path's byte splicing (pure): Kafka single-object bodies behind our container header are exactly the
records the producer wrote, for any field values; appended Kafka coordinates read back as record fields."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import fastavro
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import avro
from sinks import landing
from tests.sinks.fixtures import DAY0, event, touch

text = st.text(max_size=40)
opt = st.none() | text
times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                     timezones=st.just(UTC)).map(lambda t: t.replace(microsecond=t.microsecond // 1000 * 1000))
money = st.none() | st.decimals(min_value=Decimal("-1e12"), max_value=Decimal("1e12"), places=9, allow_nan=False)


@st.composite
def enriched(draw: st.DrawFn) -> dict:
    ft = draw(st.none() | st.builds(touch, text, times, text, text, text))
    rec = event(draw(text), draw(text), draw(text), draw(st.sampled_from(["install", "purchase", "open"])),
                draw(times), version=draw(st.integers(1, 2**40)), ft=ft, platform=draw(opt), revenue=draw(money),
                currency=draw(opt))
    rec["properties"] = draw(text)
    rec["app_id"] = draw(opt)
    rec["raw"] = draw(st.none() | st.fixed_dictionaries({"topic": text, "partition": st.integers(0, 2**31 - 1),
                                                        "offset": st.integers(0, 2**62)}))
    return rec


def _read(block: bytes) -> list[Any]:
    return list(fastavro.reader(io.BytesIO(block)))


@settings(max_examples=60, deadline=None)
@given(st.lists(enriched(), min_size=1, max_size=8))
def test_container_of_kafka_bodies_reads_back_as_the_produced_records(recs):
    blobs = [avro.encode("enriched_event", r) for r in recs]
    w = landing.writers()[blobs[0][2:10]]
    assert w.table == "events_avro_in" and not w.kafka_fields
    got = _read(landing.container(w, [b[10:] for b in blobs]))
    assert got == [avro.decode(b)[1] for b in blobs]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(text, st.integers(0, 2**31 - 1), st.integers(0, 2**62)), min_size=1, max_size=8))
def test_appended_kafka_coordinates_are_trailing_record_fields(coords):
    raw = {"delivery_id": "d", "source": "s", "mmp": "branch", "app_id": None, "method": "POST", "path": "/h",
           "query_string": "", "headers": {"a": "b"}, "body": b"\x00\xff", "remote_addr": "::1",
           "received_at": DAY0, "user_key": "idfv:1"}
    blob = avro.encode("raw_delivery", raw)
    w = landing.writers()[blob[2:10]]
    assert w.kafka_fields
    got = _read(landing.container(w, [blob[10:] + landing.kafka_suffix(*c) for c in coords]))
    assert [(g["_kafka_topic"], g["_kafka_partition"], g["_kafka_offset"]) for g in got] == coords
    assert all(g["body"] == raw["body"] and g["headers"] == raw["headers"] for g in got)


@given(st.integers(-(2**63), 2**63 - 1))
def test_zigzag_matches_avro_long_encoding(n):
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, {"type": "long"}, n)
    assert landing.zigzag(n) == buf.getvalue()
