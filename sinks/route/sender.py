"""One destination: its own queue, workers, rate limit and circuit breaker, so a slow or dead destination never holds
up another. Each job ends exactly once in ``on_done`` (delivered/skipped) or ``on_dead`` (dead-letter)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from attrib import http_errors
from attrib.errors import AttribError, Retryable
from attrib.settings import DestinationSettings
from sinks.route import template
from sinks.route.filters import Filter
from sinks.route.metrics import RouteMetrics
from sinks.route.policy import Breaker, TokenBucket, backoff, retry_after
from sinks.route.view import event_json

log = logging.getLogger("attrib.route")
RESPONSE_KEPT = 2048  # bytes of a failed response kept in the dead letter


@dataclass
class Job:
    record: dict[str, Any]
    view: dict[str, Any]
    partition: int
    offset: int
    payload: bytes  # the Avro record, kept in the dead letter for replay
    gen: int = 0  # the offset tracker's generation of this partition when the record was read


@dataclass
class Failure:
    reason: str  # http_503, timeout, connect_error, template_missing, circuit_open, http_400 …
    detail: dict[str, Any] = field(default_factory=dict)
    field: str | None = None


OnDone = Callable[[Job], None]
OnDead = Callable[[Job, str, Failure], Awaitable[None]]  # raises AttribError when the dead letter cannot be written


class Destination:
    def __init__(self, cfg: DestinationSettings, metrics: RouteMetrics, on_done: OnDone, on_dead: OnDead,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.filter = Filter.of(cfg.filters, cfg.events)
        template.check(cfg.url)
        if cfg.body:
            template.check(cfg.body)
        self.queue: asyncio.Queue[Job] = asyncio.Queue(cfg.queue_size)
        self.breaker = Breaker(cfg.breaker_failures, cfg.breaker_reset_s)
        self.bucket = TokenBucket(cfg.rate_per_s, cfg.burst)
        self.m = metrics
        self.on_done, self.on_dead = on_done, on_dead
        self.clock = clock
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self._headers = {k: v.get_secret_value() for k, v in cfg.headers.items()}

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.cfg.timeout_s),
            connector=aiohttp.TCPConnector(limit=self.cfg.concurrency))
        self._tasks = [asyncio.create_task(self._work(), name=f"route-{self.name}-{i}")
                       for i in range(self.cfg.concurrency)]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session:
            await self._session.close()

    async def submit(self, job: Job) -> None:
        """Queue a job. A full queue behind an open circuit is not waited for: the job is dead-lettered at once
        (reason circuit_open), so a dead destination cannot stall consumption for the healthy ones."""
        self.m.matched.labels(self.name).inc()
        while True:
            try:
                self.queue.put_nowait(job)
                self.m.queued.labels(self.name).set(self.queue.qsize())
                return
            except asyncio.QueueFull:
                if self.breaker.is_open:
                    self.m.dead.labels(self.name, "circuit_open").inc()
                    await self._dead_letter(job, Failure("circuit_open", {"queued": self.queue.qsize()}))
                    return
                await asyncio.sleep(0.01)

    async def _work(self) -> None:
        while True:
            job = await self.queue.get()
            self.m.queued.labels(self.name).set(self.queue.qsize())
            try:
                failure = await self.deliver(job)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # per-job boundary: never lose a job to a bug, dead-letter it
                log.exception("route delivery crashed", extra={"fields": {"destination": self.name}})
                failure = Failure("internal_error", {"error": repr(exc)})
            if failure is None:
                self.on_done(job)
            else:
                self.m.dead.labels(self.name, failure.reason).inc()
                await self._dead_letter(job, failure)

    async def _admit(self) -> None:
        """Wait until the circuit breaker lets a request through and the rate limit has a token for it."""
        while not self.breaker.allow(self.clock()):
            self.m.circuit_open.labels(self.name).set(1)
            await asyncio.sleep(self.breaker.wait_s(self.clock()))
        wait = self.bucket.take(self.clock())
        if wait:
            await asyncio.sleep(wait)

    async def _dead_letter(self, job: Job, failure: Failure) -> None:
        """Kafka refusing the dead letter must not lose the job nor kill this worker: retry until it is written
        (the record's offset stays uncommitted meanwhile)."""
        delay = 0.5
        while True:
            try:
                await self.on_dead(job, self.name, failure)
                return
            except asyncio.CancelledError:
                raise
            except AttribError as exc:  # Kafka refused or is down (on_dead raises our errors)
                log.error("route dead letter not written; retrying", extra={"fields": {
                    "destination": self.name, "error": str(exc), "retry_in_s": delay}})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    def request_parts(self, view: dict[str, Any], record: dict[str, Any]) -> tuple[str, bytes | None]:
        url = template.render_url(self.cfg.url, view, self.cfg.missing)
        if self.cfg.method == "GET":
            return url, None
        if self.cfg.body:
            return url, template.render_json(self.cfg.body, view, self.cfg.missing).encode()
        return url, json.dumps(event_json(record), ensure_ascii=False, separators=(",", ":")).encode()

    async def deliver(self, job: Job) -> Failure | None:
        try:
            url, body = self.request_parts(job.view, job.record)
        except template.SkipEvent:
            self.m.skipped.labels(self.name).inc()
            return None
        except template.MissingValue as exc:
            return Failure("template_missing", {"error": str(exc)}, field=exc.path)
        headers = {"Idempotency-Key": job.record["event_id"], "User-Agent": "attrib-route/1", **self._headers}
        if body is not None:
            headers["Content-Type"] = self.cfg.content_type
        attempt = 0
        assert self._session is not None
        while True:
            await self._admit()
            attempt += 1
            t0 = time.perf_counter()
            status: int | None = None
            resp_text, resp_headers = "", {}
            try:
                async with self._session.request(self.cfg.method, url, data=body, headers=headers) as resp:
                    status = resp.status
                    resp_text = (await resp.content.read(RESPONSE_KEPT)).decode("utf-8", "replace")
                    resp_headers = dict(resp.headers)
                failed = http_errors.for_status(status)
            except (TimeoutError, aiohttp.ClientError) as exc:
                failed = http_errors.mapped(exc)
                resp_text = failed.detail[:RESPONSE_KEPT]
            self.m.latency.labels(self.name).observe(time.perf_counter() - t0)
            if failed is None:
                self.breaker.record(True, self.clock())
                self.m.circuit_open.labels(self.name).set(0)
                self.m.sent.labels(self.name).inc()
                return None
            reason = failed.reason
            retryable = isinstance(failed, Retryable)
            # A non-retryable 4xx is this event's fault, not the destination's: it doesn't count towards the breaker.
            self.breaker.record(not retryable, self.clock())
            self.m.circuit_open.labels(self.name).set(1 if self.breaker.is_open else 0)
            self.m.failed.labels(self.name, reason).inc()
            if not retryable or attempt >= self.cfg.max_attempts:
                return Failure(reason, {"destination": self.name, "attempts": attempt, "status": status,
                                        "response": resp_text, "url": _strip_query(url), "method": self.cfg.method})
            delay = backoff(attempt, self.cfg.backoff_initial_s, self.cfg.backoff_max_s)
            hinted = retry_after(resp_headers.get("Retry-After"), self.cfg.backoff_max_s)
            log.info("route retry", extra={"fields": {"destination": self.name, "attempt": attempt,
                                                      "reason": reason, "delay_s": round(delay, 3)}})
            await asyncio.sleep(max(delay, hinted or 0.0))


def _strip_query(url: str) -> str:
    """URLs may carry tokens or user ids in their query: dead letters keep only scheme, host and path."""
    return url.split("?", 1)[0]
