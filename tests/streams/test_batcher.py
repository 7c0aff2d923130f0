"""The batcher's failure path (its success path runs against the real broker in every worker test): a producer that
cannot be had must fail the flush — so offsets are not committed — rather than hang it."""

from __future__ import annotations

import asyncio

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
