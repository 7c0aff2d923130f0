"""When the spool path stops waiting for Kafka's ack early. Once a produce missed the whole ``spool_after_s``, the
next deliveries (for ``SLOW_FOR_S``) wait only ``SLOW_SPOOL_AFTER_S``: during a broker failover every ack is late, and
the full wait would only add to each answer. Only a produce still unacknowledged after the *whole* wait opens or
extends that window — a delivery spooled after the short wait does not, unless its own produce then also outlasts the
whole wait. Otherwise a busy broker whose acks take 0.1–0.5 s (not late by the configured bound) would keep the window
open by itself and send a share of all deliveries through the spool (write, fsync, read back) for nothing: 12% of
them at ~700/s on a loaded 2-core machine (bench/e2e.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

SLOW_SPOOL_AFTER_S, SLOW_FOR_S = 0.1, 2.0


def _acked(fut: asyncio.Future[Any]) -> bool:
    return fut.done() and not fut.cancelled() and fut.exception() is None


class SlowAcks:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.until = 0.0  # clock time up to which deliveries wait only SLOW_SPOOL_AFTER_S

    def wait_s(self, full_s: float, started: float) -> float:
        """How long a delivery that started at ``started`` waits for its ack before it goes to the spool."""
        return min(full_s, SLOW_SPOOL_AFTER_S) if started < self.until else full_s

    def missed(self, first: asyncio.Future[Any] | None, started: float, full_s: float) -> None:
        """A delivery's ack was not in within its wait: open the window now if the produce has outlasted the whole
        wait (or never started: the local queue was full), else once it does (still unacknowledged then)."""
        now = self.clock()
        left = started + full_s - now
        if first is None or left <= 0 or (first.done() and not _acked(first)):  # queue full or Kafka refused it
            self.until = now + SLOW_FOR_S
            return
        if first.done():  # acknowledged meanwhile: no sign of a slow broker
            return

        def check() -> None:
            if not _acked(first):
                self.until = max(self.until, self.clock() + SLOW_FOR_S)

        asyncio.get_running_loop().call_later(left, check)
