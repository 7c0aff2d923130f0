"""`attrib route` against the real broker and real local HTTP receivers."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import aiohttp
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from attrib.settings import Settings
from attrib.topics import ensure_topics
from schemas import avro
from sinks.route.service import Router
from tests.sinks.route.events import enriched
from tests.sinks.route.receivers import Receiver
from tests.support import free_port

pytestmark = pytest.mark.timeout(120)


def produce(s: Settings, records: list[dict[str, Any]]) -> None:
    p = Producer({"bootstrap.servers": s.kafka.bootstrap_servers, "partitioner": "murmur2_random"})
    for r in records:
        p.produce(s.topics.events, avro.encode("enriched_event", r), key=r["user_key"].encode())
    assert p.flush(30) == 0


def dead_letters(s: Settings, n: int, timeout: float = 60) -> list[dict[str, Any]]:
    c = Consumer({"bootstrap.servers": s.kafka.bootstrap_servers, "group.id": uuid.uuid4().hex,
                  "auto.offset.reset": "earliest"})
    c.subscribe([s.topics.dead_letters])
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        for m in c.consume(100, 0.5):
            if not m.error():
                out.append(avro.decode(m.value() or b"", expect="dead_letter")[1])
    c.close()
    return out


def committed(s: Settings, group: str) -> int:
    c = Consumer({"bootstrap.servers": s.kafka.bootstrap_servers, "group.id": group})
    parts = [TopicPartition(s.topics.events, p) for p in range(s.topics.partitions)]
    got = c.committed(parts, timeout=10)
    c.close()
    return sum(max(tp.offset, 0) for tp in got)


async def until(cond: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert cond()


def settings_for(make_settings: Callable[..., Settings], tmp_path, dests: list[dict[str, Any]],
                 partitions: int = 2, metrics_port: int = 0) -> Settings:
    s = make_settings(topics={"partitions": partitions}, route={"destinations": dests, "metrics_port": metrics_port,
                                                       "start": "earliest",  # the tests produce before routing
                                                       "commit_interval_s": 0.1, "state_dir": str(tmp_path / "rs")})
    ensure_topics(s)
    return s


class Running:
    def __init__(self, s: Settings) -> None:
        self.router = Router(s, group_id="route-" + uuid.uuid4().hex[:6])
        self.stop = asyncio.Event()

    async def __aenter__(self) -> Router:
        self.task = asyncio.create_task(self.router.run(self.stop, drain_s=5))
        return self.router

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()
        await self.task


async def test_filters_templates_first_time_and_missing_values(make_settings, tmp_path) -> None:
    rx = await Receiver().start()
    try:
        s = settings_for(make_settings, tmp_path, [
            {"name": "crm", "url": rx.url + "/crm", "filters": {"event.name": "PURCHASE", "properties.city": "*"}},
            {"name": "ga", "method": "GET", "events": ["purchase"],
             "url": rx.url + "/ga?city={{ properties.city }}&c={{ attribution.campaign }}&u={{ user.key }}"},
            {"name": "first", "url": rx.url + "/first", "first_time_per_user": True, "events": ["purchase"],
             "body": '{"user": {{ user.key }}, "campaign": {{ campaign | default:organic }}, '
                     '"rev": {{ event.revenue }}}'},
        ])
        u1, u2 = "idfv:" + uuid.uuid4().hex, "cuid:" + uuid.uuid4().hex
        paris = enriched(user_key=u1, properties={"city": "Zürich & 東京"})
        nocity = enriched(user_key=u1, properties={})
        install = enriched(user_key=u2, event_name="INSTALL", event_type="install")
        orphan = enriched(user_key=u2, first_touch=None, properties={"city": "Oslo"})  # no campaign anywhere
        produce(s, [paris, nocity, install, orphan])
        async with Running(s) as router:
            await until(lambda: len(rx.hits) >= 5)
            dls = await asyncio.to_thread(dead_letters, s, 2)
            await until(lambda: router.tracker.in_flight() == 0)
        crm = [h for h in rx.hits if h.path == "/crm"]
        assert sorted(h.headers["Idempotency-Key"] for h in crm) == sorted([paris["event_id"], orphan["event_id"]])
        body = json.loads(next(h for h in crm if h.headers["Idempotency-Key"] == paris["event_id"]).body)
        assert body["properties"] == {"city": "Zürich & 東京"} and body["revenue"] == "12.5"
        assert body["event_time"] == "2025-11-30T00:00:00.000Z"
        ga = [h for h in rx.hits if h.path == "/ga"]
        assert {h.method for h in ga} == {"GET"} and len(ga) == 1  # nocity: empty city is missing → dead letter
        q = parse_qs(ga[0].query)
        assert q == {"city": ["Zürich & 東京"], "c": ["Winter Sale"], "u": [u1]}
        first = [json.loads(h.body) for h in rx.hits if h.path == "/first"]
        assert sorted(f["user"] for f in first) == sorted([u1, u2])  # u1's second purchase is not a first
        assert {f["campaign"] for f in first} == {"organic"} and {f["rev"] for f in first} == {"12.5"}
        # nocity has no city; orphan has no campaign anywhere: ga (missing = error) dead-letters both
        assert sorted((d["reason"], d["field"], d["stage"]) for d in dls) == [
            ("template_missing", "attribution.campaign", "route"), ("template_missing", "properties.city", "route")]
        assert {json.loads(d["detail"])["destination"] for d in dls} == {"ga"}
        assert sorted(avro.decode(d["payload"])[1]["event_id"] for d in dls) == sorted(
            [nocity["event_id"], orphan["event_id"]])
        assert len(rx.hits) == 5
        assert committed(s, router.group_id) == 4
    finally:
        await rx.stop()


async def test_retries_with_backoff_then_success_and_retry_after(make_settings, tmp_path) -> None:
    flaky = await Receiver(behave=lambda h, n: (503, {}) if n < 3 else (200, {})).start()
    limited = await Receiver(behave=lambda h, n: (429, {"Retry-After": "1"}) if n < 2 else (200, {})).start()
    try:
        s = settings_for(make_settings, tmp_path, [
            {"name": "flaky", "url": flaky.url + "/", "backoff_initial_s": 0.2, "max_attempts": 5},
            {"name": "limited", "url": limited.url + "/", "backoff_initial_s": 0.01, "max_attempts": 5},
        ], metrics_port=(port := free_port()))
        ev = enriched()
        produce(s, [ev])
        async with Running(s) as router:
            await until(lambda: router.tracker.in_flight() == 0 and len(flaky.hits) == 3 and len(limited.hits) == 2)
            async with aiohttp.ClientSession() as http:
                async with http.get(f"http://127.0.0.1:{port}/metrics") as r:
                    exposition = await r.text()
                async with http.get(f"http://127.0.0.1:{port}/health") as r:
                    health = await r.json()
            assert 'attrib_route_sent_total{destination="flaky"} 1.0' in exposition
            assert 'attrib_route_latency_seconds_count{destination="limited"} 2.0' in exposition
            assert health == {"flaky": {"circuit": "closed", "queued": 0},
                              "limited": {"circuit": "closed", "queued": 0}}
        assert flaky.keys() == [ev["event_id"]] * 3
        gaps = [b.at - a.at for a, b in itertools.pairwise(flaky.hits)]
        assert gaps[0] >= 0.1 and gaps[1] >= 0.2  # equal jitter: at least half of 0.2 s, then of 0.4 s
        assert limited.hits[1].at - limited.hits[0].at >= 1.0  # Retry-After beats the tiny backoff
        assert dead_letters(s, 1, timeout=3) == []
        text = router.metrics.registry.get_sample_value
        assert text("attrib_route_sent_total", {"destination": "flaky"}) == 1
        assert text("attrib_route_failed_attempts_total", {"destination": "flaky", "reason": "http_503"}) == 2
    finally:
        await flaky.stop()
        await limited.stop()


async def test_dead_destination_does_not_delay_healthy_one_and_dead_letters_after_cap(make_settings, tmp_path) -> None:
    dead = await Receiver(behave=lambda h, n: (500, {}), hang=0.3).start()
    healthy = await Receiver().start()
    try:
        s = settings_for(make_settings, tmp_path, [
            {"name": "dead", "url": dead.url + "/x?token=s3cr3t", "max_attempts": 3, "backoff_initial_s": 0.5,
             "concurrency": 2, "breaker_failures": 100},
            {"name": "healthy", "url": healthy.url + "/"},
        ])
        events = [enriched() for _ in range(20)]
        produce(s, events)
        async with Running(s) as router:
            await until(lambda: len(healthy.hits) == 20)
            # the healthy destination got everything while the dead one is still working through its retries,
            # and nothing was committed past events the dead destination still holds
            assert len(dead.hits) < 20 * 3
            assert await asyncio.to_thread(committed, s, router.group_id) < 20
            dls = await asyncio.to_thread(dead_letters, s, 20, 90)
            await until(lambda: router.tracker.in_flight() == 0)
            await asyncio.sleep(0.3)  # one more commit interval
        assert sorted(healthy.keys()) == sorted(e["event_id"] for e in events)
        assert len(dls) == 20 and {d["reason"] for d in dls} == {"http_500"}
        detail = json.loads(dls[0]["detail"])
        assert detail["attempts"] == 3 and detail["status"] == 500 and detail["response"].startswith("status 500")
        assert "s3cr3t" not in dls[0]["detail"] and detail["url"].endswith("/x")
        assert len(dead.hits) == 60
        assert committed(s, router.group_id) == 20
    finally:
        await dead.stop()
        await healthy.stop()


async def test_open_circuit_sheds_to_dead_letters_and_rate_limit_spaces_requests(make_settings, tmp_path) -> None:
    dead = await Receiver(behave=lambda h, n: (500, {})).start()
    paced = await Receiver().start()
    try:
        s = settings_for(make_settings, tmp_path, [
            {"name": "dead", "url": dead.url + "/", "concurrency": 1, "queue_size": 2, "breaker_failures": 1,
             "breaker_reset_s": 60, "max_attempts": 5, "backoff_initial_s": 0.01},
            {"name": "paced", "url": paced.url + "/", "rate_per_s": 4, "burst": 1},
        ], partitions=1)
        events = [enriched() for _ in range(10)]
        produce(s, events)
        async with Running(s) as router:
            # 1 in flight (behind the open circuit) + 2 queued; the 7 others are shed at once, not waited for
            dls = await asyncio.to_thread(dead_letters, s, 7)
            await until(lambda: len(paced.hits) == 10)
            assert len(dead.hits) == 1  # the circuit opened after the first failure: no more requests
            assert router.destinations[0].breaker.is_open
            assert router.metrics.registry.get_sample_value("attrib_route_circuit_open", {"destination": "dead"}) == 1
            assert await asyncio.to_thread(committed, s, router.group_id) <= 1
        assert sorted(avro.decode(d["payload"])[1]["event_id"] for d in dls) == sorted(e["event_id"]
                                                                                      for e in events[3:])
        assert {d["reason"] for d in dls} == {"circuit_open"}
        # 4 requests/s with a burst of 1: 10 requests span at least 9 intervals of 0.25 s
        assert paced.hits[-1].at - paced.hits[0].at >= 9 * 0.25 - 0.01
    finally:
        await dead.stop()
        await paced.stop()
