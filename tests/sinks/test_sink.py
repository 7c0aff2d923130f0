"""The sink against a real broker and the embedded engine: duplicates, retries, corrections, outages, bad bytes."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from schemas import avro
from schemas.dead_letter import dead_letter_id
from sinks import rollups, rows
from sinks.service import Batch, Sink
from tests.sinks.fixtures import produce, traffic, truth_rollups
from tests.sinks.helpers import caught_up, running, scalar, wait_for, warehouse
from tests.support import free_port


def _sink_settings(make_settings, **sink):
    return make_settings(sink={"group_id": f"g-{uuid.uuid4().hex[:8]}", "rollup_refresh_s": 0.2,
                               "retry_initial_s": 0.1, "retry_max_s": 0.5, "batch_seconds": 0.3, **sink},
                         topics={"partitions": 3})


def _rollups(client, db):
    got = {}
    for r in client.query(f"SELECT day, app_id, media_source, campaign, ad_set, platform, installs, reinstalls, "
                          f"signups, purchases, revenue, users, events FROM {db}.daily_rollups").result_rows:
        got[tuple(r[:6])] = {"installs": r[6], "reinstalls": r[7], "signups": r[8], "purchases": r[9],
                             "revenue": {k: v for k, v in r[10].items()}, "users": r[11], "events": r[12]}
    return got


def _expected(final):
    return {k: {**g, "revenue": dict(g["revenue"]), "users": len(g["users"])} for k, g in truth_rollups(final).items()}


def test_duplicates_corrections_and_replays_do_not_inflate_events_or_rollups(make_settings):
    s = _sink_settings(make_settings)
    db = s.clickhouse.database
    client = warehouse(s)
    tr = traffic(users=240)
    dups = len(tr.records) - len({(r["event_id"], r["version"]) for r in tr.records})
    corrections = sum(1 for r in tr.records if r["version"] == 2)
    assert dups > 10 and corrections > 5  # the data exercises what the test claims
    produce(s.kafka.bootstrap_servers, s.topics.events, tr.records)
    with running(s) as sink:
        wait_for(caught_up(sink, len(tr.records)), "the sink to load every record")

    assert scalar(client, f"SELECT count() FROM {db}.events FINAL") == len(tr.final)
    # corrections replaced the pending rows: every event reads back at its latest version and status
    got = dict(((e, (v, st)) for e, v, st in client.query(
        f"SELECT event_id, version, attribution_status FROM {db}.events FINAL").result_rows))
    assert got == {e: (r["version"], r["attribution_status"]) for e, r in tr.final.items()}
    still_pending = sum(1 for r in tr.final.values() if r["attribution_status"] == "pending_timeout")
    assert 0 < still_pending < sum(1 for r in tr.records if r["attribution_status"] == "pending_timeout")
    assert scalar(client, f"SELECT countIf(attribution_status = 'pending_timeout') FROM {db}.events FINAL") \
        == still_pending
    expected = _expected(tr.final)
    assert _rollups(client, db) == expected

    # replay the whole topic with a fresh consumer group (a crashed sink re-reading uncommitted batches)
    s2 = s.model_copy(update={"sink": s.sink.model_copy(update={"group_id": s.sink.group_id + "-replay"})})
    with running(s2) as sink:
        wait_for(caught_up(sink, len(tr.records)), "the replay")
    assert scalar(client, f"SELECT count() FROM {db}.events FINAL") == len(tr.final)
    assert _rollups(client, db) == expected
    client.close()


def test_retried_batch_is_dropped_by_its_deduplication_token(make_settings):
    s = _sink_settings(make_settings)
    db = s.clickhouse.database
    client = warehouse(s)
    tr = traffic(users=40, seed=3)
    produce(s.kafka.bootstrap_servers, s.topics.events, tr.records)
    consumer = Consumer({"bootstrap.servers": s.kafka.bootstrap_servers, "group.id": "peek",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([s.topics.events])
    msgs: list[Any] = []  # confluent_kafka Messages (positions typed optional: error events share the type)

    def more() -> bool:
        msgs.extend(m for m in consumer.consume(500, 0.5) if not m.error())
        return len(msgs) >= len(tr.records)

    wait_for(more, "the records")
    consumer.close()
    batch = Batch()
    for m in msgs:
        name, rec = avro.decode(m.value())
        batch.add("events", rows.to_row(name, rec, m.topic(), m.partition(), m.offset()), m)
        batch.days.add(rec["event_time"].date())
    sink = Sink(s)
    sink._insert(batch, "events")
    raw_rows = scalar(client, f"SELECT count() FROM {db}.events")
    sink._insert(batch, "events")  # the retry after a lost acknowledgement
    assert scalar(client, f"SELECT count() FROM {db}.events") == raw_rows
    # the fast path (Avro bytes through the landing table and its view) honours its token the same way
    fast = Batch()
    for m in msgs:
        fast.add_blob(m.value()[2:10], m.value()[10:], m)
    fp = next(iter(fast.blobs))
    every = f"SELECT {', '.join(rows.EVENT_COLUMNS)} FROM {db}.events FINAL ORDER BY event_id"
    slow_loaded = client.query(every).result_rows
    client.command(f"TRUNCATE TABLE {db}.events")
    sink._insert_fast(fast, fp)
    fast_rows = scalar(client, f"SELECT count() FROM {db}.events")
    assert fast_rows == raw_rows
    sink._insert_fast(fast, fp)
    assert scalar(client, f"SELECT count() FROM {db}.events") == fast_rows
    assert client.query(every).result_rows == slow_loaded  # both paths load identical rows
    rollups.refresh(client, db, batch.days)
    once = _rollups(client, db)
    rollups.refresh(client, db, batch.days)  # rebuilding twice changes nothing
    assert _rollups(client, db) == once == _expected(tr.final)
    # without a token the same rows land twice physically, and FINAL still reads each event once
    client.insert(f"{db}.events", batch.rows["events"], column_names=rows.EVENT_COLUMNS,
                  settings={"async_insert": 0, "insert_deduplicate": 0})
    assert scalar(client, f"SELECT count() FROM {db}.events FINAL") == len(tr.final)
    rollups.refresh(client, db, batch.days)
    assert _rollups(client, db) == once
    assert sink._client is not None
    sink._client.close()
    client.close()


def test_a_record_the_engine_refuses_becomes_a_dead_letter_and_the_rest_loads(make_settings):
    s = _sink_settings(make_settings)
    db = s.clickhouse.database
    client = warehouse(s)
    tr = traffic(users=20, seed=9)
    good = avro.encode("enriched_event", tr.records[0])
    truncated = good[:40]  # valid magic and fingerprint, body cut short: only the engine notices
    produce(s.kafka.bootstrap_servers, s.topics.events, tr.records)
    p = Producer({"bootstrap.servers": s.kafka.bootstrap_servers})
    where = []
    p.produce(s.topics.events, value=truncated, on_delivery=lambda err, m: where.append((m.partition(), m.offset())))
    p.flush(10)
    with running(s) as sink:
        wait_for(caught_up(sink, len(tr.records) + 1), "every record")
    assert scalar(client, f"SELECT count() FROM {db}.events FINAL") == len(tr.final)
    # the dead letter names the bad record's own Kafka position (kept per body while its block was in flight)
    (partition, offset), = where
    assert client.query(f"SELECT dead_letter_id, reason, raw_topic, raw_partition, raw_offset, length(payload) "
                        f"FROM {db}.dead_letters FINAL").result_rows \
        == [(dead_letter_id("sink", f"{s.topics.events}/{partition}/{offset}"), "undecodable", s.topics.events,
             partition, offset, len(truncated))]
    assert sink.metrics.undecodable == 1


def test_a_row_the_warehouse_cannot_store_becomes_a_dead_letter_and_the_rest_loads(make_settings):
    # a valid record whose revenue overflows the table's Decimal(18, 6): the engine refuses the fast-path block
    # (DECIMAL_OVERFLOW, a poison code), the client then refuses the row — the data's fault, not an outage
    s = _sink_settings(make_settings)
    db = s.clickhouse.database
    client = warehouse(s)
    tr = traffic(users=20, seed=5)
    rich = {**tr.records[0], "event_id": "too-rich", "event_type": "purchase", "revenue": Decimal(10**14),
            "currency": "USD"}
    produce(s.kafka.bootstrap_servers, s.topics.events, [*tr.records, rich])
    with running(s) as sink:
        wait_for(caught_up(sink, len(tr.records) + 1), "every record")
        assert sink.metrics.insert_failures == 0 and sink.metrics.rejected_rows == 1
    assert scalar(client, f"SELECT count() FROM {db}.events FINAL") == len(tr.final)
    assert scalar(client, f"SELECT count() FROM {db}.events WHERE event_id = 'too-rich'") == 0
    # one dead letter, anchored on a digest of the refused row, with the row as its payload
    _, decoded = avro.decode(avro.encode("enriched_event", rich))
    row = repr(rows.event_row(decoded))
    want = dead_letter_id("sink", f"events/sha256:{hashlib.sha256(row.encode()).hexdigest()}")
    got = client.query(f"SELECT dead_letter_id, reason, payload FROM {db}.dead_letters FINAL").result_rows
    assert [(i, r) for i, r, _ in got] == [(want, "insert_rejected")] and "too-rich" in got[0][2]
    client.close()


def test_batch_remembers_each_bodys_position_across_partitions_and_schemas():
    class Msg:  # the three accessors Batch reads from a confluent_kafka Message
        def __init__(self, topic: str, partition: int, offset: int) -> None:
            self._c = (topic, partition, offset)

        def topic(self) -> str:
            return self._c[0]

        def partition(self) -> int:
            return self._c[1]

        def offset(self) -> int:
            return self._c[2]

    arrivals = [(b"A", ("ev", 0, 5)), (b"B", ("raw", 2, 7)), (b"A", ("ev", 1, 3)), (b"A", ("ev", 0, 6)),
                (b"B", ("raw", 2, 8))]
    batch = Batch()
    for fp, coords in arrivals:
        batch.add_blob(fp, f"{coords}".encode(), Msg(*coords))
    for fp in (b"A", b"B"):
        assert list(batch.coordinates(fp)) == [c for f, c in arrivals if f == fp]
        assert batch.blobs[fp] == [f"{c}".encode() for f, c in arrivals if f == fp]
    assert {k: v[:2] for k, v in batch.offsets.items()} == {("ev", 0): [5, 6], ("ev", 1): [3, 3], ("raw", 2): [7, 8]}
    assert batch.count == 5 and batch.size == sum(len(f"{c}") for _, c in arrivals)


def test_a_batch_closes_at_batch_bytes_before_its_row_or_time_limit(make_settings):
    # rows and seconds set out of reach: only the byte bound can close these batches
    s = _sink_settings(make_settings, batch_rows=10**6, batch_seconds=3600.0, batch_bytes=1)
    client = warehouse(s)
    tr = traffic(users=10, seed=4)
    produce(s.kafka.bootstrap_servers, s.topics.events, tr.records)
    with running(s) as sink:
        wait_for(caught_up(sink, len(tr.records)), "every record")
    assert scalar(client, f"SELECT count() FROM {s.clickhouse.database}.events FINAL") == len(tr.final)


def _committed(s, group):
    c = Consumer({"bootstrap.servers": s.kafka.bootstrap_servers, "group.id": group})
    parts = [TopicPartition(s.topics.events, p) for p in range(s.topics.partitions)]
    got = c.committed(parts, timeout=10)
    ends = [c.get_watermark_offsets(p, timeout=10)[1] for p in parts]
    c.close()
    return [p.offset for p in got], ends


def test_clickhouse_unavailable_mid_stream_then_restored_loses_nothing(make_settings):
    s = _sink_settings(make_settings)
    db = s.clickhouse.database
    client = warehouse(s)
    tr = traffic(users=160, seed=11)
    half = len(tr.records) // 2
    with running(s) as sink:
        produce(s.kafka.bootstrap_servers, s.topics.events, tr.records[:half])
        wait_for(caught_up(sink, half), "the first half")
        client.command(f"DETACH TABLE {db}.events")  # the table is gone for the sink: every insert fails
        try:
            produce(s.kafka.bootstrap_servers, s.topics.events, tr.records[half:])
            wait_for(lambda: sink.metrics.insert_failures >= 2, "the sink to hit the outage")
            assert sink.metrics.clickhouse_down_since is not None
            assert "attrib_sink_clickhouse_down_seconds" in sink.metrics.prometheus()
            committed, ends = _committed(s, s.sink.group_id)
            assert sum(max(c, 0) for c in committed) < sum(ends)  # nothing committed past the failed batch
        finally:
            client.command(f"ATTACH TABLE {db}.events")
        wait_for(caught_up(sink, len(tr.records)), "the backlog after the restore")
        assert sink.metrics.clickhouse_down_since is None
    assert scalar(client, f"SELECT count() FROM {db}.events FINAL") == len(tr.final)
    committed, ends = _committed(s, s.sink.group_id)
    assert committed == ends
    assert _rollups(client, db) == _expected(tr.final)
    client.close()


def test_dead_letters_alerts_raw_and_undecodable_bytes_land_in_their_tables(make_settings):
    s = _sink_settings(make_settings)
    db = s.clickhouse.database
    client = warehouse(s)
    now = datetime(2024, 6, 21, 10, 0, tzinfo=UTC)
    dl = {"dead_letter_id": "dl-1", "stage": "normalize", "reason": "missing_field", "detail": "no event_time",
          "field": "event_time", "source": "af-prod", "mmp": "appsflyer", "delivery_id": "d1",
          "raw": {"topic": s.topics.raw, "partition": 1, "offset": 7}, "payload": b"\x00{body}", "failed_at": now}
    alert = {"alert_id": "a-1", "state": "firing", "direction": "drop", "severity": "critical", "scope": "source",
             "app_id": "com.example.shop", "media_source": "Facebook Ads", "event_type": "install",
             "observed": 3.0, "expected": 41.5, "bucket_start": now, "bucket_end": now, "created_at": now,
             "resolved_at": None, "p_value": 1e-6, "detail": "installs dropped"}
    raw = {"delivery_id": "d1", "source": "af-prod", "mmp": "appsflyer", "app_id": None, "method": "POST",
           "path": "/hooks/af-prod", "query_string": "", "headers": {"content-type": "application/json"},
           "body": b'{"event_name":"install"}', "remote_addr": "10.0.0.1", "received_at": datetime.now(UTC),
           "user_key": "idfv:1"}
    expired = {**raw, "delivery_id": "d0", "received_at": datetime.now(UTC) - timedelta(days=8)}
    produce(s.kafka.bootstrap_servers, s.topics.dead_letters, [dl, dl], "dead_letter")
    produce(s.kafka.bootstrap_servers, s.topics.alerts_drop, [alert], "alert")
    produce(s.kafka.bootstrap_servers, s.topics.alerts_drop, [{**alert, "state": "resolved", "resolved_at": now}],
            "alert")
    produce(s.kafka.bootstrap_servers, s.topics.raw, [raw, expired], "raw_delivery")
    p = Producer({"bootstrap.servers": s.kafka.bootstrap_servers})
    p.produce(s.topics.events, value=b"not avro at all")
    p.flush(10)
    with running(s) as sink:
        wait_for(caught_up(sink, 7), "every record")
    assert client.query(f"SELECT stage, reason, field, payload, raw_offset FROM {db}.dead_letters FINAL "
                        "WHERE stage = 'normalize'").result_rows == [("normalize", "missing_field", "event_time",
                                                                      "\x00{body}", 7)]
    bad = client.query(f"SELECT reason, payload, raw_topic FROM {db}.dead_letters FINAL WHERE stage = 'sink'"
                       ).result_rows
    assert bad == [("undecodable", "not avro at all", s.topics.events)]
    assert client.query(f"SELECT state FROM {db}.alerts FINAL ORDER BY state").result_rows == [("firing",),
                                                                                              ("resolved",)]
    # the archive keeps sink.raw_ttl_days (7) days: the 8-day-old delivery is dropped by the table's TTL
    assert client.query(f"SELECT delivery_id, headers, body FROM {db}.raw_deliveries").result_rows == [
        ("d1", {"content-type": "application/json"}, '{"event_name":"install"}')]
    client.close()


def test_unreachable_server_keeps_the_backlog_in_kafka_and_says_so(make_settings):
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there: a ClickHouse server that is down
    s = _sink_settings(make_settings, retry_initial_s=0.05, retry_max_s=0.2)
    warehouse(s).close()  # topics exist
    s = s.model_copy(update={"clickhouse": s.clickhouse.model_copy(update={"url": dead})})
    tr = traffic(users=10, seed=2)
    produce(s.kafka.bootstrap_servers, s.topics.events, tr.records)
    with running(s) as sink:
        wait_for(lambda: sink.metrics.insert_failures >= 3, "repeated failed attempts")
        assert sink.metrics.clickhouse_down_since is not None and sink.metrics.inserted == {}
        assert "Connection refused" in sink.metrics.last_error or "connect" in sink.metrics.last_error.lower()
    committed, _ = _committed(s, s.sink.group_id)
    assert all(c < 0 for c in committed)  # nothing committed: the records wait in Kafka for the next start
