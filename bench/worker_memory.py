"""Worker memory over a long run (run on demand, not in CI):
`python bench/worker_memory.py [--seconds 300] [--rate 1000] [--users 20000] [--grow-s 60] [--backlog 0] [--probe]`.

Feeds one `attrib worker` a steady rate of raw deliveries (generic MMP bodies, 30 % retries): new users (an install
each) during the first ``--grow-s`` seconds, then only further events of those users, with a short dedupe window
(``dedupe_retention_s``, default here 120 s) so per-user state stops growing too. Prints the worker's RSS over time
with the users in state, the consumer lag and the worker's CPU: once state stops growing, RSS must stay flat.
``--backlog N`` first feeds N deliveries before the worker starts (catch-up at full speed, as bench/worker.py's
phases do); ``--probe`` prints what the worker holds over time (table users and bytes, output batches, fetch
and stream buffers).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

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

# The worker plus a thread that writes, every few seconds, the sizes of what it holds: users and state bytes in
# the table, open/queued/in-flight output batches, aiokafka's fetched-but-unread partitions, Faust's stream queues.
PROBE_APP = r'''
import gc, sys, threading, time
from pathlib import Path
sys.path.insert(0, sys.argv.pop(1))
out, every = sys.argv.pop(1), float(sys.argv.pop(1))

import ctypes
class _MI(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                                                "uordblks", "fordblks", "keepcost")]
try:
    _libc = ctypes.CDLL("libc.so.6")
    _libc.mallinfo2.restype = _MI
except (OSError, AttributeError):
    _libc = None

def malloc_mb():
    if _libc is None:
        return "?"
    mi = _libc.mallinfo2()
    return f"{(mi.uordblks + mi.hblkhd) / 1e6:.0f}MB in use/{(mi.arena + mi.hblkhd) / 1e6:.0f}MB held"

def rss():
    for l in Path("/proc/self/status").read_text().splitlines():
        if l.startswith("VmRSS"): return int(l.split()[1]) / 1024

def probe():
    found = {}
    while True:
        time.sleep(every)
        try:
            if "batcher" not in found:
                for o in gc.get_objects():
                    n = type(o).__name__
                    if n == "Batcher": found["batcher"] = o
                    elif n == "Processor" and hasattr(o, "table"): found["proc"] = o
                    elif n == "Fetcher" and type(o).__module__.startswith("aiokafka"): found["fetcher"] = o
                    elif n in ("FlowControlQueue", "ThrowableQueue"): found.setdefault("queues", []).append(o)
            b = found.get("batcher"); p = found.get("proc"); f = found.get("fetcher")
            qb = sum(x[2].size() for x in list(b.queue)) if b else -1
            ob = sum(x[0].size() for x in list(b.open.values())) if b else -1
            users = len(p.table.store.data) if p else -1
            sbytes = sum(len(v) for v in list(p.table.store.data.values())) if p else -1
            fr = len(f._records) if f else -1
            qs = sum(q.qsize() for q in found.get("queues", []))
            line = (f"{time.strftime('%H:%M:%S')} rss={rss():.0f}MB users={users} state_bytes={sbytes/1e6:.1f}MB "
                    f"batcher open={len(b.open)}/{ob/1e6:.1f}MB queued={len(b.queue)}/{qb/1e6:.1f}MB "
                    f"inflight={len(b.inflight)} fetcher_records={fr} stream_queues={qs} "
                    f"py_blocks={sys.getallocatedblocks()} malloc={malloc_mb()}")
        except Exception as e:
            line = f"probe error {e!r}"
        with open(out, "a") as fh:
            fh.write(line + "\n")

threading.Thread(target=probe, daemon=True).start()
from ops.cli import main
sys.exit(main(["worker"] + sys.argv[1:]))
'''






class Feed:
    """Deliveries for a fixed population: installs while it grows, then events of existing users; retries."""

    def __init__(self, users: int, seed: int = 3) -> None:
        from ops.traffic.synthetic import NETWORKS

        self.rnd = random.Random(seed)
        self.max_users, self.networks = users, NETWORKS
        self.users = 0
        self.seq: list[int] = []
        self.recent: list[tuple[bytes, bytes]] = []

    def next(self, growing: bool) -> tuple[bytes, bytes]:
        from ops.traffic.synthetic import _body
        from schemas import avro
        from schemas.user_key import user_key

        rnd = self.rnd
        if self.recent and rnd.random() < 0.3:
            return rnd.choice(self.recent)  # a retry of a recent delivery
        now = int(time.time() * 1000)
        if growing and self.users < self.max_users and (self.users == 0 or rnd.random() < 0.5):
            uid, name = self.users, "install"
            self.users += 1
            self.seq.append(0)
        else:
            uid = rnd.randrange(max(1, self.users))
            if not self.seq:
                self.users, self.seq = 1, [0]
            self.seq[uid] += 1
            name = rnd.choice(["purchase", "purchase", "signup", "level_up"])
        net = self.networks[uid % len(self.networks)]
        rev = f"{rnd.randint(1, 9999) / 100:.2f}" if name == "purchase" else None
        body = json.dumps(_body("generic", uid, self.seq[uid], name, now, net, rev)).encode()
        key = user_key("generic", body, "", "application/json", {})
        rec = {"delivery_id": f"{rnd.getrandbits(64):016x}", "source": "gen", "mmp": "generic", "app_id": None,
               "method": "POST", "path": "/webhooks/gen", "query_string": "",
               "headers": {"content-type": "application/json"}, "body": body, "remote_addr": "127.0.0.1",
               "received_at": now, "user_key": key}
        out = (key.encode(), avro.encode("raw_delivery", rec))
        self.recent.append(out)
        if len(self.recent) > 2000:
            del self.recent[:1000]
        return out


def lag(c: Consumer, s: Settings) -> int | None:
    tps = [TopicPartition(s.topics.raw, p) for p in range(s.topics.partitions)]
    try:
        got = c.committed(tps, timeout=10)
        ends = [c.get_watermark_offsets(tp, timeout=10)[1] for tp in tps]
    except KafkaException:
        return None
    return sum(e - max(tp.offset, 0) for tp, e in zip(got, ends, strict=True))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=300, help="how long to feed")
    ap.add_argument("--rate", type=float, default=1000, help="raw deliveries per second")
    ap.add_argument("--users", type=int, default=20_000, help="user population (all created while growing)")
    ap.add_argument("--grow-s", type=float, default=60, help="new users only during the first N seconds")
    ap.add_argument("--backlog", type=int, default=0, help="deliveries fed before the worker starts")
    ap.add_argument("--every", type=float, default=15, help="print a line every N seconds")
    ap.add_argument("--partitions", type=int, default=12)
    ap.add_argument("--store", default="memory://")
    ap.add_argument("--bootstrap", help="use a running broker instead of starting a private one")
    ap.add_argument("--set", action="append", default=[], help="streams setting override, e.g. linger_ms=50")
    ap.add_argument("--log-level", default="WARNING", help="the worker's log level")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (worker log, data)")
    ap.add_argument("--probe", action="store_true", help="print what the worker holds (table, batches, buffers)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-worker-memory-"))
    broker = proc = None
    try:
        broker, bootstrap = given_or_throwaway(args.bootstrap, tmp / "stack")
        tag = f"mem-{int(time.time())}"
        streams = {"app_id": tag, "metrics_port": 0, "dedupe_retention_s": 120,
                   "reemit_grace_s": 60, **{k: json.loads(v) for k, v in (kv.split("=", 1) for kv in args.set)}}
        s = Settings(var_dir=tmp, kafka={"bootstrap_servers": bootstrap, "session_timeout_s": 10},
                     sources=[{"name": "gen", "mmp": "generic", "verify": ["none"]}],
                     topics={"raw": f"{tag}.raw", "events": f"{tag}.events", "dead_letters": f"{tag}.dlq",
                             "alerts_spike": f"{tag}.spike", "alerts_drop": f"{tag}.drop",
                             "partitions": args.partitions},
                     streams=streams)
        ensure_topics(s)
        feed = Feed(args.users)
        p = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "linger.ms": 20})

        def send(n: int, growing: bool) -> None:
            for _ in range(n):
                k, v = feed.next(growing)
                while True:
                    try:
                        p.produce(s.topics.raw, key=k, value=v)
                        break
                    except BufferError:
                        p.poll(0.05)
            p.poll(0)

        if args.backlog:
            send(args.backlog, True)
            p.flush(120)
            print(f"backlog: {args.backlog} deliveries, {feed.users} users", flush=True)
        env = settings_env(s, ("kafka", "topics", "streams", "sources"), log_level=args.log_level)
        wargs = ["--data-dir", str(tmp / "data"), "--store", args.store, "--metrics-port", "0"]
        probe_file = tmp / "probe.txt"
        cmd = ([sys.executable, "-c", PROBE_APP, str(ROOT), str(probe_file), str(args.every), *wargs] if args.probe else
               [sys.executable, "-m", "ops.cli", "worker", *wargs])
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=(tmp / "worker.log").open("wb"),
                                stderr=subprocess.STDOUT)
        stop = threading.Event()
        fed = {"n": args.backlog}

        def feeder() -> None:
            t0 = time.monotonic()
            while not stop.is_set():
                el = time.monotonic() - t0
                if el >= args.seconds:
                    break
                due = args.backlog + int(el * args.rate)
                if due > fed["n"]:
                    send(due - fed["n"], el < args.grow_s)
                    fed["n"] = due
                time.sleep(0.02)
            p.flush(60)

        probe = Consumer({"bootstrap.servers": bootstrap, "group.id": tag, "enable.auto.commit": False})
        th = threading.Thread(target=feeder, daemon=True)
        t0 = time.monotonic()
        th.start()
        print(f"rate {args.rate:.0f}/s for {args.seconds:.0f} s, {args.users} users created in the first "
              f"{args.grow_s:.0f} s, dedupe window {streams['dedupe_retention_s']} s, store {args.store}", flush=True)
        print(f"{'t_s':>6} {'fed':>9} {'users':>7} {'lag':>8} {'rss_mb':>7} {'cpu_s':>7}", flush=True)
        rows: list[tuple[float, float]] = []
        next_print = 0.0
        while True:
            el = time.monotonic() - t0
            if proc.poll() is not None:
                raise SystemExit(f"worker exited ({proc.returncode}); log in {tmp / 'worker.log'}")
            rss = rss_mb(proc.pid)
            rows.append((el, rss))
            if el >= next_print:
                lg = lag(probe, s)
                print(f"{el:6.0f} {fed['n']:9d} {feed.users:7d} {lg if lg is not None else '?':>8} {rss:7.0f} "
                      f"{cpu_s(proc.pid):7.1f}", flush=True)
                next_print += args.every
            if el > args.seconds + 30 or (not th.is_alive() and lag(probe, s) == 0):
                break
            time.sleep(1)
        stop.set()
        probe.close()
        grown = [r for t, r in rows if t >= args.grow_s + 30]  # state stopped growing (plus catch-up time)
        if grown:
            half = grown[len(grown) // 2:]
            print(f"RSS after growth: first {grown[0]:.0f} MB, max {max(grown):.0f} MB, last {grown[-1]:.0f} MB; "
                  f"second half {min(half):.0f}–{max(half):.0f} MB; overall max {max(r for _, r in rows):.0f} MB",
                  flush=True)
        if args.probe and probe_file.exists():
            print("what the worker holds:\n" + probe_file.read_text(), flush=True)
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        if broker is not None:
            broker.stop(log=lambda *_: None)
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
