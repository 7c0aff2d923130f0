"""Durable produce for the request path: a record counts as stored only when Kafka acknowledged it (acks=all,
idempotent producer), and the caller waits a bounded time for that.

librdkafka delivers reports on whichever thread calls ``poll``. The event loop itself polls (non-blocking, every
millisecond while records are in flight), so reports resolve request futures directly: no Python thread competing
for the GIL and no cross-thread wake-up per record (a polling thread cost ~10% more CPU per delivery in
bench/ingest.py). The poll is a bare timer callback, not a task sleeping 1 ms (no future and task step per tick: at
~600 deliveries/s the loop ticks ~1,000 times a second), and a record's bookkeeping happens in its delivery report
(every produced record gets exactly one), not in a done-callback per future."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from attrib import kafka
from attrib.errors import DependencyUnavailable
from attrib.settings import Settings
from ingest import metrics

log = logging.getLogger("attrib.ingest.producer")

# Settings the ingress relies on; ingest.producer overrides can add, never weaken these.
FIXED = {"acks": "all", "enable.idempotence": True, "partitioner": "murmur2_random"}
# Largest record produced: under the broker's default record-batch limit (message.max.bytes = max.message.bytes =
# 1,048,588) less batch framing. Raise it (ingest.producer) only with the topics' max.message.bytes.
MESSAGE_MAX_BYTES = 1_048_000
RECORD_FRAMING = 512  # per-record bytes besides key and value (lengths, offsets, timestamp), with room to spare
POLL_S, IDLE_POLL_S = 0.001, 0.5  # delivery-report polling while records are in flight / while none are


class ProduceError(DependencyUnavailable):
    """Kafka did not acknowledge the record (``reason``: timeout, queue_full, or a librdkafka error name)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Stored:
    topic: str
    partition: int
    offset: int


def longest_wait_s(s: Settings) -> float:
    """The longest any request waits for an ack: kafka.produce_timeout_s or a source's options.produce_timeout_s."""
    waits = [s.kafka.produce_timeout_s]
    for src in s.sources:
        with contextlib.suppress(TypeError, ValueError):  # compile_source refuses it at start-up, naming the key
            waits.append(float(src.options.get("produce_timeout_s") or 0))
    return max(waits)


def config(s: Settings) -> dict[str, Any]:
    timeout_ms = int(longest_wait_s(s) * 1000)
    conf: dict[str, Any] = {
        "linger.ms": s.ingest.linger_ms,
        "compression.type": "none",  # loopback/LAN: CPU matters more than bytes; set lz4 via ingest.producer
        # librdkafka gives up at about the moment the request does: fewer records stored after a 503 was answered
        # (those would only be duplicates of the sender's retry, which streams dedupe anyway).
        "message.timeout.ms": max(timeout_ms, 1000),
        "message.max.bytes": MESSAGE_MAX_BYTES,
        "log_level": 3,
    }
    conf.update({k: v for k, v in s.ingest.producer.items()})
    conf.update(FIXED)
    return kafka.producer_config(s, "ingest", conf)


