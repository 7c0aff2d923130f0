"""`attrib route`: consume enriched events, fan them out to every matching destination, dead-letter what fails, and
commit a record's offset only when every destination is done with it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition
from prometheus_client import generate_latest

from attrib import kafka
from attrib.errors import Retryable
from attrib.settings import Settings
from schemas import wire
from schemas.avro import TICK
from schemas.dead_letter import DETAIL_MAX
from schemas.dead_letter import dead_letter as schemas_dead_letter
from sinks.route import view as view_mod
from sinks.route.firsttime import FirstTimeStore
from sinks.route.metrics import RouteMetrics
from sinks.route.offsets import OffsetTracker
from sinks.route.presets.delivery import make_destination
from sinks.route.sender import Failure, Job

log = logging.getLogger("attrib.route")


def dead_letter(job_payload: bytes, record: dict[str, Any] | None, destination: str | None, failure: Failure,
                now_ms: int) -> dict[str, Any]:
    """The DeadLetter record of a routing failure. Anchored on (event, destination), so a re-run replaces it; the
    detail is a JSON object kept within the constructor's limit (the response text gives way)."""
    rec = record or {}
    event_id = rec.get("event_id") or hashlib.sha256(job_payload).hexdigest()
    detail: dict[str, Any] = {"destination": destination, **failure.detail}
    text = json.dumps(detail, ensure_ascii=False, default=str)
    while len(text) > DETAIL_MAX and isinstance(detail.get("response"), str) and detail["response"]:
        keep = max(0, len(detail["response"]) - (len(text) - DETAIL_MAX) - 1)
        detail["response"] = detail["response"][:keep] + "…" if keep else ""
        text = json.dumps(detail, ensure_ascii=False, default=str)
    return schemas_dead_letter(stage="route", reason=failure.reason, detail=text, field=failure.field,
                               source=rec.get("source"), mmp=rec.get("mmp"), raw_ref=rec.get("raw"),
                               payload=job_payload, failed_at_ms=now_ms, anchor=f"event:{event_id}/{destination}")


