"""The ClickHouse sink: Kafka topics → batched, idempotent inserts → offsets committed only after the insert.

One consumer thread (confluent-kafka, manual commits) reads the enriched-events, dead-letter and alert topics (and
the raw-deliveries topic when archiving). Records are routed by their Avro schema, batched per table until
``sink.batch_rows`` or ``sink.batch_seconds`` after the batch's first record, then inserted column-oriented with
``async_insert=0`` and an ``insert_deduplication_token`` derived from the batch's offset ranges, so retrying the
same batch after a timeout cannot double it. ClickHouse refusing a batch → exponential backoff with the batch kept
and the consumer paused (the backlog waits in Kafka), logged at ERROR and visible in :class:`Metrics`. Everything is
synchronous in its own thread: nothing here can block an asyncio loop that shares the process.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

from clickhouse_connect.driver.client import Client
from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from attrib.settings import Settings
from schemas import avro
from sinks import landing, rollups, rows
from sinks.clickhouse import connect

log = logging.getLogger("attrib.sink")

INSERT_SETTINGS = {"async_insert": 0, "insert_deduplicate": 1, "deduplicate_blocks_in_dependent_materialized_views": 1}


@dataclass
class Metrics:
    """Counters for logs, /metrics and tests; written by the sink thread only."""

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

    def prometheus(self) -> str:
        down = time.monotonic() - self.clickhouse_down_since if self.clickhouse_down_since else 0.0
        lines = [f"attrib_sink_consumed_total {self.consumed}", f"attrib_sink_batches_total {self.batches}",
                 f"attrib_sink_undecodable_total {self.undecodable}",
                 f"attrib_sink_rejected_rows_total {self.rejected_rows}",
                 f"attrib_sink_insert_failures_total {self.insert_failures}",
                 f"attrib_sink_commit_failures_total {self.commit_failures}",
                 f"attrib_sink_clickhouse_down_seconds {down:.3f}",
                 f"attrib_sink_last_flush_timestamp_seconds {self.last_flush_at:.3f}"]
        lines += [f'attrib_sink_inserted_rows_total{{table="{t}"}} {n}' for t, n in sorted(self.inserted.items())]
        return "\n".join(lines) + "\n"


@dataclass
class Batch:
    rows: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    blobs: dict[bytes, list[bytes]] = field(default_factory=dict)  # writer fingerprint -> Avro bodies (fast path)
    where: dict[bytes, list[tuple[str, int, int]]] = field(default_factory=dict)  # their Kafka coordinates
    offsets: dict[tuple[str, int], list[int]] = field(default_factory=dict)  # (topic, partition) -> [first, last]
    days: set[date] = field(default_factory=set)  # days of events loaded by the row path (the fast path's view
    # records its own in rollup_dirty_days)
    count: int = 0
    opened: float = 0.0  # monotonic time of the first record

    def add(self, table: str, row: tuple[Any, ...], msg: Message) -> None:
        if not self.count:
            self.opened = time.monotonic()
        self.rows.setdefault(table, []).append(row)
        self.count += 1
        self.track(msg)

    def add_blob(self, fingerprint: bytes, body: bytes, msg: Message) -> None:
        if not self.count:
            self.opened = time.monotonic()
        self.blobs.setdefault(fingerprint, []).append(body)
        self.where.setdefault(fingerprint, []).append((msg.topic(), msg.partition(), msg.offset()))
        self.count += 1
        self.track(msg)

    def track(self, msg: Message) -> None:
        key = (msg.topic(), msg.partition())
        span = self.offsets.get(key)
        if span is None:
            self.offsets[key] = [msg.offset(), msg.offset()]
        else:
            span[1] = msg.offset()

    def token(self, part: str, n: int) -> str:
        """Same batch → same token, so ClickHouse drops a retried insert it already stored."""
        spans = ",".join(f"{t}:{p}:{a}-{b}" for (t, p), (a, b) in sorted(self.offsets.items()))
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
        self.refresher = rollups.Refresher(self._connect, self.db, settings.sink.rollup_refresh_s)
        self._carry: list[Message] = []
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
                f"attrib_sink_rollup_failures_total {r.failures}\n")

    def settled(self) -> bool:
        """Everything flushed so far is also in the rollups (a refresh round began after the last flush)."""
        return self.refresher.settled_at > self.metrics.last_flush_at

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> None:
        consumer = Consumer({
            "bootstrap.servers": self.settings.kafka.bootstrap_servers,
            "group.id": self.settings.sink.group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "fetch.min.bytes": 1,
            "queued.max.messages.kbytes": 65536,
        })
        consumer.subscribe(self.topics)
        log.info("sink started", extra={"fields": {"topics": self.topics, "group": self.settings.sink.group_id}})
        try:
            self.refresher.start()
            batch = Batch()
            while not self._stop.is_set():
                batch = self._fill(consumer, batch)
                due = batch.count and (batch.count >= self.settings.sink.batch_rows
                                       or time.monotonic() - batch.opened >= self.settings.sink.batch_seconds)
                if due and self._flush(consumer, batch):
                    batch = Batch()
                elif batch.count == 0 and batch.offsets:  # only skipped records (e.g. tombstones): commit past them
                    self._commit(consumer, batch)
                    batch = Batch()
            # graceful stop: flush what we hold (one attempt round), so a restart does not re-read it
            if batch.count:
                self._flush(consumer, batch, attempts=1)
        finally:
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
            msgs = consumer.consume(num_messages=max(1, min(s.batch_rows - batch.count, 10_000)),
                                    timeout=max(0.0, min(wait, 0.5)))
        fast = landing.writers()
        decode = avro.decode
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("kafka consume error", extra={"fields": {"error": str(err)}})
                continue
            self.metrics.consumed += 1
            value = m.value()
            if value is None or value.startswith(avro.TICK):  # tombstone or worker tick: nothing to load
                batch.track(m)
                continue
            w = fast.get(value[2:10]) if value[:2] == avro.MAGIC else None
            if w is not None:  # fast path: keep the Avro body as is
                body = value[10:]
                if w.kafka_fields:
                    body += landing.kafka_suffix(m.topic(), m.partition(), m.offset())
                batch.add_blob(value[2:10], body, m)
                continue
            try:
                name, rec = decode(value)
                row = rows.to_row(name, rec, m.topic(), m.partition(), m.offset())
            except Exception as exc:  # bad bytes never block the topic: they become a dead letter with the payload
                self.metrics.undecodable += 1
                batch.add("dead_letters", self._undecodable(m.topic(), m.partition(), m.offset(), value, exc), m)
                continue
            table = rows.TABLES[name][0]
            batch.add(table, row, m)
            if table == "events":
                batch.days.add(rec["event_time"].date())
        return batch

    @staticmethod
    def _undecodable(topic: str, partition: int, offset: int, value: bytes | None, exc: Exception) -> tuple[Any, ...]:
        return rows.dead_letter_row({
            "dead_letter_id": f"sink:{topic}:{partition}:{offset}", "stage": "sink",
            "reason": "undecodable", "detail": str(exc)[:500], "field": None, "source": None, "mmp": None,
            "delivery_id": None, "raw": {"topic": topic, "partition": partition, "offset": offset},
            "payload": value, "failed_at": datetime.now(timezone.utc)})

    # --- loading -------------------------------------------------------------------------------------------------

    def _ensure_client(self) -> Client:
        if self._client is None:
            self._client = self._connect()
        return self._client

    def _insert(self, batch: Batch, table: str) -> None:
        data = batch.rows[table]
        columns = rows.TABLES_BY_NAME[table]
        client = self._ensure_client()
        client.insert(f"{self.db}.{table}", list(zip(*data)), column_names=columns, column_oriented=True,
                      settings={**INSERT_SETTINGS, "insert_deduplication_token": batch.token(table, len(data))})

    def _insert_fast(self, batch: Batch, fingerprint: bytes) -> None:
        w = landing.writers()[fingerprint]
        bodies = batch.blobs[fingerprint]
        self._ensure_client().raw_insert(
            f"{self.db}.{w.table}", insert_block=landing.container(w, bodies), fmt="Avro",
            settings={**INSERT_SETTINGS, "insert_deduplication_token": batch.token(fingerprint.hex(), len(bodies))})

    def _decode_fallback(self, batch: Batch, fingerprint: bytes) -> None:
        """The engine refused a fast-path block: decode its records here, so a bad one becomes a dead letter."""
        w = landing.writers()[fingerprint]
        prefix = avro.MAGIC + fingerprint
        for body, (topic, partition, offset) in zip(batch.blobs.pop(fingerprint), batch.where.pop(fingerprint)):
            if w.kafka_fields:  # drop what _fill appended
                body = body[:len(body) - len(landing.kafka_suffix(topic, partition, offset))]
            try:
                name, rec = avro.decode(prefix + body)
                row = rows.to_row(name, rec, topic, partition, offset)
            except Exception as exc:  # noqa: BLE001
                self.metrics.undecodable += 1
                batch.rows.setdefault("dead_letters", []).append(
                    self._undecodable(topic, partition, offset, prefix + body, exc))
                continue
            table = rows.TABLES[name][0]
            batch.rows.setdefault(table, []).append(row)
            if table == "events":
                batch.days.add(rec["event_time"].date())

    def _flush(self, consumer: Consumer, batch: Batch, attempts: int | None = None) -> bool:
        """Insert every table of the batch (retrying with backoff), then commit. False if stopped before done."""
        delay = self.settings.sink.retry_initial_s
        tries = 0
        # fast-path blocks first (a refused block falls back to rows), then per-table rows; the same order every retry
        done_rows: set[str] = set()
        while True:
            fast = sorted(batch.blobs)
            pending = [t for t in sorted(batch.rows, key=lambda t: t == "dead_letters") if t not in done_rows]
            if not fast and not pending:
                break
            try:
                if fast:
                    fp = fast[0]
                    try:
                        self._insert_fast(batch, fp)
                    except Exception as exc:  # noqa: BLE001 - bad record or outage: the row path tells them apart
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
                    except (TypeError, ValueError, OverflowError, AttributeError) as exc:
                        # client-side conversion refused a value: poison rows, not an outage → isolate them
                        n = self._reject_poison(batch, table, exc)
                    if table == "events":
                        rollups.mark_dirty(self._ensure_client(), self.db, batch.days)
                    done_rows.add(table)
            except Exception as exc:  # noqa: BLE001 - any server/connection failure: keep the batch, back off
                tries += 1
                self._outage(exc, tries, delay, batch)
                if self._stop.is_set() or (attempts is not None and tries >= attempts):
                    return False
                self._idle(consumer, delay)
                delay = min(delay * 2, self.settings.sink.retry_max_s)
                if self._client is not None and tries % 3 == 0:  # reconnect now and then (server restarts)
                    try:
                        self._client.close()
                    finally:
                        self._client = None
                continue
            self.metrics.inserted[table] = self.metrics.inserted.get(table, 0) + n
        if self.metrics.clickhouse_down_since is not None:
            down = time.monotonic() - self.metrics.clickhouse_down_since
            log.warning("clickhouse is back; backlog resumes", extra={"fields": {"down_s": round(down, 1)}})
            self.metrics.clickhouse_down_since = None
        self.metrics.batches += 1
        self.metrics.last_flush_at = time.time()
        self._commit(consumer, batch)
        return True

    def _outage(self, exc: Exception, tries: int, delay: float, batch: Batch) -> None:
        self.metrics.insert_failures += 1
        self.metrics.last_error = str(exc)[:300]
        if self.metrics.clickhouse_down_since is None:
            self.metrics.clickhouse_down_since = time.monotonic()
        down = time.monotonic() - self.metrics.clickhouse_down_since
        log.error("clickhouse insert failed; batch kept, consumer paused, retrying", extra={"fields": {
            "attempt": tries, "retry_in_s": delay, "rows_waiting": batch.count, "down_s": round(down, 1),
            "error": type(exc).__name__, "detail": str(exc)[:300]}})

    def _reject_poison(self, batch: Batch, table: str, exc: Exception) -> int:
        """Insert the table's rows one by one; each row the client cannot convert becomes a dead letter."""
        good, bad = [], []
        client = self._ensure_client()
        columns = rows.TABLES_BY_NAME[table]
        for row in batch.rows[table]:
            try:
                client.insert(f"{self.db}.{table}", [row], column_names=columns, settings=INSERT_SETTINGS)
                good.append(row)
            except (TypeError, ValueError, OverflowError, AttributeError) as row_exc:
                bad.append((row, row_exc))
        self.metrics.rejected_rows += len(bad)
        log.error("rows rejected by the client; dead-lettered", extra={"fields": {
            "table": table, "rejected": len(bad), "error": str(exc)[:200]}})
        now = datetime.now(timezone.utc)
        letters = [rows.dead_letter_row({
            "dead_letter_id": f"sink-reject:{table}:{hashlib.sha256(repr(row).encode()).hexdigest()[:24]}",
            "stage": "sink", "reason": "insert_rejected", "detail": str(row_exc)[:500], "field": None,
            "source": None, "mmp": None, "delivery_id": None, "raw": None, "payload": repr(row)[:100_000],
            "failed_at": now}) for row, row_exc in bad]
        if letters:
            client.insert(f"{self.db}.dead_letters", letters, column_names=rows.DEAD_LETTER_COLUMNS,
                          settings=INSERT_SETTINGS)
        batch.rows[table] = good
        return len(good)

    def _idle(self, consumer: Consumer, seconds: float) -> None:
        """Wait while staying in the consumer group: pause fetching, keep polling; keep whatever still arrives."""
        assignment = consumer.assignment()
        try:
            consumer.pause(assignment)
        except Exception:  # noqa: BLE001 - a rebalance may have taken them already
            pass
        end = time.monotonic() + seconds
        while not self._stop.is_set() and time.monotonic() < end:
            self._carry += consumer.consume(num_messages=100, timeout=min(0.2, max(0.0, end - time.monotonic())))
        try:
            consumer.resume(assignment)
        except Exception:  # noqa: BLE001
            pass

    def _commit(self, consumer: Consumer, batch: Batch) -> None:
        offsets = [TopicPartition(t, p, last + 1) for (t, p), (_, last) in batch.offsets.items()]
        try:
            consumer.commit(offsets=offsets, asynchronous=False)
        except Exception as exc:  # noqa: BLE001 - e.g. partitions revoked meanwhile: the next owner re-reads, and
            # re-inserting is harmless (ReplacingMergeTree by event_id, rollups rebuilt from FINAL)
            self.metrics.commit_failures += 1
            log.warning("offset commit failed; records will be re-read", extra={"fields": {"error": str(exc)}})
