"""Ingress heartbeats: every ``ingest.arrivals_interval_s`` each ingress process sends ONE small JSON record to
``topics.arrivals`` with, per configured source, the verified deliveries since its previous heartbeat and when the
last one came. The alerts app judges a source's silence from these (alerts/arrivals.py) within minutes, where the
event counts need whole buckets plus lateness. Zeros are included: the heartbeat itself is the clock, and no heartbeat
at all means the ingress is down (the platform's problem), never that a source stopped.

The request path only bumps a counter (:meth:`Tally.note`); producing happens in a background task.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from attrib.settings import Settings
from ingest.producer import DurableProducer, ProduceError
from ingest.sources import SourcePlan

log = logging.getLogger("attrib.ingest.arrivals")
KEY = b"arrivals"  # one key: every instance's heartbeats stay in order in one partition
VERSION = 1


class Tally:
    """Verified deliveries per source since the last heartbeat, and when the newest came (wall ms)."""

    def __init__(self, plans: Mapping[str, SourcePlan]) -> None:
        self.about = {name: {"mmp": p.settings.mmp, "app_id": p.settings.app_id} for name, p in plans.items()}
        self.n = dict.fromkeys(plans, 0)
        self.last: dict[str, int | None] = dict.fromkeys(plans)

    def note(self, source: str, now_s: float) -> None:
        """One verified delivery (request path: two dict writes)."""
        self.n[source] += 1
        self.last[source] = int(now_s * 1000)

    def take(self) -> dict[str, int]:
        """The counts since the last take, reset to zero."""
        out, self.n = self.n, dict.fromkeys(self.n, 0)
        return out

    def give_back(self, counts: Mapping[str, int]) -> None:
        """Counts of a heartbeat Kafka did not take: they ride on the next one."""
        for k, v in counts.items():
            self.n[k] = self.n.get(k, 0) + v


def instance_id(s: Settings) -> str:
    """This process: host (or kafka.instance_id), pid and a start nonce (a restarted container reuses its pid)."""
    return f"{s.kafka.instance_id or socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def heartbeat(tally: Tally, counts: Mapping[str, int], instance: str, at_ms: int, interval_s: float) -> dict[str, Any]:
    return {"v": VERSION, "instance": instance, "at": at_ms, "interval_s": interval_s,
            "sources": {name: {"n": counts.get(name, 0), "last": tally.last.get(name), **about}
                        for name, about in tally.about.items()}}


class Heartbeats:
    """The background task: take the tally, produce the heartbeat, sleep."""

    def __init__(self, s: Settings, tally: Tally, producer: DurableProducer) -> None:
        self.tally, self.producer = tally, producer
        self.topic, self.interval = s.topics.arrivals, s.ingest.arrivals_interval_s
        self.instance = instance_id(s)
        self.sent = 0
        self._task: asyncio.Task[None] | None = None

    async def beat(self, timeout: float) -> bool:
        counts = self.tally.take()
        rec = heartbeat(self.tally, counts, self.instance, int(time.time() * 1000), self.interval)
        try:
            await self.producer.send(self.topic, KEY, json.dumps(rec, separators=(",", ":")).encode(), timeout)
        except ProduceError as exc:
            self.tally.give_back(counts)
            # at most one line per interval: no flood to limit
            log.warning("arrivals heartbeat not sent", extra={"fields": {"reason": exc.reason, "topic": self.topic}})
            return False
        self.sent += 1
        return True

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.beat(min(self.interval, 15.0))

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="arrivals-heartbeat")

    async def stop(self) -> None:
        """Stop the loop and send what was counted since the last heartbeat (best effort)."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        await self.beat(2.0)


HEARTBEATS = web.AppKey("arrivals", Heartbeats)


def install(app: web.Application, s: Settings, tally: Tally, producer: DurableProducer) -> Heartbeats:
    """Start the heartbeats after the producer (on_startup order) and stop them while it still runs (on_shutdown
    comes before the producer's drain in on_cleanup)."""
    hb = Heartbeats(s, tally, producer)
    app[HEARTBEATS] = hb

    async def start(_: web.Application) -> None:
        hb.start()

    async def stop(_: web.Application) -> None:
        await hb.stop()

    app.on_startup.append(start)
    app.on_shutdown.append(stop)
    return hb