class DurableProducer:
    def __init__(self, s: Settings) -> None:
        self._conf = config(s)
        self._timeout = s.kafka.produce_timeout_s
        # a record over this is refused by librdkafka (or the broker) on every try: checked before producing
        self.record_limit = int(self._conf["message.max.bytes"]) - RECORD_FRAMING
        self._p = kafka.producer(s, "ingest", {**self._conf, "error_cb": self._on_error,
                                               "logger": logging.getLogger("attrib.ingest.kafka")})
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.Handle | None = None  # the next poll; None once polling stopped
        self._fast = False  # the timer is the in-flight (POLL_S) one, not the idle one
        self._pending = 0  # produced, delivery report not seen yet
        self._closing = False
        self.last_error: str | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._timer = loop.call_soon(self._tick)

    def close(self, timeout: float = 10.0) -> int:
        """Wait (blocking) for queued records; returns how many were still undelivered. Called after the server
        stopped taking requests and in-flight handlers finished (server.py), so no request waits for these reports."""
        if self._closing:  # idempotent: a runner may clean up twice
            return 0
        self._closing = True
        remaining = self._p.flush(timeout)
        if remaining:
            log.error("producer closed with undelivered records", extra={"fields": {"undelivered": remaining}})
            self._p.purge()  # their senders got 503 already; don't let close() wait for them
        self._p.close()  # stop librdkafka's threads now, not whenever the object is collected
        return remaining

    async def stop_polling(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- the request path ------------------------------------------------------------------------------------------
    def submit(self, topic: str, key: bytes | None, value: bytes, headers: tuple[tuple[str, bytes], ...] = (),
               wake: asyncio.Future[None] | None = None) -> asyncio.Future[Stored]:
        """Produce; the future resolves with Kafka's acknowledgement or its delivery error (after at most
        message.timeout.ms). Raises ProduceError when librdkafka refuses the record outright (queue full).
        ``wake`` (for :meth:`acked_within`) is resolved by the delivery report itself, right after the future."""
        loop = self._loop
        assert loop is not None, "start() the producer first"
        fut: asyncio.Future[Stored] = loop.create_future()
        started = time.perf_counter()
        try:
            self._p.produce(topic, value, key, headers=list(headers) or None,
                            on_delivery=lambda err, msg: self._report(fut, err, msg, started, wake))
        except BufferError:
            metrics.KAFKA_ERRORS.labels("queue_full").inc()
            raise ProduceError("queue_full", "the local produce queue is full") from None
        except KafkaException as exc:
            metrics.KAFKA_ERRORS.labels("produce").inc()
            raise ProduceError("produce", str(exc)) from None
        metrics.IN_FLIGHT.inc()
        self._pending += 1
        if not self._fast and self._timer is not None:  # was idle: poll at the in-flight pace from now on
            self._timer.cancel()
            self._fast = True
            self._timer = loop.call_later(POLL_S, self._tick)
        return fut

    async def send(self, topic: str, key: bytes | None, value: bytes, timeout: float | None = None) -> Stored:
        """Produce and wait for Kafka's acknowledgement, at most ``timeout`` s (default kafka.produce_timeout_s)."""
        return await self.wait(self.submit(topic, key, value), self._timeout if timeout is None else timeout)

    async def wait(self, fut: asyncio.Future[Stored], timeout: float) -> Stored:
        """Wait for a submitted record's acknowledgement at most ``timeout`` s; then it counts as not stored."""
        assert self._loop is not None
        # a bare timer on the future (cheaper than asyncio.timeout on the hot path)
        expiry = self._loop.call_later(timeout, _expire, fut)
        try:
            return await fut
        finally:
            expiry.cancel()

    async def acked_within(self, fut: asyncio.Future[Stored], seconds: float,
                           waiter: asyncio.Future[None] | None = None) -> bool:
        """Whether a submitted record is acknowledged within ``seconds``; unlike ``wait`` the produce goes on after
        a False (the spool path hands the still-running produce to the drainer). ``waiter``: the ``wake`` given to
        :meth:`submit` — the report then wakes this wait directly (without it, a done-callback on ``fut`` does, one
        more loop callback per record)."""
        if fut.done():
            return not fut.cancelled() and fut.exception() is None
        assert self._loop is not None
        done_cb = None
        if waiter is None:
            waiter = self._loop.create_future()
            done_cb = functools.partial(_wake_on_done, waiter)
            fut.add_done_callback(done_cb)
        expiry = self._loop.call_later(seconds, _wake, waiter)  # the same bare timer as ``wait``
        try:
            await waiter
        finally:
            expiry.cancel()
            if done_cb is not None:
                fut.remove_done_callback(done_cb)
        return fut.done() and not fut.cancelled() and fut.exception() is None

    # -- delivery reports ------------------------------------------------------------------------------------------
    def _tick(self) -> None:
        try:
            self._p.poll(0)  # non-blocking: runs the on_delivery callbacks of whatever Kafka acknowledged
        finally:  # a callback that raised (logged by the loop) must not end the polling
            if self._timer is not None and self._loop is not None:  # else polling stopped meanwhile
                # idle: every IDLE_POLL_S until a produce (error callbacks wait for the next poll; fine when idle)
                self._fast = self._pending > 0
                self._timer = self._loop.call_later(POLL_S if self._fast else IDLE_POLL_S, self._tick)

    def _report(self, fut: asyncio.Future[Stored], err: KafkaError | None, msg: Any, started: float,
                wake: asyncio.Future[None] | None) -> None:
        self._pending -= 1
        metrics.IN_FLIGHT.dec()
        if self._closing or fut.done():  # shutting down (flush thread), or the request gave up and answered 503
            return
        if err is not None:
            metrics.KAFKA_ERRORS.labels("delivery").inc()
            fut.set_exception(ProduceError(err.name(), err.str()))
            fut.exception()  # retrieved: a record nobody waits for any more must not log "never retrieved"
        else:
            metrics.PRODUCE_SECONDS.observe(time.perf_counter() - started)
            fut.set_result(Stored(msg.topic(), msg.partition(), msg.offset()))
        if wake is not None and not wake.done():
            wake.set_result(None)

    def _on_error(self, err: KafkaError) -> None:
        self.last_error = err.name()
        metrics.KAFKA_ERRORS.labels("client").inc()
        level = logging.ERROR if err.fatal() else logging.WARNING
        log.log(level, "kafka client error", extra={"fields": {"code": err.name(), "detail": err.str()}})

    # -- readiness -------------------------------------------------------------------------------------------------
    def reachable(self, topic: str, timeout: float = 2.0) -> tuple[bool, str]:
        """Blocking: can the producer see the broker and the topic's partitions? (run in an executor)"""
        try:
            md = self._p.list_topics(topic, timeout=timeout)
        except KafkaException as exc:
            return False, f"kafka unreachable: {exc.args[0].name() if exc.args else exc}"
        t = md.topics.get(topic)
        if t is None or t.error is not None or not t.partitions:
            return False, f"topic {topic} not available" + (f": {t.error.name()}" if t and t.error else "")
        return True, f"{len(t.partitions)} partitions"


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _wake_on_done(waiter: asyncio.Future[None], _: object) -> None:
    _wake(waiter)


def _expire(fut: asyncio.Future[Stored]) -> None:
    if not fut.done():
        metrics.KAFKA_ERRORS.labels("timeout").inc()
        fut.set_exception(ProduceError("timeout", "Kafka did not acknowledge in time"))
        fut.exception()  # retrieved (see _report)
