"""With a schema registry configured, the whole pipeline speaks the Confluent wire format: signed deliveries at the
ingress → raw topic → worker → events topic → sink → embedded ClickHouse, each stage its own process on the real
broker, against a real (small, local) registry over HTTP. Nothing is mocked."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import urllib.request

from confluent_kafka import Consumer, Producer, TopicPartition

from ops.sql import query_rows
from ops.supervise import attrib_argv
from schemas import avro
from schemas.errors import NormalizeError
from schemas.normalize import normalize
from tests.schemas.fake_registry import FakeRegistry
from tests.test_pipeline import _env, _settle, running_pipeline


def _values(bootstrap: str, topic: str, partitions: int) -> list[bytes]:
    """Every record value on the topic now (from the beginning up to the high watermarks)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{topic}", "enable.auto.commit": False})
    try:
        ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)}
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions) if ends[p] > 0])
        out: list[bytes] = []
        seen = {p: 0 for p in ends}
        while any(seen[p] < ends[p] for p in ends):
            m = c.poll(5)
            assert m is not None, f"{topic}: records missing below the high watermark"
            partition, offset, value = m.partition(), m.offset(), m.value()
            if m.error() is None and partition is not None and offset is not None and value is not None:
                seen[partition] = offset + 1
                out.append(value)
        return out
    finally:
        c.close()


def test_registry_configured_pipeline_writes_confluent_framing_and_lands(kafka_bootstrap, tmp_path, monkeypatch,
                                                                        registry: FakeRegistry):
    env = {**_env(tmp_path, kafka_bootstrap), "ATTRIB_KAFKA__SCHEMA_REGISTRY_URL": registry.url,
           "ATTRIB_STREAMS__PENDING_TIMEOUT_S": "3"}
    with running_pipeline(tmp_path, env, monkeypatch) as s:
        db = s.clickhouse.database
        sent = subprocess.run(attrib_argv("send", "--count", "4", "--seed", "5", "--json", "--no-progress"),
                              env={**os.environ, **env}, capture_output=True, timeout=120)
        assert sent.returncode == 0, sent.stderr.decode()[-2000:]

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            raws = query_rows(s, f"SELECT * FROM {db}.raw_deliveries FINAL")
            if len(raws) >= 4 * len(s.sources):
                break
            time.sleep(0.5)
        assert len(raws) == 4 * len(s.sources)
        expected = set()
        for r in raws:
            with contextlib.suppress(NormalizeError):  # the worker dead-letters these
                source = s.source(r["source"])
                assert source is not None
                expected |= {e["event_id"] for e in normalize(source, {**r, "body": r["body"].encode(),
                                                                       "received_at": 0})}
        assert expected
        assert _settle(s, len(expected), 60) == len(expected)
        got = {r["event_id"] for r in query_rows(s, f"SELECT event_id FROM {db}.events FINAL")}
        assert got == expected

        # on the wire: Confluent framing (0x00 + schema id), the schemas registered under <topic>-value
        raw_values = [v for v in _values(kafka_bootstrap, s.topics.raw, s.topics.partitions)
                      if not v.startswith(avro.TICK)]
        event_values = _values(kafka_bootstrap, s.topics.events, s.topics.partitions)
        assert len(raw_values) == len(raws) and len(event_values) >= len(expected)
        assert all(v[:1] == b"\x00" for v in raw_values + event_values)
        assert {f"{s.topics.raw}-value", f"{s.topics.events}-value"} <= set(registry.subjects)
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{s.sink.query_port}/metrics", timeout=5).read().decode()
        assert "attrib_sink_undecodable_total 0" in metrics

        # a record naming a schema id the registry doesn't have (404, error_code 40403) is dead-lettered with that
        # reason by the worker (raw topic) and by the sink (both topics it loads); neither waits for the registry,
        # and records behind it still land
        poison = b"\x00" + (4242).to_bytes(4, "big") + b"\x02\x00"
        p = Producer({"bootstrap.servers": kafka_bootstrap})
        p.produce(s.topics.raw, poison, key=b"poison", partition=0)
        p.produce(s.topics.events, poison, key=b"poison", partition=0)
        assert p.flush(30) == 0
        more = subprocess.run(attrib_argv("send", "--count", "1", "--seed", "6", "--json", "--no-progress"),
                              env={**os.environ, **env}, capture_output=True, timeout=120)
        assert more.returncode == 0, more.stderr.decode()[-2000:]
        sql = (f"SELECT stage, reason, raw_topic FROM {db}.dead_letters FINAL "
               "WHERE detail LIKE '%no schema with id 4242%40403%' ORDER BY stage, raw_topic")
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and len(letters := query_rows(s, sql)) < 3:
            time.sleep(0.5)
        assert sorted((r["stage"], r["reason"], r["raw_topic"]) for r in letters) == sorted([
            ("process", "invalid_record", s.topics.raw), ("sink", "undecodable", s.topics.events),
            ("sink", "undecodable", s.topics.raw)])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(query_rows(s, f"SELECT 1 FROM {db}.raw_deliveries FINAL")) < len(
                raws) + len(s.sources):
            time.sleep(0.5)
        assert len(query_rows(s, f"SELECT 1 FROM {db}.raw_deliveries FINAL")) == len(raws) + len(s.sources)
