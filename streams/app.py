"""The Faust worker: raw deliveries in → normalize → per-user state → enriched events out (DLQ for failures).

Cost per event is what limits throughput here (see README "Stream worker"): one table (``users``) holds each user's whole
state so an event costs at most one changelog record (none for duplicates), and outputs go straight to the
producer without awaiting delivery — Faust flushes the producer before every offset commit, so at-least-once holds.

Expiry: a timer produces a tick record into every partition this worker owns; processing a tick (inside the
stream, so table writes are allowed and land on that partition's changelog) times out the partition's due users,
found through an in-memory index rebuilt from the table whenever partitions are (re)assigned.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faust
from faust.types import TP

from attrib import kafka
from attrib.settings import Settings, SourceSettings
from schemas import avro, wire
from streams import codec
from streams import metrics as m
from streams.batcher import Batcher
from streams.state import (
    CORRECTION,
    OVERFLOW,
    TIMEOUT,
    Limits,
    Result,
    Rules,
    apply_events,
    apply_tick,
    new_state,
    next_deadline,
    pending_count,
)

log = logging.getLogger("attrib.worker")
TICK = avro.TICK  # raw-topic records starting with this are expiry ticks, not deliveries (Avro starts C3 01)
Normalizer = Callable[[SourceSettings, dict[str, Any]], list[dict[str, Any]]]


def tick_value(now_ms: int) -> bytes:
    return TICK + str(now_ms).encode()


def _default_normalizer() -> Normalizer:
    from schemas.normalize import normalize

    return normalize


def _normalize_error() -> type[Exception]:
    try:
        from schemas.errors import NormalizeError
    except ImportError:  # pragma: no cover - schemas/ not merged yet
        return ValueError
    return NormalizeError


class PartitionIndex:
    """Users of one partition with pending events (deadline, count) and users touched by recent messages — rebuilt
    from the table after every assignment, so a restarted or new owner finds due users and replayed ticks."""

    def __init__(self) -> None:
        self.due: dict[str, tuple[int, int]] = {}
        self.by_ref: dict[int, set[str]] = {}  # source offset -> users with held events emitted by it

    def update(self, user: str, state: dict[str, Any]) -> int:
        """Refresh one user's entry; return the change in pending count."""
        old = self.due.pop(user, (0, 0))[1]
        dl = next_deadline(state)
        n = pending_count(state) if dl is not None else 0
        if dl is not None:
            self.due[user] = (dl, n)
        return n - old


