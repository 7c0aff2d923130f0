"""The null pipeline's capacity (on demand, not in CI): what any pipeline with our guarantees, built from the design
card's parts, costs per delivery on this machine — the ceiling of bench/e2e.py's capacity while we keep these parts.

    .venv/bin/python bench/floor.py --find-capacity [--start 571] [--step 1.3] [--seconds 20] [--p99-ms 2000]
    .venv/bin/python bench/floor.py [--rate 1000] [--seconds 20]

The same sender (bench/sender.py: `attrib send`'s signed deliveries from the demo sources, generated before each
step; ``--sender attrib`` for `attrib send` itself), rate steps, p99 rule (receipt → queryable ≤ --p99-ms, ≥ 90% of
the asked rate sent) and per-process CPU report as bench/e2e.py (its code, imported), against:
- ingress floor: aiohttp, any path: read the body (a GET's query string when there is none), produce it with
  confluent-kafka under the ingress's own producer settings (ingest.producer.config: acks=all, idempotence,
  murmur2_random, ingest.linger_ms), await the ack, answer 200. No verification, no parsing, no spool, no metrics.
  The record's key is a stand-in user key (a counter over 50,000 "users": no parsing, yet spread over the
  partitions as user keys are); its value is the receipt time (8 bytes, ms) + the body.
- worker floor: bench/worker.py's (m) "Faust mechanics" app: per delivery one changelog-backed state write and one
  output record, acknowledged before each commit (streams/app.py, streams/outputs.py), here without Avro.
- sink floor: a confluent-kafka consumer of the output topic inserting batches (sink.batch_rows / batch_seconds, as
  the sink batches) through clickhouse-connect into embedded chdb (event id, receipt and emit times, bytes;
  ``loaded_at`` stamped by ClickHouse as in the events table), an insert deduplication token per batch, offsets
  committed after the insert; it serves SQL on sink.query_port (sinks.query) as the real sink does, so rows count as
  queryable the way bench/e2e.py decides it: loaded_at − received_at, once the row count stops moving.
- the broker as bench/e2e.py runs it (`attrib stack`'s Cluster, ATTRIB_STACK__JIT=full, topics.partitions).

Processes are children of this one (labelled java, floor ingest, floor worker, floor sink), so CPU per delivery is
read per process; the sender's own CPU is reported beside the total, as bench/e2e.py now does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from attrib import kafka
from attrib.settings import Settings
from bench import e2e
from bench.worker import MECHANICS_APP
from tests.support import cpu_s

TABLE = "floor_events"
USERS = 50_000  # stand-in user keys: records spread over the partitions as keyed deliveries do
RECEIVED = struct.Struct(">q")  # the receipt time (ms) the ingress floor puts before the body


# -- ingress floor ---------------------------------------------------------------------------------------------------
async def serve_ingest(s: Settings, stop: asyncio.Event) -> None:
    """Answer every request 200 once Kafka acknowledged its body (503 when it did not)."""
    from aiohttp import web
    from confluent_kafka import Producer

    from ingest.producer import config

    producer = Producer(config(s))  # the ingress's producer settings, FIXED ones included
    loop = asyncio.get_running_loop()
    pending, wake, counter = 0, asyncio.Event(), 0

    async def poll_reports() -> None:  # as ingest/producer.py: the loop polls, no thread, every ms while in flight
        while True:
            producer.poll(0)
            if pending:
                await asyncio.sleep(0.001)
            else:
                wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), 0.5)

    def acked(fut: asyncio.Future[None], err: Any, _msg: Any) -> None:
        if fut.done():
            return
        if err is not None:
            fut.set_exception(RuntimeError(err.str()))
        else:
            fut.set_result(None)

    async def deliver(request: web.Request) -> web.Response:
        nonlocal pending, counter
        received = int(time.time() * 1000)
        body = await request.read() or request.query_string.encode()
        counter += 1
        fut: asyncio.Future[None] = loop.create_future()
        producer.produce(s.topics.raw, RECEIVED.pack(received) + body, str(counter % USERS).encode(),
                         on_delivery=lambda err, msg: acked(fut, err, msg))
        pending += 1
        wake.set()
        try:
            await fut
        except RuntimeError:
            return web.Response(status=503)
        finally:
            pending -= 1
        return web.Response(status=200)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", deliver)
    poller = loop.create_task(poll_reports())
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", s.ingest.port).start()
    await stop.wait()
    await runner.cleanup()
    poller.cancel()
    producer.flush(10)


def run_ingest(s: Settings) -> None:
    import uvloop  # as the ingress runs

    async def main() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await serve_ingest(s, stop)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())


# -- sink floor ------------------------------------------------------------------------------------------------------
def create_table(client: Any, db: str) -> None:
    client.command(f"CREATE DATABASE IF NOT EXISTS {db}")
    client.command(f"""CREATE TABLE IF NOT EXISTS {db}.{TABLE} (
        event_id String, received_ms Int64, emitted_ms Int64, bytes UInt32,
        loaded_at DateTime64(3, 'UTC') DEFAULT now64(3)
    ) ENGINE = ReplacingMergeTree ORDER BY event_id SETTINGS non_replicated_deduplication_window = 1000""")


def run_sink(s: Settings, stop: threading.Event) -> None:
    """Consume the output topic; insert a batch at sink.batch_rows records or sink.batch_seconds after its first;
    commit its offsets once inserted. Serves SQL on sink.query_port meanwhile."""
    from confluent_kafka import TopicPartition

    from sinks.clickhouse import connect
    from sinks.query import QueryServer
    from sinks.service import INSERT_SETTINGS

    db = s.clickhouse.database
    client = connect(s)
    create_table(client, db)
    server = QueryServer(s.sink.query_port, lambda: connect(s, database=db), lambda: "", lambda: {"status": "ok"})
    server.start()
    consumer = kafka.consumer(s, "sink", "floor-sink", topics=[s.topics.events], extra={  # the sink's settings
        "enable.auto.commit": False, "auto.offset.reset": "earliest", "fetch.min.bytes": 1,
        "queued.max.messages.kbytes": 65536})
    consumer.subscribe([s.topics.events])
    ids: list[str] = []
    received: list[int] = []
    emitted: list[int] = []
    sizes: list[int] = []
    offsets: dict[int, int] = {}
    first = 0.0
    try:
        while not stop.is_set():
            wait = s.sink.batch_seconds - (time.monotonic() - first) if ids else s.sink.batch_seconds
            for m in consumer.consume(10_000, max(0.01, min(wait, 0.1))):
                v, partition, offset = m.value(), m.partition(), m.offset()
                if m.error() is not None or v is None or partition is None or offset is None:
                    continue  # partition EOF and the like
                if not ids:
                    first = time.monotonic()
                ids.append(f"{partition}-{offset}")
                received.append(RECEIVED.unpack_from(v)[0])
                emitted.append(m.timestamp()[1])
                sizes.append(len(v) - RECEIVED.size)
                offsets[partition] = offset + 1
            if ids and (len(ids) >= s.sink.batch_rows or time.monotonic() - first >= s.sink.batch_seconds):
                token = ",".join(f"{p}:{o}" for p, o in sorted(offsets.items()))
                client.insert(f"{db}.{TABLE}", [ids, received, emitted, sizes], column_oriented=True,
                              column_names=["event_id", "received_ms", "emitted_ms", "bytes"],
                              settings={**INSERT_SETTINGS, "insert_deduplication_token": token})
                consumer.commit(offsets=[TopicPartition(s.topics.events, p, o) for p, o in offsets.items()],
                                asynchronous=False)
                ids, received, emitted, sizes, offsets = [], [], [], [], {}
    finally:
        consumer.close()
        server.stop()
        client.close()


# -- the pipeline ----------------------------------------------------------------------------------------------------
def spawn(env: dict[str, str], logs: Path) -> dict[str, subprocess.Popen[bytes]]:
    """Start the sink, worker and ingress floors with ``env`` (ATTRIB_* settings; topics must exist), logs and the
    worker's data under ``logs``; by label."""
    me = [sys.executable, str(Path(__file__).resolve())]
    (logs / "worker").mkdir(parents=True, exist_ok=True)

    def start(name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        with (logs / f"{name}.log").open("wb") as log:
            return subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)

    return {"floor sink": start("sink", [*me, "--role", "sink"]),
            "floor worker": start("worker", [sys.executable, "-c", MECHANICS_APP, str(ROOT), str(logs / "worker"),
                                             "raw"]),
            "floor ingest": start("ingest", [*me, "--role", "ingest"])}


