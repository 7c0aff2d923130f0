"""Replay a time range of the raw-deliveries topic (Kafka keeps it ``topics.raw_retention_days``) through the
worker's own processing into a fresh topic or ClickHouse database, or back into the live pipeline.

* ``topic:NAME`` — enriched events into NAME, dead letters into NAME.dead-letters (both must be new/empty).
* ``clickhouse:DB`` — the same into private topics, loaded by the sink's own code into database DB (migrated here;
  it must be new/empty).
* ``live`` — the selected deliveries are appended again to the raw topic, unchanged (same key, same partition);
  the live worker's dedupe and the warehouse's ReplacingMergeTree make that idempotent. Nothing goes back to an MMP.

Reads use a new consumer group ``attrib-replay-<id>``; the offsets to stop at are fixed when the replay starts. The
id is derived from the arguments, so re-running an interrupted command resumes it (``--restart`` starts over).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from confluent_kafka import Consumer, Producer, TopicPartition

from attrib import kafka
from attrib.errors import InputError
from attrib.settings import Settings
from ops.replay.checkpoint import Checkpoint, StateTable
from ops.replay.progress import Progress
from ops.replay.spec import RangeSpec
from schemas import wire
from schemas.avro import AvroError

log = logging.getLogger("attrib.replay")


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class ReplayError(InputError):
    """A replay that cannot start (target not fresh, bad settings…); the message says what to do."""


def _derive(s: Settings, **sections: dict[str, Any]) -> Settings:
    upd = {k: getattr(s, k).model_copy(update=v) for k, v in sections.items()}
    return s.model_copy(update=upd)


class RangeReplay:
    def __init__(self, s: Settings, spec: RangeSpec, *, restart: bool = False, max_records: int | None = None,
                 out: TextIO = sys.stderr, stop: threading.Event | None = None) -> None:
        self.s, self.spec = s, spec
        self.id = spec.replay_id
        self.group = f"attrib-replay-{self.id}"
        self.max_records = max_records
        self.out = out
        self.stop = stop or threading.Event()
        state_dir = s.replay.state_dir or s.var_dir / "replay"
        self.path = Path(state_dir) / f"{self.id}.sqlite"
        if restart and self.path.exists():
            for p in self.path.parent.glob(self.path.name + "*"):
                p.unlink()
        t = spec.target
        prefix = t.name if t.kind == "topic" else f"attrib.replay.{self.id}"
        self.events_out = prefix if t.kind == "topic" else f"{prefix}.events"
        self.dlq_out = f"{prefix}.dead-letters"
        self.counts: Counter[str] = Counter()

    # --- planning -----------------------------------------------------------------------------------------------

    def _consumer(self) -> Consumer:
        return kafka.consumer(self.s, "replay", self.group,
                              {"enable.auto.commit": False, "auto.offset.reset": "earliest"})

    def plan(self, c: Consumer) -> dict[int, tuple[int, int]]:
        """partition → [start, end) offsets of records timestamped in [since, until)."""
        topic = self.s.topics.raw
        meta = c.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or meta.error is not None:
            raise ReplayError(f"raw topic {topic} not found")
        parts = sorted(meta.partitions)
        starts = c.offsets_for_times([TopicPartition(topic, p, self.spec.since_ms) for p in parts], timeout=10)
        ends = c.offsets_for_times([TopicPartition(topic, p, self.spec.until_ms) for p in parts], timeout=10)
        out = {}
        for p, a, b in zip(parts, starts, ends, strict=True):
            _, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            start = a.offset if a.offset >= 0 else high
            end = b.offset if b.offset >= 0 else high
            out[p] = (start, max(start, end))
        return out

    # --- targets ------------------------------------------------------------------------------------------------

    def _fresh_topic_check(self, c: Consumer, topic: str) -> None:
        meta = c.list_topics(timeout=10).topics.get(topic)
        if meta is None or meta.error is not None:
            return
        for p in meta.partitions:
            low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                raise ReplayError(f"target topic {topic} already holds records: name a new topic "
                                  "(a replay never writes into a used one)")

    def sink_settings(self) -> Settings:
        pre = f"attrib.replay.{self.id}"
        return _derive(self.s, clickhouse={"database": self.spec.target.name},
                       topics={"events": self.events_out, "dead_letters": self.dlq_out,
                               "alerts_spike": f"{pre}.alerts-spike", "alerts_drop": f"{pre}.alerts-drop"},
                       sink={"group_id": f"{self.group}-sink", "archive_raw": False})

    def _prepare_target(self, c: Consumer) -> None:
        from attrib.topics import ensure_topics

        t = self.spec.target
        if t.kind == "live":
            return
        for topic in (self.events_out, self.dlq_out):
            self._fresh_topic_check(c, topic)
        if t.kind == "clickhouse":
            from ops.warehouse import open_for_writes
            from sinks import migrate

            ss = self.sink_settings()
            client = open_for_writes(ss)  # held by a running sink: one line naming it
            try:
                rows = client.query(f"SELECT count() FROM system.tables WHERE database = '{t.name}' "
                                    "AND name IN ('events', 'dead_letters') AND total_rows > 0").result_rows[0][0]
                if rows:
                    raise ReplayError(f"database {t.name} already holds events: name a new database")
                migrate.migrate(client, ss)
            finally:
                client.close()
            ensure_topics(ss)
        else:
            ensure_topics(_derive(self.s, topics={"events": self.events_out, "dead_letters": self.dlq_out}))

    # --- the loop -----------------------------------------------------------------------------------------------

    def run(self) -> int:
        """0 = complete, 3 = stopped early (run the same command again to resume)."""
        ck = Checkpoint(self.path)
        c = self._consumer()
        try:
            meta = ck.meta()
            if not meta:
                spans = self.plan(c)
                self._prepare_target(c)
                ck.set_meta(spans={str(p): v for p, v in spans.items()}, spec=str(self.spec), target_ready=True,
                            produced={}, range=[self.spec.since_ms, self.spec.until_ms])
                ck.save({p: a for p, (a, _) in spans.items()}, None)
                meta = ck.meta()
            elif "range" in meta:  # resuming: the range its first run planned, not what an age means now
                self.spec = replace(self.spec, since_ms=meta["range"][0], until_ms=meta["range"][1])
                self.out.write(f"resuming from {self.path.name}: range {_iso(self.spec.since_ms)} – "
                               f"{_iso(self.spec.until_ms)} as planned by its first run\n")
            spans = {int(p): tuple(v) for p, v in meta["spans"].items()}
            self.counts.update(meta.get("produced", {}))
            done = self._process(ck, c, spans)
            if done and self.spec.target.kind == "clickhouse" and not meta.get("loaded"):
                self._load(c)
                ck.set_meta(loaded=True)
            return 0 if done else 3
        finally:
            c.close()
            ck.close()

    def _process(self, ck: Checkpoint, c: Consumer, spans: dict[int, tuple[int, int]]) -> bool:
        from streams.processor import Processor, tick_value

        nxt = ck.offsets()
        total = sum(b - a for a, b in spans.values())
        prog = Progress(total, done=sum(min(nxt[p], b) - a for p, (a, b) in spans.items()), started=time.monotonic())
        prog.base = prog.done
        todo = {p for p, (_, b) in spans.items() if nxt[p] < b}
        producer = kafka.producer(self.s, "replay", {"enable.idempotence": True, "linger.ms": 20})
        table: StateTable | None = None
        current = {"p": 0}
        live = self.spec.target.kind == "live"

        def produce(topic: str, key: bytes | None, value: bytes, partition: int | None) -> None:
            while True:
                try:
                    if partition is None:
                        producer.produce(topic, value, key=key)
                    else:
                        producer.produce(topic, value, key=key, partition=partition)
                    self.counts[topic] += 1
                    return
                except BufferError:
                    producer.poll(0.1)

        def send(topic: str, key: bytes | None, value: bytes) -> None:  # the worker's outputs, redirected
            if topic == self.s.topics.events:
                if self.spec.event_type and wire.cached(self.s).decode(value)[1]["event_type"] != self.spec.event_type:
                    return
                produce(self.events_out, key, value, current["p"])
            elif topic == self.s.topics.dead_letters:
                produce(self.dlq_out, key, value, current["p"])

        proc = None
        if not live:
            table = ck.table()
            proc = Processor(self.s, table, send)
        keep = self._keeper()
        c.assign([TopicPartition(self.s.topics.raw, p, nxt[p]) for p in sorted(todo)])
        last_save = last_draw = time.monotonic()
        quiet_since = None
        processed_now = saved_at = 0
        stopped = False
        while todo:
            if self.stop.is_set() or (self.max_records is not None and processed_now >= self.max_records):
                stopped = True
                break
            msgs = c.consume(min(500, self.s.replay.batch), 0.5)
            if not msgs:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since > 5:
                    self._skip_deleted(c, nxt, spans, todo)
                    quiet_since = None
            for m in msgs:
                p, off = m.partition(), m.offset()
                if m.error() or p is None or off is None:  # an error event has no position
                    continue
                if p not in todo or off < nxt[p]:
                    continue
                if off >= spans[p][1]:
                    todo.discard(p)
                    continue
                quiet_since = None
                value = m.value()
                if keep(value):
                    if proc is None:  # live: the records go back onto the raw topic
                        produce(self.s.topics.raw, m.key(), value or b"", p)
                    else:
                        current["p"] = p
                        proc.handle(m.key(), value, p, off)
                nxt[p] = off + 1
                prog.done += 1
                processed_now += 1
                if nxt[p] >= spans[p][1]:
                    todo.discard(p)
                if self.max_records is not None and processed_now >= self.max_records:
                    break
            now = time.monotonic()
            if now - last_save > 2 or processed_now - saved_at >= self.s.replay.batch:
                self._checkpoint(ck, c, producer, nxt, table)
                last_save, saved_at = now, processed_now
            if now - last_draw > 0.5:
                self._draw(prog, now)
                last_draw = now
        if not stopped and proc is not None:
            # what the live worker's ticks would have expired by now (held events past their timeout)
            t_end = min(int(time.time() * 1000), self.spec.until_ms + int(self.s.streams.pending_timeout_s * 1000))
            for p, (a, b) in spans.items():
                if b > a:
                    current["p"] = p
                    proc.handle(None, tick_value(t_end), p, b - 1)
        self._checkpoint(ck, c, producer, nxt, table)
        self._draw(prog, time.monotonic(), final=True)
        return not stopped

    def _keeper(self) -> Callable[[bytes | None], bool]:
        """Which raw-topic records this replay takes: deliveries of --source (ticks pass through to the worker in
        topic/clickhouse mode; live mode re-appends deliveries only). --event-type filters outputs, except in live
        mode, where a delivery is kept when it normalizes to at least one event of that type."""
        from schemas.avro import TICK

        src, etype, live = self.spec.source, self.spec.event_type, self.spec.target.kind == "live"
        if not src and not (live and etype):
            return (lambda v: v is not None and not v.startswith(TICK)) if live else (lambda v: True)

        def keep(v: bytes | None) -> bool:
            if v is None or v.startswith(TICK):
                return not live
            try:
                _, raw = wire.cached(self.s).decode(v, expect="raw_delivery")
            except AvroError:
                return not live  # the worker dead-letters undecodable records itself
            if src and raw["source"] != src:
                return False
            if live and etype:
                return etype in self._event_types(raw)
            return True

        return keep

    def _event_types(self, raw: dict[str, Any]) -> set[str]:
        from schemas.errors import NormalizeError
        from schemas.normalize import normalize

        source = self.s.source(raw["source"])
        if source is None:
            return set()
        try:
            return {e["event_type"] for e in normalize(source, raw)}
        except NormalizeError:
            return set()

    def _skip_deleted(self, c: Consumer, nxt: dict[int, int], spans: dict[int, tuple[int, int]],
                      todo: set[int]) -> None:
        """Retention may have deleted the start of the range since it was planned: move on to what remains."""
        for p in list(todo):
            low, high = c.get_watermark_offsets(TopicPartition(self.s.topics.raw, p), timeout=10)
            if low > nxt[p]:
                log.warning("replay: records deleted by retention", extra={"fields": {
                    "partition": p, "from": nxt[p], "to": low}})
                nxt[p] = low
                c.seek(TopicPartition(self.s.topics.raw, p, low))
            if nxt[p] >= min(spans[p][1], high):
                todo.discard(p)

    def _checkpoint(self, ck: Checkpoint, c: Consumer, producer: Producer, nxt: dict[int, int],
                    table: StateTable | None) -> None:
        left = producer.flush(60)
        if left:
            raise ReplayError(f"{left} replayed records not acknowledged by Kafka; nothing checkpointed")
        ck.save(nxt, table, produced=dict(self.counts))
        c.commit(offsets=[TopicPartition(self.s.topics.raw, p, o) for p, o in nxt.items()], asynchronous=False)

    def _draw(self, prog: Progress, now: float, final: bool = False) -> None:
        line = prog.render(now)
        if self.out.isatty():
            self.out.write("\r" + line + ("\n" if final else ""))
        else:
            self.out.write(line + "\n")
        self.out.flush()

    # --- loading into ClickHouse --------------------------------------------------------------------------------

    def _load(self, c: Consumer) -> None:
        """Run the sink's own consumer on the replay's topics until it committed everything."""
        from sinks.service import Sink

        ss = self.sink_settings()
        topics = [self.events_out, self.dlq_out]
        sink = Sink(ss)
        sink.start()
        try:
            check = kafka.consumer(self.s, "replay", ss.sink.group_id)  # reads the sink's commits, never joins
            try:
                while True:
                    behind = 0
                    for t in topics:
                        meta = check.list_topics(t, timeout=10).topics[t]
                        parts = [TopicPartition(t, p) for p in meta.partitions]
                        for tp in check.committed(parts, timeout=10):
                            _, high = check.get_watermark_offsets(TopicPartition(t, tp.partition), timeout=10)
                            behind += high - max(tp.offset, 0)
                    self.out.write(f"loading into clickhouse:{self.spec.target.name}: {behind:,} records to go\n")
                    self.out.flush()
                    if behind <= 0 or self.stop.is_set():
                        break
                    time.sleep(1.0)
            finally:
                check.close()
        finally:
            sink.stop()


def dry_run(s: Settings, spec: RangeSpec, out: TextIO = sys.stdout) -> dict[str, Any]:
    """Count what the replay would read: deliveries per source and (normalized, before dedupe) events per type."""
    from schemas.avro import TICK
    from schemas.errors import NormalizeError
    from schemas.normalize import normalize

    r = RangeReplay(s, spec)
    c = kafka.consumer(s, "replay", f"attrib-replay-dry-{spec.replay_id}", {"enable.auto.commit": False})
    by_source: Counter[str] = Counter()
    by_type: Counter[str] = Counter()
    failing: Counter[str] = Counter()
    try:
        spans = r.plan(c)
        todo = {p for p, (a, b) in spans.items() if b > a}
        c.assign([TopicPartition(s.topics.raw, p, spans[p][0]) for p in sorted(todo)])
        while todo:
            msgs = c.consume(500, 1.0)
            if not msgs:
                break
            for m in msgs:
                p, off = m.partition(), m.offset()
                if m.error() or p is None or off is None or p not in todo:
                    continue
                if off >= spans[p][1] - 1:
                    todo.discard(p)
                if off >= spans[p][1]:
                    continue
                v = m.value()
                if v is None or v.startswith(TICK):
                    continue
                try:
                    _, raw = wire.cached(s).decode(v, expect="raw_delivery")
                except AvroError:
                    failing["undecodable"] += 1
                    continue
                if spec.source and raw["source"] != spec.source:
                    continue
                src = s.source(raw["source"])
                try:
                    types = [e["event_type"] for e in normalize(src, raw)] if src else []
                except NormalizeError as exc:
                    failing[exc.reason] += 1
                    types = []
                if src is None:
                    failing["unknown_source"] += 1
                if spec.event_type and spec.event_type not in types:
                    continue
                by_source[raw["source"]] += 1
                by_type.update(t for t in types if not spec.event_type or t == spec.event_type)
    finally:
        c.close()
    result = {"replay_id": spec.replay_id, "records_in_range": sum(b - a for a, b in spans.values()),
              "deliveries": dict(by_source), "events": dict(by_type), "would_dead_letter": dict(failing)}
    print(f"dry run {spec.replay_id}: {result['records_in_range']:,} raw-topic records in range", file=out)
    for k, n in sorted(by_source.items()):
        print(f"  deliveries  {k:<24} {n:>10,}", file=out)
    for k, n in sorted(by_type.items()):
        print(f"  events      {k:<24} {n:>10,}", file=out)
    for k, n in sorted(failing.items()):
        print(f"  would fail  {k:<24} {n:>10,}", file=out)
    return result
