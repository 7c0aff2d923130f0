"""End-to-end latency (on demand, not in CI): ingress receipt → row in ClickHouse, at a steady delivery rate.

    .venv/bin/python bench/e2e.py [--rate 1000] [--seconds 20]

Starts the whole local pipeline the way `make run` does (`attrib run --no-traffic`: private var dir, a broker on free
ports, sink, worker, alerts, ingress), sends signed deliveries from the demo sources at --rate/s with `attrib send`,
waits for the warehouse to settle and prints quantiles of ``loaded_at − received_at`` per event (``received_at`` is
stamped by the ingress when the request arrives, before its 2xx; ``loaded_at`` by ClickHouse when the insert runs).
Events held back for a missing install are excluded (their latency is the install's, by design).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from attrib import settings as settings_mod
from ops.supervise import attrib_argv
from tests.support import free_port


def _cpu_by_process(root: int) -> dict[str, float]:
    """CPU seconds of each process under ``root`` (Linux /proc), labelled by its command (attrib <cmd>, java, …)."""
    procs: dict[int, tuple[int, str, float]] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            argv = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        words = [a.decode(errors="replace") for a in argv if a]
        label = next((f"attrib {words[i + 1]}" for i, w in enumerate(words[:-1]) if w.endswith("attrib")
                      or w == "ops.cli"), Path(words[0]).name if words else "?")
        procs[int(d.name)] = (int(fields[1]), label, (int(fields[11]) + int(fields[12])) / tick)
    out: dict[str, float] = {}
    for pid, (_, label, cpu) in procs.items():
        p = pid
        while p in procs and p != root:
            p = procs[p][0]
        if p == root:
            out[label] = out.get(label, 0.0) + cpu
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=1000)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--set", action="append", default=[], metavar="ATTRIB_KEY=VALUE",
                    help="extra settings for the pipeline, e.g. ATTRIB_SINK__BATCH_SECONDS=0.25 (repeatable)")
    ap.add_argument("--no-warmup", action="store_true",
                    help="start the clock right away (by default a few deliveries go through the pipeline first)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="attrib-e2e-"))
    kafka, controller = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATTRIB_")} | {
        "ATTRIB_CONFIG": str(ROOT / "dev" / "demo.toml"), "ATTRIB_VAR_DIR": str(tmp / "var"),
        "ATTRIB_STACK__JARS_DIR": str(ROOT / "var" / "kafka" / "lib"),
        "ATTRIB_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka}", "ATTRIB_STACK__CONTROLLER_PORT": str(controller),
        "ATTRIB_INGEST__PORT": str(free_port()), "ATTRIB_SINK__QUERY_PORT": str(free_port()),
        "ATTRIB_STREAMS__METRICS_PORT": str(free_port()),
    } | dict(kv.split("=", 1) for kv in args.set)
    os.environ.update(env)
    s = settings_mod.load()
    run = subprocess.Popen(attrib_argv("run", "--no-traffic"), env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    try:
        assert run.stdout is not None
        for line in run.stdout:
            if "Ctrl-C stops everything" in line:
                break
        else:
            print("attrib run exited before the pipeline was up", file=sys.stderr)
            return 1
        from ops.sql import query_rows

        db = s.clickhouse.database

        def rows_in(table: str) -> int:
            return int(query_rows(s, f"SELECT count() AS n FROM {db}.{table}")[0]["n"])

        if not args.no_warmup:  # consumer-group joins and first fetches are start-up, not the steady state measured
            subprocess.run(attrib_argv("send", "--count", "5", "--rate", "50", "--concurrency", "4", "--duplicates",
                                       "0", "--out-of-order", "0.0", "--json", "--no-progress"),
                           env=env, capture_output=True, text=True)
            deadline = time.monotonic() + 60
            while rows_in("events") == 0 and time.monotonic() < deadline:
                time.sleep(0.5)
            time.sleep(2)
        warm_raw = rows_in("raw_deliveries")
        count = int(args.rate * args.seconds / len(s.sources))
        cpu0 = _cpu_by_process(run.pid)
        t0 = time.time()
        sent = subprocess.run(attrib_argv("send", "--count", str(count), "--rate", str(args.rate),
                                          "--concurrency", "64", "--duplicates", "0.05", "--out-of-order", "0.0",
                                          "--json", "--no-progress"),
                              env=env, capture_output=True, text=True)
        summary = json.loads(sent.stdout.strip().splitlines()[-1])
        want, deadline, n = summary["sent"] - summary["duplicates"], time.monotonic() + 120, -1
        while time.monotonic() < deadline:
            n = rows_in("raw_deliveries") - warm_raw
            if n >= summary["sent"]:
                break
            time.sleep(0.5)
        last, since = -1, time.monotonic()  # then until the worker's outputs stop arriving (its backlog drained)
        while time.monotonic() - since < 4 and time.monotonic() < deadline + 120:
            m = rows_in("events")
            last, since = (m, time.monotonic()) if m != last else (last, since)
            time.sleep(0.5)
        q = query_rows(s, f"""
            SELECT count() AS events,
                   quantile(0.5)(dateDiff('millisecond', received_at, loaded_at)) AS p50,
                   quantile(0.99)(dateDiff('millisecond', received_at, loaded_at)) AS p99,
                   max(dateDiff('millisecond', received_at, loaded_at)) AS max,
                   quantiles(0.5, 0.99)(dateDiff('millisecond', received_at, emitted_at)) AS worker,
                   quantiles(0.5, 0.99)(dateDiff('millisecond', emitted_at, loaded_at)) AS sink
            FROM {db}.events WHERE received_at >= fromUnixTimestamp64Milli({int(t0 * 1000)})
              AND version = 1 AND attribution_status != 'pending_timeout'""")[0]
        print(f"sent {summary['sent']:,} deliveries at {summary['rate_per_s']}/s (target {args.rate:g}/s), "
              f"ingress ack p50 {summary['latency_ms']['p50']} ms p99 {summary['latency_ms']['p99']} ms, "
              f"statuses {summary['statuses']}; {want:,} non-duplicate, raw archived {n:,}")
        if args.set:
            print("settings:", " ".join(args.set))
        print(f"ingress receipt → queryable in ClickHouse over {q['events']:,} events: "
              f"p50 {q['p50']:.0f} ms, p99 {q['p99']:.0f} ms, max {q['max']:.0f} ms; load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        print("  of which receipt → emitted by the worker p50 {:.0f} / p99 {:.0f} ms; emitted → loaded by the sink "
              "p50 {:.0f} / p99 {:.0f} ms".format(*q["worker"], *q["sink"]))
        cpu = {k: v - cpu0.get(k, 0.0) for k, v in _cpu_by_process(run.pid).items()}
        took = time.time() - t0
        print(f"  CPU over those {took:.0f}s, % of one core: " + ", ".join(
            f"{k} {100 * v / took:.0f}%" for k, v in sorted(cpu.items(), key=lambda kv: -kv[1]) if v > 0.05))
        return 0
    finally:
        run.send_signal(signal.SIGINT)
        try:
            run.wait(60)
        except subprocess.TimeoutExpired:
            run.kill()


if __name__ == "__main__":
    sys.exit(main())
