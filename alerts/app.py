"""`attrib alerts`: the Faust app that counts events per (app, media source, event type) per bucket and runs the
detector (alerts/detector.py) on closed buckets.

Two stages, so one place sees every series (the platform-wide view) without a global lock:

1. ``count_events`` consumes the events topic (all its partitions, any number of workers), counts each
   ``take_events`` batch in memory and sends ONE counts record per (source partition, batch) to the internal
   one-partition ``<app_id>-counts`` topic. No tables here, so nothing is written from inside ``take()``; the batch
   is acked after its record is handed to the producer, and Faust flushes the producer before committing offsets.
2. ``evaluate`` consumes the counts topic. It has one partition, so exactly one worker owns it and every table
   (counts per bucket, series state, seasonal cells, offsets) — the global view. It drops counts records it has
   already applied (per source partition high-water offset), so a replay after a crash is not double counted.
   A wall-clock tick record, produced into that same partition by a leader timer (timers cannot write tables),
   drives evaluation: every bucket whose end is older than ``now - lateness`` is evaluated, silent series included.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import time
from collections import Counter, defaultdict
from typing import Any, cast

import faust
from aiokafka.errors import KafkaError
from faust.streams import Stream

from alerts import arrivals_agent
from alerts.config import config_from
from alerts.detector import (
    PLATFORM,
    SEP,
    Cell,
    SeriesInput,
    SeriesKey,
    SeriesState,
    evaluate_bucket,
    neighbours,
    slots,
)
from attrib import kafka
from attrib.settings import Settings
from schemas import avro, wire
from schemas.dead_letter import dead_letter as dead_letter_record

log = logging.getLogger("attrib.alerts")
HELP = "run the spike/drop alert detector (Faust app `attrib alerts`)"
NO_SOURCE = "(none)"
TICK = avro.TICK


def counts_topic_name(s: Settings) -> str:
    return s.alerts.counts_topic or f"{s.alerts.app_id}-counts"


TABLES = ("alert-counts", "alert-states", "alert-cells", "alert-meta", arrivals_agent.TABLE)


def ensure_internal_topics(s: Settings, timeout: float = 30.0) -> list[str]:
    """Create the counts topic and the tables' changelogs (one partition each) before the app joins its group.
    Left to Faust, they are created lazily: the group's assignor can run before the counts topic exists ("Ignoring
    missing topic"), and then the one partition evaluation runs from stays unowned until the next metadata refresh
    (~5 min of alerts silently off after a fresh start of all services)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import NewTopic

    admin = kafka.admin(s)
    rf = s.topics.replication_factor
    wanted = [NewTopic(counts_topic_name(s), num_partitions=1, replication_factor=rf)] + [
        NewTopic(f"{s.alerts.app_id}-{t}-changelog", num_partitions=1, replication_factor=rf,
                 config={"cleanup.policy": "compact"}) for t in TABLES]
    try:
        existing = admin.list_topics(timeout=timeout).topics
        todo = [t for t in wanted if t.topic not in existing]
        for name, fut in (admin.create_topics(todo, operation_timeout=timeout).items() if todo else []):
            try:
                fut.result()
            except KafkaException as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):  # a concurrent start won the race: fine
                    raise
                log.info("internal topic created concurrently", extra={"fields": {"topic": name}})
    except KafkaException as exc:
        raise kafka.mapped(exc, "creating the alerts' internal topics") from exc
    return [t.topic for t in todo]


FEED_SOURCES = 3  # ingress sources remembered per feed


def feed_of(key: SeriesKey) -> str:
    """(app, media source) of a series: the feed whose ingress sources are remembered."""
    return f"{key.app_id}{SEP}{key.media_source}"


def platform_feed(feed: str) -> str:
    return f"{feed.split(SEP, 1)[0]}{SEP}{PLATFORM}"


def series_of(rec: dict[str, Any]) -> SeriesKey:
    return SeriesKey(rec.get("app_id") or "", rec.get("media_source") or NO_SOURCE, rec["event_type"])


