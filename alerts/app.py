"""`attrib alerts`: the Faust app that keeps event counts per (app, media source, event type) per bucket and runs the
detector (alerts/detector.py) on complete buckets.

The counting is the stream worker's: it touches every event anyway, so it sends one counts record per (raw
partition, output batch) to the one-partition counts topic (schemas/counts.py) with its other outputs, acknowledged
before its offset commit. No stage re-reads the enriched events only to count them.

``evaluate`` consumes the counts topic. It has one partition, so exactly one worker owns it and every table (counts
per bucket, series state, seasonal cells, meta) — the global view:

- **Exactly once per source offset.** Each counted event carries the raw offset that emitted it; ``meta`` keeps, per
  raw partition, the highest offset applied, and a re-processed offset (the worker resumed mid-batch after a crash)
  is dropped, the rest counted (``schemas.counts.fresh``).
- **Complete buckets only (a watermark).** Each record also carries its raw partition's progress: the receipt time
  the worker has processed the partition up to (its tick records advance idle partitions). Bucket b is evaluated
  once every raw partition's progress is ≥ b's end + lateness: a pipeline catching up after a restart is behind, not
  silent, and raises no drop. A worker that is down holds evaluation back (logged by the tick timer), it does not
  page as a platform-wide drop.
- **Not observed is not silent.** When a partition holds no record at all for a while (no delivery received, no
  worker tick produced: the pipeline was down) the worker reports the gap (``g``), or the evaluator sees the next
  batch start far past the progress it had (``a0``); a bucket inside every raw partition's gap is skipped (logged),
  not judged as a drop to zero.
- Counts later than that (a bucket already judged) are logged and not added.

/readyz (``alerts.ready_port``) answers 200 once this process owns the counts partition and its tables are recovered.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

import faust
from aiokafka.errors import KafkaError

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
from attrib.topics import ALERT_TABLES, counts_topic
from schemas import counts as counts_rec
from schemas import wire
from schemas.dead_letter import dead_letter as dead_letter_record

log = logging.getLogger("attrib.alerts")
HELP = "run the spike/drop alert detector (Faust app `attrib alerts`)"
TABLES = ALERT_TABLES  # attrib/topics.py: their changelogs are created before the app joins
STALL_LOG_S = 300  # the tick timer says so when the worker's progress is this far behind the wall clock


FEED_SOURCES = 3  # ingress sources remembered per feed


def feed_of(key: SeriesKey) -> str:
    """(app, media source) of a series: the feed whose ingress sources are remembered."""
    return f"{key.app_id}{SEP}{key.media_source}"


def platform_feed(feed: str) -> str:
    return f"{feed.split(SEP, 1)[0]}{SEP}{PLATFORM}"


class Readiness:
    """/readyz of the alerts process: 200 once it owns the counts partition (the one evaluation runs from) and its
    tables are recovered, 503 (with the reason) before and during a rebalance. `attrib run` waits on it. The body
    says where evaluation stands (``status``): first bucket counted, buckets judged until, the worker's progress."""

    def __init__(self, app: faust.App, topic: str, status: Callable[[], dict[str, Any]]) -> None:
        from faust.types import TP

        self.app, self.tp, self.status = app, TP(topic, 0), status

    def why_not(self) -> str | None:
        app = self.app
        recovery = app.tables.recovery  # type: ignore[attr-defined]  # TableManager's, not in TableManagerT
        if app.rebalancing or app.in_recovery or not recovery.completed.is_set():
            return "rebalancing or recovering tables"
        if self.tp not in app.consumer.assignment():
            return f"not the owner of {self.tp.topic}[0] (another alerts process may be)"
        return None

    async def serve(self, host: str, port: int) -> None:
        from aiohttp import web

        async def readyz(_: web.Request) -> web.Response:
            why = self.why_not()
            body = {"ready": why is None, **({"why": why} if why else self.status())}
            return web.json_response(body, status=200 if why is None else 503)

        web_app = web.Application()
        web_app.router.add_get("/readyz", readyz)
        runner = web.AppRunner(web_app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        log.info("alerts readiness served", extra={"fields": {"url": f"http://{host}:{port}/readyz"}})
        try:
            await asyncio.Event().wait()  # until the worker stops (cancelled)
        finally:
            await runner.cleanup()


def build(s: Settings) -> faust.App:
    a = s.alerts
    bucket_ms = a.detect.bucket_s * 1000
    cfg = config_from(a.detect)
    datadir = a.data_dir or s.var_dir / "alerts"
    datadir.mkdir(parents=True, exist_ok=True)
    parts = s.topics.partitions  # raw partitions: every one's progress gates a bucket
    gap_ms = counts_rec.gap_ms(s.streams.tick_interval_s)
    reads = [counts_topic(s), *([s.topics.arrivals] if a.arrivals.enabled else [])]
    app = faust.App(
        a.app_id, **kafka.faust_settings(s, "alerts", a.app_id, reads), store=a.store,
        datadir=str(datadir), web_enabled=False, topic_replication_factor=
        s.topics.replication_factor, topic_partitions=1, producer_acks=-1, table_standby_replicas=0,
        key_serializer="json", value_serializer="json",  # table keys stay str
    )
    counts_in = app.topic(counts_topic(s), partitions=1, internal=True, key_serializer="raw",
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
    # evaluated_until, first_bucket, p:<raw partition> -> [offset applied, progress, gap from, gap to]
    meta = app.Table(TABLES[3], partitions=1)
    arrivals = app.Table(arrivals_agent.TABLE, partitions=1)  # written only by the arrivals agent

    async def dead_letter(reason: str, exc: BaseException, value: bytes | None, ref: dict[str, Any]) -> None:
        log.warning("alerts dead letter", extra={"fields": {"reason": reason, "error": str(exc)[:200], **ref}})
        rec = dead_letter_record(stage="alerts", reason=reason, detail=f"{type(exc).__name__}: {exc}",
                                 raw_ref=ref, payload=value)
        await dlq.send(key=rec["dead_letter_id"].encode(), value=encode_dead(rec))

    def apply_counts(rec: dict[str, Any]) -> None:
        pkey = f"p:{rec['p']}"
        old = meta.get(pkey) or [-1, 0, 0, 0]
        applied, at, gap = old[0], old[1], old[2:] or [0, 0]
        done = meta.get("evaluated_until")
        by_bucket: dict[int, Counter[str]] = defaultdict(Counter)
        late = 0
        for key, b, n in counts_rec.fresh(rec, applied):  # offsets applied before (a resumed worker) are dropped
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
        a0 = rec.get("a0") or 0
        if at and a0 - at > gap_ms:  # nothing at all in this partition between: not observed
            gap = [at, a0]
        if rec.get("g") and rec["g"][1] > gap[1]:
            gap = list(rec["g"])
        new = [max(applied, rec["last"]), max(at, rec.get("at") or 0), *gap]
        if new != old:
            meta[pkey] = new

    def watermark() -> int | None:
        """Receipt time up to which every raw partition is processed (None until each has reported)."""
        ats: list[int] = []
        for p in range(parts):
            got = meta.get(f"p:{p}")
            if got is None:
                return None
            ats.append(got[1])
        return min(ats)

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

    async def advance() -> None:
        """Evaluate every bucket the watermark has completed: its end + lateness is behind every raw partition's
        progress."""
        w = watermark()
        if w is None:
            return
        target = (w - a.detect.lateness_s * 1000) // bucket_ms * bucket_ms  # buckets ending at or before it
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
        now_ms = int(time.time() * 1000)
        while last < target:
            if unobserved(last):
                log.warning("bucket not judged: no partition received or processed anything during it (the pipeline "
                            "was down)", extra={"fields": {"bucket": last}})
                if str(last) in counts:
                    del counts[str(last)]
            else:
                await evaluate_one(last, now_ms)
            last += bucket_ms
            meta["evaluated_until"] = last

    def unobserved(b: int) -> bool:
        for p in range(parts):
            got = meta.get(f"p:{p}")
            if not got or len(got) < 4 or not (got[2] <= b and b + bucket_ms <= got[3]):
                return False
        return True

    def check_progress(now_ms: int) -> None:
        w = watermark()
        behind = (now_ms - w) / 1000 if w is not None else None
        if behind is None or behind > STALL_LOG_S:
            slow = [p for p in range(parts) if (meta.get(f"p:{p}") or (-1, 0))[1] < now_ms - STALL_LOG_S * 1000]
            log.warning("alerts wait for the worker: buckets are judged once every raw partition is processed "
                        "past their end + lateness", extra={"fields": {
                            "behind_s": behind, "partitions_behind": slow[:20], "partitions": parts}})

    @app.agent(counts_in, concurrency=1)
    async def evaluate(stream: faust.StreamT) -> None:
        async for ev in stream.events():
            rec = ev.value
            try:
                if "tick" in rec:  # the timer's: is the worker keeping up?
                    check_progress(int(rec["tick"]))
                else:
                    apply_counts(rec)
                    await advance()
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
                await counts_in.send(key=counts_rec.KEY, value={"tick": int(time.time() * 1000)})
            except KafkaError as exc:  # the next tick covers this one: evaluation catches up to wall-clock time
                log.warning("alerts tick not sent", extra={"fields": {"error": str(kafka.mapped(exc, "tick"))[:200]}})

    app.alert_tables = {"counts": counts, "states": states, "cells": cells,  # type: ignore[attr-defined]
                        "meta": meta, "arrivals": arrivals}

    def status() -> dict[str, Any]:
        return {"first_bucket": meta.get("first_bucket"), "evaluated_until": meta.get("evaluated_until"),
                "watermark": watermark()}

    if a.ready_port:
        ready = Readiness(app, counts_topic(s), status)

        @app.task
        async def serve_readiness() -> None:
            await ready.serve(a.ready_host, a.ready_port)
    return app


def add_arguments(p: argparse.ArgumentParser) -> None:
    pass  # everything comes from settings (ATTRIB_ALERTS__*)


def main(args: argparse.Namespace, s: Settings) -> int:
    from faust.worker import Worker

    from attrib.topics import ensure_topics

    created = ensure_topics(s)  # the counts topic and the changelogs too: before the app joins its group
    app = build(s)
    log.info("alerts starting", extra={"fields": {"app_id": s.alerts.app_id, "topics_created": created,
                                                  "counts": counts_topic(s), "store": s.alerts.store}})
    # keep attrib's JSON logs (cli set them up); returns on SIGTERM/SIGINT after a clean shutdown
    worker = Worker(app, loglevel=s.log_level, quiet=True, override_logging=False, redirect_stdouts=False)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
