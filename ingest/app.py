"""The aiohttp application: ``/webhooks/{source}`` (POST, and GET for sources that allow it), ``/healthz``,
``/readyz``, ``/metrics`` and ``/ops/rejections``.

Request path, cheapest refusal first: source → method → content type / declared size → body (bounded, with a
deadline, decoded with a bound) → verification on the raw bytes → user key → produce and wait for Kafka's ack — or,
once that takes longer than ``ingest.spool_after_s``, for the record's fsync to the local spool (spool.py; drain.py
re-produces it). Only then 200. A verified sender's unusable body goes to the dead-letter topic (also acked) and is
answered 400.
Whatever its bytes, a verified delivery is stored or dead-lettered: input never causes a 5xx (records.py keeps
non-UTF-8 header bytes; the user key falls back to a fingerprint), and should the ingress itself fail on one, the
delivery is dead-lettered whole (reason ``internal_error``) for replay once fixed."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from typing import Any

from aiohttp import web

from attrib.settings import Settings
from ingest import body, errors, logfilter, metrics, records
from ingest.arrivals import Tally
from ingest.drain import Drainer
from ingest.producer import DurableProducer, ProduceError, Stored, longest_wait_s
from ingest.rejections import Rejection, Rejections
from ingest.slow_acks import SlowAcks
from ingest.sources import SourcePlan, compile_all
from ingest.spool import Spool, SpoolUnavailable
from ingest.verify import FORBIDDEN_REASONS, HTTPS_REQUIRED, Inbound, network
from schemas import wire
from schemas.user_key import user_key

log = logging.getLogger("attrib.ingest")
_OK_HEADERS = {"Content-Type": "application/json"}


class Ingress:
    """Per-process state shared by the handlers."""

    def __init__(self, s: Settings, producer: DurableProducer) -> None:
        self.s = s
        self.plans: dict[str, SourcePlan] = compile_all(s)
        self.producer = producer
        self.spool: Spool | None = None
        self.slow_acks = SlowAcks()
        self.drainer: Drainer | None = None
        if s.ingest.spool_max_bytes:
            self.spool = Spool(s.ingest.spool_dir or s.var_dir / "ingest-spool", s.ingest.spool_max_bytes,
                               s.ingest.spool_segment_bytes, s.ingest.spool_high_water)
            self.drainer = Drainer(self.spool, producer, longest_wait_s(s))
        self.rejections = Rejections(s.ingest.rejections_kept)
        self.arrivals = Tally(self.plans)  # verified deliveries per source, for the heartbeats (ingest/arrivals.py)
        self.ops_nets = network.networks(s.ingest.ops_allowlist)
        self.raw_topic, self.dlq_topic = s.topics.raw, s.topics.dead_letters
        self.serde = wire.serde(s)  # single-object Avro, or Confluent framing with a schema registry
        self.encode_raw = self.serde.encoder("raw_delivery", self.raw_topic)
        self.encode_dead = self.serde.encoder("dead_letter", self.dlq_topic)
        self.limit, self.read_timeout = s.ingest.max_body_bytes, s.ingest.read_timeout_s
        self._ready: tuple[float, bool, str] = (0.0, False, "not checked yet")
        logfilter.install()  # rejection warnings and aiohttp's bad-request errors: a few lines per reason, not a flood

    # -- /webhooks/{source} --------------------------------------------------------------------------------------
    async def webhook(self, request: web.Request) -> web.Response:
        name = request.match_info["source"]
        plan = self.plans.get(name)
        size = 0
        client = request.remote or ""
        verified: Inbound | None = None
        try:
            if plan is None:
                raise errors.unknown_source(name)
            path_secret = request.match_info.get("secret")
            if path_secret is not None and plan.url_secret_param is None:
                raise errors.unknown_source(name)  # no such path for this source
            method = request.method
            if method not in plan.methods:
                raise errors.method_not_allowed(method, plan.methods)
            headers = request.headers
            peer = client
            client = network.client_address(peer, headers.get("X-Forwarded-For"), plan.trusted)
            content_type = headers.get("Content-Type")
            size = request.content_length or 0  # what the client declared, until the body is read
            body.check_content_type(method, content_type, request.content_length, plan.content_types)
            wire = await body.read(request, self.limit, self.read_timeout)
            size = len(wire)
            data = body.decode(wire, headers.get("Content-Encoding"), self.limit)
            size = len(data)
            now = time.time()
            inbound = Inbound(method, request.path, request.rel_url.raw_query_string, headers, data, client,
                              network.is_secure(request.secure, peer, headers.get("X-Forwarded-Proto"), plan.trusted),
                              path_secret)
            reason = plan.verify(inbound, now)
            if reason is not None:
                metrics.VERIFY_FAILURES.labels(name, reason).inc()
                if reason in FORBIDDEN_REASONS:
                    raise errors.https_required() if reason == HTTPS_REQUIRED else errors.ip_not_allowed()
                raise errors.verification_failed(reason)
            metrics.body_bytes(name).observe(size)
            verified = inbound
            self.arrivals.note(name, now)
            return await self._store(plan, inbound, content_type, now)
        except errors.IngestError as e:
            label = name if plan is not None else metrics.UNKNOWN_SOURCE
            metrics.requests(label, e.status).inc()
            self._reject(label, e, client, request.method, size)
            return errors.from_error(e)
        except Exception:  # a bug (logged with its traceback, rate-limited): never lose a verified delivery to it
            log.exception("delivery failed", extra={"fields": {"source": name, "reason": "internal_error"}})
            label = name if plan is not None else metrics.UNKNOWN_SOURCE
            if plan is not None and verified is not None:
                try:
                    return await self._keep(plan, verified)
                except errors.IngestError as refused:  # Kafka did not take it either: 503, the sender may retry
                    metrics.requests(label, refused.status).inc()
                    self._reject(label, refused, client, request.method, size)
                    return errors.from_error(refused)
                except Exception:
                    log.exception("dead-lettering a failed delivery failed", extra={"fields": {
                        "source": name, "reason": "internal_error_keep"}})
            bug = errors.IngestError(500, "internal_error", "the delivery could not be processed; retry later")
            metrics.requests(label, 500).inc()
            self._reject(label, bug, client, request.method, size)
            return errors.from_error(bug)

    def _fits(self, size: int) -> None:
        if size > self.producer.record_limit:
            raise errors.record_too_large(size, self.producer.record_limit)

    def _timeout(self, plan: SourcePlan) -> float:
        return plan.options.produce_timeout_s or self.s.kafka.produce_timeout_s

    async def _store(self, plan: SourcePlan, req: Inbound, content_type: str | None, now: float) -> web.Response:
        qs = records.stored_query(plan, req.query_string)
        key = records.text(user_key(plan.settings.mmp, req.body, qs, content_type, plan.settings.options))
        raw = records.raw_delivery(plan, req, int(now * 1000), key)
        encoded, kb = self.encode_raw(raw), key.encode()
        self._fits(len(kb) + len(encoded))
        # a device/customer key means user_key parsed the body into fields: only fingerprinted ones need the check
        problem = records.body_problem(req.method, content_type, req.body, qs) if key.startswith("fp:") else None
        try:
            if problem is not None:
                reason, detail = problem
                dl = records.dead_letter(raw, reason, detail, int(time.time() * 1000), encoded)
                dead = self.encode_dead(dl)
                self._fits(len(kb) + len(dead))
                await self._put(plan, self.dlq_topic, kb, dead)
                metrics.DEAD_LETTERS.labels(plan.name, reason).inc()
                kept = errors.IngestError(400, reason, detail + "; the delivery was kept on the dead-letter topic")
                kept.delivery_id = raw["delivery_id"]
                raise kept
            status = await self._put(plan, self.raw_topic, kb, encoded)
        except ProduceError as exc:
            raise errors.unavailable(self.s.ingest.retry_after_s, f"kafka_{exc.reason}") from None
        metrics.requests(plan.name, 200).inc()
        metrics.store_seconds(status.decode()).observe(time.time() - now)
        return web.Response(body=b'{"status":"%s","delivery_id":"%s"}' % (status, raw["delivery_id"].encode()),
                            headers=_OK_HEADERS)

    async def _put(self, plan: SourcePlan, topic: str, key: bytes, value: bytes) -> bytes:
        """Store one record: b"stored" once Kafka acknowledged it, b"spooled" once it is fsync'd to the local spool
        (Kafka's ack not in within spool_after_s). Raises ProduceError when neither happened within the produce
        timeout (also when the spool is full or failing: then the request simply keeps waiting for Kafka)."""
        timeout = self._timeout(plan)
        spool_after = plan.options.spool_after_s or self.s.ingest.spool_after_s
        if self.spool is None or self.drainer is None or spool_after >= timeout:
            await self.producer.send(topic, key, value, timeout)
            return b"stored"
        started = time.monotonic()
        wait_s = self.slow_acks.wait_s(spool_after, started)  # shorter while Kafka is missing the whole wait
        first: asyncio.Future[Stored] | None = None
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        try:
            first = self.producer.submit(topic, key, value, wake=woken)
        except ProduceError:  # the local queue is full: nothing in flight, the spool alone can take it now
            pass
        else:
            if await self.producer.acked_within(first, wait_s, woken):
                return b"stored"
        self.slow_acks.missed(first, started, spool_after)
        try:
            seq = await self.spool.append(topic, key, value)
        except SpoolUnavailable:  # full or failing: wait for Kafka as without a spool; a late answer beats a 503
            if first is None:
                raise ProduceError("queue_full", "the local produce queue and the spool are full") from None
            return await self._late(first, timeout - (time.monotonic() - started))
        if first is not None and not (first.done() and first.exception() is not None):
            self.drainer.originals[seq] = first  # the drainer skips the record if this produce stores it after all
        metrics.spooled(plan.name).inc()
        return b"spooled"

    async def _late(self, first: asyncio.Future[Stored], remaining: float) -> bytes:
        if first.done():
            first.result()  # raises its ProduceError
            return b"stored"
        await self.producer.wait(first, max(remaining, 0.0))
        return b"stored"

    async def _keep(self, plan: SourcePlan, req: Inbound) -> web.Response:
        """Dead-letter a verified delivery the ingress failed on, from the fewest moving parts: exact body and header
        bytes, a fingerprint key. Answered 200: it is stored (for replay after the fix), a retry would not help."""
        try:
            qs = records.text(records.stored_query(plan, req.query_string))
        except Exception:  # noqa: BLE001 - the query may be what broke; it never goes out unstripped
            qs = ""
        now_ms = int(time.time() * 1000)
        key = "fp:" + hashlib.sha256(req.body).hexdigest()[:32]
        raw: dict[str, Any] = {
            "delivery_id": records.new_id(), "source": plan.name, "mmp": plan.settings.mmp,
            "app_id": plan.settings.app_id, "method": req.method, "path": f"/webhooks/{plan.name}",
            "query_string": qs, "headers": {},
            "header_bytes": {h: records.wire(v) for h in plan.stored_headers if (v := req.headers.get(h)) is not None},
            "body": req.body, "remote_addr": records.text(req.client), "received_at": now_ms, "user_key": key}
        dl = records.dead_letter(raw, "internal_error", "the ingress failed on this delivery; kept for replay",
                                 now_ms, self.encode_raw(raw))
        try:
            await self._put(plan, self.dlq_topic, key.encode(), self.encode_dead(dl))
        except ProduceError as exc:
            raise errors.unavailable(self.s.ingest.retry_after_s, f"kafka_{exc.reason}") from None
        metrics.DEAD_LETTERS.labels(plan.name, "internal_error").inc()
        metrics.requests(plan.name, 200).inc()
        return web.Response(body=b'{"status":"dead_lettered","delivery_id":"%s"}' % raw["delivery_id"].encode(),
                            headers=_OK_HEADERS)

    def _reject(self, source: str, e: errors.IngestError, client: str, method: str, size: int) -> None:
        client = records.text(client)
        self.rejections.add(Rejection(time.time(), source, e.status, e.code, e.reason, client, method, size,
                                      e.delivery_id or ""))
        # rate-limited per (source, reason) by logfilter.TokenBucket: a misconfigured sender must not flood the log
        log.warning("delivery rejected", extra={"fields": {
            "source": source, "status": e.status, "error": e.code, "reason": e.reason, "client": client,
            "size": size}})

    # -- operability -----------------------------------------------------------------------------------------------
    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        full = self.spool.above_high_water() if self.spool is not None else None
        if full is not None:  # a load balancer shifts traffic to replicas whose Kafka path is healthy
            return errors.response(503, "not_ready", full)
        at, ok, detail = self._ready
        if time.monotonic() - at > 1.0:  # at most one metadata request per second, whatever the probe rate
            loop = asyncio.get_running_loop()
            ok, detail = await loop.run_in_executor(None, self.producer.reachable, self.raw_topic)
            self._ready = (time.monotonic(), ok, detail)
        if ok:
            return web.json_response({"status": "ready", "detail": detail})
        return errors.response(503, "not_ready", detail)

    async def metrics(self, request: web.Request) -> web.Response:
        if self.spool is not None:
            self.spool.publish_age()  # the age grows between spool events
        data, ctype = metrics.exposition()
        return web.Response(body=data, headers={"Content-Type": ctype})

    async def rejections_view(self, request: web.Request) -> web.Response:
        if not network.contains(self.ops_nets, request.remote or ""):
            return errors.response(403, "forbidden", "operator endpoints are limited to ingest.ops_allowlist")
        source = request.query.get("source") or None
        try:
            limit = int(request.query.get("limit", "100"))
        except ValueError:
            return errors.response(400, "bad_request", "limit must be an integer")
        items = self.rejections.recent(source, limit)
        out: dict[str, Any] = {"total": self.rejections.total, "shown": len(items),
                               "rejections": [r.as_dict() for r in items]}
        return web.Response(body=json.dumps(out).encode(), content_type="application/json")


INGRESS = web.AppKey("ingress", Ingress)


def make_app(s: Settings, producer: DurableProducer | None = None) -> web.Application:
    """The application; the producer starts with the app and is flushed (drained) when it shuts down."""
    prod = producer or DurableProducer(s)
    ing = Ingress(s, prod)
    app = web.Application(client_max_size=s.ingest.max_body_bytes + 1)
    app[INGRESS] = ing
    app.router.add_route("*", "/webhooks/{source}", ing.webhook)
    app.router.add_route("*", "/webhooks/{source}/{secret}", ing.webhook)
    app.router.add_get("/healthz", ing.healthz)
    app.router.add_get("/readyz", ing.readyz)
    app.router.add_get("/metrics", ing.metrics)
    app.router.add_get("/ops/rejections", ing.rejections_view)

    async def start_producer(app: web.Application) -> None:
        loop = asyncio.get_running_loop()
        # registry lookups happen here, once, off the loop (a wrong registry URL fails the start)
        await loop.run_in_executor(None, ing.serde.prepare, [("raw_delivery", ing.raw_topic),
                                                             ("dead_letter", ing.dlq_topic)])
        prod.start(loop)
        if ing.spool is not None and ing.drainer is not None:
            await loop.run_in_executor(None, ing.spool.open)  # claims a slot; recovers a previous run's records
            ing.spool.start()
            ing.drainer.start()  # what a previous run left goes first

    async def drain_producer(app: web.Application) -> None:
        # runs after the server stopped accepting and in-flight handlers finished (AppRunner.cleanup order)
        if ing.spool is not None and ing.drainer is not None:
            await ing.drainer.stop(s.ingest.shutdown_timeout_s)  # what it can't drain stays for the next start
            await ing.spool.close()
        await prod.stop_polling()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, prod.close, s.ingest.shutdown_timeout_s)

    app.on_startup.append(start_producer)
    app.on_cleanup.append(drain_producer)
    return app


