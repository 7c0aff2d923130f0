"""Where the worker's records go: enriched events, dead letters and the users table's changelog records are appended
to aiokafka batches (streams/batcher.py) on the partition of the raw message being processed — outputs are keyed by
user key and co-partitioned with the raw topic, as Faust itself writes changelogs — and every batch is sent and
acknowledged before Faust commits an offset, so at-least-once holds without awaiting each send.

The alerts' counts (schemas/counts.py) are tallied as events are emitted and leave the same way: one counts record
per raw partition into the one-partition counts topic, at least every ``counts_every_s`` and before every commit
(``flush``), so a committed offset's counts are acknowledged like its events.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from typing import Any

from faust.stores.memory import Store as MemoryStore
from faust.types import TP, TableT

from schemas.counts import KEY as COUNTS_KEY
from schemas.counts import Tally
from streams import compat
from streams.batcher import Batcher

log = logging.getLogger("attrib.worker")
PRODUCE_FAILED_EXIT = 70
COUNTS_MAX_EVENTS = 20_000  # a counts record is ~7 bytes per event: sent at the next due beyond this, far below 1 MiB


class Outputs:
    def __init__(self, app: compat.WorkerApp, table: TableT[Any, Any], linger_s: float, counts: Tally,
                 counts_topic: str, counts_every_s: float) -> None:
        self.partition = 0  # of the raw message being processed: set by the agent before each one
        self.counts, self.counts_topic, self.counts_every_s = counts, counts_topic, counts_every_s
        self.changelog = table.changelog_topic.get_topic_name()
        self.store = compat.store_of(table)
        producer = app.worker_producer
        self.batcher = Batcher(producer.batch_producer, linger_s, self._on_sent)
        self.batcher.wake(time.monotonic() + counts_every_s)  # the counts' deadline rides on the batcher's due
        producer.before_flush = self.flush  # Faust flushes its producer before every offset commit
        self.users = UsersTable(self)

    def send(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        self.batcher.add(topic, self.partition, key, value)

    @property
    def due(self) -> bool:
        """Batches are older than the linger time or full, or the counts' deadline passed (asked after every
        message: the batcher's one comparison carries both)."""
        return self.batcher.due

    async def send_due(self) -> None:
        if time.monotonic() >= self.batcher.wake_at or self.counts.events >= COUNTS_MAX_EVENTS:
            self._send_counts()  # (none pending: only the next deadline is set)
        await self.batcher.send_due()

    def _send_counts(self) -> None:
        self.batcher.wake(time.monotonic() + self.counts_every_s)
        for value in self.counts.drain():
            self.batcher.add(self.counts_topic, 0, COUNTS_KEY, value)

    async def flush(self) -> None:
        try:
            self._send_counts()  # the counts of everything processed so far, acknowledged with the rest
            await self.batcher.flush()
        except Exception:
            # Outputs or state records were lost: committing later offsets would lose events. Exit like a crash;
            # the restarted worker re-processes from the last good commit (tested with kill -9).
            log.critical("producing failed; exiting without committing", exc_info=True)
            os._exit(PRODUCE_FAILED_EXIT)

    def _on_sent(self, topic: str, partition: int, offset: int) -> None:
        if topic == self.changelog:
            self.store.set_persisted_offset(TP(topic, partition), offset)


class UsersTable:
    """The users table as the Processor sees it (str keys, state bytes). Writes go to the table's store and, as one
    batched record, to its changelog partition — bypassing Faust's per-write changelog path, the most expensive part
    of a table write. Recovery, standbys and rebalances are Faust's as usual."""

    def __init__(self, outputs: Outputs) -> None:
        self.outputs = outputs
        self.store = outputs.store
        # The memory store is a dict behind three Python frames per get (mode's FastUserDict): use the dict itself
        # (it is created once with the store, never replaced). Other stores (RocksDB) through their own methods.
        data = getattr(self.store, "data", None)
        self.map: Any = data if isinstance(self.store, MemoryStore) and type(data) is dict else self.store

    def get(self, user: str) -> bytes | None:
        value: bytes | None = self.map.get(user.encode())
        return value

    def __setitem__(self, user: str, value: bytes) -> None:
        key = user.encode()
        self.map[key] = value
        self.outputs.send(self.outputs.changelog, key, value)

    def __delitem__(self, user: str) -> None:
        key = user.encode()
        self.map.pop(key, None)
        self.outputs.send(self.outputs.changelog, key, None)

    def items(self) -> Iterable[tuple[bytes, bytes | None]]:
        return self.store.items()
