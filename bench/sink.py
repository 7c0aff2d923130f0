"""Sink benchmark (on demand, not in CI): rows/s into embedded ClickHouse, and produce → queryable latency.

    .venv/bin/python bench/sink.py [--rows 200000] [--batch-rows 100000,10000] [--engine-only]
                                   [--rate 1000] [--seconds 20] [--batch-seconds 1.0,0.5,0.25] [--bootstrap host:port]

Without --bootstrap a private Kafka broker is started on free ports (jars from `make broker`). Throughput: N
enriched events (unique ids) are produced first, then one sink per --batch-rows value loads them; rows/s counts
from its first record to its last flush, rows per CPU-second from the process's CPU time (engine threads included),
and CPU per thread name shows where it went (``MergeMutate`` = background merges). --engine-only: the same events as
ready-made Avro containers inserted without Kafka or Python per record, the engine's ceiling. Latency: after a
warm-up, the sink runs while events are produced at --rate/s, each stamped with its produce time in ``emitted_at``;
latency = ``loaded_at`` (set by ClickHouse when the insert runs) − ``emitted_at``, plus the mean insert duration for
the time until the rows are visible; and the sink's CPU share meanwhile.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from confluent_kafka import Producer

from attrib.settings import Settings
from attrib.topics import ensure_topics
from schemas import avro
from sinks import landing, migrate
from sinks.clickhouse import connect
from sinks.service import FAST_SETTINGS, Sink
from tests.sinks.fixtures import traffic
from tests.support import (
    free_port,
    given_or_throwaway,
)


def _settings(bootstrap: str, path: Path, **sink: object) -> Settings:
    tag = uuid.uuid4().hex[:8]
    return Settings(var_dir=path, kafka={"bootstrap_servers": bootstrap},
                    clickhouse={"path": path / "ch", "database": f"bench_{tag}"},
                    topics={"raw": f"b-{tag}.raw", "events": f"b-{tag}.events", "dead_letters": f"b-{tag}.dlq",
                            "alerts_spike": f"b-{tag}.spike", "alerts_drop": f"b-{tag}.drop"},
                    sink={"group_id": f"bench-{tag}", "query_port": free_port(), **sink})


def _templates() -> list[dict]:
    return list(traffic(users=2000, seed=1).final.values())


def _events(rows: int) -> Iterator[tuple[bytes, bytes]]:
    """(key, single-object Avro value) of ``rows`` enriched events with unique ids. Each template is encoded once and
    a unique event_id spliced in front (it is the record's first field): encoding every record in Python would make
    producing the slow part of a run."""
    templates = []
    for rec in _templates():
        value = avro.encode("enriched_event", rec)
        eid = rec["event_id"].encode()
        head = landing.zigzag(len(eid)) + eid
        assert value[10:10 + len(head)] == head
        templates.append((value[:10], eid, value[10 + len(head):], rec["user_key"].encode()))
    for i in range(rows):
        prefix, eid, rest, key = templates[i % len(templates)]
        eid = b"%s#%d" % (eid, i)
        yield key, prefix + landing.zigzag(len(eid)) + eid + rest


def _producer(bootstrap: str) -> Producer:
    return Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "linger.ms": 20,
                     "batch.num.messages": 10000, "queue.buffering.max.messages": 1_000_000,
                     "enable.idempotence": True})


def throughput(bootstrap: str, rows: int, tmp: Path, batch_rows: list[int | None], **sink: object) -> None:
    """Produce ``rows`` events once, then load them with one fresh sink (group, database) per batch size."""
    s = _settings(bootstrap, tmp / "tp")
    ensure_topics(s)
    p = _producer(bootstrap)
    t0 = time.perf_counter()
    for i, (key, value) in enumerate(_events(rows)):
        p.produce(s.topics.events, key=key, value=value)
        if i % 10_000 == 0:
            p.poll(0)
    p.flush(120)
    print(f"produced {rows:,} enriched events in {time.perf_counter() - t0:.1f}s (setup, not measured)")
    for n in batch_rows:
        run = _settings(bootstrap, tmp / "tp", **sink, **({"batch_rows": n} if n else {}))
        run = run.model_copy(update={"topics": s.topics})
        _load_all(run, rows)


def engine_only(rows: int, batch: int, tmp: Path) -> None:
    """The ceiling without Python in the loop: the same events as ready-made Avro containers inserted one after the
    other (the sink's insert call and settings), so only the engine works (parse, view, part writes, merges)."""
    s = _settings("127.0.0.1:9", tmp / "engine")  # no Kafka involved
    client = connect(s)
    migrate.migrate(client, s)
    values = [value for _, value in _events(rows)]
    w = landing.writers()[values[0][2:10]]
    blocks = [landing.container(w, [v[10:] for v in values[i:i + batch]]) for i in range(0, rows, batch)]
    del values
    gc.freeze()
    threads0 = _thread_cpu()
    t0, cpu0 = time.perf_counter(), time.process_time()
    for i, block in enumerate(blocks):
        client.raw_insert(f"{s.clickhouse.database}.events_avro_in", insert_block=block, fmt="Avro",
                          settings={**FAST_SETTINGS, "insert_deduplication_token": f"engine-{i}"})
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    threads = {k: v - threads0.get(k, 0.0) for k, v in _thread_cpu().items()}
    print(f"engine only, {batch:,}-row inserts: {rows / wall:,.0f} rows/s, {rows / cpu:,.0f} rows per CPU-second "
          f"({rows:,} rows in {wall:.2f}s, {cpu:.2f} CPU-s); load average {os.getloadavg()[0]:.1f}")
    top = sorted(((v, k) for k, v in threads.items() if v >= 0.05), reverse=True)
    print("  CPU by thread: " + ", ".join(f"{k} {v:.2f}s" for v, k in top))
    client.close()


def _thread_cpu(skip_main: bool = False) -> dict[str, float]:
    """CPU seconds per thread name of this process (Linux /proc; threads that already exited are not counted)."""
    out: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for task in Path("/proc/self/task").iterdir():
        if skip_main and task.name == str(os.getpid()):
            continue
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")].rstrip("0123456789_-")
        fields = stat[stat.rindex(")") + 2:].split()
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def _load_all(s: Settings, rows: int) -> None:
    client = connect(s)
    migrate.migrate(client, s)
    sink = Sink(s)
    load0 = os.getloadavg()[0]
    gc.freeze()  # as `attrib sink` does before starting the sink
    threads0 = _thread_cpu()
    cpu0 = time.process_time()
    sink.start()
    first = None
    while sink.metrics.inserted.get("events", 0) < rows:
        if first is None and sink.metrics.consumed:
            first = time.perf_counter()
        time.sleep(0.01)
    done = time.perf_counter()
    cpu = time.process_time() - cpu0
    threads = {k: v - threads0.get(k, 0.0) for k, v in _thread_cpu().items()}
    sink.stop()
    loaded = client.query(f"SELECT count() FROM {s.clickhouse.database}.events FINAL").result_rows[0][0]
    first = first or done
    print(f"sink throughput, batch_rows={s.sink.batch_rows:,}: {rows / (done - first):,.0f} rows/s  ({rows:,} rows "
          f"in {done - first:.2f}s, {sink.metrics.batches} batches of {rows / max(1, sink.metrics.batches):,.0f} "
          f"on average; {loaded:,} rows queryable)")
    print(f"  CPU: {cpu:.2f}s of process CPU (Python + embedded engine threads) = {rows / cpu:,.0f} rows per "
          f"CPU-second; load average {load0:.1f} before, {os.getloadavg()[0]:.1f} after, on {os.cpu_count()} cores")
    top = sorted(((v, k) for k, v in threads.items() if v >= 0.05), reverse=True)
    print("  CPU by thread: " + ", ".join(f"{k} {v:.2f}s" for v, k in top))
    client.close()


def latency(bootstrap: str, rate: int, seconds: int, tmp: Path, batch_seconds: float) -> None:
    s = _settings(bootstrap, tmp / f"lat{batch_seconds}", batch_seconds=batch_seconds)
    ensure_topics(s)
    client = connect(s)
    migrate.migrate(client, s)
    base = _templates()
    sink = Sink(s)
    gc.freeze()
    sink.start()
    p = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "linger.ms": 5,
                  "enable.idempotence": True})
    # warm up before the clock starts: the group join and the first fetch took up to ~2 s, which is start-up, not
    # the steady state measured here (those records are left out below)
    warm = [dict(base[i], event_id=f"warmup-{i}") for i in range(20)]
    for rec in warm:
        p.produce(s.topics.events, key=rec["user_key"].encode(), value=avro.encode("enriched_event", rec))
    p.flush(30)
    deadline = time.monotonic() + 60
    while sink.metrics.inserted.get("events", 0) < len(warm) and time.monotonic() < deadline:
        time.sleep(0.05)
    measured_from = datetime.now(UTC)
    # the sink's CPU: every thread but this one (the producer loop) and librdkafka's (producer and consumer alike)
    cpu0 = sum(v for k, v in _thread_cpu(skip_main=True).items() if not k.startswith("rdk:"))
    total = rate * seconds
    start = time.perf_counter()
    for i in range(total):
        due = start + i / rate
        while (now := time.perf_counter()) < due:
            time.sleep(min(0.002, due - now))
        rec = dict(base[i % len(base)])
        rec["event_id"] = f"{rec['event_id']}#{i}"
        rec["emitted_at"] = datetime.now(UTC)
        p.produce(s.topics.events, key=rec["user_key"].encode(), value=avro.encode("enriched_event", rec))
        p.poll(0)
    p.flush(30)
    deadline = time.monotonic() + 60
    while sink.metrics.inserted.get("events", 0) < total + len(warm) and time.monotonic() < deadline:
        time.sleep(0.05)
    busy = time.perf_counter() - start
    cpu = sum(v for k, v in _thread_cpu(skip_main=True).items() if not k.startswith("rdk:")) - cpu0
    sink.stop()
    q = client.query("SELECT quantilesExact(0.5, 0.99, 1)(dateDiff('millisecond', emitted_at, loaded_at)), count() "
                     f"FROM {s.clickhouse.database}.events WHERE emitted_at >= {{t:DateTime64(3, 'UTC')}}",
                     parameters={"t": measured_from}).result_rows[0]
    (p50, p99, top), n = q
    print(f"produce→loaded latency at {rate}/s for {seconds}s, batch_seconds={batch_seconds}: "
          f"p50 {p50} ms, p99 {p99} ms, max {top} ms over {n:,} rows ({sink.metrics.batches} batches)")
    mean_load = 1000 * sink.metrics.load_seconds / max(1, sink.metrics.batches)
    print(f"  + mean load (insert) duration {mean_load:.0f} ms until the rows are visible; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"  sink CPU (engine incl. merges and rollup rebuilds + Python, without librdkafka): {cpu:.1f}s over "
          f"{busy:.0f}s = {100 * cpu / busy:.0f}% of one core")
    client.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--bootstrap")
    ap.add_argument("--batch-rows", default="", help="comma-separated sink.batch_rows values for the throughput run, "
                    "one sink each over the same events (default: the setting's)")
    ap.add_argument("--rollup-refresh-s", type=float, help="sink.rollup_refresh_s for the throughput run")
    ap.add_argument("--batch-seconds", default="1.0,0.25", help="sink.batch_seconds values for the latency runs")
    ap.add_argument("--engine-only", action="store_true", help="also time the same inserts without Kafka or Python "
                    "per record (the engine's ceiling), at the default batch_rows")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--skip-latency", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="attrib-bench-"))
    broker, bootstrap = given_or_throwaway(args.bootstrap, tmp / "stack")
    if args.engine_only:
        engine_only(args.rows, Settings().sink.batch_rows, tmp)
    try:
        if not args.skip_throughput:
            sizes = [int(n) for n in args.batch_rows.split(",") if n] or [None]
            extra = {"rollup_refresh_s": args.rollup_refresh_s} if args.rollup_refresh_s else {}
            throughput(bootstrap, args.rows, tmp, sizes, **extra)
        if not args.skip_latency:
            for bs in (float(x) for x in args.batch_seconds.split(",")):
                latency(bootstrap, args.rate, args.seconds, tmp, bs)
    finally:
        if broker is not None:
            broker.stop(log=lambda *_: None)
    return 0


if __name__ == "__main__":
    random.seed(0)
    sys.exit(main())
