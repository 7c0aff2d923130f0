"""The ClickHouse sink: Kafka topics → batched, idempotent inserts → offsets committed only after the insert.

Threads, no event loop: a consumer thread (confluent-kafka, manual commits) reads the enriched-events, dead-letter
and alert topics (and raw deliveries when archiving) and builds batches of ``sink.batch_rows`` records or
``sink.batch_seconds`` after a batch's first record; a loader thread inserts the previous batch meanwhile (the
engine releases the GIL); a refresher thread rebuilds the daily rollups (:mod:`sinks.rollups`). Records are routed
by their Avro schema. Events and raw deliveries take the fast path (:mod:`sinks.landing`: Avro bytes straight into
the engine); the rest, and any block the engine refuses, become rows in Python (:mod:`sinks.rows`). Every insert
runs with ``async_insert=0`` and an ``insert_deduplication_token`` derived from the batch's offset ranges, so a
retried batch cannot double. ClickHouse refusing a batch → exponential backoff with the batch kept (the backlog
waits in Kafka), logged at ERROR and visible in :class:`Metrics` / ``/health``. Nothing here touches an asyncio
loop, so the sink can share a process with one.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from array import array
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Protocol, cast

from clickhouse_connect.driver.client import Client
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from attrib import kafka
from attrib.errors import Permanent, Retryable
from attrib.settings import Settings
from schemas import avro, wire
from schemas.dead_letter import dead_letter
from sinks import clickhouse, landing, rollups, rows
from sinks.clickhouse import connect

log = logging.getLogger("attrib.sink")

INSERT_SETTINGS = {"async_insert": 0, "insert_deduplicate": 1, "deduplicate_blocks_in_dependent_materialized_views": 1,
                   # duplicates inside one batch are left to FINAL and merges: collapsing them at insert time
                   # costs CPU on every batch for rows readers never see anyway
                   "optimize_on_insert": 0}
# the landing table holds optional Avro records as tuples of NULLs (servers refuse Nullable(Tuple) by default)
FAST_SETTINGS = {**INSERT_SETTINGS, "input_format_avro_null_as_default": 1}


@dataclass
class Metrics:
    """Counters for logs, /metrics and tests; each written by one thread (consumer or loader), read by any."""

    consumed: int = 0
    inserted: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    undecodable: int = 0
    rejected_rows: int = 0
    insert_failures: int = 0
    commit_failures: int = 0
    clickhouse_down_since: float | None = None  # monotonic time of the first failure of the current outage
    last_error: str = ""
    last_flush_at: float = 0.0  # wall clock
    load_seconds: float = 0.0  # time spent in successful loads (mean = load_seconds / batches)

    def prometheus(self) -> str:
        down = time.monotonic() - self.clickhouse_down_since if self.clickhouse_down_since else 0.0
        lines = [f"attrib_sink_consumed_total {self.consumed}", f"attrib_sink_batches_total {self.batches}",
                 f"attrib_sink_undecodable_total {self.undecodable}",
                 f"attrib_sink_rejected_rows_total {self.rejected_rows}",
                 f"attrib_sink_insert_failures_total {self.insert_failures}",
                 f"attrib_sink_commit_failures_total {self.commit_failures}",
                 f"attrib_sink_clickhouse_down_seconds {down:.3f}",
                 f"attrib_sink_last_flush_timestamp_seconds {self.last_flush_at:.3f}",
                 f"attrib_sink_load_seconds_total {self.load_seconds:.3f}"]
        lines += [f'attrib_sink_inserted_rows_total{{table="{t}"}} {n}' for t, n in sorted(self.inserted.items())]
        return "\n".join(lines) + "\n"


class Positioned(Protocol):
    """Where a consumed record sits. A record without error always has its position (confluent-kafka's stubs say
    ``| None`` for all three because error events share the Message type)."""

    def topic(self) -> str: ...

    def partition(self) -> int: ...

    def offset(self) -> int: ...


class Message(Positioned, Protocol):
    """What the sink reads of a confluent_kafka Message."""

    def value(self) -> bytes | None: ...

    def error(self) -> KafkaError | None: ...


def _consumed(msgs: list[Any]) -> list[Message]:
    return cast(list[Message], msgs)


@dataclass
class Batch:
    rows: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    blobs: dict[bytes, list[bytes]] = field(default_factory=dict)  # writer fingerprint -> Avro bodies (fast path)
    # where each body came from (for fallbacks), as (index into ``partitions``, offset) pairs in a flat array: keeping
    # the Message objects instead kept ~100k GC-tracked objects alive per batch, and the collector's passes over
    # them cost the consumer thread a quarter of its time
    where: dict[bytes, array[int]] = field(default_factory=dict)
    # (topic, partition) -> [first offset, last offset, index into ``partitions``]
    offsets: dict[tuple[str, int], list[int]] = field(default_factory=dict)
    partitions: list[tuple[str, int]] = field(default_factory=list)
    days: set[date] = field(default_factory=set)  # days of events loaded by the row path (the fast path's view
    # records its own in rollup_dirty_days)
    count: int = 0
    size: int = 0  # bytes of fast-path bodies
    opened: float = 0.0  # monotonic time of the first record

    def add(self, table: str, row: tuple[Any, ...], msg: Positioned) -> None:
        if not self.count:
            self.opened = time.monotonic()
        self.rows.setdefault(table, []).append(row)
        self.count += 1
        self.track(msg)

    def add_blob(self, fingerprint: bytes, body: bytes, msg: Positioned) -> None:
        # the hot path (once per record at 100k records/s): no helper calls, few lookups, nothing GC-tracked kept
        if not self.count:
            self.opened = time.monotonic()
        bodies = self.blobs.get(fingerprint)
        if bodies is None:
            bodies = self.blobs[fingerprint] = []
            self.where[fingerprint] = array("q")
        bodies.append(body)
        self.count += 1
        self.size += len(body)
        key = (msg.topic(), msg.partition())
        offset = msg.offset()
        span = self.offsets.get(key)
        if span is None:
            span = self.offsets[key] = [offset, offset, len(self.partitions)]
            self.partitions.append(key)
        else:
            span[1] = offset
        where = self.where[fingerprint]
        where.append(span[2])
        where.append(offset)

    def track(self, msg: Positioned) -> None:
        key = (msg.topic(), msg.partition())
        span = self.offsets.get(key)
        if span is None:
            self.offsets[key] = [msg.offset(), msg.offset(), len(self.partitions)]
            self.partitions.append(key)
        else:
            span[1] = msg.offset()

    def coordinates(self, fingerprint: bytes) -> Iterator[tuple[str, int, int]]:
        """(topic, partition, offset) of each body of ``fingerprint``, in order."""
        where = self.where[fingerprint]
        for i in range(0, len(where), 2):
            yield (*self.partitions[where[i]], where[i + 1])

    def token(self, part: str, n: int) -> str:
        """Same batch → same token, so ClickHouse drops a retried insert it already stored."""
        spans = ",".join(f"{t}:{p}:{span[0]}-{span[1]}" for (t, p), span in sorted(self.offsets.items()))
        return hashlib.sha256(f"{part}|{spans}|{n}".encode()).hexdigest()[:32]


class Sink:
    def __init__(self, settings: Settings, client_factory: Callable[[], Client] | None = None) -> None:
        self.settings = settings
        self.db = settings.clickhouse.database
        self.metrics = Metrics()
        self._connect = client_factory or (lambda: connect(settings))
        self._client: Client | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Embedded, the rebuild shares this machine's cores with the inserts (and often with the worker): its engine
        # threads run at nice 10 (reset after each query), so under load loading and latency come first and the
        # rollups lag a little. A server schedules its own queries.
        self.refresher = rollups.Refresher(self._connect, self.db, settings.sink.rollup_refresh_s,
                                           query_settings={"os_thread_priority": 10}
                                           if settings.clickhouse.embedded else None,
                                           reporting=settings.reporting.currency)
        self._carry: list[Message] = []
        self.serde = wire.serde(settings)  # single-object Avro, or Confluent framing with a schema registry
        self.topics = [settings.topics.events, settings.topics.dead_letters, settings.topics.alerts_spike,
                       settings.topics.alerts_drop] + ([settings.topics.raw] if settings.sink.archive_raw else [])

    # --- lifecycle -----------------------------------------------------------------------------------------------

    def start(self) -> threading.Thread:
        self._thread = threading.Thread(target=self.run, name="attrib-sink", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def prometheus(self) -> str:
        r = self.refresher
        return (self.metrics.prometheus() + f"attrib_sink_rollup_refreshes_total {r.refreshes}\n"
                f"attrib_sink_rollup_failures_total {r.failures}\n" + r.prometheus())

    def settled(self) -> bool:
        """Everything flushed so far is also in the rollups (a refresh round began after the last flush)."""
        return self.refresher.settled_at > self.metrics.last_flush_at

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> None:
        consumer = kafka.consumer(self.settings, "sink", self.settings.sink.group_id, topics=self.topics,
                                  extra={"enable.auto.commit": False, "auto.offset.reset": "earliest",
                                         "queued.max.messages.kbytes": 65536, **fetch_config(self.settings)})
        consumer.subscribe(self.topics)
        log.info("sink started", extra={"fields": {"topics": self.topics, "group": self.settings.sink.group_id}})
        # Two stages overlap: this thread consumes and batches while the loader thread inserts the previous batch
        # (the engine releases the GIL). At most one batch is in flight; offsets are committed here, after it loaded.
        loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="attrib-sink-load")
        inflight: tuple[Future[bool], Batch] | None = None
        try:
            self.refresher.start()
            batch = Batch()
            while not self._stop.is_set():
                if inflight is not None and inflight[0].done():
                    if inflight[0].result():
                        self._commit(consumer, inflight[1])
                    inflight = None  # False only when stopping: those records are re-read after a restart
                full = batch.count >= self.settings.sink.batch_rows or batch.size >= self.settings.sink.batch_bytes
                if full and inflight is not None:  # the next batch is ready before the loader is
                    if self.metrics.clickhouse_down_since is None:
                        wait_futures([inflight[0]], timeout=0.05)
                    else:  # an outage can outlast max.poll.interval.ms: keep polling (paused) to stay in the group
                        self._idle(consumer, 0.2)
                    continue
                if not full:
                    batch = self._fill(consumer, batch)
                due = batch.count and (batch.count >= self.settings.sink.batch_rows
                                       or batch.size >= self.settings.sink.batch_bytes
                                       or time.monotonic() - batch.opened >= self.settings.sink.batch_seconds)
                if due and inflight is None:
                    inflight = (loader.submit(self._load, batch), batch)
                    batch = Batch()
                elif batch.count == 0 and batch.offsets and inflight is None:  # only tombstones: commit past them
                    self._commit(consumer, batch)
                    batch = Batch()
            # graceful stop: finish the batch in flight and flush what we hold (one attempt), so a restart does not
            # re-read them
            if inflight is not None and inflight[0].result():
                self._commit(consumer, inflight[1])
            if batch.count and self._load(batch, attempts=1):
                self._commit(consumer, batch)
        finally:
            loader.shutdown(wait=True)
            self.refresher.stop()
            consumer.close()
            if self._client is not None:
                self._client.close()
            log.info("sink stopped", extra={"fields": {"consumed": self.metrics.consumed}})

    # --- consuming -----------------------------------------------------------------------------------------------

    def _fill(self, consumer: Consumer, batch: Batch) -> Batch:
        s = self.settings.sink
        if self._carry:
            msgs, self._carry = self._carry, []
        else:
            wait = s.batch_seconds - (time.monotonic() - batch.opened) if batch.count else s.batch_seconds
            # at least 10 ms: a batch that is due while the loader is still busy must not spin here at timeout 0,
            # taking CPU from the insert it waits for
            msgs = _consumed(consumer.consume(num_messages=max(1, min(s.batch_rows - batch.count, 10_000)),
                                              timeout=max(0.01, min(wait, 0.1))))
        fast = landing.writers()
        decode = self.serde.decode
        magic, tick = avro.MAGIC, avro.TICK
        confluent = self.serde.confluent
        add_blob = batch.add_blob
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("kafka consume error", extra={"fields": {"error": str(err)}})
                continue
            self.metrics.consumed += 1
            value = m.value()
            if value is None or value.startswith(tick):  # tombstone or worker tick: nothing to load
                batch.track(m)
                continue
            fp = value[2:10]
            w = fast.get(fp) if value.startswith(magic) else None
            if w is not None:  # fast path: keep the Avro body as is
                if w.kafka_fields:
                    add_blob(fp, value[10:] + landing.kafka_suffix(m.topic(), m.partition(), m.offset()), m)
                else:
                    add_blob(fp, value[10:], m)
                continue
            if confluent is not None and value[:1] == b"\0" and len(value) >= 5:
                # Confluent framing: the same fast path when the schema id's writer schema is one we know
                try:
                    fp = confluent.fingerprint(int.from_bytes(value[1:5], "big"))
                except wire.RegistryError as exc:  # registry down: wait, then read these again; never dead-letter
                    self._registry_down(consumer, msgs[msgs.index(m):], exc)
                    return batch
                except wire.UnknownSchemaId:  # an id the registry doesn't have: decoded below, which dead-letters it
                    fp = b""
                w = fast.get(fp)
                if w is not None:
                    suffix = landing.kafka_suffix(m.topic(), m.partition(), m.offset()) if w.kafka_fields else b""
                    add_blob(fp, value[5:] + suffix, m)
                    continue
            try:
                name, rec = decode(value)
                row = rows.to_row(name, rec, m.topic(), m.partition(), m.offset())
            except wire.RegistryError as exc:  # registry down: wait, then read these again; never dead-letter
                self._registry_down(consumer, msgs[msgs.index(m):], exc)
                return batch
            except Exception as exc:  # noqa: BLE001 - the per-record dead-letter boundary: whatever these bytes make
                # the decoder or the row builder raise (AvroError, a record of no table …), they become a dead letter
                # with the payload and never block the topic (a crash would re-read them forever)
                self.metrics.undecodable += 1
                batch.add("dead_letters", self._undecodable(m.topic(), m.partition(), m.offset(), value, exc), m)
                continue
            table = rows.TABLES[name][0]
            batch.add(table, row, m)
            if table == "events":
                batch.days.add(rec["event_time"].date())
        return batch

    def _registry_down(self, consumer: Consumer, unread: list[Message], exc: Exception) -> None:
        self.metrics.last_error = str(exc)[:300]
        log.error("schema registry unavailable; records kept, retrying", extra={"fields": {
            "records_waiting": len(unread), "detail": str(exc)[:300]}})
        self._carry = unread
        self._idle(consumer, self.settings.sink.retry_initial_s)

    @staticmethod
    def _undecodable(topic: str, partition: int, offset: int, value: bytes | None, exc: Exception) -> tuple[Any, ...]:
        """A record the sink cannot read; its id is anchored on its Kafka position, so a re-read yields the same."""
        return _letter_row(dead_letter(stage="sink", reason="undecodable", detail=str(exc), payload=value,
                                       raw_ref={"topic": topic, "partition": partition, "offset": offset}))

    # --- loading -------------------------------------------------------------------------------------------------

    def _ensure_client(self) -> Client:
        if self._client is None:
            self._client = self._connect()
        return self._client

    def _insert(self, batch: Batch, table: str) -> None:
        data = batch.rows[table]
        columns = rows.TABLES_BY_NAME[table]
        clickhouse.insert(self._ensure_client(), f"{self.db}.{table}", list(zip(*data, strict=True)),
                          column_names=columns, column_oriented=True,
                          settings={**INSERT_SETTINGS, "insert_deduplication_token": batch.token(table, len(data))})

    def _insert_fast(self, batch: Batch, fingerprint: bytes) -> None:
        w = landing.writers()[fingerprint]
        bodies = batch.blobs[fingerprint]
        client = self._ensure_client()
        with clickhouse.calls():
            client.raw_insert(
                f"{self.db}.{w.table}", insert_block=landing.container(w, bodies), fmt="Avro",
                settings={**FAST_SETTINGS, "insert_deduplication_token": batch.token(fingerprint.hex(), len(bodies))})

    def _decode_fallback(self, batch: Batch, fingerprint: bytes) -> None:
        """The engine refused a fast-path block: decode its records here, so a bad one becomes a dead letter."""
        w = landing.writers()[fingerprint]
        prefix = avro.MAGIC + fingerprint
        coordinates = list(batch.coordinates(fingerprint))
        batch.where.pop(fingerprint)
        for stored, (topic, partition, offset) in zip(batch.blobs.pop(fingerprint), coordinates, strict=True):
            cut = len(landing.kafka_suffix(topic, partition, offset)) if w.kafka_fields else 0  # what _fill appended
            body = stored[:len(stored) - cut]
            try:
                name, rec = avro.decode(prefix + body)
                row = rows.to_row(name, rec, topic, partition, offset)
            except Exception as exc:  # noqa: BLE001 - per-record dead-letter boundary, as in _fill
                self.metrics.undecodable += 1
                batch.rows.setdefault("dead_letters", []).append(
                    self._undecodable(topic, partition, offset, prefix + body, exc))
                continue
            table = rows.TABLES[name][0]
            batch.rows.setdefault(table, []).append(row)
            if table == "events":
                batch.days.add(rec["event_time"].date())

    def _load(self, batch: Batch, attempts: int | None = None) -> bool:
        """Insert every table of the batch, retrying with backoff. Runs in the loader thread; False if stopped (or
        out of ``attempts``) before everything was stored — then nothing may be committed."""
        delay = self.settings.sink.retry_initial_s
        tries = 0
        started = time.monotonic()
        # fast-path blocks first (a refused block falls back to rows), then per-table rows; the same order every retry
        done_rows: set[str] = set()
        while True:
            # events first: their latency is what analysts see (raw deliveries are an archive)
            fast = sorted(batch.blobs, key=lambda fp: (landing.writers()[fp].table != "events_avro_in", fp))
            pending = [t for t in sorted(batch.rows, key=lambda t: t == "dead_letters") if t not in done_rows]
            if not fast and not pending:
                break
            try:
                if fast:
                    fp = fast[0]
                    try:
                        self._insert_fast(batch, fp)
                    except Permanent as exc:  # some record of the block is bad: find it record by record
                        log.warning("fast load refused; decoding the block record by record", extra={"fields": {
                            "rows": len(batch.blobs[fp]), "error": str(exc)[:300]}})
                        self._decode_fallback(batch, fp)
                        continue
                    table = landing.writers()[fp].table.removesuffix("_avro_in")
                    n = len(batch.blobs.pop(fp))
                    batch.where.pop(fp)
                else:
                    table = pending[0]
                    n = len(batch.rows[table])
                    try:
                        self._insert(batch, table)
                    except Permanent as exc:  # poison rows (by the server's error code, or the client's conversion)
                        n = self._reject_poison(batch, table, exc)
                    if table == "events":
                        with clickhouse.calls():
                            rollups.mark_dirty(self._ensure_client(), self.db, batch.days)
                    done_rows.add(table)
            except Retryable as exc:  # the warehouse is down or overloaded: keep the batch, back off
                tries += 1
                self._outage(exc, tries, delay, batch)
                if self._stop.is_set() or (attempts is not None and tries >= attempts):
                    return False
                self._stop.wait(delay)
                delay = min(delay * 2, self.settings.sink.retry_max_s)
                if self._client is not None and tries % 3 == 0:  # reconnect now and then (server restarts)
                    clickhouse.close(self._client)
                    self._client = None
                continue
            self.metrics.inserted[table] = self.metrics.inserted.get(table, 0) + n
        if self.metrics.clickhouse_down_since is not None:
            down = time.monotonic() - self.metrics.clickhouse_down_since
            log.warning("clickhouse is back; backlog resumes", extra={"fields": {"down_s": round(down, 1)}})
            self.metrics.clickhouse_down_since = None
        self.metrics.batches += 1
        self.metrics.load_seconds += time.monotonic() - started
        self.metrics.last_flush_at = time.time()
        return True

    def _outage(self, exc: Retryable, tries: int, delay: float, batch: Batch) -> None:
        self.metrics.insert_failures += 1
        self.metrics.last_error = str(exc)[:300]
        if self.metrics.clickhouse_down_since is None:
            self.metrics.clickhouse_down_since = time.monotonic()
        down = time.monotonic() - self.metrics.clickhouse_down_since
        log.error("clickhouse insert failed; batch kept, consumer paused, retrying", extra={"fields": {
            "attempt": tries, "retry_in_s": delay, "rows_waiting": batch.count, "down_s": round(down, 1),
            "error": type(exc).__name__, "code": getattr(exc, "name", None), "detail": str(exc)[:300]}})

    def _reject_poison(self, batch: Batch, table: str, exc: Permanent) -> int:
        """Insert the table's rows one by one; each row refused for good (by the client's conversion or the server's
        error code) becomes a dead letter. An outage meanwhile propagates: the batch is kept and retried."""
        good: list[tuple[Any, ...]] = []
        bad: list[tuple[tuple[Any, ...], Permanent]] = []
        client = self._ensure_client()
        columns = rows.TABLES_BY_NAME[table]
        for row in batch.rows[table]:
            try:
                clickhouse.insert(client, f"{self.db}.{table}", [row], column_names=columns, settings=INSERT_SETTINGS)
                good.append(row)
            except Permanent as row_exc:
                bad.append((row, row_exc))
        self.metrics.rejected_rows += len(bad)
        log.error("rows rejected by clickhouse; dead-lettered", extra={"fields": {
            "table": table, "rejected": len(bad), "error": str(exc)[:200]}})
        letters = [self._rejected(table, row, row_exc) for row, row_exc in bad]
        if letters:
            clickhouse.insert(client, f"{self.db}.dead_letters", letters, column_names=rows.DEAD_LETTER_COLUMNS,
                              settings=INSERT_SETTINGS)
        batch.rows[table] = good
        return len(good)

    @staticmethod
    def _rejected(table: str, row: tuple[Any, ...], exc: Permanent) -> tuple[Any, ...]:
        """A row the warehouse refused; anchored on a digest of the row (it has no Kafka position of its own here),
        so the same row refused again yields the same dead letter."""
        text = repr(row)
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        return _letter_row(dead_letter(stage="sink", reason="insert_rejected", detail=str(exc),
                                       payload=text.encode("utf-8", "surrogatepass")[:100_000],
                                       anchor=f"{table}/sha256:{digest}"))

    def _idle(self, consumer: Consumer, seconds: float) -> None:
        """Wait while staying in the consumer group: pause fetching, keep polling; keep whatever still arrives."""
        assignment = consumer.assignment()
        try:
            consumer.pause(assignment)
        except KafkaException as exc:  # a rebalance may have taken them already
            log.debug("pause failed", extra={"fields": {"error": str(kafka.mapped(exc, "pause"))}})
        end = time.monotonic() + seconds
        while not self._stop.is_set() and time.monotonic() < end:
            self._carry += _consumed(consumer.consume(num_messages=100,
                                                      timeout=min(0.2, max(0.0, end - time.monotonic()))))
        try:
            consumer.resume(assignment)
        except KafkaException as exc:  # likewise: partitions revoked meanwhile come back resumed
            log.debug("resume failed", extra={"fields": {"error": str(kafka.mapped(exc, "resume"))}})

    def _commit(self, consumer: Consumer, batch: Batch) -> None:
        offsets = [TopicPartition(t, p, span[1] + 1) for (t, p), span in batch.offsets.items()]
        try:
            consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:  # e.g. partitions revoked meanwhile: the next owner re-reads, and
            # re-inserting is harmless (ReplacingMergeTree by event_id, rollups rebuilt from FINAL)
            self.metrics.commit_failures += 1
            log.warning("offset commit failed; records will be re-read", extra={"fields": {
                "error": str(kafka.mapped(exc, "offset commit"))}})


def fetch_config(s: Settings) -> dict[str, int]:
    """Few, large fetches. librdkafka lists every assigned partition (5 topics x 12) in each fetch request, and with
    ``fetch.min.bytes`` 1 the broker answered as soon as any one record came — at ~600 deliveries/s, produced one
    request per record by the ingress, hundreds of fetches a second, each costing the broker (and this consumer's
    thread) a pass over every partition. Now a fetch waits for 1 MiB or a fifth of ``sink.batch_seconds`` (at most
    100 ms), whichever comes first: ~10 fetches/s, ≤ 100 ms more before a record joins a batch whose own wait is
    batch_seconds."""
    return {"fetch.min.bytes": 1 << 20, "fetch.wait.max.ms": max(10, min(100, int(s.sink.batch_seconds * 200)))}


def _letter_row(rec: dict[str, Any]) -> tuple[Any, ...]:
    """A dead-letter record (schemas.dead_letter) as a dead_letters row: the table takes a datetime."""
    return rows.dead_letter_row({**rec, "failed_at": datetime.fromtimestamp(rec["failed_at"] / 1000, UTC)})
