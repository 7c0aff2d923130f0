"""The aiohttp application: ``/webhooks/{source}`` (POST, and GET for sources that allow it), ``/healthz``,
``/readyz``, ``/metrics`` and ``/ops/rejections``.

Request path, cheapest refusal first: source → method → content type / declared size → body (bounded, with a
deadline, decoded with a bound) → verification on the raw bytes → user key → produce and wait for Kafka's ack.
Only then 200. A verified sender's unusable body goes to the dead-letter topic (also acked) and is answered 400."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from aiohttp import web

from attrib.settings import Settings
from ingest import body, errors, metrics, records
from ingest.producer import DurableProducer, ProduceError
from ingest.rejections import Rejection, Rejections
from ingest.sources import SourcePlan, compile_all
from ingest.verify import FORBIDDEN_REASONS, HTTPS_REQUIRED, Inbound, network
from schemas import avro
from schemas.user_key import user_key

log = logging.getLogger("attrib.ingest")
_OK_HEADERS = {"Content-Type": "application/json"}


class Ingress:
    """Per-process state shared by the handlers."""

    def __init__(self, s: Settings, producer: DurableProducer) -> None:
        self.s = s
        self.plans: dict[str, SourcePlan] = compile_all(s)
        self.producer = producer
        self.rejections = Rejections(s.ingest.rejections_kept)
        self.ops_nets = network.networks(s.ingest.ops_allowlist)
        self.raw_topic, self.dlq_topic = s.topics.raw, s.topics.dead_letters
        self.limit, self.read_timeout = s.ingest.max_body_bytes, s.ingest.read_timeout_s
        self._ready: tuple[float, bool, str] = (0.0, False, "not checked yet")
        self._log_gate: dict[tuple[str, str], float] = {}

    # -- /webhooks/{source} --------------------------------------------------------------------------------------
    async def webhook(self, request: web.Request) -> web.Response:
        name = request.match_info["source"]
        plan = self.plans.get(name)
        size = 0
        client = request.remote or ""
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
            return await self._store(plan, inbound, content_type, now)
        except errors.IngestError as e:
            label = name if plan is not None else metrics.UNKNOWN_SOURCE
            metrics.requests(label, e.status).inc()
            self._reject(label, e, client, request.method, size)
            return errors.from_error(e)

    async def _store(self, plan: SourcePlan, req: Inbound, content_type: str | None, now: float) -> web.Response:
        qs = records.stored_query(plan, req.query_string)
        key = user_key(plan.settings.mmp, req.body, qs, content_type, plan.settings.options)
        raw = records.raw_delivery(plan, req, int(now * 1000), key)
        encoded = avro.encode("raw_delivery", raw)
        # a device/customer key means user_key parsed the body into fields: only fingerprinted ones need the check
        problem = records.body_problem(req.method, content_type, req.body, qs) if key.startswith("fp:") else None
        try:
            if problem is not None:
                reason, detail = problem
                dl = records.dead_letter(raw, reason, detail, int(time.time() * 1000), encoded)
                await self.producer.send(self.dlq_topic, key.encode(), avro.encode("dead_letter", dl))
                metrics.DEAD_LETTERS.labels(plan.name, reason).inc()
                raise errors.IngestError(400, reason, detail + "; the delivery was kept on the dead-letter topic")
            await self.producer.send(self.raw_topic, key.encode(), encoded)
        except ProduceError as exc:
            raise errors.unavailable(self.s.ingest.retry_after_s, f"kafka_{exc.reason}") from None
        metrics.requests(plan.name, 200).inc()
        return web.Response(body=b'{"status":"stored","delivery_id":"%s"}' % raw["delivery_id"].encode(),
                            headers=_OK_HEADERS)

    def _reject(self, source: str, e: errors.IngestError, client: str, method: str, size: int) -> None:
        self.rejections.add(Rejection(time.time(), source, e.status, e.code, e.reason, client, method, size))
        # one log line per (source, reason) per second: a misconfigured sender must not flood the log
        gate, now = (source, e.reason), time.monotonic()
        if now - self._log_gate.get(gate, 0.0) >= 1.0:
            self._log_gate[gate] = now
            log.warning("delivery rejected", extra={"fields": {
                "source": source, "status": e.status, "error": e.code, "reason": e.reason, "client": client,
                "size": size}})

    # -- operability -----------------------------------------------------------------------------------------------
    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        at, ok, detail = self._ready
        if time.monotonic() - at > 1.0:  # at most one metadata request per second, whatever the probe rate
            loop = asyncio.get_running_loop()
            ok, detail = await loop.run_in_executor(None, self.producer.reachable, self.raw_topic)
            self._ready = (time.monotonic(), ok, detail)
        if ok:
            return web.json_response({"status": "ready", "detail": detail})
        return errors.response(503, "not_ready", detail)

    async def metrics(self, request: web.Request) -> web.Response:
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
        prod.start(asyncio.get_running_loop())

    async def drain_producer(app: web.Application) -> None:
        # runs after the server stopped accepting and in-flight handlers finished (AppRunner.cleanup order)
        await prod.stop_polling()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, prod.close, s.ingest.shutdown_timeout_s)

    app.on_startup.append(start_producer)
    app.on_cleanup.append(drain_producer)
    return app


