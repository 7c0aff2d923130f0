"""A preset destination: the router's :class:`~sinks.route.sender.Destination` (its queue, workers, token bucket,
circuit breaker, backoff, dead letters and metrics) with batches instead of single events.

A worker takes what the queue holds (waiting up to ``preset.batch_wait_s`` to fill), packs it within the vendor's
limits, and sends one request per batch. The vendor's answer decides per event (:meth:`.base.Preset.outcome`):
delivered, refused (dead-lettered with the vendor's error), or retried — the whole batch for 429/5xx and network
errors, only the rest when the vendor named the bad ones; a 413 splits the batch in halves. Every job still ends
exactly once in ``on_done`` or a dead letter, so the offset tracker works unchanged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import aiohttp

from attrib.errors import ConfigurationError
from attrib.settings import DestinationSettings
from sinks.route.metrics import RouteMetrics
from sinks.route.policy import RETRYABLE_STATUS, backoff
from sinks.route.presets import PRESETS
from sinks.route.presets.base import ENVELOPE_BYTES, Item, Rejected, Skip
from sinks.route.sender import RESPONSE_KEPT, Destination, Failure, Job, OnDead, OnDone

log = logging.getLogger("attrib.route")
Entry = tuple[Job, Item]
Finish = Callable[[Job, Failure | None], Awaitable[None]]  # how an event ends: delivered (None) or this failure


def make_destination(cfg: DestinationSettings, metrics: RouteMetrics, on_done: OnDone, on_dead: OnDead) -> Destination:
    """The destination for ``cfg.kind``: templates (``http``) or a vendor preset."""
    if cfg.kind == "http":
        return Destination(cfg, metrics, on_done, on_dead)
    return PresetDestination(cfg, metrics, on_done, on_dead)


class PresetDestination(Destination):
    def __init__(self, cfg: DestinationSettings, metrics: RouteMetrics, on_done: OnDone, on_dead: OnDead,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        super().__init__(cfg, metrics, on_done, on_dead, clock)
        self.preset = PRESETS[cfg.kind]
        self.preset.check(cfg.preset, cfg.name)
        cap = self.preset.concurrency_cap
        if cap is not None and cfg.concurrency > cap:
            raise ConfigurationError(f"route.destinations[{cfg.name}].concurrency: {cfg.concurrency} > {cap}, "
                                     f"{cfg.kind}'s limit of concurrent requests per account")
        self.opts = cfg.preset
        self.mapping = self.preset.mapping(cfg.preset)
        self.wall = wall

    # --- batching -----------------------------------------------------------------------------------------------

    async def _work(self) -> None:
        carry: Entry | None = None
        while True:
            batch: list[Entry] = []
            if carry is not None:
                batch, carry = [carry], None
            else:
                entry = await self._prepare(await self.queue.get())
                if entry is None:
                    continue
                batch = [entry]
            deadline = self.clock() + self.opts.batch_wait_s
            max_cost, max_size = self.preset.limits(self.opts)
            cost, size = batch[0][1].cost, batch[0][1].size + ENVELOPE_BYTES
            while True:
                job = await self._next(deadline)
                if job is None:
                    break
                entry = await self._prepare(job)
                if entry is None:
                    continue
                if cost + entry[1].cost > max_cost or size + entry[1].size > max_size:
                    carry = entry
                    break
                batch.append(entry)
                cost, size = cost + entry[1].cost, size + entry[1].size
            self.m.queued.labels(self.name).set(self.queue.qsize())
            done: set[int] = set()
            try:
                await self._send(batch, list(range(len(batch))), done, self._finish)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never lose a job to a bug: dead-letter what is unfinished, with the error
                log.exception("route preset delivery crashed", extra={"fields": {"destination": self.name}})
                for i, (job, _) in enumerate(batch):
                    if i not in done:
                        await self._dead(job, Failure("internal_error", {"error": repr(exc)}))

    async def _next(self, deadline: float) -> Job | None:
        """The next queued job if one comes before ``deadline`` (polled: cancelling a waiting get() can lose one)."""
        while True:
            try:
                return self.queue.get_nowait()
            except asyncio.QueueEmpty:
                left = deadline - self.clock()
                if left <= 0:
                    return None
                await asyncio.sleep(min(0.01, left))

    async def _prepare(self, job: Job, finish: Finish | None = None) -> Entry | None:
        """The job with its vendor records, or None when it already ended (skipped or refused before sending)."""
        finish = finish or self._finish
        try:
            return job, self.preset.item(job.record, job.view, self.opts, self.mapping)
        except Skip as s:
            self.m.preset_skipped.labels(self.name, s.reason).inc()
            self.m.skipped.labels(self.name).inc()
            await finish(job, None)
        except Rejected as r:
            await finish(job, Failure(r.reason, {"destination": self.name, "error": r.detail}))
        except Exception as exc:  # per-job boundary: a preset's bug dead-letters this job, never the worker
            log.exception("route preset build failed", extra={"fields": {"destination": self.name}})
            await finish(job, Failure("internal_error", {"error": repr(exc)}))
        return None

    async def _finish(self, job: Job, failure: Failure | None) -> None:
        if failure is None:
            self.on_done(job)
        else:
            await self._dead(job, failure)

    async def deliver(self, job: Job) -> Failure | None:
        """One event on its own, its failure returned instead of dead-lettered (`attrib replay --dead-letters`)."""
        got: list[Failure | None] = []

        async def keep(_: Job, failure: Failure | None) -> None:
            got.append(failure)

        entry = await self._prepare(job, keep)
        if entry is not None:
            await self._send([entry], [0], set(), keep)
        return got[0] if got else None

    async def _dead(self, job: Job, failure: Failure) -> None:
        self.m.dead.labels(self.name, failure.reason).inc()
        await self._dead_letter(job, failure)

    # --- sending ------------------------------------------------------------------------------------------------

    async def _send(self, batch: list[Entry], todo: list[int], done: set[int], finish: Finish) -> None:
        """Deliver ``batch[i] for i in todo`` until each is delivered or refused (``finish`` says which)."""
        attempt = 0
        assert self._session is not None
        while todo:
            req = self.preset.request([batch[i][1] for i in todo], self.opts)
            await self._admit()
            attempt += 1
            t0 = time.perf_counter()
            status, text, headers, error = None, "", {}, None
            try:
                async with self._session.post(req.url, data=req.body, headers={
                        "User-Agent": "attrib-route/1", **req.headers, **self._headers}) as resp:
                    status, headers = resp.status, dict(resp.headers)
                    text = (await resp.content.read(1 << 20)).decode("utf-8", "replace")
            except TimeoutError:
                error = "timeout"
            except aiohttp.ClientError as exc:
                error, text = "connect_error", repr(exc)[:RESPONSE_KEPT]
            self.m.latency.labels(self.name).observe(time.perf_counter() - t0)
            if status is None:
                outcome_retry, ok, failed, hint, split = set(range(len(todo))), set(), {}, None, False
            else:
                o = self.preset.outcome(status, headers, text, req, len(todo), self.wall())
                outcome_retry, ok, failed, hint, split = o.retry, o.ok, o.failed, o.hint_s, o.split
            if split:
                half = len(todo) // 2
                await self._send(batch, todo[:half], done, finish)
                await self._send(batch, todo[half:], done, finish)
                return
            reason = error or f"http_{status}"
            transient = status is None or status in RETRYABLE_STATUS
            # a refused event is that event's fault, not the vendor's health: only transient failures open the circuit
            self.breaker.record(not transient, self.clock())
            self.m.circuit_open.labels(self.name).set(1 if self.breaker.is_open else 0)
            if transient or failed:
                self.m.failed.labels(self.name, "vendor_rejected" if status and status < 300 else reason).inc()
            detail = {"destination": self.name, "kind": self.preset.kind, "attempts": attempt, "status": status,
                      "url": req.url.split("?", 1)[0], "batch": len(todo)}
            for p in sorted(ok):
                done.add(todo[p])
                self.m.sent.labels(self.name).inc()
                await finish(batch[todo[p]][0], None)
            for p, err in sorted(failed.items()):
                done.add(todo[p])
                why = "vendor_rejected" if (status is not None and (200 <= status < 300 or len(failed) < len(todo))) \
                    else reason
                await finish(batch[todo[p]][0], Failure(why, {**detail, "response": err[:RESPONSE_KEPT]}))
            todo = [todo[p] for p in sorted(outcome_retry)]
            if not todo:
                return
            if attempt >= self.cfg.max_attempts:
                for i in todo:
                    done.add(i)
                    await finish(batch[i][0], Failure(reason, {**detail, "response": text[:RESPONSE_KEPT]}))
                return
            delay = max(backoff(attempt, self.cfg.backoff_initial_s, self.cfg.backoff_max_s),
                        min(hint or 0.0, self.cfg.backoff_max_s))
            log.info("route retry", extra={"fields": {"destination": self.name, "attempt": attempt, "reason": reason,
                                                      "events": len(todo), "delay_s": round(delay, 3)}})
            await asyncio.sleep(delay)

