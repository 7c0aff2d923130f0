"""What the worker does with one raw-topic record, over plain data: decode → normalize → the user's state (dedupe,
buffer, enrich: streams/state.py) → encode and emit. No Faust here: the table is anything dict-like holding each
user's state bytes, and outputs leave through ``send(topic, key, value)`` — the app (streams/app.py), replay and the
benches drive the same code.

Cost per event is what limits throughput (README "Stream worker"): one table holds each user's whole state, so an
event costs at most one changelog record (none for duplicates).

Expiry: tick records in the raw topic (``tick_value``), processed in order with the deliveries, time out the due users
of their partition, found through an in-memory ``PartitionIndex`` rebuilt from the table after every assignment.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from attrib.settings import Settings, SourceSettings
from schemas import avro, wire
from schemas.counts import Tally
from schemas.dead_letter import dead_letter
from schemas.errors import NormalizeError
from schemas.normalize import normalize
from streams import codec
from streams import metrics as m
from streams.state import (
    CORRECTION,
    OVERFLOW,
    TIMEOUT,
    Limits,
    Result,
    Rules,
    State,
    apply_events,
    apply_tick,
    new_state,
    next_deadline,
    pending_count,
)

log = logging.getLogger("attrib.worker")
TICK = avro.TICK  # raw-topic records starting with this are expiry ticks, not deliveries (Avro starts C3 01)
Normalizer = Callable[[SourceSettings, dict[str, Any]], list[dict[str, Any]]]
Send = Callable[[str, bytes | None, bytes], None]  # topic, key, value: produce one output record


class Table(Protocol):
    """Users' state bytes by user key (a dict will do)."""

    def get(self, user: str) -> bytes | None: ...
    def __setitem__(self, user: str, value: bytes) -> None: ...
    def __delitem__(self, user: str) -> None: ...
    def items(self) -> Iterable[tuple[str | bytes, bytes | None]]: ...


def tick_value(now_ms: int) -> bytes:
    return TICK + str(now_ms).encode()


class PartitionIndex:
    """Users of one partition with pending events (deadline, count) and users touched by recent messages — rebuilt
    from the table after every assignment, so a restarted or new owner finds due users and replayed ticks."""

    def __init__(self) -> None:
        self.due: dict[str, tuple[int, int]] = {}
        self.by_ref: dict[int, set[str]] = {}  # source offset -> users with held events emitted by it

    def update(self, user: str, state: State) -> int:
        """Refresh one user's entry; return the change in pending count."""
        if not state["h"] and user not in self.due:  # most deliveries: nothing held, nothing indexed
            return 0
        old = self.due.pop(user, (0, 0))[1]
        dl = next_deadline(state)
        n = pending_count(state) if dl is not None else 0
        if dl is not None:
            self.due[user] = (dl, n)
        return n - old


