"""Worker benchmark (run on demand, not in CI): `python bench/worker.py [--deliveries 200000] [--bootstrap h:p]`.

On one topic and broker, in one run: (a) the framework floor — a Faust agent that only consumes and Avro-decodes;
(m) Faust mechanics — the floor plus what any worker with our semantics must do per delivery in Faust: one
changelog-backed state write (as the worker writes state) and one output record, acknowledged before each commit, no
normalize and no logic: (m)/(a) bounds (b)/(a) while we keep Faust; (n) the floor plus only `normalize()`; (b) the
full worker (`attrib worker`: normalize, dedupe, state, enrich, DLQ, metrics); (c) two worker processes in one group.
Throughput = raw deliveries / time between the group's first and last offset commit movement (same measure for all
three). Also: worker RSS over the run, state memory for 1M users (dict of bytes as Faust's memory
store holds it vs rocksdict on disk), optional py-spy top frames and parts of (a), (m), (b) (--profile).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from attrib.settings import Settings
from attrib.topics import ensure_topics
from ops.supervise import settings_env
from tests.support import (
    cpu_s,
    given_or_throwaway,
    rss_mb,
)


def env_for(s: Settings) -> dict[str, str]:
    return settings_env(s, ("kafka", "topics", "streams", "sources"), log_level="WARNING")






def end_offsets(s: Settings) -> dict[int, int]:
    c = Consumer({"bootstrap.servers": s.kafka.bootstrap_servers, "group.id": "bench-probe"})
    md = c.list_topics(s.topics.raw, timeout=10).topics[s.topics.raw]
    out = {p: c.get_watermark_offsets(TopicPartition(s.topics.raw, p), timeout=10)[1] for p in md.partitions}
    c.close()
    return out


def measure(s: Settings, group: str, target: dict[int, int], procs: list[subprocess.Popen[bytes]],
            limit_s: float = 1800) -> dict[str, float]:
    """Poll the group's committed offsets until they reach ``target``; rate between first and last movement."""
    c = Consumer({"bootstrap.servers": s.kafka.bootstrap_servers, "group.id": group, "enable.auto.commit": False})
    tps = [TopicPartition(s.topics.raw, p) for p in target]
    total = sum(target.values())
    t_first: float | None = None
    n_first = 0
    rss: list[float] = []
    start = time.monotonic()
    while True:
        try:
            got = c.committed(tps, timeout=10)
        except KafkaException:  # coordinator moving / loading: ask again
            time.sleep(0.5)
            continue
        done = sum(min(max(tp.offset, 0), target[tp.partition]) for tp in got)
        now = time.monotonic()
        rss.append(sum(rss_mb(p.pid) for p in procs))
        if done > 0 and t_first is None:
            t_first, n_first = now, done
            cpu_first = sum(cpu_s(p.pid) for p in procs)
            box_first = machine_cpu()
        if done >= total:
            cpu_used = sum(cpu_s(p.pid) for p in procs) - cpu_first
            box = [b - a for a, b in zip(box_first, machine_cpu(), strict=True)]
            break
        if now - start > limit_s or any(p.poll() is not None for p in procs):
            raise SystemExit(f"{group}: stopped at {done}/{total}")
        time.sleep(0.25)
    c.close()
    assert t_first is not None  # done reached total > 0, so it moved once
    secs = max(now - t_first, 1e-6)
    n = total - n_first
    return {"events": n, "seconds": round(secs, 2), "rate": round(n / secs), "cpu_s": round(cpu_used, 1),
            "us_cpu_per_event": round(1e6 * cpu_used / n), "rate_per_cpu_s": round(n / max(cpu_used, 1e-6)),
            "rss_mb_start": round(rss[min(4, len(rss) - 1)]), "rss_mb_mid": round(rss[len(rss) // 2]),
            "rss_mb_end": round(rss[-1]),
            # cores in use over the phase: the workers', everything else's on the box (broker, other jobs), idle
            "cores_workers": round(cpu_used / secs, 2), "cores_others": round(box[0] / secs - cpu_used / secs, 2),
            "cores_idle": round(box[1] / secs, 2)}


def machine_cpu() -> tuple[float, float]:
    """(busy, idle) CPU seconds of the whole machine since boot, from /proc/stat (idle includes iowait)."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    hz = os.sysconf("SC_CLK_TCK")
    idle = ticks[3] + ticks[4]
    return (sum(ticks[:8]) - idle) / hz, idle / hz


PROFILES = Path(tempfile.gettempdir()) / f"attrib-worker-pyspy-{os.getpid()}"  # one file per profiled phase

# --count: bench/faust_counts.py's counters in the phase's process (argv[1] is the repo root in every phase app)
COUNT_HOOK = r'''
import os, sys
if os.environ.get("BENCH_FAUST_COUNTS"):
    sys.path.insert(0, sys.argv[1])
    from bench.faust_counts import install
    install(os.environ["BENCH_FAUST_COUNTS"])
'''

FLOOR_APP = COUNT_HOOK + r'''
import sys, faust
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from attrib import settings as sm
from schemas import avro
from streams.worker import use_event_loop
s = sm.load()
use_event_loop(s.streams.event_loop)  # the same event loop as the worker's
app = faust.App(s.streams.app_id, broker=f"kafka://{s.kafka.bootstrap_servers}", store="memory://",
                datadir=sys.argv[2], autodiscover=False, web_enabled=False, topic_partitions=s.topics.partitions,
                broker_max_poll_records=s.streams.max_poll_records, stream_buffer_maxsize=s.streams.buffer_maxsize,
                broker_commit_interval=s.streams.commit_interval_s, consumer_auto_offset_reset="earliest",
                stream_recovery_delay=0.0)
topic = app.topic(s.topics.raw, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
sources = {src.name: src for src in s.sources}
if sys.argv[3] == "normalize":  # the ceiling: floor + the normalizer, nothing else (no state, no produce)
    from schemas.normalize import normalize
else:
    normalize = None
@app.agent(topic, concurrency=1)
async def floor(stream):
    async for event in stream.events():
        v = event.message.value
        if v and v[:2] == avro.MAGIC:
            _, raw = avro.decode(v, expect="raw_delivery")
            if normalize is not None:
                try:
                    normalize(sources[raw["source"]], raw)
                except Exception:
                    pass
from faust.worker import Worker
Worker(app, loglevel="WARNING", quiet=True, override_logging=False, redirect_stdouts=False).execute_from_commandline()
'''

# (m): the worker's own app, table and outputs (streams/app.py, streams/outputs.py) with the floor's agent plus, per
# delivery, one state write through the users table (store + one batched changelog record) and one output record.
MECHANICS_APP = COUNT_HOOK + r'''
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from attrib import settings as sm
from attrib.topics import counts_topic
from schemas import avro
from schemas.counts import Tally
from streams import compat
from streams.app import new_app, raw_topic_and_users
from streams.outputs import Outputs
from streams.worker import use_event_loop
s = sm.load()
use_event_loop(s.streams.event_loop)
app = new_app(s, Path(sys.argv[2]), "memory://")
topic, users = raw_topic_and_users(app, s)
outputs = Outputs(app, users, s.streams.linger_ms / 1000, Tally(60_000), counts_topic(s), s.alerts.batch_within_s)
table, events = outputs.users, s.topics.events
guard = compat.SkipGuard()
# bench/floor.py's worker floor: records are request bodies as its ingress floor produced them (no Avro), keyed by a
# stand-in user key; the same state write and output record per delivery
RAW = sys.argv[3:] == ["raw"]
spin_s = float(sys.argv[3]) / 1e6 if sys.argv[3:] and not RAW else 0.0  # (s): CPU burnt per delivery
clock = time.thread_time
@app.agent(topic, name="mechanics", concurrency=1)
async def mechanics(stream):
    async for event in stream.events():
        if spin_s:
            until = clock() + spin_s
            while clock() < until:
                pass
        msg = event.message
        guard.check(msg.partition, msg.offset)
        outputs.partition = msg.partition
        v = msg.value
        user = None
        if RAW:
            user = msg.key.decode()
        elif v and v[:2] == avro.MAGIC:
            _, raw = avro.decode(v, expect="raw_delivery")
            user = raw["user_key"]
        if user is not None:
            table.get(user)
            table[user] = v  # one state write: the store and one changelog record
            outputs.send(events, user.encode(), v)  # one output record
        if outputs.due:
            await outputs.send_due()
from faust.worker import Worker
Worker(app, loglevel="WARNING", quiet=True, override_logging=False, redirect_stdouts=False).execute_from_commandline()
'''


WORKER_APP = COUNT_HOOK + r'''
import runpy
sys.argv = ["attrib"] + sys.argv[2:]
runpy.run_module("ops.cli", run_name="__main__", alter_sys=True)
'''


def run_phase(name: str, s: Settings, n_workers: int, target: dict[int, int], tmp: Path, floor: str = "",
              profile: Path | None = None, store: str = "memory://", spin_us: float = 0,
              count: bool = False) -> dict[str, float]:
    group = f"bench-{name}-{int(time.time())}"
    s = s.model_copy(update={"streams": s.streams.model_copy(update={"app_id": group})})
    env = env_for(s)
    counts = tmp / f"{group}-counts.json"
    if count:
        env["BENCH_FAUST_COUNTS"] = str(counts)
    procs = []
    for i in range(n_workers):
        data = tmp / f"{group}-{i}"
        data.mkdir(parents=True)
        log = (tmp / f"{group}-{i}.log").open("wb")
        if floor == "mechanics":
            cmd = [sys.executable, "-c", MECHANICS_APP, str(ROOT), str(data), str(spin_us)]
        elif floor:
            cmd = [sys.executable, "-c", FLOOR_APP, str(ROOT), str(data), floor]
        else:
            cmd = [sys.executable, "-c", WORKER_APP, str(ROOT), "worker", "--data-dir", str(data), "--store", store,
                   "--metrics-port", "0"]
        procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT))
    spy = None
    if profile is not None:
        time.sleep(3)
        spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(procs[0].pid),
                                "--format", "raw", "--output", str(profile), "--rate", "200", "--nonblocking"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        res = measure(s, group, target, procs)
    except SystemExit:
        for i, p in enumerate(procs):  # why a worker stopped: its own last words (the tmp dir goes at exit)
            if p.poll() is not None:
                tail = (tmp / f"{group}-{i}.log").read_text(errors="replace").splitlines()[-15:]
                print(f"  worker {i} exited {p.returncode}:\n    " + "\n    ".join(tail), flush=True)
        raise
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
    if count and counts.exists():
        n = sum(target.values())
        per = {(f"us_{k}" if k.startswith("cpu_s:") else k): round(v / n * (1e6 if k.startswith("cpu_s:") else 1), 4)
               for k, v in sorted(json.loads(counts.read_text()).items())}  # thread CPU: whole process life
        print(f"  ({name}) per delivery: {json.dumps(per)}", flush=True)
    if spin_us:
        res["us_cpu_per_event_minus_spin"] = res["us_cpu_per_event"] - spin_us
    print(f"  ({name}) {json.dumps(res)}", flush=True)
    return res


# Parts of a sample, for "where the time goes": the first rule whose keys appear anywhere in the stack (our stages,
# with everything they call), else the innermost frame's owner.
SUBTREES = [("normalize", ("schemas/normalize",)),
            ("output encode", ("Codec.encode", "avro_writer", "<avro writer")),
            ("raw decode", ("decode (schemas/avro.py", "Serde.decode", "<raw_delivery reader>",
                            "read (streams/codec.py")),
            ("state load/apply/dump", ("streams/state.py", "streams/codec.py")),
            ("alert counts", ("schemas/counts.py",)),
            ("metrics", ("streams/metrics.py", "prometheus_client")),
            ("produce: batches, pump, acks", ("streams/batcher.py", "streams/outputs.py", "aiokafka/producer",
                                              "aiokafka/record"))]  # (aiokafka/conn: the consumer's fetches too)
LEAF_OWNERS = [("Faust/mode consume + streams", ("faust/", "mode/", "aiokafka/")),
               ("our per-message code", ("streams/", "<string>"))]


def part_of(frames: list[str]) -> str:
    for name, keys in SUBTREES:
        if any(k in f for f in frames for k in keys):
            return name
    for f in reversed(frames):
        for name, keys in LEAF_OWNERS:
            if any(k in f for k in keys):
                return name
    return "event loop, asyncio, threads"


def top_frames(profile: Path, n: int = 12) -> None:
    """Self-time share per function and per part (``part_of``) from py-spy's collapsed stacks."""
    if not profile.exists():
        return
    own: Counter[str] = Counter()
    parts: Counter[str] = Counter()
    total = 0
    for line in profile.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        k = int(count)
        total += k
        own[frames[-1]] += k
        parts[part_of(frames)] += k
    print(f"  py-spy {profile.name}: by part")
    for name, k in parts.most_common():
        print(f"    {100 * k / total:5.1f}%  {name}")
    print("  top self-time frames:")
    for f, k in own.most_common(n):
        print(f"    {100 * k / total:5.1f}%  {f}")


def state_memory(users: int, tmp: Path) -> None:
    """Memory for ``users`` users' state: dict of bytes (Faust memory store) vs rocksdict (RocksDB)."""
    from rocksdict import Rdict

    from streams import codec
    from streams.state import Limits, Rules, apply_events, new_state

    def states() -> Iterator[tuple[bytes, bytes]]:
        lim = Limits()
        t = int(time.time() * 1000)
        for u in range(users):
            st = new_state(u % 12)
            key = f"appsflyer_id:{u:013d}-{u:07d}"
            ev: dict[str, Any] = {
                "event_id": f"af-{u}-0", "event_type": "install", "event_name": "install", "event_time": t,
                "received_at": t, "user_key": key, "media_source": "meta", "campaign": "c1", "is_organic": False,
                "properties": "{}"}
            apply_events(st, [ev, {**ev, "event_id": f"af-{u}-1", "event_type": "purchase"}], (u % 12, u), t, lim,
                         Rules(), 10)
            yield key.encode(), codec.dump_state(st)

    base = rss_mb(os.getpid())
    d = {}
    size = 0
    for k, v in states():
        d[k] = v
        size += len(v)
    mem = rss_mb(os.getpid()) - base
    print(f"  memory:// {users} users: +{mem:.0f} MB RSS ({size / users:.0f} B/user serialized)")
    del d
    path = tmp / "rocks"
    db = Rdict(str(path))
    base = rss_mb(os.getpid())
    for k, v in states():
        db[k] = v
    db.flush()
    db.close()
    disk = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6
    print(f"  rocksdb:// {users} users: +{rss_mb(os.getpid()) - base:.0f} MB RSS while writing, {disk:.0f} MB on disk")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--deliveries", type=int, default=200_000)
    ap.add_argument("--partitions", type=int, default=12)
    ap.add_argument("--bootstrap", help="use a running broker instead of starting a private one")
    ap.add_argument("--profile", action="store_true", help="py-spy (a), (m) and (b) (needs py-spy in the venv)")
    ap.add_argument("--state-users", type=int, default=1_000_000)
    ap.add_argument("--store", default="memory://", help="store of the full workers (b, c)")
    ap.add_argument("--set", action="append", default=[], help="streams setting override, e.g. linger_ms=50")
    ap.add_argument("--skip", default="", help="comma list of phases to skip: a,m,s,n,b,c,mem")
    ap.add_argument("--spin-us", type=float, default=150,
                    help="(s): (m) with this much CPU burnt per delivery (an agent as slow as the worker)")
    ap.add_argument("--count", action="store_true",
                    help="count Faust's fetches, full/empty stream queues, pauses per delivery (bench/faust_counts.py)")
    args = ap.parse_args()
    skip = set(args.skip.split(","))
    tmp = Path(tempfile.mkdtemp(prefix="bench-worker-"))
    from ops.traffic.synthetic import SOURCES, generate

    broker, bootstrap = given_or_throwaway(args.bootstrap, tmp / "stack")
    tag = f"{int(time.time())}"
    s = Settings(var_dir=tmp, kafka={"bootstrap_servers": bootstrap, "session_timeout_s": 10},
                 sources=[{"verify": ["none"], **src} for src in SOURCES],  # synthetic deliveries are unsigned
                 topics={"raw": f"bench-{tag}.raw", "events": f"bench-{tag}.events",
                         "dead_letters": f"bench-{tag}.dlq", "alerts_spike": f"bench-{tag}.spike",
                         "alerts_drop": f"bench-{tag}.drop", "partitions": args.partitions},
                 streams={"metrics_port": 0,
                          **{k: json.loads(v) for k, v in (kv.split("=", 1) for kv in args.set)}})
    try:
        ensure_topics(s)
        users = max(1, int(args.deliveries * 0.7 / 5))
        t0 = time.monotonic()
        traffic = generate(users=users, events_per_user=4, dup_rate=0.3, ooo_rate=0.1, seed=1)
        from schemas import avro

        p = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "linger.ms": 50,
                      "enable.idempotence": True})
        for r in traffic.raws:
            while True:
                try:
                    p.produce(s.topics.raw, key=r["user_key"].encode(), value=avro.encode("raw_delivery", r))
                    break
                except BufferError:
                    p.poll(0.1)
        p.flush(120)
        mmps = Counter(r["mmp"] for r in traffic.raws)
        print(f"fed {len(traffic.raws)} raw deliveries ({len(traffic.unique)} unique events, {traffic.duplicates} "
              f"duplicates, {traffic.out_of_order_users}/{users} users out of order, MMPs {dict(mmps)}) "
              f"to {args.partitions} partitions in {time.monotonic() - t0:.0f} s", flush=True)
        target = end_offsets(s)
        cores = os.cpu_count()
        print(f"machine: {cores} cores; broker {'external' if args.bootstrap else 'local, same cores'}", flush=True)
        res = {}
        if args.profile:
            PROFILES.mkdir(exist_ok=True)

        def prof(phase: str) -> Path | None:
            return PROFILES / f"{phase}.pyspy" if args.profile else None

        count = args.count
        if "a" not in skip:
            res["a"] = run_phase("floor", s, 1, target, tmp, floor="decode", profile=prof("a"), count=count)
        if "m" not in skip:
            res["m"] = run_phase("mechanics", s, 1, target, tmp, floor="mechanics", profile=prof("m"), count=count)
        if "s" not in skip:
            res["s"] = run_phase("mechanics-spin", s, 1, target, tmp, floor="mechanics", profile=prof("s"),
                                 spin_us=args.spin_us, count=count)
        if "n" not in skip:
            res["n"] = run_phase("floor-normalize", s, 1, target, tmp, floor="normalize")
        if "b" not in skip:
            res["b"] = run_phase("worker", s, 1, target, tmp, profile=prof("b"), store=args.store, count=count)
        if "c" not in skip:
            res["c"] = run_phase("two-workers", s, 2, target, tmp, store=args.store)
        if "a" in res and "b" in res:
            print(f"(b)/(a) = {res['b']['rate'] / res['a']['rate']:.2f} wall-clock, "
                  f"{res['b']['rate_per_cpu_s'] / res['a']['rate_per_cpu_s']:.2f} per CPU second  (target >= 0.6)")
        if "a" in res and "m" in res:
            print(f"(m)/(a) = {res['m']['rate'] / res['a']['rate']:.2f} wall-clock, "
                  f"{res['m']['rate_per_cpu_s'] / res['a']['rate_per_cpu_s']:.2f} per CPU second  (Faust mechanics: "
                  f"the ceiling of (b)/(a) with Faust)")
        if "a" in res and "n" in res:
            print(f"(n)/(a) = {res['n']['rate'] / res['a']['rate']:.2f} wall-clock, "
                  f"{res['n']['rate_per_cpu_s'] / res['a']['rate_per_cpu_s']:.2f} per CPU second  (the ceiling of "
                  f"(b)/(a): the floor plus only the normalizer)")
        if "b" in res and "c" in res:
            print(f"(c)/(b) = {res['c']['rate'] / res['b']['rate']:.2f}  (target >= 1.6 with two free cores)")
        if args.profile:
            for phase in ("a", "m", "s", "b"):
                top_frames(PROFILES / f"{phase}.pyspy")
            print(f"  (collapsed stacks kept in {PROFILES})")
        if "mem" not in skip:
            state_memory(args.state_users, tmp)
    finally:
        if broker is not None:
            broker.stop(log=lambda *_: None)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
