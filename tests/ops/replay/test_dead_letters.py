"""`attrib replay --dead-letters` after a fix: real broker, embedded ClickHouse, a real local HTTP receiver."""

from __future__ import annotations

import asyncio
import io
import time
import uuid

import pytest
from confluent_kafka import Producer

from ops.replay.dead import open_dead_letters, replay_dead_letters
from schemas import avro
from sinks.route.sender import Failure
from sinks.route.service import dead_letter
from streams.processor import Processor
from tests.sinks.helpers import running, wait_for, warehouse
from tests.sinks.route.events import enriched
from tests.sinks.route.receivers import Receiver
from tests.streams.conftest import generic_body, raw_delivery

pytestmark = pytest.mark.timeout(240)
BAD = {"event_types": {"level_up": "levelled"}}  # not an event type: the normalizer refuses (invalid_config)
FIXED = {"event_types": {"level_up": "custom"}}


def produce(s, topic: str, items: list[tuple[bytes | None, bytes]]) -> None:
    p = Producer({"bootstrap.servers": s.kafka.bootstrap_servers, "partitioner": "murmur2_random"})
    for key, value in items:
        p.produce(topic, value, key=key)
    assert p.flush(30) == 0


def process(s, raws: list[tuple[bytes | None, bytes, int, int]]) -> None:
    """Run the worker's processing over raw records (as `attrib worker` does), producing its outputs."""
    out: list[tuple[bytes | None, bytes]] = []
    dlq: list[tuple[bytes | None, bytes]] = []
    proc = Processor(s, {}, lambda topic, k, v: (out if topic == s.topics.events else dlq).append((k, v)))
    for key, value, p, off in raws:
        proc.handle(key, value, p, off)
    produce(s, s.topics.events, out)
    produce(s, s.topics.dead_letters, dlq)


def read_raw(s, n: int) -> list:
    from confluent_kafka import Consumer

    c = Consumer({"bootstrap.servers": s.kafka.bootstrap_servers, "group.id": uuid.uuid4().hex,
                  "auto.offset.reset": "earliest"})
    c.subscribe([s.topics.raw])
    got: list = []
    end = time.monotonic() + 60
    while len(got) < n and time.monotonic() < end:
        got += [m for m in c.consume(100, 0.5) if not m.error()]
    c.close()
    return got


async def test_dead_letters_rerun_after_a_fix_leave_the_open_set(make_settings) -> None:
    rx = await Receiver().start()
    try:
        await asyncio.to_thread(_scenario, make_settings, rx)
    finally:
        await rx.stop()


def _scenario(make_settings, rx: Receiver) -> None:
    crm = {"name": "crm", "url": rx.url + "/crm", "max_attempts": 2, "backoff_initial_s": 0.05}
    bad = make_settings(topics={"partitions": 2}, sources=[{"name": "gen", "mmp": "generic", "options": BAD}],
                        route={"destinations": [crm]})
    fixed = bad.model_copy(update={"sources": [bad.sources[0].model_copy(update={"options": FIXED})]})
    client = warehouse(bad)
    now = int(time.time() * 1000)
    raws = [raw_delivery("gen", "generic", generic_body(f"{u}-{n}", n, now + i, u), f"cuid:{u}", now)
            for i, (u, n) in enumerate([("u1", "install"), ("u1", "level_up"), ("u2", "install"), ("u2", "level_up")])]
    raws.append(raw_delivery("gen", "generic", b"{not json", "cuid:u3", now))
    values = [avro.encode("raw_delivery", r) for r in raws]
    produce(bad, bad.topics.raw, [(r["user_key"].encode(), v) for r, v in zip(raws, values, strict=True)])
    process(bad, [(r["user_key"].encode(), v, 0, i) for i, (r, v) in enumerate(zip(raws, values, strict=True))])
    # an outbound delivery that failed while the CRM was down
    ev = enriched()
    dl = dead_letter(avro.encode("enriched_event", ev), ev, "crm", Failure("http_503", {"status": 503}), now)
    produce(bad, bad.topics.dead_letters, [(ev["user_key"].encode(), avro.encode("dead_letter", dl))])

    with running(bad):
        wait_for(lambda: len(open_dead_letters(client, bad.clickhouse.database)) == 4, "dead letters in the warehouse")
    assert sorted(d["reason"] for d in open_dead_letters(client, bad.clickhouse.database)) == [
        "http_503", "invalid_config", "invalid_config", "invalid_json"]

    out = io.StringIO()
    dry = replay_dead_letters(fixed, reason="invalid_config", dry_run=True, out=out, client=client)
    assert dry.resolved == {"normalize/invalid_config": 2}
    assert len(open_dead_letters(client, bad.clickhouse.database)) == 4
    # without the fix nothing changes
    still = replay_dead_letters(bad, reason="invalid_config", out=out, client=client)
    assert still.still_failing == {"normalize/invalid_config -> invalid_config": 2} and not still.resolved

    r = replay_dead_letters(fixed, reason="invalid_config", out=out, client=client)
    assert r.resolved == {"normalize/invalid_config": 2} and not r.still_failing
    assert sorted(d["reason"] for d in open_dead_letters(client, bad.clickhouse.database)) == ["http_503",
                                                                                              "invalid_json"]

    r = replay_dead_letters(fixed, out=out, client=client)
    assert r.resolved == {"route/http_503": 1}
    assert r.still_failing == {"normalize/invalid_json -> invalid_json": 1}
    assert [d["reason"] for d in open_dead_letters(client, bad.clickhouse.database)] == ["invalid_json"]
    assert [h.headers["Idempotency-Key"] for h in rx.hits] == [ev["event_id"]]

    # the fixed deliveries went back to the raw topic unchanged; the worker now turns them into events
    assert sorted(m.value() for m in read_raw(bad, 7)) == sorted([*values, values[1], values[3]])
    events: list = []
    proc = Processor(fixed, {}, lambda topic, k, v: events.append(avro.decode(v)[1]) if topic == fixed.topics.events
                     else None)
    for i, m in enumerate(read_raw(bad, 7)):
        proc.handle(m.key(), m.value(), 0, i)
    assert sorted((e["event_id"], e["event_type"]) for e in events) == [
        ("u1-install", "install"), ("u1-level_up", "custom"), ("u2-install", "install"), ("u2-level_up", "custom")]
    client.close()
