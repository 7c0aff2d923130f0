"""Fill the inspector's store: accepted deliveries from the raw topic, outcomes from the worker's output and the
dead letters, open alerts from the alert topics (a consumer thread without a group), and rejections from the
ingress's ``/ops/rejections`` feed (verification failures never reach Kafka)."""

from __future__ import annotations

import asyncio
import calendar
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp
from confluent_kafka import OFFSET_END, Consumer, KafkaException, TopicPartition

from attrib import kafka
from attrib.errors import AttribError
from attrib.settings import Settings
from ops.inspect.redact import Redactor
from ops.inspect.store import Row
from schemas import wire

log = logging.getLogger("attrib.inspect")
Item = tuple[Any, ...]  # ("row", Row, ref) | ("outcome", ref, delivery_id, event_type, outcome) | ("alert", dict)


def redactor_for(s: Settings) -> Redactor:
    secrets = [x.get_secret_value() for src in s.sources for x in src.secrets]
    if s.inspector.token:
        secrets.append(s.inspector.token.get_secret_value())
    return Redactor(secrets, s.inspector.redact_keys)


def _ms(v: Any) -> int:
    return int(v.timestamp() * 1000) if hasattr(v, "timestamp") else int(v)


def _ref(r: dict[str, Any] | None) -> tuple[str, int, int] | None:
    return (r["topic"], r["partition"], r["offset"]) if r else None


def convert(s: Settings, red: Redactor, topic: str, partition: int, offset: int, value: bytes | None) -> Item | None:
    """One Kafka record → one store item (None for anything else, e.g. the worker's ticks)."""
    try:
        name, rec = wire.cached(s).decode(value or b"")
    except AttribError:  # undecodable, or the registry is down: nothing to show
        return None
    t = s.topics
    if topic == t.raw and name == "raw_delivery":
        src = s.source(rec["source"])
        verify = list(src.verify) if src else []
        body = rec["body"] if rec["body"] else rec["query_string"].encode()
        ctype = rec["headers"].get("content-type")
        row = Row(at=_ms(rec["received_at"]), source=rec["source"], method=rec["method"], status="accepted",
                  http_status=200, verification="passed" if verify else "none",
                  reason="+".join(verify) if verify else "no verification configured", size=len(rec["body"]),
                  user_key=red.user_key(rec["user_key"]), delivery_id=rec["delivery_id"],
                  payload=red.body(body, ctype))
        return ("row", row, (topic, partition, offset))
    if topic == t.events and name == "enriched_event":
        return ("outcome", _ref(rec.get("raw")), None, rec["event_type"], "event")
    if topic == t.dead_letters and name == "dead_letter":
        if rec["stage"] == "route":
            return None  # outbound failures are not about a delivery
        if rec["stage"] == "ingress" and rec.get("payload"):
            try:
                _, raw = wire.cached(s).decode(rec["payload"], expect="raw_delivery")
            except AttribError:
                raw = None
            if raw is not None:
                row = Row(at=_ms(raw["received_at"]), source=raw["source"], method=raw["method"],
                          status="dead_letter", http_status=400, verification="passed", reason=rec["reason"],
                          size=len(raw["body"]), user_key=red.user_key(raw["user_key"]),
                          delivery_id=raw["delivery_id"], outcome=f"dead letter: {rec['reason']}",
                          payload=red.body(raw["body"] or raw["query_string"].encode()))
                return ("row", row, None)
        return ("outcome", _ref(rec.get("raw")), rec.get("delivery_id"), "", f"dead letter: {rec['reason']}")
    if topic in (t.alerts_spike, t.alerts_drop) and name == "alert":
        a = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in rec.items()}
        return ("alert", a)
    return None


