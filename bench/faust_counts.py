"""Counters on Faust's consume path, for bench/worker.py --count (measurement only, never in the worker): per
delivery, how often the fetch loop fetches, the stream queue is full (the conductor's slow ``Channel.put``), the agent
finds it empty (the queue's ``get``), partitions are paused/resumed for buffer pressure, mode's ``wait_first`` runs,
and batches and produce requests go out; and CPU per thread.

``install(path)`` wraps the classes' methods in the process it runs in and writes the counts as JSON to ``path``
every second and at exit (the bench reads the file after the phase).
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

COUNTS: Counter[str] = Counter()


def _count_calls(owner: Any, name: str, label: str) -> None:
    fn = getattr(owner, name)

    if _is_async_gen(fn):
        @functools.wraps(fn)
        async def agen(*args: Any, **kwargs: Any) -> Any:
            COUNTS[label] += 1
            async for item in fn(*args, **kwargs):
                yield item
        setattr(owner, name, agen)
    elif _is_coro(fn):
        @functools.wraps(fn)
        async def coro(*args: Any, **kwargs: Any) -> Any:
            COUNTS[label] += 1
            return await fn(*args, **kwargs)
        setattr(owner, name, coro)
    else:
        @functools.wraps(fn)
        def plain(*args: Any, **kwargs: Any) -> Any:
            COUNTS[label] += 1
            return fn(*args, **kwargs)
        setattr(owner, name, plain)


def _is_async_gen(fn: Any) -> bool:
    import inspect
    return inspect.isasyncgenfunction(fn)


def _is_coro(fn: Any) -> bool:
    import inspect
    return inspect.iscoroutinefunction(fn)


SEEN: dict[int, tuple[str, float]] = {}  # thread id -> (name, last CPU seconds): threads that ended still count


def thread_cpu() -> dict[str, float]:
    """CPU seconds per thread of this process, by thread name (the main loop vs Faust's consumer thread)."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK")
    for task in Path("/proc/self/task").iterdir():
        try:
            f = (task / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        tid = int(task.name)
        name = names.get(tid) or SEEN.get(tid, ("other", 0.0))[0]
        SEEN[tid] = (name, (int(f[11]) + int(f[12])) / tick)
    out: dict[str, float] = {}
    for name, cpu in SEEN.values():
        out[f"cpu_s:{name}"] = out.get(f"cpu_s:{name}", 0.0) + cpu
    return out


def context_switches() -> dict[str, int]:
    """The process's context switches so far (all threads): preemptions refill caches, more so on a loaded box."""
    out = {"ctx_switches_voluntary": 0, "ctx_switches_preempted": 0}
    for task in Path("/proc/self/task").iterdir():
        try:
            status = (task / "status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                out["ctx_switches_voluntary"] += int(line.split()[1])
            elif line.startswith("nonvoluntary_ctxt_switches:"):
                out["ctx_switches_preempted"] += int(line.split()[1])
    return out


def install(path: str) -> None:
    from aiokafka.consumer.fetcher import Fetcher
    from aiokafka.producer.producer import AIOKafkaProducer
    from aiokafka.producer.sender import Sender
    from faust.channels import Channel
    from faust.transport import consumer as fc
    from faust.transport.drivers import aiokafka as driver
    from mode.services import Service
    from mode.utils.queues import ThrowableQueue

    _count_calls(fc.Consumer, "on_buffer_full", "buffer_full_pause")
    _count_calls(fc.Consumer, "on_buffer_drop", "buffer_drop_resume")
    _count_calls(fc.Consumer, "getmany", "getmany")
    _count_calls(Channel, "put", "queue_full_put")  # the conductor's path when the stream queue is full
    get = ThrowableQueue.get

    @functools.wraps(get)
    async def queue_get(self: Any) -> Any:
        if self.empty():  # the agent (the queue's only reader) waits for the fetch loop
            COUNTS["agent_finds_queue_empty"] += 1
        return await get(self)

    ThrowableQueue.get = queue_get  # type: ignore[method-assign]
    _count_calls(Service, "wait_first", "wait_first")
    _count_calls(Fetcher, "_get_actions_per_node", "aiokafka_fetch_loop_turns")
    _count_calls(Fetcher, "_proc_fetch_request", "aiokafka_fetch_requests")
    _count_calls(AIOKafkaProducer, "send_batch", "produced_batches")
    _count_calls(Sender, "_send_produce_req", "produce_requests")

    fetch = driver.AIOKafkaConsumerThread._fetch_records

    @functools.wraps(fetch)
    async def fetch_records(self: Any, *args: Any, **kwargs: Any) -> Any:
        records = await fetch(self, *args, **kwargs)
        COUNTS["fetch_records_calls"] += 1
        COUNTS["fetched_records"] += sum(len(v) for v in records.values())
        COUNTS["fetched_partitions"] += len(records)
        if not records:
            COUNTS["fetch_records_empty"] += 1
        return records

    driver.AIOKafkaConsumerThread._fetch_records = fetch_records  # type: ignore[method-assign]

    def dump() -> None:
        Path(path).write_text(json.dumps(dict(COUNTS) | thread_cpu() | context_switches()))

    def every_second() -> None:
        while True:
            time.sleep(1)
            dump()

    threading.Thread(target=every_second, daemon=True).start()
    atexit.register(dump)