class Processor:
    """Everything the agent does with one message. Holds no Faust objects beyond the table and the producer hooks,
    so the bench and tests can drive it."""

    def __init__(self, settings: Settings, table: Any, send: Callable[[str, bytes, bytes], None],
                 normalizer: Normalizer | None = None) -> None:
        s = settings.streams
        self.settings = settings
        self.table = table
        self.send = send
        self.normalize = normalizer or _default_normalizer()
        self.normalize_error = _normalize_error()
        self.limits = Limits(
            dedupe_retention_ms=int(s.dedupe_retention_s * 1000), pending_timeout_ms=int(s.pending_timeout_s * 1000),
            max_pending_per_user=s.max_pending_per_user, reemit_grace_ms=int(s.reemit_grace_s * 1000),
            state_retention_ms=int(s.state_retention_s * 1000))
        self.rules = {src.name: Rules(frozenset(x.lower() for x in src.event_allowlist),
                                      frozenset(x.lower() for x in src.first_time_only)) for src in settings.sources}
        self.sources = {src.name: src for src in settings.sources}
        self.topics = settings.topics
        self.serde = wire.serde(settings)  # single-object Avro, or Confluent framing with a schema registry
        self.decode = self.serde.decode
        self.encode_event = self.serde.encoder("enriched_event", self.topics.events)
        self.encode_dead = self.serde.encoder("dead_letter", self.topics.dead_letters)
        self.index: dict[int, PartitionIndex] = {}
        self.pending_total = 0
        self.last_sweep: dict[int, int] = {}
        self.tally = m.Tally()
        self.assigned: set[int] = set()

    def publish_metrics(self) -> None:
        self.tally.publish()
        m.PENDING.set(self.pending_total)

    # --- index ------------------------------------------------------------------------------------------------

    def on_assigned(self, partitions: set[int]) -> None:
        self.assigned = set(partitions)
        for p in partitions:
            self.index.pop(p, None)  # rebuilt lazily on the partition's next message
        self._recount()

    def on_revoked(self, partitions: set[int]) -> None:
        self.assigned -= partitions
        for p in partitions:
            self.index.pop(p, None)
        self._recount()

    def _recount(self) -> None:
        self.pending_total = sum(n for ix in self.index.values() for _, n in ix.due.values())
        m.PENDING.set(self.pending_total)

    def _index(self, p: int) -> PartitionIndex:
        ix = self.index.get(p)
        if ix is None:
            ix = self._rebuild(p)
        return ix

    def _rebuild(self, p: int) -> PartitionIndex:
        """One scan of the table builds the index of every owned partition not indexed yet (after an assignment)."""
        todo = {q for q in self.assigned if q not in self.index} | {p}
        fresh = {q: PartitionIndex() for q in todo}
        t0 = time.monotonic()
        n = 0
        for key, raw in self.table.items():
            if raw is None or b'"h":[]' in raw:  # no held events: nothing to index (cheap test)
                continue
            st = codec.load_state(raw)
            ix = fresh.get(st["p"])
            if ix is None:
                continue
            user = key.decode() if isinstance(key, bytes) else key
            ix.update(user, st)
            for h in st["h"]:
                if h["st"] != "p" and h["at"] + self.limits.reemit_grace_ms > st["c"]:
                    ix.by_ref.setdefault(h["r"][1], set()).add(user)
            n += 1
        self.index.update(fresh)
        self._recount()
        log.info("partition index rebuilt", extra={"fields": {
            "partitions": sorted(todo), "users_held": n, "seconds": round(time.monotonic() - t0, 3)}})
        return fresh[p]

    # --- messages -----------------------------------------------------------------------------------------------

    def handle(self, key: bytes | None, value: bytes | None, partition: int, offset: int) -> None:
        """Process one raw-topic record; never raises (failures become dead letters)."""
        # Records Faust hands over again are processed again (never dropped as their own duplicates): the state
        # recognises the offset and re-emits the same outputs. Skipping them was tried and is unsafe (README).
        ref = {"topic": self.topics.raw, "partition": partition, "offset": offset}
        if value is not None and value.startswith(TICK):
            try:
                self._tick(partition, offset, int(value[len(TICK):]))
            except Exception as exc:  # a tick failing must not stop the stream; the next tick retries
                log.exception("tick failed", extra={"fields": {"partition": partition, "offset": offset}})
                self._dead(ref, "process", "tick_failed", f"{type(exc).__name__}: {exc}", value)
            return
        self.tally.inc(m.DELIVERIES)
        raw: dict[str, Any] | None = None
        try:
            if value is None:
                raise avro.AvroError("empty record")
            _, raw = self.decode(value, expect="raw_delivery")
        except avro.AvroError as exc:
            self._dead(ref, "process", "invalid_record", str(exc), value)
            return
        except wire.RegistryError as exc:  # kept with its payload: replay it once the registry answers
            self._dead(ref, "process", "registry_unavailable", str(exc), value)
            return
        try:
            source = self.sources.get(raw["source"])
            if source is None:
                self._dead(ref, "normalize", "unknown_source", f"no configured source {raw['source']!r}", value,
                           raw=raw)
                return
            try:
                events = self.normalize(source, {**raw, "raw_ref": ref})
            except self.normalize_error as exc:
                self._dead(ref, "normalize", getattr(exc, "reason", "invalid"), str(exc), value, raw=raw,
                           field=getattr(exc, "field", None))
                return
            self._events(raw, [codec.plain(e) for e in events], partition, offset)
        except Exception as exc:  # a bug or bad state for this user: park it, keep going
            log.exception("processing failed", extra={"fields": {"partition": partition, "offset": offset}})
            self._dead(ref, "process", "processing_error", f"{type(exc).__name__}: {exc}", value, raw=raw)

    def _events(self, raw: dict[str, Any], events: list[dict[str, Any]], partition: int, offset: int) -> None:
        user = raw["user_key"]
        for e in events:
            self.tally.inc(m.EVENTS_IN, e.get("event_type") or "unknown")
        ix = self._index(partition)
        stored = self.table.get(user)
        state = codec.load_state(stored) if stored is not None else new_state(partition)
        state["p"] = partition
        room = self.settings.streams.max_pending_total - self.pending_total
        now = _ms(raw["received_at"])
        res = apply_events(state, events, (partition, offset), now, self.limits,
                           self.rules.get(raw["source"], Rules()), room)
        t = self.tally
        t.inc(m.DUPLICATES, n=res.duplicates)
        t.inc(m.FILTERED, n=res.filtered)
        t.inc(m.REPLAYED, n=res.replayed)
        t.inc(m.BUFFERED, n=res.buffered)
        # Duplicates and replays change nothing worth a changelog record.
        if res.changed:
            self.table[user] = codec.dump_state(state)
        self._account(ix, user, state)
        self._emit(user, res)

    def _tick(self, partition: int, offset: int, now: int) -> None:
        ix = self._index(partition)
        users = {u for u, (dl, _) in ix.due.items() if dl <= now} | ix.by_ref.pop(offset, set())
        for user in sorted(users):
            stored = self.table.get(user)
            if stored is None:
                ix.due.pop(user, None)
                continue
            self._tick_user(ix, user, stored, partition, offset, now)
        self._sweep(ix, partition, offset, now)

    def _tick_user(self, ix: PartitionIndex, user: str, stored: bytes, partition: int, offset: int, now: int) -> None:
        state = codec.load_state(stored)
        res = apply_tick(state, (partition, offset), now, self.limits)
        if res.delete:
            del self.table[user]
        elif res.changed:
            self.table[user] = codec.dump_state(state)
        self._account(ix, user, state)
        self._emit(user, res)

    def _sweep(self, ix: PartitionIndex, partition: int, offset: int, now: int) -> None:
        """Trim users idle for a dedupe window and drop those idle past state retention (plain tables have no TTL).
        A full scan of the table, so it runs at most hourly per partition."""
        last = self.last_sweep.setdefault(partition, now)
        if now - last < min(3_600_000, self.limits.dedupe_retention_ms):
            return
        self.last_sweep[partition] = now
        idle_before = now - self.limits.dedupe_retention_ms
        n = 0
        mine = b'{"p":%d,' % partition  # dump_state writes "p" first: skip other partitions without decoding
        for key, raw in list(self.table.items()):
            if raw is None or not raw.startswith(mine):
                continue
            st = codec.load_state(raw)
            if st["p"] == partition and st["l"] <= idle_before and (st["s"] or not st["h"]):
                self._tick_user(ix, key.decode(), raw, partition, offset, now)
                n += 1
        log.info("state sweep", extra={"fields": {"partition": partition, "idle_users": n}})

    def _account(self, ix: PartitionIndex, user: str, state: dict[str, Any]) -> None:
        self.pending_total += ix.update(user, state)

    def _emit(self, user: str, res: Result) -> None:
        now = int(time.time() * 1000)
        key = user.encode()
        for kind, out in res.outputs:
            out["emitted_at"] = now
            self.tally.inc(m.EVENTS_OUT, kind, out["attribution_status"])
            if kind == TIMEOUT:
                self.tally.inc(m.TIMEOUTS)
            elif kind == CORRECTION:
                self.tally.inc(m.CORRECTIONS)
            elif kind == OVERFLOW:
                self.tally.inc(m.OVERFLOWS)
            self.send(self.topics.events, key, self.encode_event(out))

    def _dead(self, ref: dict[str, Any], stage: str, reason: str, detail: str, value: bytes | None,
              raw: dict[str, Any] | None = None, field: str | None = None) -> None:
        m.DEAD_LETTERS.labels(reason).inc()
        log.warning("dead letter", extra={"fields": {"reason": reason, "stage": stage, **ref}})
        rec = {
            # deterministic: a re-processed message overwrites rather than adds a dead letter downstream
            "dead_letter_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{ref['topic']}/{ref['partition']}/{ref['offset']}")),
            "stage": stage, "reason": reason, "detail": detail[:2000], "field": field,
            "source": raw.get("source") if raw else None, "mmp": raw.get("mmp") if raw else None,
            "delivery_id": raw.get("delivery_id") if raw else None, "raw": ref, "payload": value,
            "failed_at": int(time.time() * 1000),
        }
        key = raw["user_key"].encode() if raw and raw.get("user_key") else None
        self.send(self.topics.dead_letters, key, self.encode_dead(rec))