class Processor:
    def __init__(self, settings: Settings, table: Table, send: Send, normalizer: Normalizer = normalize,
                 counts: Tally | None = None) -> None:
        s = settings.streams
        self.settings = settings
        self.table = table
        self.send = send
        self.normalize = normalizer
        self.limits = Limits(
            dedupe_retention_ms=int(s.dedupe_retention_s * 1000), pending_timeout_ms=int(s.pending_timeout_s * 1000),
            max_pending_per_user=s.max_pending_per_user, reemit_grace_ms=int(s.reemit_grace_s * 1000),
            state_retention_ms=int(s.state_retention_s * 1000))
        self.rules = {src.name: Rules(frozenset(x.lower() for x in src.event_allowlist),
                                      frozenset(x.lower() for x in src.first_time_only)) for src in settings.sources}
        self.sources = {src.name: src for src in settings.sources}
        self.no_rules = Rules()
        self.max_pending_total = s.max_pending_total
        self.topics = settings.topics
        self.serde = wire.serde(settings)  # single-object Avro, or Confluent framing with a schema registry
        self.decode = codec.raw_decoder(self.serde.decode)  # bytes -> raw delivery (received_at as int ms)
        self.encode_event = self.serde.encoder("enriched_event", self.topics.events)
        self.encode_dead = self.serde.encoder("dead_letter", self.topics.dead_letters)
        self.index: dict[int, PartitionIndex] = {}
        self.pending_total = 0
        self.last_sweep: dict[int, int] = {}
        self.tally = m.Tally()
        self.delivered = 0  # deliveries since the last publish (the one tally every message has: a plain int)
        self.assigned: set[int] = set()
        # alert counts of what is emitted, per source offset, with each partition's progress (schemas/counts.py)
        self.counts = counts

    def publish_metrics(self) -> None:
        self.tally.inc(m.DELIVERIES, n=self.delivered)
        self.delivered = 0
        self.tally.publish()
        m.PENDING.set(self.pending_total)

    # --- messages -----------------------------------------------------------------------------------------------

    def handle(self, key: bytes | None, value: bytes | None, partition: int, offset: int) -> None:
        """Process one raw-topic record; never raises (failures become dead letters)."""
        # Records Faust hands over again are processed again (never dropped as their own duplicates): the state
        # recognises the offset and re-emits the same outputs. Skipping them was tried and is unsafe (README).
        ref = {"topic": self.topics.raw, "partition": partition, "offset": offset}
        if self.counts is not None:
            self.counts.seen(partition, offset)
        if value is not None and value.startswith(TICK):
            try:
                self._tick(partition, offset, int(value[len(TICK):]))
            except Exception as exc:  # a failing tick must not stop the stream; the next one retries
                log.exception("tick failed", extra={"fields": {"partition": partition, "offset": offset}})
                self._dead(ref, "process", "tick_failed", f"{type(exc).__name__}: {exc}", value)
            return
        self.delivered += 1
        try:
            if value is None:
                raise avro.AvroError("empty record")
            raw = self.decode(value)
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
                raw["raw_ref"] = ref  # our own decoded dict: no copy
                events = self.normalize(source, raw)
            except NormalizeError as exc:
                self._dead(ref, "normalize", exc.reason, str(exc), value, raw=raw, field=exc.field)
                return
            self._events(raw, [codec.plain(e) for e in events], partition, offset)
        except Exception as exc:  # a bug or bad state for this user: park the delivery, keep going
            log.exception("processing failed", extra={"fields": {"partition": partition, "offset": offset}})
            self._dead(ref, "process", "processing_error", f"{type(exc).__name__}: {exc}", value, raw=raw)

    def _events(self, raw: dict[str, Any], events: list[dict[str, Any]], partition: int, offset: int) -> None:
        user = raw["user_key"]
        t = self.tally
        for e in events:
            t.inc(m.EVENTS_IN, e.get("event_type") or "unknown")
        ix = self.index.get(partition) or self._rebuild(partition)
        stored = self.table.get(user)
        state = codec.load_state(stored) if stored is not None else new_state(partition)
        state["p"] = partition
        room = self.max_pending_total - self.pending_total
        now = _ms(raw["received_at"])
        if self.counts is not None:
            self.counts.progress(partition, now)
        res = apply_events(state, events, (partition, offset), now, self.limits,
                           self.rules.get(raw["source"], self.no_rules), room)
        if res.duplicates:
            t.inc(m.DUPLICATES, n=res.duplicates)
        if res.filtered or res.replayed or res.buffered:
            t.inc(m.FILTERED, n=res.filtered)
            t.inc(m.REPLAYED, n=res.replayed)
            t.inc(m.BUFFERED, n=res.buffered)
        # Duplicates and replays change nothing worth a changelog record.
        if res.changed:
            self.table[user] = codec.dump_state(state)
        self._account(ix, user, state)
        if res.outputs:
            self._emit(user, res, partition, offset)

    def _emit(self, user: str, res: Result, partition: int, offset: int) -> None:
        """Enriched events out, keyed by user: through ``send`` (the app batches them to the raw record's partition
        number of the events topic), and counted for alerts at the offset that emitted them."""
        now = int(time.time() * 1000)
        key = user.encode()
        counts, tally, send, encode, topic = self.counts, self.tally, self.send, self.encode_event, self.topics.events
        for kind, out in res.outputs:
            if counts is not None:
                counts.event(partition, offset, out)
            out["emitted_at"] = now
            tally.inc(m.EVENTS_OUT, kind, out["attribution_status"])
            if kind == TIMEOUT:
                tally.inc(m.TIMEOUTS)
            elif kind == CORRECTION:
                tally.inc(m.CORRECTIONS)
            elif kind == OVERFLOW:
                tally.inc(m.OVERFLOWS)
            send(topic, key, encode(out))

    def _dead(self, ref: dict[str, Any], stage: str, reason: str, detail: str, value: bytes | None,
              raw: dict[str, Any] | None = None, field: str | None = None) -> None:
        m.DEAD_LETTERS.labels(reason).inc()
        log.warning("dead letter", extra={"fields": {"reason": reason, "stage": stage, **ref}})
        raw = raw or {}
        # The id comes from the Kafka position: a re-processed message overwrites its dead letter downstream.
        rec = dead_letter(stage=stage, reason=reason, detail=detail, raw_ref=ref, payload=value, field=field,
                          source=raw.get("source"), mmp=raw.get("mmp"), delivery_id=raw.get("delivery_id"))
        key = raw["user_key"].encode() if raw.get("user_key") else None
        self.send(self.topics.dead_letters, key, self.encode_dead(rec))

    # --- expiry -------------------------------------------------------------------------------------------------

    def _tick(self, partition: int, offset: int, now: int) -> None:
        if self.counts is not None:
            self.counts.progress(partition, now)
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
        self._emit(user, res, partition, offset)

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
                self._tick_user(ix, _user(key), raw, partition, offset, now)
                n += 1
        log.info("state sweep", extra={"fields": {"partition": partition, "idle_users": n}})

    # --- partition index ----------------------------------------------------------------------------------------

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

    def _account(self, ix: PartitionIndex, user: str, state: State) -> None:
        self.pending_total += ix.update(user, state)

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
            user = _user(key)
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


def _user(key: str | bytes) -> str:
    return key.decode() if isinstance(key, bytes) else key


def _ms(v: Any) -> int:
    return v if isinstance(v, int) else int(v.timestamp() * 1000)
