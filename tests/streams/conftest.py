"""Helpers for worker tests against the real broker: produce RawDelivery records the way ingress does (confluent-kafka,
murmur2_random, keyed by user key), run `attrib worker` as a subprocess, read the enriched and dead-letter topics."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer

from attrib.settings import Settings
from attrib.topics import ensure_topics
from ops.supervise import settings_env
from schemas import avro

T0 = int(time.time() * 1000)


def generic_body(event_id: str | None, name: str, t_ms: int, customer: str, source: str | None = "meta",
                 revenue: str | None = None) -> bytes:
    body: dict[str, Any] = {
        "event_name": name,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t_ms / 1000)) + f".{t_ms % 1000:03d}Z",
        "attribution": {"source": source, "campaign": "spring"} if source else {},
        "user": {"customer_id": customer, "is_organic": source is None},
    }
    if event_id is not None:
        body["event_id"] = event_id
    if revenue is not None:
        body["revenue"], body["currency"] = revenue, "USD"
    return json.dumps(body).encode()


def raw_delivery(source: str, mmp: str, body: bytes, user_key: str, received_at: int | None = None,
                 content_type: str = "application/json") -> dict[str, Any]:
    return {"delivery_id": uuid.uuid4().hex, "source": source, "mmp": mmp, "app_id": None, "method": "POST",
            "path": f"/webhooks/{source}", "query_string": "", "headers": {"content-type": content_type},
            "body": body, "remote_addr": "127.0.0.1", "received_at": received_at or int(time.time() * 1000),
            "user_key": user_key}


def produce(settings: Settings, records: list[tuple[str | None, bytes]]) -> None:
    """(key, value) pairs; as the ingress does it."""
    p = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers, "partitioner": "murmur2_random",
                  "enable.idempotence": True, "linger.ms": 20})
    for key, value in records:
        while True:
            try:
                p.produce(settings.topics.raw, key=key.encode() if key else None, value=value)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    assert p.flush(60) == 0


def produce_raw(settings: Settings, raws: list[dict[str, Any]]) -> None:
    produce(settings, [(r["user_key"], avro.encode("raw_delivery", r)) for r in raws])


class Reader:
    """Reads a topic from the beginning, accumulating decoded records across calls."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.c = Consumer({"bootstrap.servers": settings.kafka.bootstrap_servers, "group.id": f"r-{uuid.uuid4().hex}",
                           "auto.offset.reset": "earliest", "enable.auto.commit": False})
        self.c.subscribe([topic])
        self.records: list[dict[str, Any]] = []
        self.positions: list[tuple[int, int]] = []  # (partition, offset) of each record, same order

    def _take(self, msgs: list[Any]) -> None:
        for msg in msgs:
            if msg.error() is None:
                self.records.append(avro.decode(msg.value())[1])
                self.positions.append((msg.partition(), msg.offset()))

    def read_until(self, done: Callable[[list[dict[str, Any]]], bool], what: str, limit_s: float = 120.0,
                   proc: WorkerProc | None = None, explain: Callable[[list[dict[str, Any]]], Any] | None = None,
                   restart: Callable[[WorkerProc], WorkerProc] | None = None) -> list[dict[str, Any]]:
        """``restart``: a worker that exits with code 70 (it refuses to commit past a problem) is restarted through
        it, as a supervisor would (compose: ``restart: unless-stopped``); any other exit fails."""
        end = time.monotonic() + limit_s
        while not done(self.records):
            code = proc.p.poll() if proc is not None and proc.p is not None else None
            if proc is not None and code is not None:
                if restart is not None and code == 70:
                    proc = restart(proc)
                    continue
                raise AssertionError(f"worker exited ({code}) while waiting for {what}\n{proc.log_tail()}")
            if time.monotonic() > end:
                tail = proc.log_tail() if proc else ""
                why = f" — {explain(self.records)}" if explain else ""
                raise AssertionError(f"gave up waiting for {what}; have {len(self.records)} records{why}\n{tail}")
            self._take(self.c.consume(2000, 0.5))
        return self.records

    def drain(self, idle_s: float = 3.0) -> list[dict[str, Any]]:
        """Read until nothing new arrives for idle_s (only to check that nothing EXTRA shows up)."""
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < idle_s:
            msgs = self.c.consume(2000, 0.5)
            self._take(msgs)
            if msgs:
                quiet_since = time.monotonic()
        return self.records

    def close(self) -> None:
        self.c.close()


def env_for(settings: Settings) -> dict[str, str]:
    return settings_env(settings, ("kafka", "topics", "streams", "sources", "alerts"), log_level="INFO")


class WorkerProc:
    def __init__(self, settings: Settings, data_dir: Path, log: Path, store: str = "memory://",
                 metrics_port: int = 0) -> None:
        self.settings, self.data_dir, self.log, self.store = settings, data_dir, log, store
        self.metrics_port = metrics_port
        self.p: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProc:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        out = self.log.open("ab")
        self.p = subprocess.Popen(
            [sys.executable, "-m", "ops.cli", "worker", "--data-dir", str(self.data_dir), "--store", self.store,
             "--metrics-port", str(self.metrics_port)],
            env=env_for(self.settings), stdout=out, stderr=subprocess.STDOUT)
        return self

    def kill9(self) -> None:
        if self.p and self.p.poll() is None:
            self.p.send_signal(signal.SIGKILL)
            self.p.wait()

    def stop(self) -> None:
        if self.p and self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(30)
            except subprocess.TimeoutExpired:
                self.kill9()

    def log_tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""


@pytest.fixture
def worker_settings(make_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    """Settings for one worker test: unique topics and app id, short session timeout, topics created."""

    def make(streams: dict[str, Any] | None = None, sources: list[dict[str, Any]] | None = None,
             partitions: int = 6) -> Settings:
        s = make_settings(
            kafka={"session_timeout_s": 6},
            streams={"app_id": f"w-{uuid.uuid4().hex[:8]}", "tick_interval_s": 0.5,
                     "metrics_port": 0, "commit_interval_s": 1.0, **(streams or {})},
            # the worker verifies nothing, but every command validates sources as the ingress would
            sources=[{"verify": ["none"], **src} for src in (sources or [{"name": "gen", "mmp": "generic"}])],
        )
        s = s.model_copy(update={"topics": s.topics.model_copy(update={"partitions": partitions})})
        ensure_topics(s)
        return s

    return make


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[..., WorkerProc]]:
    started: list[WorkerProc] = []

    def start(settings: Settings, name: str = "w1", store: str = "memory://", metrics_port: int = 0) -> WorkerProc:
        w = WorkerProc(settings, tmp_path / f"data-{name}", tmp_path / f"{name}.log", store, metrics_port).start()
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()