def _ms(v: Any) -> int:
    return v if isinstance(v, int) else int(v.timestamp() * 1000)


# --- the Faust app --------------------------------------------------------------------------------------------------


def _bound_fetch_wait(ms: int) -> None:
    """Faust creates its aiokafka consumer with a hard-coded fetch_max_wait_ms=1500. aiokafka leaves partitions that
    still hold buffered records out of the next fetch, so that fetch can wait the full 1.5 s on the others while
    fresh records of the excluded partitions sit in Kafka: seconds of latency at moderate rates. Cap it."""
    import aiokafka

    base = aiokafka.AIOKafkaConsumer
    if getattr(base, "_attrib_fetch_wait", None) == ms:
        return

    class Consumer(base):  # type: ignore[misc, valid-type]
        _attrib_fetch_wait = ms

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["fetch_max_wait_ms"] = min(int(kwargs.get("fetch_max_wait_ms", ms)), ms)
            super().__init__(*args, **kwargs)

    aiokafka.AIOKafkaConsumer = Consumer  # type: ignore[misc]


def _no_gap_acks() -> None:
    """Faust (0.15) treats a jump in the offsets it reads as a gap and counts the skipped offsets as acknowledged, so a
    commit can pass them. After the post-recovery seek to the committed offsets, records of a getmany batch fetched
    before the seek still flow and move its read offset ahead; the re-fetched records below it are then filtered
    out (`offset >= read_offset`) — never handed to the agent, yet "acknowledged" as a gap: lost (seen in the kill
    test as `first_skipped`/`next_delivered` one apart). Our raw topic has no legitimate gaps, so gaps are never
    acknowledged here: an offset is committed only after the agent handled it."""
    from faust.transport import consumer

    async def _add_gap(self: Any, tp: TP, offset_from: int, offset_to: int) -> None:
        return None

    consumer.Consumer._add_gap = _add_gap  # type: ignore[method-assign]


