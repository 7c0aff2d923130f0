"""Produce many small records cheaply: one aiokafka BatchBuilder per (topic, partition), closed when full or older
than ``linger_s`` and handed to the producer by a background pump; everything is sent and acknowledged before Faust
commits offsets (the app wraps the producer's flush).

Why: per-record ``producer.send`` and Faust's changelog path (FutureMessage → ProducerBuffer → send) cost more than
the processing itself here (README "Stream worker"); and ``send_batch`` waits until the partition's previous batch
has been drained, so the agent must not await it per batch. At-least-once holds because ``flush`` submits every open
batch and waits for all of them; a failed batch fails the flush, so offsets are not committed.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Any

OnSent = Callable[[str, int, int], None]  # topic, partition, last offset
MAX_QUEUED = 256  # closed batches waiting for the pump before the agent waits too (bounded memory)
_NO_HEADERS: list[tuple[str, bytes]] = []  # (never appended to)


class Batcher:
    def __init__(self, producer: Callable[[], Any], linger_s: float = 0.05, on_sent: OnSent | None = None) -> None:
        self._producer = producer  # returns the started aiokafka producer
        self.linger_s = linger_s
        self.on_sent = on_sent
        self.open: dict[tuple[str, int], tuple[Any, float]] = {}
        self.queue: deque[tuple[str, int, Any]] = deque()  # closed batches, FIFO (keeps per-partition order)
        self.pump: asyncio.Task[None] | None = None
        self.inflight: set[asyncio.Future[Any]] = set()
        self.error: BaseException | None = None
        self.queued = 0  # batches ever queued / ever handed to the producer: flush waits for its own horizon only
        self.submitted = 0
        self.progress = asyncio.Event()
        self.oldest = float("inf")  # creation time of the oldest open batch (<= the true oldest: due stays safe)
        self.wake_at = float("inf")  # the owner's own deadline (Outputs: its counts'), carried by the due check
        self.due_at = float("inf")  # min(oldest + linger_s, wake_at); 0 when a full batch waits for the pump

    def add(self, topic: str, partition: int, key: bytes | None, value: bytes | None) -> None:
        slot = self.open.get((topic, partition))
        if slot is None:
            slot = self.open[(topic, partition)] = (self._new_batch(), time.monotonic())
            if slot[1] < self.oldest:
                self.oldest = slot[1]
                self.due_at = min(self.due_at, slot[1] + self.linger_s)
        # aiokafka's BatchBuilder.append (serializers, keyword arguments, a closed check) around its C builder's append
        # costs more than the append: the builder directly (aiokafka pinned with Faust: streams/compat.py KNOWN)
        b = slot[0]
        if b._builder.append(b._relative_offset, None, key, value, _NO_HEADERS) is not None:
            b._relative_offset += 1
        else:  # full: queue it, start a new one
            self.queue.append((topic, partition, slot[0]))
            self.queued += 1
            self.due_at = 0.0  # send_due kicks the pump (and waits if too many are queued)
            batch = self._new_batch()
            self.open[(topic, partition)] = (batch, time.monotonic())  # later than oldest: no update needed
            if batch.append(timestamp=None, key=key, value=value) is None:
                raise ValueError(f"record of {len(value or b'')} bytes exceeds the producer's batch size")

    def _new_batch(self) -> Any:
        batch = self._producer().create_batch()
        if batch._key_serializer is not None or batch._value_serializer is not None:  # add() bypasses them
            raise RuntimeError("the worker's producer must not have key/value serializers (records are bytes)")
        return batch

    @property
    def due(self) -> bool:
        """A batch is older than the linger time, one is full, or the owner's deadline passed. Asked after every
        message: one clock read and one comparison (batches queued for a pump that is already sending don't count:
        ``send_due`` has nothing to do for them)."""
        return time.monotonic() >= self.due_at

    def wake(self, at: float) -> None:
        """Make ``due`` true from monotonic time ``at`` on (until the next ``send_due``, which keeps it)."""
        self.wake_at = at
        self.due_at = min(self.due_at, at)

    async def send_due(self, everything: bool = False) -> None:
        """Close lingering batches and let the pump submit them; waits only when too many are queued."""
        now = time.monotonic()
        for key, (batch, t) in list(self.open.items()):
            if everything or now - t >= self.linger_s:
                del self.open[key]
                self.queue.append((key[0], key[1], batch))
                self.queued += 1
        self.oldest = min((t for _, t in self.open.values()), default=float("inf"))
        self.due_at = min(self.oldest + self.linger_s, self.wake_at)
        if self.queue and (self.pump is None or self.pump.done()):
            self.pump = asyncio.ensure_future(self._pump())
        if len(self.queue) > MAX_QUEUED and self.pump is not None:
            await asyncio.shield(self.pump)

    async def _pump(self) -> None:
        try:
            producer = self._producer()
        except Exception as exc:  # noqa: BLE001 - not started / already stopped: fail the flush, don't hang it
            self.error = self.error or exc
            self.submitted += len(self.queue)
            self.queue.clear()
            self.progress.set()
            return
        while self.queue:
            topic, partition, batch = self.queue.popleft()
            try:
                n = batch.record_count()
                if n:
                    fut = await producer.send_batch(batch, topic, partition=partition)
                    self.inflight.add(fut)
                    fut.add_done_callback(lambda f, t=topic, p=partition, n=n: self._done(f, t, p, n))
            except Exception as exc:  # noqa: BLE001 - surfaced by flush()
                self.error = self.error or exc
            finally:
                self.submitted += 1
                self.progress.set()

    def _done(self, fut: asyncio.Future[Any], topic: str, partition: int, n: int) -> None:
        self.inflight.discard(fut)
        if fut.cancelled():
            self.error = self.error or asyncio.CancelledError(f"batch to {topic}/{partition} cancelled")
        elif fut.exception() is not None:
            self.error = self.error or fut.exception()
        elif self.on_sent is not None:
            self.on_sent(topic, partition, fut.result().offset + n - 1)

    async def flush(self) -> None:
        """Everything added so far is acknowledged by the broker when this returns (else it raises)."""
        await self.send_due(everything=True)
        target = self.queued
        while self.submitted < target:
            if self.pump is None or self.pump.done():
                self.pump = asyncio.ensure_future(self._pump())
            self.progress.clear()
            await self.progress.wait()
        if self.inflight:
            await asyncio.gather(*list(self.inflight), return_exceptions=True)
        if self.error is not None:
            # Sticky: a lost batch must never be followed by a commit past it. Every later flush fails too, so
            # offsets stay where they were until the worker is restarted and re-processes from there.
            raise RuntimeError(f"producing outputs failed, refusing to commit: {self.error!r}") from self.error
