"""Replay against the real broker, the real worker (reference run) and embedded ClickHouse."""

from __future__ import annotations

import io
import time
import uuid
from typing import Any

import pytest
from confluent_kafka import Producer

from ops.replay.ranged import RangeReplay, ReplayError, dry_run
from ops.replay.spec import RangeSpec, Target
from schemas import avro
from tests.sinks.helpers import running, scalar, wait_for, warehouse
from tests.streams.conftest import Reader, generic_body, raw_delivery

pytestmark = pytest.mark.timeout(300)
HOUR = 3_600_000


def produce_at(s, raws: list[dict[str, Any]]) -> None:
    """As the ingress does it, with the Kafka timestamp = received_at (the replay selects on it)."""
    p = Producer({"bootstrap.servers": s.kafka.bootstrap_servers, "partitioner": "murmur2_random"})
    for r in raws:
        p.produce(s.topics.raw, avro.encode("raw_delivery", r), key=r["user_key"].encode(),
                  timestamp=r["received_at"])
    assert p.flush(30) == 0


def batch(now: int, tag: str, users: int) -> list[dict[str, Any]]:
    out = []
    for i in range(users):
        cust = f"{tag}-{i}-{uuid.uuid4().hex[:6]}"
        for j, name in enumerate(("install", "purchase", "purchase")):
            t = now + i * 1000 + j * 10
            body = generic_body(f"{cust}-{j}", name, t, cust, source=None if i % 3 == 0 else "meta",
                                revenue="1.25" if name == "purchase" else None)
            out.append(raw_delivery("gen", "generic", body, f"cuid:{cust}", t))
    # a poison delivery in each batch: dead-lettered by the worker, and by the replay too
    out.append(raw_delivery("gen", "generic", b"{not json", f"cuid:{tag}-poison", now + 5))
    return out


def columns(client, db: str) -> str:
    names = [r[0] for r in client.query(
        f"SELECT name FROM system.columns WHERE database = '{db}' AND table = 'events' ORDER BY position").result_rows]
    return ", ".join(n for n in names if n not in ("emitted_at", "loaded_at"))  # when, not what


def rows(client, db: str, where: str = "1") -> list[tuple]:
    return client.query(f"SELECT {columns(client, db)} FROM {db}.events FINAL WHERE {where} ORDER BY event_id"
                        ).result_rows


def test_time_range_into_fresh_database_reproduces_rows_and_resumes(worker_settings, workers, tmp_path) -> None:
    s = worker_settings(partitions=3)
    t0 = int(time.time() * 1000)
    a, b, c = batch(t0 - 3 * HOUR, "a", 4), batch(t0 - 2 * HOUR, "b", 5), batch(t0 - HOUR, "c", 4)
    produce_at(s, a + b + c)
    events_expected = 3 * (4 + 5 + 4)

    # the reference: the live worker and the sink
    w = workers(s)
    reader = Reader(s, s.topics.events)
    reader.read_until(lambda r: len({e["event_id"] for e in r}) >= events_expected, "live events", proc=w)
    reader.close()
    client = warehouse(s)
    with running(s):
        wait_for(lambda: scalar(client, f"SELECT count() FROM {s.clickhouse.database}.events FINAL")
                 >= events_expected, "live rows")
    w.stop()
    reference = rows(client, s.clickhouse.database, "startsWith(event_id, 'b-')")
    assert len(reference) == 15

    spec = RangeSpec(t0 - int(2.5 * HOUR), t0 - int(1.5 * HOUR), Target("clickhouse", f"r_{uuid.uuid4().hex[:8]}"))
    out = io.StringIO()
    counted = dry_run(s, spec, out)
    assert counted["deliveries"] == {"gen": 16} and counted["events"] == {"install": 5, "purchase": 10}
    assert counted["would_dead_letter"] == {"invalid_json": 1}

    # interrupted after 6 records, then resumed by running the same replay again
    first = RangeReplay(s, spec, max_records=6, out=out)
    assert first.run() == 3
    assert first.path.exists()
    again = RangeReplay(s, spec, out=out)
    assert again.run() == 0
    assert "16/16 records" in out.getvalue() and "ETA" in out.getvalue()
    db = spec.target.name
    got = rows(client, db)
    for x, y in zip(got, reference, strict=True):
        assert x == y, [(i, p, q) for i, (p, q) in enumerate(zip(x, y, strict=True)) if p != q]
    assert got == reference  # same rows, and nothing from outside the range
    assert scalar(client, f"SELECT count() FROM {db}.events") == 15  # no duplicate from the interruption
    assert scalar(client, f"SELECT groupArray(reason) FROM {db}.dead_letters FINAL") == ["invalid_json"]
    # the replay never wrote back into the live topics
    assert scalar(client, f"SELECT count() FROM {s.clickhouse.database}.events") >= events_expected

    # the target must be fresh; a finished replay run again is a no-op
    with pytest.raises(ReplayError):
        RangeReplay(s, RangeSpec(spec.since_ms, spec.until_ms, spec.target, source="gen"), out=out).run()
    assert RangeReplay(s, spec, out=out).run() == 0
    assert scalar(client, f"SELECT count() FROM {db}.events") == 15
    client.close()