class Router:
    def __init__(self, settings: Settings, *, group_id: str | None = None) -> None:
        self.s = settings
        self.rs = settings.route
        self.metrics = RouteMetrics()
        self.tracker = OffsetTracker()
        self.destinations = [make_destination(d, self.metrics, self._done, self._dead) for d in self.rs.destinations]
        state = self.rs.state_dir or settings.var_dir / "route"
        self.first: dict[str, FirstTimeStore] = {
            d.name: FirstTimeStore(Path(state) / f"{d.name}.first.sqlite")
            for d in self.rs.destinations if d.first_time_per_user}
        self.group_id = group_id or self.rs.group_id
        self._encode_dead = wire.cached(settings).encoder("dead_letter", settings.topics.dead_letters)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="route-consumer")
        self._consumer: Consumer | None = None
        self._producer = kafka.producer(settings, "router", {"linger.ms": 5, "enable.idempotence": True})

    # --- completion callbacks -----------------------------------------------------------------------------------

    def _done(self, job: Job) -> None:
        self.tracker.done(job.partition, job.offset, job.gen)

    async def _dead(self, job: Job, destination: str | None, failure: Failure) -> None:
        rec = dead_letter(job.payload, job.record or None, destination, failure, int(time.time() * 1000))
        await self.produce_dead_letter(rec, (job.record or {}).get("user_key"))
        log.warning("route dead letter", extra={"fields": {"destination": destination, "reason": failure.reason,
                                                           "event_id": (job.record or {}).get("event_id")}})
        self.tracker.done(job.partition, job.offset, job.gen)

    async def produce_dead_letter(self, rec: dict[str, Any], key: str | None) -> None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()

        def ack(err: Any, _msg: Any) -> None:  # runs inside producer.poll() on this loop's thread
            if fut.done():
                return
            if err is None:
                fut.set_result(None)
            else:
                fut.set_exception(kafka.mapped(err, "dead letter not written"))

        while True:
            try:
                self._producer.produce(self.s.topics.dead_letters, self._encode_dead(rec),
                                       key=key.encode() if key else None, on_delivery=ack)
                break
            except BufferError:
                await asyncio.sleep(0.05)
            except KafkaException as exc:
                raise kafka.mapped(exc, "dead letter not written") from exc
        while not fut.done():
            self._producer.poll(0)
            await asyncio.sleep(0.005)
        fut.result()  # raise (AttribError) if the broker refused: the offset stays uncommitted, the record comes back

    # --- the consumer -------------------------------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, parts: list[TopicPartition]) -> None:
        """Position partitions the group never committed at ``route.start`` explicitly (latest = the end right now),
        so the start-up log says exactly where routing begins and nothing produced after it is skipped."""
        committed = consumer.committed(parts, timeout=10)
        start: dict[int, int] = {}
        for tp in committed:
            if tp.offset < 0:
                low, high = consumer.get_watermark_offsets(tp, timeout=10)
                tp.offset = high if self.rs.start == "latest" else low
            start[tp.partition] = tp.offset
        consumer.assign(committed)
        log.info("route partitions assigned", extra={"fields": {
            "topic": self.s.topics.events, "group_id": self.group_id, "start": self.rs.start,
            "offsets": {str(p): o for p, o in sorted(start.items())}}})

    def _on_revoke(self, consumer: Consumer, parts: list[TopicPartition]) -> None:
        self._commit_sync(consumer)
        self.tracker.forget([p.partition for p in parts])

    def _commit_sync(self, consumer: Consumer) -> None:
        offs = self.tracker.committable()
        if offs:
            consumer.commit(offsets=[TopicPartition(self.s.topics.events, p, o) for p, o in offs.items()],
                            asynchronous=False)

    async def _call(self, fn: Any, *a: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *a)

    async def route_one(self, partition: int, offset: int, value: bytes | None) -> None:
        self.metrics.consumed.inc()
        if value is not None and value.startswith(TICK):  # a worker tick, should one ever reach this topic
            self.tracker.add(partition, offset, 0)
            return
        try:
            _, record = wire.cached(self.s).decode(value or b"", expect="enriched_event")
            view = view_mod.build(record)
        except Retryable:  # the schema registry is down: never dead-letter for that; the record is read again
            raise
        except Exception as exc:  # noqa: BLE001 - per-record dead-letter boundary: whatever these bytes make the
            # decoder or the view raise (AvroError, a field of the wrong type …), the record is kept, with the reason
            gen = self.tracker.add(partition, offset, 1)
            await self._dead(Job({}, {}, partition, offset, value or b"", gen), None,
                             Failure("invalid_event", {"error": str(exc)[:500]}))
            return
        matched = [d for d in self.destinations if d.filter.matches(view) and self._first_ok(d.name, record)]
        gen = self.tracker.add(partition, offset, len(matched))
        for d in matched:
            await d.submit(Job(record, view, partition, offset, value or b"", gen))

    def _first_ok(self, name: str, record: dict[str, Any]) -> bool:
        store = self.first.get(name)
        if store is None:
            return True
        return store.claim(record["user_key"], store.kind(record["event_type"], record["event_name"]),
                           record["event_id"])

    async def run(self, stop: asyncio.Event, *, drain_s: float = 30.0) -> None:
        """Route until ``stop`` is set, then give in-flight deliveries up to ``drain_s`` and commit."""
        for d in self.destinations:
            await d.start()
        server = await self._serve_metrics()
        topics = [self.s.topics.events]
        self._consumer = c = kafka.consumer(self.s, "router", self.group_id, topics=topics, extra={
            "enable.auto.commit": False, "auto.offset.reset": self.rs.start, "partition.assignment.strategy": "range",
        })
        await self._call(lambda: c.subscribe(topics, on_assign=self._on_assign, on_revoke=self._on_revoke))
        last_commit = time.monotonic()
        try:
            while not stop.is_set():
                msgs = await self._call(c.consume, 500, 0.2)
                for m in msgs:
                    if m.error():
                        log.warning("route consume error", extra={"fields": {"error": str(m.error())}})
                        continue
                    await self.route_one(m.partition(), m.offset(), m.value())
                if time.monotonic() - last_commit >= self.rs.commit_interval_s:
                    await self._call(self._commit_sync, c)
                    last_commit = time.monotonic()
            deadline = time.monotonic() + drain_s
            while self.tracker.in_flight() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await self._call(self._commit_sync, c)
        finally:
            for d in self.destinations:
                await d.stop()
            await self._call(c.close)
            self._pool.shutdown(wait=False)
            self._producer.flush(5)
            del self._producer  # librdkafka's threads go with the last reference
            for st in self.first.values():
                st.close()
            if server is not None:
                await server.cleanup()

    async def _serve_metrics(self) -> Any:
        if not self.rs.metrics_port:
            return None
        from aiohttp import web

        async def metrics(_: web.Request) -> web.Response:
            return web.Response(body=generate_latest(self.metrics.registry), content_type="text/plain")

        async def health(_: web.Request) -> web.Response:
            return web.json_response({d.name: {"circuit": d.breaker.state, "queued": d.queue.qsize()}
                                      for d in self.destinations})

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        app.router.add_get("/health", health)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, self.rs.metrics_host, self.rs.metrics_port).start()
        return runner