class KafkaFeed:
    """Reads the topics from ``since_ms`` (alerts from ``alerts_since_ms``) in a thread; hands items to ``emit``."""

    def __init__(self, s: Settings, emit: Callable[[Item], object], since_ms: int, alerts_since_ms: int | None = None,
                 topics: list[str] | None = None) -> None:
        self.s, self.emit = s, emit
        self.red = redactor_for(s)
        self.since, self.alerts_since = since_ms, alerts_since_ms if alerts_since_ms is not None else since_ms
        t = s.topics
        self.topics = topics or [t.raw, t.events, t.dead_letters, t.alerts_spike, t.alerts_drop]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="inspect-feed", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _assign(self, c: Consumer) -> None:
        meta = c.list_topics(timeout=10).topics
        wanted = []
        for topic in self.topics:
            if topic not in meta or meta[topic].error is not None:
                continue
            ts = self.alerts_since if topic in (self.s.topics.alerts_spike, self.s.topics.alerts_drop) else self.since
            wanted += [TopicPartition(topic, p, ts) for p in meta[topic].partitions]
        found = c.offsets_for_times(wanted, timeout=10) if wanted else []
        c.assign([TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_END)
                  for tp in found])

    def _run(self) -> None:
        c = kafka.consumer(self.s, "inspect", f"inspect-{uuid.uuid4().hex}",
                           {"enable.auto.commit": False, "topic.metadata.refresh.interval.ms": 10_000})
        try:
            retry_at = 0.0
            while not self._stop.is_set():
                if not c.assignment() and time.monotonic() >= retry_at:
                    try:
                        self._assign(c)  # topics may not exist yet, or have no leader yet: retry
                    except KafkaException as exc:
                        log.info("inspector feed: topics not ready", extra={"fields": {"error": str(exc)}})
                    retry_at = time.monotonic() + 1.0
                for m in c.consume(200, 0.2):
                    topic, partition, offset = m.topic(), m.partition(), m.offset()
                    if m.error() or topic is None or partition is None or offset is None:
                        continue
                    item = convert(self.s, self.red, topic, partition, offset, m.value())
                    if item is not None:
                        self.emit(item)
        except Exception:  # the feed thread's boundary: say why it stopped (the page then shows no new rows)
            log.exception("inspector feed stopped")
        finally:
            c.close()


def rejection_row(r: dict[str, Any]) -> Row:
    at = r.get("at", "")
    try:
        ms = calendar.timegm(time.strptime(at[:19], "%Y-%m-%dT%H:%M:%S")) * 1000 + int(at[20:23] or 0)
    except (ValueError, TypeError):
        ms = int(time.time() * 1000)
    error = str(r.get("error", ""))
    return Row(at=ms, source=str(r.get("source", "?")), method=str(r.get("method", "")), status="rejected",
               http_status=int(r.get("status", 0) or 0),
               verification="failed" if r.get("status") in (401, 403) else "not checked",
               reason=str(r.get("reason") or error), size=int(r.get("size", 0) or 0),
               delivery_id=str(r.get("delivery_id") or ""))


class RejectionPoller:
    """Polls the ingress's ``/ops/rejections`` (newest first, with a running ``total``) and emits the new ones."""

    def __init__(self, url: str, emit: Callable[[Item], None], interval_s: float = 1.0,
                 source: str | None = None) -> None:
        self.url, self.emit, self.interval, self.source = url, emit, interval_s, source
        self.total: int | None = None
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    async def poll_once(self, http: aiohttp.ClientSession) -> int:
        params = {"limit": "500", **({"source": self.source} if self.source else {})}
        async with http.get(self.url, params=params) as resp:
            resp.raise_for_status()
            data = await resp.json()
        total, items = int(data.get("total", 0)), list(data.get("rejections", []))
        fresh = items if self.total is None or total < self.total else items[: total - self.total]
        self.total = total
        for r in reversed(fresh):
            self.emit(("row", rejection_row(r), None))
        return len(fresh)

    async def _run(self) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            warned = False
            while True:
                try:
                    await self.poll_once(http)
                    warned = False
                except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
                    if not warned:
                        log.warning("rejection feed unavailable", extra={"fields": {"url": self.url,
                                                                                    "error": str(exc)}})
                        warned = True
                await asyncio.sleep(self.interval)