def test_into_topic_with_event_type_filter_and_live(worker_settings, tmp_path) -> None:
    s = worker_settings(partitions=2)
    t0 = int(time.time() * 1000)
    b = batch(t0 - 2 * HOUR, "b", 3)
    produce_at(s, batch(t0 - 3 * HOUR, "a", 2) + b)
    spec = RangeSpec(t0 - int(2.5 * HOUR), t0 - int(1.5 * HOUR), Target("topic", f"t-{uuid.uuid4().hex[:8]}.replayed"),
                     event_type="purchase")
    out = io.StringIO()
    assert RangeReplay(s, spec, out=out).run() == 0
    reader = Reader(s, spec.target.name)
    got = reader.read_until(lambda r: len(r) >= 6, "replayed purchases")
    got = reader.drain(idle_s=1.5)
    reader.close()
    assert sorted(e["event_id"] for e in got) == sorted(
        f"{r['user_key'][5:]}-{j}" for r in b[::3] if "poison" not in r["user_key"] for j in (1, 2))
    assert {e["event_type"] for e in got} == {"purchase"}
    assert all(e["raw"]["topic"] == s.topics.raw for e in got)

    # live: the selected deliveries appended again to the raw topic, unchanged
    live = RangeSpec(t0 - int(2.5 * HOUR), t0 - int(1.5 * HOUR), Target("live"), event_type="install")
    before = Reader(s, s.topics.raw)
    n0 = len(before.read_until(lambda r: len(r) >= len(b) + 7, "raw before"))
    assert RangeReplay(s, live, out=out).run() == 0
    after = before.read_until(lambda r: len(r) >= n0 + 3, "re-appended installs")
    after = before.drain(idle_s=1.5)
    before.close()
    appended = after[n0:]
    assert len(appended) == 3 and {r["delivery_id"] for r in appended} <= {r["delivery_id"] for r in b}


def test_replay_crashing_between_flush_and_checkpoint_resumes_to_the_same_rows(worker_settings, monkeypatch) -> None:
    """A crash after outputs were flushed but before the checkpoint was saved: the resumed replay re-emits those
    outputs (at least once) and the warehouse's FINAL makes the result identical to an uninterrupted replay."""
    from ops.replay import checkpoint

    s = worker_settings(partitions=2)
    s = s.model_copy(update={"replay": s.replay.model_copy(update={"batch": 4})})
    t0 = int(time.time() * 1000)
    produce_at(s, batch(t0 - 2 * HOUR, "b", 6))
    since, until = t0 - int(2.5 * HOUR), t0 - int(1.5 * HOUR)
    out = io.StringIO()
    clean = RangeSpec(since, until, Target("clickhouse", f"clean_{uuid.uuid4().hex[:8]}"))
    assert RangeReplay(s, clean, out=out).run() == 0

    crashy = RangeSpec(since, until, Target("clickhouse", f"crash_{uuid.uuid4().hex[:8]}"))
    real_save, saves = checkpoint.Checkpoint.save, []

    def save(self, offsets, table, **meta):
        saves.append(sum(offsets.values()))
        if len(saves) == 3:
            raise KeyboardInterrupt("simulated crash after the outputs were flushed")
        return real_save(self, offsets, table, **meta)

    monkeypatch.setattr(checkpoint.Checkpoint, "save", save)
    with pytest.raises(KeyboardInterrupt):
        RangeReplay(s, crashy, out=out).run()
    monkeypatch.setattr(checkpoint.Checkpoint, "save", real_save)
    assert RangeReplay(s, crashy, out=out).run() == 0

    client = warehouse(s)
    assert rows(client, crashy.target.name) == rows(client, clean.target.name)
    assert len(rows(client, clean.target.name)) == 18
    client.close()
    # the records between the last checkpoint and the crash were processed twice: their events went out twice
    twice, once = (emitted(s, RangeReplay(s, spec, out=out).events_out) for spec in (crashy, clean))
    assert twice > once


def emitted(s, topic: str) -> int:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": s.kafka.bootstrap_servers, "group.id": uuid.uuid4().hex})
    try:
        return sum(c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(s.topics.partitions))
    finally:
        c.close()
