"""Routing and replay benchmark (run on demand, not in CI): `python bench/route.py [--events 20000] [--bootstrap h:p]`.

(a) `attrib route` throughput: N enriched events fanned out to two local aiohttp receivers (one matching all events,
one matching purchases with a GET template), until every offset is committed; request latency from the router's own
histogram. (b) `attrib replay` throughput: the same number of raw deliveries replayed through the worker's processing
into a fresh topic (records/s as the progress line reports them).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiohttp import web
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from attrib.settings import Settings
from attrib.topics import ensure_topics
from schemas import avro
from tests.support import (
    free_port,
    given_or_throwaway,
)


async def receiver() -> tuple[web.AppRunner, int, list[int]]:
    hits = [0]

    async def ok(_: web.Request) -> web.Response:
        hits[0] += 1
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/{t:.*}", ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, port, hits


def committed(s: Settings, group: str) -> int:
    c = Consumer({"bootstrap.servers": s.kafka.bootstrap_servers, "group.id": group})
    try:
        got = c.committed([TopicPartition(s.topics.events, p) for p in range(s.topics.partitions)], timeout=10)
    except KafkaException:  # the group coordinator is still loading
        return 0
    finally:
        c.close()
    return sum(max(tp.offset, 0) for tp in got)


async def bench_route(s: Settings, n: int) -> None:
    from sinks.route.service import Router
    from tests.sinks.route.events import enriched

    r1, p1, h1 = await receiver()
    r2, p2, h2 = await receiver()
    dests = [{"name": "all", "url": f"http://127.0.0.1:{p1}/e", "rate_per_s": 1e6, "burst": 1000, "concurrency": 32},
             {"name": "purchases", "method": "GET", "events": ["purchase"], "rate_per_s": 1e6, "burst": 1000,
              "concurrency": 32,
              "url": f"http://127.0.0.1:{p2}/p?u={{{{ user.key }}}}&c={{{{ attribution.campaign }}}}"}]
    s = s.model_copy(update={"route": s.route.model_copy(update={
        "destinations": Settings(route={"destinations": dests}).route.destinations, "metrics_port": 0})})
    p = Producer({"bootstrap.servers": s.kafka.bootstrap_servers, "linger.ms": 50})
    for i in range(n):
        e = enriched(event_type="purchase" if i % 2 else "install", event_name="PURCHASE" if i % 2 else "INSTALL")
        p.produce(s.topics.events, avro.encode("enriched_event", e), key=e["user_key"].encode())
        if i % 10000 == 0:
            p.flush()
    p.flush()
    router = Router(s, group_id=f"bench-{uuid.uuid4().hex[:6]}")
    stop = asyncio.Event()
    t0 = time.perf_counter()
    task = asyncio.create_task(router.run(stop))
    while await asyncio.to_thread(committed, s, router.group_id) < n:
        await asyncio.sleep(0.5)
    dt = time.perf_counter() - t0
    stop.set()
    await task
    sent = h1[0] + h2[0]
    print(f"route: {n:,} events, {sent:,} requests in {dt:.1f}s → {n / dt:,.0f} events/s, {sent / dt:,.0f} requests/s "
          f"(incl. consumer start-up)")
    for dest in ("all", "purchases"):
        samples = {x.labels.get("le"): x.value for m in router.metrics.registry.collect() if m.name ==
                   "attrib_route_latency_seconds" for x in m.samples
                   if x.name.endswith("_bucket") and x.labels["destination"] == dest}
        total = samples.get("+Inf", 0)
        p50 = next((le for le, v in samples.items() if v >= total * 0.5), "?")
        p99 = next((le for le, v in samples.items() if v >= total * 0.99), "?")
        print(f"  {dest}: latency p50 ≤ {p50}s, p99 ≤ {p99}s")
    await r1.cleanup()
    await r2.cleanup()


def bench_replay(s: Settings, n: int) -> None:
    from ops.replay.ranged import RangeReplay
    from ops.replay.spec import RangeSpec, Target
    from tests.streams.conftest import generic_body, raw_delivery

    t0 = int(time.time() * 1000) - 3_600_000
    p = Producer({"bootstrap.servers": s.kafka.bootstrap_servers, "partitioner": "murmur2_random", "linger.ms": 50})
    for i in range(n):
        cust = f"u{i // 3}"
        r = raw_delivery("gen", "generic", generic_body(f"e{i}", ("install", "purchase", "purchase")[i % 3],
                                                        t0 + i, cust), f"cuid:{cust}", t0 + i)
        p.produce(s.topics.raw, avro.encode("raw_delivery", r), key=r["user_key"].encode(), timestamp=t0 + i)
        if i % 10000 == 0:
            p.flush()
    p.flush()
    out = io.StringIO()
    spec = RangeSpec(t0 - 1, t0 + n + 1, Target("topic", f"bench.replay.{uuid.uuid4().hex[:6]}"))
    start = time.perf_counter()
    assert RangeReplay(s, spec, out=out).run() == 0
    dt = time.perf_counter() - start
    print(f"replay: {n:,} raw deliveries → topic in {dt:.1f}s → {n / dt:,.0f} records/s")
    print("  last progress line: " + out.getvalue().strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--bootstrap")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="attrib-bench-route-"))
    broker, bootstrap = given_or_throwaway(args.bootstrap, tmp / "stack")
    tag = uuid.uuid4().hex[:6]
    s = Settings(var_dir=tmp, kafka={"bootstrap_servers": bootstrap}, sources=[{"name": "gen", "mmp": "generic"}],
                 topics={"raw": f"b-{tag}.raw", "events": f"b-{tag}.events", "dead_letters": f"b-{tag}.dlq",
                         "alerts_spike": f"b-{tag}.s", "alerts_drop": f"b-{tag}.d", "partitions": 6})
    ensure_topics(s)
    try:
        asyncio.run(bench_route(s, args.events))
        bench_replay(s, args.events)
    finally:
        if broker:
            broker.stop(log=lambda *_: None)


if __name__ == "__main__":
    main()
