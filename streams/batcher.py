"""Produce many small records cheaply: one aiokafka BatchBuilder per (topic, partition), sent when full, when
older than ``linger_s``, and always before Faust commits offsets (the app wraps the producer's flush).

Why: per-record ``producer.send`` and Faust's changelog path (FutureMessage → ProducerBuffer → send) cost more than
the processing itself here (docs/streams.md). At-least-once holds because ``flush`` sends every open batch and waits
for all in-flight ones before the consumer commits; a failed batch fails the flush, so offsets are not committed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

OnSent = Callable[[str, int, int], None]  # topic, partition, last offset


class Batcher:
    def __init__(self, producer: Callable[[], Any], linger_s: float = 0.05, on_sent: OnSent | None = None) -> None:
        self._producer = producer  # returns the started aiokafka producer
        self.linger_s = linger_s
        self.on_sent = on_sent
        self.open: dict[tuple[str, int], tuple[Any, float]] = {}
        self.full: list[tuple[str, int, Any]] = []
        self.inflight: set[asyncio.Future[Any]] = set()
        self.error: BaseException | None = None
        # Submitting awaits; flush() must not return while another task holds batches it already took off `open`.
        self.lock = asyncio.Lock()

    def add(self, topic: str, partition: int, key: bytes | None, value: bytes | None) -> None:
        slot = self.open.get((topic, partition))
        if slot is None:
            slot = self.open[(topic, partition)] = (self._producer().create_batch(), time.monotonic())
        if slot[0].append(timestamp=None, key=key, value=value) is None:  # full: queue it, start a new one
            self.full.append((topic, partition, slot[0]))
            batch = self._producer().create_batch()
            self.open[(topic, partition)] = (batch, time.monotonic())
            if batch.append(timestamp=None, key=key, value=value) is None:
                raise ValueError(f"record of {len(value or b'')} bytes exceeds the producer's batch size")

    @property
    def due(self) -> bool:
        if self.full:
            return True
        now = time.monotonic()
        return any(now - t >= self.linger_s for _, t in self.open.values())

    async def send_due(self, everything: bool = False) -> None:
        """Hand full and lingering batches to the producer (without waiting for delivery)."""
        async with self.lock:
            await self._submit(everything)

    async def _submit(self, everything: bool) -> None:
        now = time.monotonic()
        todo, self.full = self.full, []
        for key, (batch, t) in list(self.open.items()):
            if everything or now - t >= self.linger_s:
                del self.open[key]
                todo.append((key[0], key[1], batch))
        producer = self._producer()
        for topic, partition, batch in todo:
            n = batch.record_count()
            if n == 0:
                continue
            fut = await producer.send_batch(batch, topic, partition=partition)
            self.inflight.add(fut)
            fut.add_done_callback(lambda f, t=topic, p=partition, n=n: self._done(f, t, p, n))

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
        if self.inflight:
            await asyncio.gather(*list(self.inflight), return_exceptions=True)
        if self.error is not None:
            err, self.error = self.error, None
            raise RuntimeError(f"producing outputs failed: {err!r}") from err
