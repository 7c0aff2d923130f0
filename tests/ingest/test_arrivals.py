"""Ingress heartbeats (ingest/arrivals.py) from the real server: every interval one record on topics.arrivals with, per
configured source, the verified deliveries since the last heartbeat (zeros included) and the newest one's time."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

from confluent_kafka import Consumer, TopicPartition

from attrib.settings import Settings
from tests.ingest.conftest import LR_KEY
from tests.ingest.test_ingress import lr_body, post


def heartbeats(s: Settings, until: int, polls: int = 120) -> list[dict]:
    """Heartbeats on topics.arrivals (one partition) until ``until`` verified ``lr`` deliveries are counted."""
    c = Consumer({"bootstrap.servers": s.kafka.bootstrap_servers, "group.id": f"t-{uuid.uuid4().hex}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.assign([TopicPartition(s.topics.arrivals, 0, 0)])
    out: list[dict] = []
    try:
        for _ in range(polls):
            for m in c.consume(num_messages=100, timeout=0.5):
                assert m.error() is None, m.error()
                assert m.key() == b"arrivals"
                out.append(json.loads(m.value()))
            if sum(h["sources"]["lr"]["n"] for h in out) >= until:
                break
    finally:
        c.close()
    return out


async def test_heartbeats_count_verified_deliveries_per_source(start_ingress):
    ing = await start_ingress(arrivals_interval_s=1)
    s = ing.settings
    before = int(time.time() * 1000)
    for i in range(5):
        status, answer, _ = await ing.send(post("lr", lr_body(f"00000000-aaaa-4bbb-8ccc-{i:012d}")), sign_as="lr")
        assert status == 200, answer
    # refused deliveries (a wrong key) are not arrivals: they are on /ops/rejections
    assert (await ing.send(post("lr", lr_body())))[0] == 401  # no key
    sent = int(time.time() * 1000)
    got = await asyncio.to_thread(heartbeats, s, 5)  # the ingress runs on this loop: don't block it
    assert sum(h["sources"]["lr"]["n"] for h in got) == 5
    last = got[-1]
    assert last["v"] == 1 and last["interval_s"] == 1 and last["instance"]
    assert before <= last["sources"]["lr"]["last"] <= sent
    assert last["sources"]["lr"]["mmp"] == "linkrunner"
    # every configured source in every heartbeat, zeros included: the heartbeat itself is the clock
    assert all(set(h["sources"]) == {x.name for x in s.sources} for h in got)
    assert all(h["sources"]["af"] == {"n": 0, "last": None, "mmp": "appsflyer", "app_id": None} for h in got)
    assert len({h["instance"] for h in got}) == 1
    assert LR_KEY not in json.dumps(got)  # nothing of the deliveries themselves


async def test_the_last_counts_go_out_at_shutdown(start_ingress):
    ing = await start_ingress(arrivals_interval_s=300)  # no periodic heartbeat during the test
    for i in range(3):
        assert (await ing.send(post("lr", lr_body(f"00000000-aaaa-4bbb-8ccc-{i:012d}")), sign_as="lr"))[0] == 200
    await ing.runner.cleanup()
    got = heartbeats(ing.settings, 3, polls=20)
    assert [h["sources"]["lr"]["n"] for h in got] == [3]
