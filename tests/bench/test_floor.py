"""bench/floor.py's null pipeline end to end on the real broker and chdb: a few deliveries in, rows out."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from attrib.settings import Settings
from attrib.topics import ensure_topics
from bench import floor
from ops.sql import query_rows
from ops.supervise import settings_env
from tests.support import free_port

BODIES = [b'{"n": %d, "pad": "%s"}' % (i, b"x" * i) for i in range(5)]
QUERY = "k=demo&adid=9"  # a GET delivery (Adjust): no body, the query string is the payload


def _wait(what: str, check: Callable[[], Any], procs: dict[str, Any], logs: Path, limit_s: float = 60) -> Any:
    deadline = time.monotonic() + limit_s
    while True:
        for name, p in procs.items():
            assert p.poll() is None, f"{name} exited {p.returncode}:\n" + (
                logs / f"{name.split()[1]}.log").read_text(errors="replace")[-3000:]
        try:
            got = check()
            if got:
                return got
        except (OSError, urllib.error.URLError):
            pass
        assert time.monotonic() < deadline, f"no {what} within {limit_s} s"
        time.sleep(0.3)


def _changelog_records(s: Settings) -> int:
    c = Consumer({"bootstrap.servers": s.kafka.bootstrap_servers, "group.id": "floor-probe"})
    topic = f"{s.streams.app_id}-users-changelog"
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts)
    finally:
        c.close()


def test_deliveries_reach_the_floor_table_through_broker_faust_and_chdb(
        make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    s = make_settings(ingest={"port": free_port()}, sink={"query_port": free_port(), "batch_seconds": 0.2},
                      clickhouse={"path": tmp_path / "clickhouse", "database": "floor"})
    ensure_topics(s)
    env = settings_env(s, ("kafka", "topics", "streams", "ingest", "sink", "clickhouse"), log_level="WARNING")
    procs = floor.spawn(env, tmp_path)
    base = f"http://127.0.0.1:{s.ingest.port}"
    try:
        _wait("sink", lambda: urllib.request.urlopen(f"http://127.0.0.1:{s.sink.query_port}/health", timeout=5),
              procs, tmp_path)
        _wait("ingress", lambda: urllib.request.urlopen(base + "/", BODIES[0], timeout=10).status == 200, procs,
              tmp_path)
        statuses = [urllib.request.urlopen(f"{base}/webhooks/x", b, timeout=10).status for b in BODIES[1:]]
        statuses.append(urllib.request.urlopen(f"{base}/webhooks/adjust?{QUERY}", timeout=10).status)
        assert statuses == [200] * len(statuses)  # each answered once Kafka acknowledged it

        sql = f"SELECT bytes, received_ms, emitted_ms, toUnixTimestamp64Milli(loaded_at) AS loaded_ms, event_id " \
              f"FROM floor.{floor.TABLE} ORDER BY bytes"
        rows = _wait("rows", lambda: (r := query_rows(s, sql)) and len(r) >= len(BODIES) + 1 and r, procs, tmp_path)
    finally:
        for p in procs.values():
            p.terminate()
        for p in procs.values():
            p.wait(30)
    assert [r["bytes"] for r in rows] == sorted([len(b) for b in BODIES] + [len(QUERY)])
    assert len({r["event_id"] for r in rows}) == len(rows)
    for r in rows:  # receipt (ingress) ≤ emit (worker's output record) ≤ insert (ClickHouse's own clock)
        assert r["received_ms"] <= r["emitted_ms"] <= r["loaded_ms"]
    assert _changelog_records(s) >= len(rows)  # the worker floor wrote state (one changelog record each)