def build_app(settings: Settings, data_dir: Path, store: str, normalizer: Normalizer | None = None) -> faust.App:
    s = settings.streams
    _bound_fetch_wait(s.fetch_max_wait_ms)
    app = faust.App(
        s.app_id,
        **kafka.faust_settings(settings, "worker", s.app_id, [settings.topics.raw]),
        store=store,
        datadir=str(data_dir),
        autodiscover=False,
        web_enabled=False,
        topic_partitions=settings.topics.partitions,
        topic_replication_factor=settings.topics.replication_factor,
        table_standby_replicas=s.standby_replicas,
        broker_commit_interval=s.commit_interval_s,
        broker_max_poll_records=s.max_poll_records,
        stream_buffer_maxsize=s.buffer_maxsize,
        stream_recovery_delay=0.0,
        consumer_auto_offset_reset="earliest",
        producer_linger_ms=s.linger_ms,
        producer_max_batch_size=1 << 20,
        producer_acks=-1,
    )
    raw_topic = app.topic(settings.topics.raw, key_type=bytes, value_type=bytes, key_serializer="raw",
                          value_serializer="raw", partitions=settings.topics.partitions)
    users = app.Table("users", key_type=bytes, value_type=bytes, partitions=settings.topics.partitions)
    changelog = users.changelog_topic.get_topic_name()
    producer = app.producer

    def on_sent(topic: str, partition: int, offset: int) -> None:
        if topic == changelog:  # what Faust's own changelog callback does: RocksDB resumes recovery from here
            users.data.set_persisted_offset(TP(topic, partition), offset)

    batcher = Batcher(lambda: producer._ensure_producer(), s.linger_ms / 1000, on_sent)
    faust_flush = producer.flush

    async def flush() -> None:  # Faust calls this before every offset commit
        try:
            await batcher.flush()
        except Exception:
            # Outputs or state records were lost: committing later offsets would lose events. Exit like a crash;
            # the restarted worker re-processes from the last good commit (tested with kill -9).
            log.critical("producing failed; exiting without committing", exc_info=True)
            os._exit(70)
        await faust_flush()

    producer.flush = flush  # type: ignore[method-assign]
    current = {"partition": 0}

    def send(topic: str, key: bytes | None, value: bytes) -> None:
        # Outputs are keyed by user key and co-partitioned with the raw topic: same partition number.
        batcher.add(topic, current["partition"], key, value)

    proc = Processor(settings, _TableView(users, changelog, batcher, current), send, normalizer)
    proc.serde.prepare([("enriched_event", settings.topics.events), ("dead_letter", settings.topics.dead_letters)])
    app.processor = proc  # type: ignore[attr-defined]

    _no_gap_acks()
    last_offset: dict[int, int] = {}  # partition -> offset of the last message handled in this assignment

    @app.agent(raw_topic, concurrency=1)
    async def worker(stream: Any) -> None:
        async for event in stream.events():
            msg = event.message
            prev = last_offset.get(msg.partition)
            if prev is not None and msg.offset > prev + 1:
                # Faust skipped records (see _no_gap_acks): exit like a crash before anything commits past them; the
                # restarted worker re-processes from the last commit. Raw offsets are contiguous (no transactional
                # producer, no compaction), so a forward jump inside one assignment is never legitimate.
                log.critical("the stream skipped offsets; exiting so that they are re-processed", extra={"fields": {
                    "partition": msg.partition, "first_skipped": prev + 1, "next_delivered": msg.offset}})
                os._exit(70)
            last_offset[msg.partition] = msg.offset
            current["partition"] = msg.partition
            proc.handle(msg.key, msg.value, msg.partition, msg.offset)
            if batcher.due:
                await batcher.send_due()

    @app.timer(interval=s.tick_interval_s)
    async def ticks() -> None:
        """Time for the state machine: one tick per owned partition (processed in order with the deliveries)."""
        assigned = [tp for tp in app.consumer.assignment() if tp.topic == settings.topics.raw]
        if not assigned:
            return
        value = tick_value(int(time.time() * 1000))
        for tp in assigned:
            await producer.send(settings.topics.raw, None, value, tp.partition, None, None)
            hw = app.consumer.highwater(tp)
            committed = app.consumer._committed_offset.get(tp)
            if hw is not None and committed is not None:
                m.LAG.labels(str(tp.partition)).set(max(0, hw - committed))
        proc.publish_metrics()
        if batcher.due:  # outputs of a quiet stream still go out within the linger time
            await batcher.send_due()

    @app.on_partitions_assigned.connect
    async def on_assigned(sender: Any, assigned: set[TP], **_: Any) -> None:
        last_offset.clear()  # a new assignment starts from the committed offsets, wherever they are
        proc.on_assigned({tp.partition for tp in assigned if tp.topic == settings.topics.raw})

    @app.on_partitions_revoked.connect
    async def on_revoked(sender: Any, revoked: set[TP], **_: Any) -> None:
        last_offset.clear()
        proc.on_revoked({tp.partition for tp in revoked if tp.topic == settings.topics.raw})

    return app


class _TableView:
    """The users table with str keys. Writes go to the table's store and, as one batched record, to its changelog
    partition (the current message's partition, as Faust itself does) — bypassing Faust's per-write changelog
    path, which is the most expensive part of a table write. Recovery, standbys and rebalances are Faust's as usual."""

    def __init__(self, table: Any, changelog: str, batcher: Batcher, current: dict[str, int]) -> None:
        self.t, self.store, self.changelog, self.batcher, self.current = table, table.data, changelog, batcher, current

    def get(self, user: str) -> bytes | None:
        return self.store.get(user.encode())

    def __setitem__(self, user: str | bytes, value: bytes) -> None:
        key = user if isinstance(user, bytes) else user.encode()
        self.store[key] = value
        self.batcher.add(self.changelog, self.current["partition"], key, value)

    def __delitem__(self, user: str | bytes) -> None:
        key = user if isinstance(user, bytes) else user.encode()
        self.store.pop(key, None)
        self.batcher.add(self.changelog, self.current["partition"], key, None)

    def items(self) -> Any:
        return self.store.items()
