"""The spool path's short wait (ingest/slow_acks.py): opened only by a produce that outlasts the whole spool wait, so
acks that are merely slower than the short wait cannot keep it open by themselves."""

from __future__ import annotations

import asyncio

from ingest.producer import ProduceError
from ingest.slow_acks import SLOW_SPOOL_AFTER_S, SlowAcks

FULL = 0.05  # the whole spool wait of these tests (> the short one is not needed: wait_s takes the smaller)


def _pending() -> asyncio.Future[object]:
    return asyncio.get_running_loop().create_future()


async def test_a_produce_that_outlasts_the_whole_wait_shortens_the_next_waits() -> None:
    slow = SlowAcks()
    started = slow.clock()
    assert slow.wait_s(0.5, started) == 0.5
    slow.missed(_pending(), started - 1.0, 0.5)  # asked after the whole wait passed
    assert slow.wait_s(0.5, slow.clock()) == SLOW_SPOOL_AFTER_S


async def test_an_ack_between_the_short_and_the_whole_wait_keeps_the_full_wait() -> None:
    slow = SlowAcks()
    first = _pending()
    slow.missed(first, slow.clock(), FULL)  # spooled after a short wait; the produce is still in flight
    first.set_result("stored")  # ... and Kafka acknowledges it within the whole wait
    await asyncio.sleep(FULL * 2)
    assert slow.wait_s(0.5, slow.clock()) == 0.5


async def test_a_produce_still_pending_after_the_whole_wait_opens_the_window_then() -> None:
    slow = SlowAcks()
    first = _pending()
    slow.missed(first, slow.clock(), FULL)
    assert slow.wait_s(0.5, slow.clock()) == 0.5  # not yet: it may still be acknowledged in time
    await asyncio.sleep(FULL * 2)
    assert slow.wait_s(0.5, slow.clock()) == SLOW_SPOOL_AFTER_S


async def test_a_full_queue_or_a_refused_produce_opens_the_window_at_once() -> None:
    slow = SlowAcks()
    slow.missed(None, slow.clock(), 0.5)
    assert slow.wait_s(0.5, slow.clock()) == SLOW_SPOOL_AFTER_S
    slow2 = SlowAcks()
    refused = _pending()
    refused.set_exception(ProduceError("msg_timed_out"))
    slow2.missed(refused, slow2.clock(), 0.5)
    assert slow2.wait_s(0.5, slow2.clock()) == SLOW_SPOOL_AFTER_S
    refused.exception()


def test_the_short_wait_never_exceeds_a_shorter_configured_one() -> None:
    slow = SlowAcks()
    slow.until = slow.clock() + 60
    assert slow.wait_s(0.05, slow.clock()) == 0.05
