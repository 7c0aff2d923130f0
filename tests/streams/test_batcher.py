"""The batcher's failure path (its success path runs against the real broker in every worker test): a producer that
cannot be had must fail the flush — so offsets are not committed — rather than hang it. And its due check, which
the agent asks after every message."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.producer.message_accumulator import BatchBuilder

from streams.batcher import Batcher


class Gone:
    """A producer that stopped after handing out batches (Faust raises NotReady then)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> Gone:
        self.calls += 1
        if self.calls > 1:
            raise RuntimeError("producer not ready")
        return self

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(1 << 16, 0)  # what AIOKafkaProducer.create_batch() builds


def test_flush_fails_instead_of_hanging_when_the_producer_is_gone() -> None:
    async def run() -> None:
        b = Batcher(Gone(), linger_s=0.0)
        b.add("t", 0, b"k", b"v")
        with pytest.raises(RuntimeError, match="refusing to commit"):
            await asyncio.wait_for(b.flush(), timeout=5)
        with pytest.raises(RuntimeError, match="refusing to commit"):  # sticky: a later flush fails too
            await asyncio.wait_for(b.flush(), timeout=5)

    asyncio.run(run())


class Accepting:
    """A producer that takes every batch (acknowledged at once), as the started aiokafka producer would."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int, int]] = []

    def __call__(self) -> Accepting:
        return self

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(1 << 10, 0)  # small: a few records fill it

    async def send_batch(self, batch: BatchBuilder, topic: str, partition: int) -> asyncio.Future[Any]:
        self.sent.append((topic, partition, batch.record_count()))
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        fut.set_result(SimpleNamespace(offset=0))
        return fut


def test_due_carries_linger_full_batches_and_the_owners_deadline() -> None:
    async def run() -> None:
        producer = Accepting()
        b = Batcher(producer, linger_s=3600.0)
        assert not b.due  # nothing open, no deadline
        b.add("t", 0, b"k", b"v")
        assert not b.due  # open, far from its linger time
        b.wake(time.monotonic() - 1)  # the owner's deadline has passed
        assert b.due
        await b.send_due()
        assert b.due  # the owner's deadline holds until the owner moves it (Outputs does, sending its counts)
        b.wake(time.monotonic() + 3600)
        await b.send_due()
        assert not b.due and not b.queue  # nothing lingered long enough: the batch stays open
        while not b.queue:  # fill the partition's batch: a full batch is due at once (the pump must run)
            b.add("t", 0, b"k", b"v" * 100)
        assert b.due
        await b.send_due()
        assert not b.due
        await b.flush()
        assert [t for t, _, _ in producer.sent] == ["t", "t"] and sum(n for _, _, n in producer.sent) > 2
        b.linger_s = 0.0
        b.add("u", 1, None, b"v")
        assert b.due  # older than a zero linger time

    asyncio.run(run())
