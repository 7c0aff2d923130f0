"""Helpers for the end-to-end alert scenarios: seasonal Poisson traffic as EnrichedEvent Avro, settings handed to a
subprocess through the environment, and Kafka conditions to wait on (committed offsets, topic contents)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from pydantic import SecretStr

from attrib.settings import Settings
from schemas import avro
from schemas.counts import KEY, Tally

B = 300_000
DAY = 288
REPO = Path(__file__).resolve().parents[3]


def seasonal(b: int) -> float:
    return 1 + 0.5 * math.sin(2 * math.pi * (b % DAY) / DAY - math.pi / 2)


def c1(src: str, b: int, i: int) -> str:
    return "c1"


def events(app: str, rates: dict[str, float], buckets: int, start_ms: int, shape: Callable[[str, int], float],
           rng: np.random.Generator, campaign: Callable[[str, int, int], str] = c1, bucket_ms: int = B,
           event_type: str = "install") -> Iterator[dict[str, Any]]:
    for b in range(buckets):
        for src, r in rates.items():
            n = int(rng.poisson(r * seasonal(b) * shape(src, b)))
            for i in range(n):
                t = start_ms + b * bucket_ms + int(rng.integers(0, bucket_ms))
                yield {"event_id": f"{app}-{src}-{event_type}-{b}-{i}", "mmp": "appsflyer", "source": "af",
                       "app_id": app, "event_name": event_type, "event_type": event_type, "event_time": t,
                       "received_at": t, "user_key": f"idfv:{app}{src}{event_type}{b}{i}",
                       "attribution_status": "attributed", "version": 1,
                       "emitted_at": t, "media_source": src, "campaign": campaign(src, b, i)}


def produce(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes]]) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "linger.ms": 20,
                  "enable.idempotence": True})
    for k, v in records:
        while True:
            try:
                p.produce(topic, key=k, value=v)
                break
            except BufferError:
                p.poll(0.1)
    assert p.flush(60) == 0


def produce_events(bootstrap: str, topic: str, recs: Iterator[dict[str, Any]]) -> int:
    out = [(r["user_key"].encode(), avro.encode("enriched_event", r)) for r in recs]
    produce(bootstrap, topic, out)
    return len(out)


class Counting:
    """What the worker sends for events (schemas/counts.py): each event emitted by its own raw record (offsets go on
    across calls, as the raw partitions' do), placed by user key; one counts record per raw partition every
    ``batch`` events. No progress: ``produce_progress`` then completes the buckets (nothing is judged before)."""

    def __init__(self, partitions: int, bucket_ms: int = B, batch: int = 500) -> None:
        self.tally, self.offsets, self.batch = Tally(bucket_ms), [0] * partitions, batch

    def produce(self, bootstrap: str, topic: str, recs: Iterator[dict[str, Any]]) -> int:
        out, n = [], 0
        for r in recs:
            p = hash(r["user_key"]) % len(self.offsets)
            self.tally.seen(p, self.offsets[p])
            self.tally.event(p, self.offsets[p], r)
            self.offsets[p] += 1
            n += 1
            if n % self.batch == 0:
                out += self.tally.drain()
        out += self.tally.drain()
        produce(bootstrap, topic, [(KEY, v) for v in out])
        return n


def produce_progress(bootstrap: str, topic: str, partitions: int, at_ms: int) -> None:
    """Every raw partition processed up to ``at_ms`` (the worker's tick records do this for idle partitions)."""
    produce(bootstrap, topic, [(KEY, json.dumps({"p": p, "last": -1, "at": at_ms, "c": [], "f": []}).encode())
                               for p in range(partitions)])


def _partitions(c: Consumer, topic: str) -> list[TopicPartition]:
    md = c.list_topics(topic, timeout=10).topics[topic]
    return [TopicPartition(topic, p) for p in md.partitions]


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "probe"})
    try:
        return {tp.partition: c.get_watermark_offsets(tp, timeout=10)[1] for tp in _partitions(c, topic)}
    finally:
        c.close()


def wait_committed(bootstrap: str, group: str, topic: str, timeout: float = 120,
                   proc: subprocess.Popen[bytes] | None = None) -> None:
    """Block until ``group`` has committed every partition of ``topic`` up to its end (the consumer caught up)."""
    want = end_offsets(bootstrap, topic)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                got = {tp.partition: tp.offset for tp in c.committed(_partitions(c, topic), timeout=10)}
            except KafkaException:  # coordinator moving / loading: ask again
                got = {}
            if all(got.get(p, -1) >= end for p, end in want.items() if end > 0):
                return
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"{proc.args} exited with {proc.returncode} before {group} caught up on {topic}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{group} did not catch up on {topic}: committed {got}, end {want}")
            time.sleep(0.3)
    finally:
        c.close()


def read_all(bootstrap: str, topic: str) -> list[bytes]:
    """Every record now in ``topic`` (up to the end offsets taken at the call)."""
    want = {p: e for p, e in end_offsets(bootstrap, topic).items() if e > 0}
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{time.time_ns()}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    out: list[bytes] = []
    try:
        c.assign([TopicPartition(topic, p, 0) for p in want])
        pos = {p: 0 for p in want}
        while any(pos[p] < e for p, e in want.items()):
            m = c.poll(1.0)
            if m is None or m.error():
                continue
            if m.offset() < want[m.partition()]:
                out.append(m.value())
            pos[m.partition()] = m.offset() + 1
        return out
    finally:
        c.close()


def env_for(s: Settings) -> dict[str, str]:
    """The settings as ATTRIB_* variables (secrets revealed: this is the test's own throwaway config)."""

    def plain(v: Any) -> Any:
        if isinstance(v, SecretStr):
            return v.get_secret_value()
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, Path):
            return str(v)
        if hasattr(v, "isoformat"):
            return v.isoformat()
        return v

    env = {k: v for k, v in os.environ.items() if not k.startswith("ATTRIB_")}
    for name in Settings.model_fields:
        v = plain(s.model_dump()[name])
        if v is None:
            continue
        env[f"ATTRIB_{name.upper()}"] = v if isinstance(v, str) else json.dumps(v)
    return env


def start(command: str, s: Settings, log: Path) -> subprocess.Popen[bytes]:
    fh = open(log, "wb")  # noqa: SIM115 - closed by the process's end
    return subprocess.Popen([sys.executable, "-m", "ops.cli", command], env=env_for(s), stdout=fh,
                            stderr=subprocess.STDOUT, cwd=REPO)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