def build(s: Settings) -> faust.App:
    a = s.alerts
    bucket_ms = a.detect.bucket_s * 1000
    cfg = config_from(a.detect)
    datadir = a.data_dir or s.var_dir / "alerts"
    datadir.mkdir(parents=True, exist_ok=True)
    reads = [s.topics.events, counts_topic_name(s), *([s.topics.arrivals] if a.arrivals.enabled else [])]
    app = faust.App(
        a.app_id, **kafka.faust_settings(s, "alerts", a.app_id, reads), store=a.store,
        datadir=str(datadir), web_enabled=False, topic_replication_factor=
        s.topics.replication_factor, topic_partitions=1, producer_acks=-1, table_standby_replicas=0,
        key_serializer="json", value_serializer="json",  # table keys stay str
    )
    events = app.topic(s.topics.events, key_type=bytes, value_type=bytes, key_serializer="raw",
                       value_serializer="raw")
    counts_topic = app.topic(counts_topic_name(s), partitions=1, internal=True, key_serializer="raw",
                             value_serializer="json")
    dlq = app.topic(s.topics.dead_letters, key_serializer="raw", value_serializer="raw")
    outputs = {"spike": app.topic(s.topics.alerts_spike, key_serializer="raw", value_serializer="raw"),
               "drop": app.topic(s.topics.alerts_drop, key_serializer="raw", value_serializer="raw")}
    serde = wire.serde(s)  # single-object Avro, or Confluent framing with a schema registry
    serde.prepare([("dead_letter", s.topics.dead_letters), ("alert", s.topics.alerts_spike),
                   ("alert", s.topics.alerts_drop)])
    encode_dead = serde.encoder("dead_letter", s.topics.dead_letters)
    encode_alert = {"spike": serde.encoder("alert", s.topics.alerts_spike),
                    "drop": serde.encoder("alert", s.topics.alerts_drop)}
    counts = app.Table(TABLES[0], partitions=1)  # str(bucket) -> {series: n}
    states = app.Table(TABLES[1], partitions=1)  # series -> SeriesState dict
    cells = app.Table(TABLES[2], partitions=1)  # series|d<slot> / |w<slot> -> [m, n]
    meta = app.Table(TABLES[3], partitions=1)  # evaluated_until, first_bucket, hw:<p>
    arrivals = app.Table(arrivals_agent.TABLE, partitions=1)  # written only by the arrivals agent

    async def dead_letter(reason: str, exc: BaseException, value: bytes | None, ref: dict[str, Any]) -> None:
        log.warning("alerts dead letter", extra={"fields": {"reason": reason, "error": str(exc)[:200], **ref}})
        rec = dead_letter_record(stage="alerts", reason=reason, detail=f"{type(exc).__name__}: {exc}",
                                 raw_ref=ref, payload=value)
        await dlq.send(key=rec["dead_letter_id"].encode(), value=encode_dead(rec))

    async def decode_event(value: bytes) -> dict[str, Any]:
        while True:  # a schema registry outage delays counting, it never dead-letters good events
            try:
                return serde.decode(value, expect="enriched_event")[1]
            except wire.RegistryError as exc:
                log.warning("schema registry unavailable; retrying", extra={"fields": {"error": str(exc)[:300]}})
                await asyncio.sleep(5)

    @app.agent(events, concurrency=1)
    async def count_events(stream: faust.StreamT) -> None:
        # take_events is on Faust's Stream, not on its StreamT protocol
        async for batch in cast(Stream, stream).take_events(a.batch_max, within=a.batch_within_s):
            per_part: dict[int, dict[str, Any]] = {}
            for ev in batch:
                m = ev.message
                agg = per_part.setdefault(m.partition, {"first": m.offset, "last": m.offset, "c": Counter(),
                                                        "f": set()})
                agg["first"], agg["last"] = min(agg["first"], m.offset), max(agg["last"], m.offset)
                if ev.value is None or ev.value.startswith(TICK):  # tombstone / a stage's tick record: not an event
                    continue
                try:
                    rec = await decode_event(ev.value)
                    ms = int(rec["event_time"].timestamp() * 1000)
                    key = series_of(rec)
                    agg["c"][(key.encode(), ms - ms % bucket_ms)] += 1
                    agg["f"].add((feed_of(key), str(rec.get("source") or ""), str(rec.get("mmp") or "")))
                except (avro.AvroError, KeyError, AttributeError) as exc:  # bad bytes / no usable event_time
                    await dead_letter("undecodable_event", exc, ev.value if isinstance(ev.value, bytes) else None,
                                      {"topic": m.topic, "partition": m.partition, "offset": m.offset})
            for p, agg in per_part.items():
                c = [[k, b, n] for (k, b), n in agg["c"].items()]
                await counts_topic.send(key=b"c", value={"p": p, "first": agg["first"], "last": agg["last"], "c": c,
                                                         "f": sorted(agg["f"])})

    def apply_counts(rec: dict[str, Any]) -> None:
        hw_key = f"hw:{rec['p']}"
        if rec["last"] <= meta.get(hw_key, -1):
            return  # this batch was applied before a crash/replay
        done = meta.get("evaluated_until")
        by_bucket: dict[int, Counter[str]] = defaultdict(Counter)
        late = 0
        for key, b, n in rec["c"]:
            if done is not None and b + bucket_ms <= done:
                late += n
                continue
            by_bucket[b][key] += n
            by_bucket[b][SeriesKey.decode(key).platform().encode()] += n
        if late:
            log.info("events later than the allowed lateness", extra={"fields": {"events": late}})
        for b, cnt in by_bucket.items():
            cur = Counter(counts.get(str(b)) or {})
            cur.update(cnt)
            counts[str(b)] = dict(cur)
            first = meta.get("first_bucket")
            if first is None or b < first:
                meta["first_bucket"] = b
        learn_feeds(rec.get("f") or [])
        meta[hw_key] = rec["last"]

    def learn_feeds(seen: list[list[str]]) -> None:
        """Which ingress sources (and MMPs) deliver each feed, newest first, so an alert can say who to ask."""
        by_feed: dict[str, list[list[str]]] = defaultdict(list)
        for f, source, mmp in seen:
            if source:
                by_feed[f].append([source, mmp])
                by_feed[platform_feed(f)].append([source, mmp])
        for f, pairs in by_feed.items():
            old = meta.get(f"feed:{f}") or []
            new = [*pairs, *(x for x in old if x not in pairs)]
            new = [x for i, x in enumerate(new) if x not in new[:i]][:FEED_SOURCES]
            if new != old:  # every table write is a changelog record: only on change
                meta[f"feed:{f}"] = new

    def cell(k: str) -> Cell:
        v = cells.get(k)
        return Cell(v[0], v[1]) if v else Cell()

    async def evaluate_one(b: int, now_ms: int) -> None:
        got = counts.get(str(b)) or {}
        d, w = slots(b, bucket_ms)
        per_day = 86_400_000 // bucket_ms
        nd, nw = neighbours(d, per_day), neighbours(w, 7 * per_day)
        inputs = {}
        for k in set(states.keys()) | set(got):
            st = states.get(k)
            inputs[SeriesKey.decode(k)] = SeriesInput(SeriesState.from_dict(st) if st else SeriesState(),
                                                      int(got.get(k, 0)), cell(f"{k}|d{d}"), cell(f"{k}|w{w}"),
                                                      tuple(cell(f"{k}|d{x}") for x in nd),
                                                      tuple(cell(f"{k}|w{x}") for x in nw))
        out, alerts = evaluate_bucket(inputs, b, now_ms, cfg)
        for key, o in out.items():
            k = key.encode()
            if o.state is None:
                if k in states:
                    del states[k]
            else:
                states[k] = o.state.to_dict()
            cells[f"{k}|d{d}"] = [o.day.mean, o.day.n]
            cells[f"{k}|w{w}"] = [o.week.mean, o.week.n]
        if str(b) in counts:
            del counts[str(b)]
        for al in alerts:
            r = al.record
            feeds = meta.get(f"feed:{feed_of(al.key)}")
            if feeds:
                r["detail"] = json.dumps({**json.loads(r["detail"]), "feeds": feeds})
            if a.arrivals.enabled and arrivals_agent.joins_arrivals(r, feeds, arrivals, meta):
                continue  # the stop was paged from arrival already: one incident, one page
            log.info("alert", extra={"fields": {k: r[k] for k in ("alert_id", "state", "direction", "scope",
                                                                  "app_id", "media_source", "event_type")}})
            d = r["direction"]
            await outputs[d].send(key=r["alert_id"].encode(), value=encode_alert[d](r))

    async def on_tick(now_ms: int) -> None:
        # buckets ending at or before the target are closed
        target = (now_ms - a.detect.lateness_s * 1000) // bucket_ms * bucket_ms
        last = meta.get("evaluated_until")
        if last is None:
            last = meta.get("first_bucket")
            if last is None:
                return
        if target - last > a.max_catchup_buckets * bucket_ms:
            log.warning("alerts fell behind; skipping buckets",
                        extra={"fields": {"skipped": (target - last) // bucket_ms - a.max_catchup_buckets}})
            for key in [k for k in counts if int(k) < target - a.max_catchup_buckets * bucket_ms]:
                del counts[key]
            last = target - a.max_catchup_buckets * bucket_ms
        while last < target:
            await evaluate_one(last, now_ms)
            last += bucket_ms
            meta["evaluated_until"] = last

    @app.agent(counts_topic, concurrency=1)
    async def evaluate(stream: faust.StreamT) -> None:
        async for ev in stream.events():
            rec = ev.value
            try:
                if "tick" in rec:
                    await on_tick(int(rec["tick"]))
                else:
                    apply_counts(rec)
            except Exception as exc:  # noqa: BLE001 - any failure (a detector bug, odd record) is dead-lettered
                # with its position rather than acked silently by Faust (which would also stop this agent)
                m = ev.message
                await dead_letter("alerts_evaluate_failed", exc, None,
                                  {"topic": m.topic, "partition": m.partition, "offset": m.offset})

    if a.arrivals.enabled:
        async def send_drop(r: dict[str, Any]) -> None:
            await outputs["drop"].send(key=r["alert_id"].encode(), value=encode_alert["drop"](r))

        arrivals_agent.install(app, s, arrivals, send_drop, dead_letter)

    if a.tick_interval_s > 0:
        @app.timer(a.tick_interval_s, on_leader=True)
        async def tick() -> None:
            try:
                await counts_topic.send(key=b"c", value={"tick": int(time.time() * 1000)})
            except KafkaError as exc:  # the next tick covers this one: evaluation catches up to wall-clock time
                log.warning("alerts tick not sent", extra={"fields": {"error": str(kafka.mapped(exc, "tick"))[:200]}})

    app.alert_tables = {"counts": counts, "states": states, "cells": cells,  # type: ignore[attr-defined]
                        "meta": meta, "arrivals": arrivals}
    return app


def add_arguments(p: argparse.ArgumentParser) -> None:
    pass  # everything comes from settings (ATTRIB_ALERTS__*)


def main(args: argparse.Namespace, s: Settings) -> int:
    from faust.worker import Worker

    from attrib.topics import ensure_topics

    ensure_topics(s)
    created = ensure_internal_topics(s)
    app = build(s)
    log.info("alerts starting", extra={"fields": {"app_id": s.alerts.app_id, "events": s.topics.events,
                                                  "internal_topics_created": created,
                                                  "counts": counts_topic_name(s), "store": s.alerts.store}})
    # keep attrib's JSON logs (cli set them up); returns on SIGTERM/SIGINT after a clean shutdown
    worker = Worker(app, loglevel=s.log_level, quiet=True, override_logging=False, redirect_stdouts=False)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
