"""Re-produce the spool to Kafka, in spool order, until it is empty; then wait for the next append.

A spooled record's first produce is usually still in flight (the request only stopped waiting for it): the drainer
waits for that outcome first and skips the record when it was stored after all — no duplicate for the common case
of a slow ack. Records spooled by an earlier process (crash recovery) have no such outcome and are produced again; a
duplicate is harmless (downstream dedupes by delivery and event id). Records go out a window at a time, in order
(the idempotent producer keeps that order per partition); a window whose records Kafka does not take is retried with
backoff, and the cursor — which decides what may be deleted — only moves past acknowledged records."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ingest import metrics
from ingest.producer import DurableProducer, ProduceError, Stored
from ingest.spool import Spool
from ingest.spool_format import Record

log = logging.getLogger("attrib.ingest.spool")
WINDOW_BYTES = 4 << 20  # records read and produced per round: bounds the drainer's memory
BACKOFF_S = (0.5, 5.0)
STORED_FIRST = metrics.SPOOL_DRAINED.labels("first_produce_stored")
PRODUCED = metrics.SPOOL_DRAINED.labels("produced")


class Drainer:
    def __init__(self, spool: Spool, producer: DurableProducer, first_try_s: float) -> None:
        self.spool, self.producer = spool, producer
        self.first_try_s = first_try_s  # the longest a first produce can stay unresolved (message.timeout.ms)
        self.originals: dict[int, asyncio.Future[Stored]] = {}  # seq → the request's own, first produce
        self._task: asyncio.Task[None] | None = None
        self._empty = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="spool-drainer")

    async def stop(self, grace_s: float) -> None:
        """Shutdown: give the drainer ``grace_s`` to empty the spool (what it can't stays on disk for the next
        start), then stop it."""
        if self._task is None:
            return
        if self.spool.records:
            waiter = asyncio.ensure_future(self._empty.wait())
            await asyncio.wait((waiter,), timeout=grace_s)
            waiter.cancel()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _run(self) -> None:
        cur = self.spool.start_cursor()
        while True:
            records, nxt = await self.spool.read(cur, WINDOW_BYTES)
            if not records:
                await self.spool.release(cur)  # seals and deletes the drained segment when nothing is queued
                if not self.spool.records:
                    self._empty.set()
                self.spool.publish_age()
                await self.spool.appended(1.0)
                continue
            self._empty.clear()
            await self._deliver(records)
            self.spool.acknowledged(records, nxt)
            await self.spool.release(nxt)
            cur = nxt

    async def _deliver(self, records: list[Record]) -> None:
        todo: list[Record] = []
        stored = 0
        for r in records:
            first = self.originals.pop(r.seq, None)
            if first is not None:
                if not first.done():  # usually settled by now (the spool's write and read-back took a while)
                    await asyncio.wait((first,), timeout=self.first_try_s + 5)  # never cancels it, never raises
                if first.done() and not first.cancelled() and first.exception() is None:
                    stored += 1
                    continue
            todo.append(r)
        if stored:
            STORED_FIRST.inc(stored)
        delay = BACKOFF_S[0]
        while todo:
            results = await asyncio.gather(*(self._produce(r) for r in todo))
            failed = [r for r, ok in zip(todo, results, strict=True) if not ok]
            PRODUCED.inc(len(todo) - len(failed))
            if failed:
                log.warning("spool drain: Kafka did not take records; retrying", extra={"fields": {
                    "failed": len(failed), "retry_in_s": delay, "oldest_seq": failed[0].seq}})
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_S[1])
                self.spool.publish_age()
            todo = failed

    async def _produce(self, r: Record) -> bool:
        try:
            fut = self.producer.submit(r.topic, r.key, r.value, r.headers)
        except ProduceError:
            return False
        await asyncio.wait((fut,), timeout=self.first_try_s + 5)
        return fut.done() and not fut.cancelled() and fut.exception() is None