class FloorPipeline(e2e.Pipeline):
    """The broker and the three floor processes on private ports; bench/e2e.py's steps and report."""

    def start(self) -> None:
        from attrib.topics import ensure_topics
        from ops.stack import Cluster, fetch_jars

        fetch_jars(self.s, log=lambda *_: None)
        self.cluster = Cluster.from_settings(self.s)
        self.cluster.start(log=lambda *_: None)
        ensure_topics(self.s)
        self.logs = Path(tempfile.mkdtemp(prefix="attrib-floor-"))
        self.procs = spawn(self.env, self.logs)

    def up(self) -> bool:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.procs.values()):
                for name, p in self.procs.items():
                    tail = (self.logs / f"{name.split()[1]}.log").read_text(errors="replace")[-2000:]
                    print(f"{name} (exit {p.poll()}):\n{tail}", file=sys.stderr)
                return False
            try:
                # the sink first: a query before it serves would open its warehouse here (ops.sql's fallback)
                urllib.request.urlopen(f"http://127.0.0.1:{self.s.sink.query_port}/health", timeout=5).read()
                urllib.request.urlopen(f"http://127.0.0.1:{self.s.ingest.port}/up", b"", timeout=5).read()
                return True
            except OSError:
                time.sleep(0.5)
        return False

    def stop(self) -> None:
        for p in reversed(list(self.procs.values())):
            p.terminate()
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        self.cluster.stop(log=lambda *_: None)

    def cpu(self) -> dict[str, float]:
        out = {name: cpu_s(p.pid) for name, p in self.procs.items()}
        out["java"] = sum(cpu_s(pid) for _, pid in self.cluster.running() if pid)
        return out

    def spooled(self) -> float:
        return 0.0  # the floor has no spool

    def loaded(self) -> int:
        return self.rows_in(TABLE)

    def mark(self) -> int:
        return self.loaded()

    def settle(self, sent: int, before: int) -> int:
        """Until every delivery sent is queryable (the floor keeps duplicates: no dedupe) and the count stays put."""
        deadline, n = time.monotonic() + 120, -1
        last, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            n = self.loaded() - before
            last, since = (n, time.monotonic()) if n != last else (last, since)
            if n >= sent and time.monotonic() - since >= 2:
                break
            time.sleep(0.5)
        return n

    def latency(self, t0: float) -> dict[str, Any]:
        from ops.sql import query_rows
        received = "fromUnixTimestamp64Milli(received_ms)"
        emitted = "fromUnixTimestamp64Milli(emitted_ms)"
        return query_rows(self.s, f"""
            SELECT count() AS events,
                   quantile(0.5)(dateDiff('millisecond', {received}, loaded_at)) AS p50,
                   quantile(0.99)(dateDiff('millisecond', {received}, loaded_at)) AS p99,
                   max(dateDiff('millisecond', {received}, loaded_at)) AS max,
                   quantiles(0.5, 0.99)(dateDiff('millisecond', {received}, {emitted})) AS worker,
                   quantiles(0.5, 0.99)(dateDiff('millisecond', {emitted}, loaded_at)) AS sink
            FROM {self.db}.{TABLE} WHERE received_ms >= {int(t0 * 1000)}""")[0]


def role(name: str) -> int:
    """A floor process (the driver starts them with the pipeline's environment)."""
    from attrib import settings as settings_mod

    s = settings_mod.load()
    if name == "ingest":
        run_ingest(s)
    else:
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        run_sink(s, stop)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--role"]:
        ap = argparse.ArgumentParser()
        ap.add_argument("--role", choices=["ingest", "sink"], required=True)
        sys.exit(role(ap.parse_args().role))
    sys.exit(e2e.main(FloorPipeline, __doc__))
