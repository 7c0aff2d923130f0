"""`attrib notify`: alerts (and qualified-install pings) to Slack incoming webhooks.

Delivery rules: one webhook per severity (channel routing; default ``slack_webhook_url``); at most one message per
``slack_min_interval_s`` per webhook; HTTP 429 waits ``Retry-After``; 5xx, timeouts and connection errors retry with
capped exponential backoff, forever — Kafka offsets are committed only after Slack accepted every message before
them, so a Slack outage delays alerts but loses none. A payload Slack rejects as invalid (other 4xx) is retried once
as plain text, then logged and skipped so one bad message cannot block the channel.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import aiohttp

from alerts import slack_blocks
from attrib import kafka
from attrib.errors import ConfigurationError, DependencyUnavailable, Permanent
from attrib.settings import QualifiedInstallRule, Settings
from schemas import avro, wire

log = logging.getLogger("attrib.notify")
HELP = "deliver spike/drop alerts and qualified-install pings to Slack"
TICK = avro.TICK


class SlackRejected(Permanent):
    """Slack refused the message itself (4xx other than 429): sending it again as it is cannot succeed."""


class SlackUnavailable(DependencyUnavailable):
    """Slack did not accept the message for now (5xx, 429, timeout, connection error); ``retry_after_s`` when it
    said when to come back."""

    def __init__(self, msg: str, retry_after_s: float | None = None) -> None:
        super().__init__(msg)
        self.retry_after_s = retry_after_s


class SlackPoster:
    """Rate-limited, retrying webhook client (one pacing clock per webhook URL)."""

    def __init__(self, session: aiohttp.ClientSession, min_interval_s: float = 1.0, timeout_s: float = 10.0,
                 max_backoff_s: float = 60.0, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.session = session
        self.min_interval = min_interval_s
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.max_backoff = max_backoff_s
        self.sleep = sleep
        self._next: dict[str, float] = {}
        self.attempts = 0

    async def _pace(self, url: str) -> None:
        wait = self._next.get(url, 0.0) - time.monotonic()
        if wait > 0:
            await self.sleep(wait)

    async def send_once(self, url: str, body: dict[str, Any]) -> None:
        """One attempt; aiohttp's and Slack's failures mapped to ours (the seam): SlackRejected or
        SlackUnavailable."""
        await self._pace(url)
        self.attempts += 1
        try:
            async with self.session.post(url, json=body, timeout=self.timeout) as r:
                self._next[url] = time.monotonic() + self.min_interval
                text = await r.text()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise SlackUnavailable(f"unreachable: {type(exc).__name__}: {exc}"[:300]) from exc
        if 200 <= r.status < 300:
            return
        if r.status == 429:
            retry = _retry_after(r.headers.get("Retry-After"))
            self._next[url] = time.monotonic() + retry
            raise SlackUnavailable("rate limited", retry_after_s=retry)
        if 400 <= r.status < 500:
            raise SlackRejected(f"{r.status} {text[:200]}")
        raise SlackUnavailable(f"HTTP {r.status} {text[:200]}")

    async def post(self, url: str, payload: dict[str, Any]) -> None:
        """Return once Slack accepted the message; raise SlackRejected only for a payload Slack refuses even as plain
        text. Unavailability is retried forever (capped exponential backoff; 429 waits Retry-After)."""
        backoff = 1.0
        plain = False
        while True:
            body = {"text": payload.get("text", "")} if plain else payload
            try:
                await self.send_once(url, body)
                return
            except SlackRejected as exc:
                log.error("slack rejected message", extra={"fields": {"error": str(exc)[:200], "plain": plain}})
                if plain:
                    raise
                plain = True
                continue
            except SlackUnavailable as exc:
                if exc.retry_after_s is not None:  # paced by _pace on the next attempt
                    log.warning("slack rate limited", extra={"fields": {"retry_after_s": exc.retry_after_s}})
                    continue
                log.warning("slack unavailable", extra={"fields": {"error": str(exc)[:200], "retry_in_s": backoff}})
            await self.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff)


def _retry_after(v: str | None) -> float:
    try:
        return max(0.0, float(v)) if v is not None else 1.0
    except ValueError:
        return 1.0


def qualifies(rule: QualifiedInstallRule, e: dict[str, Any]) -> bool:
    if not rule.enabled or e.get("event_type") not in rule.event_types:
        return False
    if rule.campaigns and e.get("campaign") in rule.campaigns:
        return True
    rev = e.get("revenue")
    return rule.min_revenue is not None and rev is not None and Decimal(rev) >= Decimal(str(rule.min_revenue))


class Notifier:
    """Alert records -> Slack messages, with the per-alert repeat/duplicate policy (in memory)."""

    def __init__(self, s: Settings, poster: SlackPoster) -> None:
        self.s = s
        self.poster = poster
        self.sent_at: dict[str, float] = {}  # alert_id -> bucket_end (ms) of the last firing message sent
        self.resolved: set[str] = set()
        self.pings: list[dict[str, Any]] = []
        self.pings_since: float | None = None

    def url(self, severity: str) -> str:
        w = self.s.alerts.slack.webhooks.get(severity) or self.s.slack_webhook_url  # type: ignore[call-overload]
        if w is None:
            raise ConfigurationError("no Slack webhook configured (ATTRIB_SLACK_WEBHOOK_URL or "
                                     "ATTRIB_ALERTS__SLACK__WEBHOOKS)")
        return w.get_secret_value()

    async def alert(self, a: dict[str, Any]) -> bool:
        """Send one alert unless it repeats too soon or was already resolved; True if a message went out."""
        aid = a["alert_id"]
        end = slack_blocks._ts(a["bucket_end"]).timestamp() * 1000
        if a["state"] == "resolved":
            if aid in self.resolved:
                return False
            self.resolved.add(aid)
        else:
            last = self.sent_at.get(aid)
            if aid in self.resolved or (last is not None and end - last < self.s.alerts.detect.repeat_s * 1000):
                return False
            self.sent_at[aid] = end
        sl = self.s.alerts.slack
        msg = slack_blocks.alert_message(a, database=sl.sql_database or self.s.clickhouse.database,
                                         bucket_s=self.s.alerts.detect.bucket_s, dashboard_url=sl.dashboard_url)
        await self._post(str(a.get("severity", "warning")), msg)
        log.info("alert sent", extra={"fields": {"alert_id": aid, "state": a["state"], "severity": a.get("severity")}})
        return True

    def event(self, e: dict[str, Any]) -> None:
        if qualifies(self.s.alerts.slack.qualified, e):
            if not self.pings:
                self.pings_since = time.monotonic()
            self.pings.append(e)

    def pings_due(self) -> bool:
        return bool(self.pings) and (len(self.pings) >= self.s.alerts.slack.ping_batch_max or
                                     time.monotonic() - (self.pings_since or 0) >= self.s.alerts.slack.ping_batch_s)

    async def flush_pings(self) -> None:
        while self.pings:
            n = self.s.alerts.slack.ping_batch_max
            batch, self.pings = self.pings[:n], self.pings[n:]
            await self._post("info", slack_blocks.pings_message(batch))
        self.pings_since = None

    async def _post(self, severity: str, msg: dict[str, Any]) -> None:
        try:
            await self.poster.post(self.url(severity), msg)
        except SlackRejected as exc:
            log.error("message dropped after Slack rejected it twice", extra={"fields": {"error": str(exc)}})


async def run(s: Settings, stop: asyncio.Event) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    a = s.alerts.slack
    topics = [s.topics.alerts_spike, s.topics.alerts_drop] + ([s.topics.events] if a.qualified.enabled else [])
    consumer = AIOKafkaConsumer(*topics, **kafka.aiokafka_consumer(s, "notifier", a.group_id, topics),
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                max_poll_interval_ms=3_600_000)  # Slack may be down for a while: keep the group
    serde = wire.serde(s)  # reads single-object Avro and Confluent framing alike

    async def decode(value: bytes, expect: str) -> tuple[str, dict[str, Any]]:
        while True:  # a registry outage delays alerts, never skips them
            try:
                return serde.decode(value, expect)
            except wire.RegistryError as exc:
                log.warning("schema registry unavailable; retrying", extra={"fields": {"error": str(exc)[:300]}})
                await asyncio.sleep(5)

    async with aiohttp.ClientSession() as session:
        n = Notifier(s, SlackPoster(session, a.min_interval_s, a.timeout_s, a.max_backoff_s))
        await consumer.start()
        pending: dict[TopicPartition, int] = {}  # events offsets to commit once buffered pings are sent
        last_commit = time.monotonic()
        try:
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=500, max_records=500)
                for tp, msgs in batch.items():
                    for m in msgs:
                        if m.value is None or m.value.startswith(TICK):  # tombstone / tick record: nothing to say
                            continue
                        is_event = tp.topic == s.topics.events
                        try:
                            _, rec = await decode(m.value, expect="enriched_event" if is_event else "alert")
                            if is_event:
                                n.event(rec)
                            else:
                                await n.alert(rec)
                        except (avro.AvroError, KeyError, TypeError, ValueError) as exc:  # an undecodable or
                            # incomplete record must not stop the channel (Slack outages never get here: the poster
                            # retries them itself)
                            log.warning("record skipped", extra={"fields": {
                                "topic": tp.topic, "partition": tp.partition, "offset": m.offset,
                                "error": f"{type(exc).__name__}: {exc}"[:300]}})
                    if tp.topic == s.topics.events:
                        pending[tp] = msgs[-1].offset + 1
                    else:
                        await consumer.commit({tp: msgs[-1].offset + 1})
                if n.pings_due():
                    await n.flush_pings()
                if pending and not n.pings and time.monotonic() - last_commit >= 1.0:
                    await consumer.commit(dict(pending))
                    pending.clear()
                    last_commit = time.monotonic()
        finally:
            await consumer.stop()


def add_arguments(p: argparse.ArgumentParser) -> None:
    pass


def main(args: argparse.Namespace, s: Settings) -> int:
    missing = [sev for sev in ("info", "warning", "critical")
               if s.alerts.slack.webhooks.get(sev) is None and s.slack_webhook_url is None]
    if missing:
        print(f"attrib notify: no Slack webhook for {', '.join(missing)}: set ATTRIB_SLACK_WEBHOOK_URL or "
              f"ATTRIB_ALERTS__SLACK__WEBHOOKS__{missing[0].upper()}", file=sys.stderr)
        return 2

    async def go() -> None:
        stop = asyncio.Event()
        task = asyncio.current_task()
        assert task is not None

        def quit_() -> None:  # a message stuck in Slack retries is simply not committed: it is re-read next start
            stop.set()
            task.cancel()

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, quit_)
        with contextlib.suppress(asyncio.CancelledError):
            await run(s, stop)

    asyncio.run(go())
    return 0
