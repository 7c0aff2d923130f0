"""End-to-end latency (on demand, not in CI): ingress receipt → row in ClickHouse, at a steady delivery rate.

    .venv/bin/python bench/e2e.py [--rate 1000] [--seconds 20]
    .venv/bin/python bench/e2e.py --find-capacity [--start 100] [--step 1.4] [--seconds 15] [--p99-ms 2000]
    .venv/bin/python bench/e2e.py --find-capacity --start 600 --max-rate 600 --seconds 30   # one rate, to compare

A first, unmeasured ``--warm-seconds`` (20) at the first rate lets the broker's JIT settle before anything counts.

Starts the whole local pipeline the way `make run` does (`attrib run --no-traffic`: private var dir, a broker on free
ports, sink, worker, alerts, ingress), sends signed deliveries from the demo sources at --rate/s with bench/sender.py
(`attrib send`'s traffic, generated before the clock starts and written at its due times as ready-made requests
over --concurrency keep-alive connections: 0.05–0.09 ms of CPU per delivery on the pipeline's cores where `attrib
send` takes 0.41–0.48 ms; ``--sender attrib`` for the old one), waits for the warehouse to settle and prints
quantiles of ``loaded_at − received_at`` per event (``received_at`` is stamped by the ingress when the request
arrives, before its 2xx; ``loaded_at`` by ClickHouse when the insert runs). Events held back for a missing install
are excluded (their latency is the install's, by design).

``--find-capacity`` keeps one pipeline up and steps the offered rate up (×--step per step, from --start) until
receipt → queryable p99 exceeds --p99-ms or the sender falls short of the rate asked (twice in a row at one rate,
unless --no-retry); it prints each step and the
highest rate that held, with the CPU each process spent per delivery (ms) at each step — on a shared machine the CPU
per delivery is the figure to compare between two runs, the capacity depends on what else runs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from attrib import settings as settings_mod
from ops.supervise import attrib_argv
from tests.support import free_port

SENDER = ROOT / "bench" / "sender.py"


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


def _args(doc: str | None = __doc__) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=1000)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--set", action="append", default=[], metavar="ATTRIB_KEY=VALUE",
                    help="extra settings for the pipeline, e.g. ATTRIB_SINK__BATCH_SECONDS=0.25 (repeatable)")
    ap.add_argument("--no-warmup", action="store_true",
                    help="start the clock right away (by default a few deliveries go through the pipeline first)")
    ap.add_argument("--warm-seconds", type=float, default=20,
                    help="then this long at the first rate, not measured: a fresh broker JIT-compiles its hot paths "
                         "in its first minute under load (C2 threads took ~5 of its ~10 CPU-s in a first 25-s step "
                         "at 400/s), which a first step would otherwise count as CPU per delivery; 0 = none")
    ap.add_argument("--find-capacity", action="store_true", help="step the rate up until p99 exceeds --p99-ms")
    ap.add_argument("--start", type=float, default=100, help="first rate of --find-capacity")
    ap.add_argument("--step", type=float, default=1.4, help="rate factor between --find-capacity steps")
    ap.add_argument("--max-rate", type=float, default=5000)
    ap.add_argument("--p99-ms", type=float, default=2000)
    ap.add_argument("--no-retry", action="store_true", help="stop at the first step over --p99-ms (default: retry it "
                    "once)")
    ap.add_argument("--concurrency", type=int, default=256,
                    help="the sender's keep-alive connections, one request in flight each (default 256: at 2,500/s "
                         "that allows ~100 ms per answer before the sender, not the pipeline, falls short; "
                         "`attrib send` ran at 64 until session 25)")
    ap.add_argument("--sender", choices=["lean", "attrib"], default="lean",
                    help="lean: bench/sender.py (default); attrib: `attrib send` (signs and sends on the fly, ~7x "
                         "the CPU per delivery), to compare")
    return ap.parse_args()


def _known(key: str) -> bool:
    """Whether this tree's settings have ``key`` (ATTRIB_SECTION__FIELD): an older tree (e.g. 60a387d, the baseline
    this bench is run against for a same-session comparison) lacks some and refuses unknown keys."""
    section, _, name = key.removeprefix("ATTRIB_").lower().partition("__")
    f = settings_mod.Settings.model_fields.get(section)
    return f is not None and (not name or name in getattr(f.annotation, "model_fields", {}))


def pipeline_env(extra: list[str]) -> dict[str, str]:
    """The environment of a private pipeline: demo sources, its own var dir, a broker and services on free ports."""
    tmp = Path(tempfile.mkdtemp(prefix="attrib-e2e-"))
    kafka, controller = free_port(), free_port()
    return {k: v for k, v in os.environ.items() if not k.startswith("ATTRIB_")} | {
        "ATTRIB_CONFIG": str(ROOT / "dev" / "demo.toml"), "ATTRIB_VAR_DIR": str(tmp / "var"),
        "ATTRIB_STACK__JARS_DIR": str(ROOT / "var" / "kafka" / "lib"),
        "ATTRIB_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka}", "ATTRIB_STACK__CONTROLLER_PORT": str(controller),
        "ATTRIB_INGEST__PORT": str(free_port()), "ATTRIB_SINK__QUERY_PORT": str(free_port()),
        "ATTRIB_STREAMS__METRICS_PORT": str(free_port()),
    } | {k: v for k, v in {
        "ATTRIB_ALERTS__READY_PORT": str(free_port()),
        # a broker JIT-compiled as in production: a C1-only one costs ~1.7x the CPU per record under load (an older
        # tree without the setting always ran it so)
        "ATTRIB_STACK__JIT": "full",
    }.items() if _known(k)} | dict(kv.split("=", 1) for kv in extra)


class Pipeline:
    """`attrib run --no-traffic` on private ports; steps send at a rate and measure what reached ClickHouse."""

    sender = "lean"  # or "attrib": see --sender
    concurrency = 256  # see --concurrency

    def __init__(self, extra: list[str]) -> None:
        self.env = pipeline_env(extra)
        os.environ.update(self.env)
        self.s = settings_mod.load()
        self.db = self.s.clickhouse.database
        self.start()

    def start(self) -> None:
        self.run = subprocess.Popen(attrib_argv("run", "--no-traffic"), env=self.env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)

    def up(self) -> bool:
        assert self.run.stdout is not None
        return any("Ctrl-C stops everything" in line for line in self.run.stdout)

    def stop(self) -> None:
        self.run.send_signal(signal.SIGINT)
        try:
            self.run.wait(60)
        except subprocess.TimeoutExpired:
            self.run.kill()

    def rows_in(self, table: str) -> int:
        from ops.sql import query_rows
        return int(query_rows(self.s, f"SELECT count() AS n FROM {self.db}.{table}")[0]["n"])

    def loaded(self) -> int:
        """Events in the warehouse."""
        return self.rows_in("events")

    def warmup(self) -> None:
        """Consumer-group joins and first fetches are start-up, not the steady state measured."""
        subprocess.run(attrib_argv("send", "--count", "5", "--rate", "50", "--concurrency", "4", "--duplicates",
                                   "0", "--out-of-order", "0.0", "--json", "--no-progress"),
                       env=self.env, capture_output=True, text=True)
        deadline = time.monotonic() + 60
        while self.loaded() == 0 and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(2)

    def spooled(self) -> float:
        """Deliveries the ingress answered from its local spool so far (Kafka's ack later than spool_after_s)."""
        url = f"http://127.0.0.1:{self.env['ATTRIB_INGEST__PORT']}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                text = r.read().decode()
        except OSError:
            return float("nan")
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("attrib_ingest_spooled_total{"))

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of each of the pipeline's processes, by label."""
        return _cpu_by_process(self.run.pid)

    def step(self, rate: float, seconds: float) -> dict[str, Any]:
        """Send at ``rate`` for ``seconds``, wait until the warehouse settles; latency quantiles and CPU (the
        pipeline's per process, and the sender's own: it shares the cores). With the lean sender the clock starts
        once its deliveries are generated."""
        before, spooled0 = self.mark(), self.spooled()
        count = max(1, int(rate * seconds / len(self.s.sources)))
        args = ["--count", str(count), "--rate", str(rate), "--concurrency", str(self.concurrency),
                "--duplicates", "0.05", "--out-of-order", "0.0", "--json"]
        if self.sender == "attrib":
            cpu0, sender0, t0 = self.cpu(), _children_cpu_s(), time.time()
            out = subprocess.run(attrib_argv("send", *args, "--no-progress"), env=self.env, capture_output=True,
                                 text=True).stdout
            sender_cpu = _children_cpu_s() - sender0
        else:
            proc = subprocess.Popen([sys.executable, str(SENDER), *args, "--go-on-stdin"], env=self.env,
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            assert proc.stdin is not None and proc.stdout is not None
            ready = proc.stdout.readline()  # generated: the step starts now
            cpu0, t0 = self.cpu(), time.time()
            out = proc.communicate("go\n")[0]
            if not ready or not out.strip():
                raise RuntimeError(f"bench/sender.py exited {proc.returncode} (its error is above)")
        summary = json.loads(out.strip().splitlines()[-1])
        if self.sender != "attrib":
            sender_cpu = summary["sender"]["send_cpu_s"]
        n = self.settle(summary["sent"], before)
        took = time.time() - t0
        cpu = {k: v - cpu0.get(k, 0.0) for k, v in self.cpu().items()}
        return {"summary": summary, "archived": n, "q": self.latency(t0), "cpu": cpu, "sender_cpu": sender_cpu,
                "took": took, "load": os.getloadavg()[0], "spooled": self.spooled() - spooled0}

    def mark(self) -> int:
        return self.rows_in("raw_deliveries")

    def settle(self, sent: int, before: int) -> int:
        """Wait until every delivery sent is archived and the worker's outputs stop arriving (its backlog drained);
        the deliveries archived."""
        deadline, n = time.monotonic() + 120, -1
        while time.monotonic() < deadline:
            n = self.rows_in("raw_deliveries") - before
            if n >= sent:
                break
            time.sleep(0.5)
        last, since = -1, time.monotonic()
        while time.monotonic() - since < 4 and time.monotonic() < deadline + 120:
            m = self.loaded()
            last, since = (m, time.monotonic()) if m != last else (last, since)
            time.sleep(0.5)
        return n

    def latency(self, t0: float) -> dict[str, Any]:
        """Receipt → queryable quantiles (ms) of the events received since ``t0``."""
        from ops.sql import query_rows
        return query_rows(self.s, f"""
            SELECT count() AS events,
                   quantile(0.5)(dateDiff('millisecond', received_at, loaded_at)) AS p50,
                   quantile(0.99)(dateDiff('millisecond', received_at, loaded_at)) AS p99,
                   max(dateDiff('millisecond', received_at, loaded_at)) AS max,
                   quantiles(0.5, 0.99)(dateDiff('millisecond', received_at, emitted_at)) AS worker,
                   quantiles(0.5, 0.99)(dateDiff('millisecond', emitted_at, loaded_at)) AS sink
            FROM {self.db}.events WHERE received_at >= fromUnixTimestamp64Milli({int(t0 * 1000)})
              AND version = 1 AND attribution_status != 'pending_timeout'""")[0]


def _children_cpu_s() -> float:
    """CPU seconds of this process's finished children (the sender, once ``subprocess.run`` returned)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _report(r: dict[str, Any], rate: float, extra: list[str]) -> None:
    summary, q, cpu, took = r["summary"], r["q"], r["cpu"], r["took"]
    want = summary["sent"] - summary["duplicates"]
    print(f"sent {summary['sent']:,} deliveries at {summary['rate_per_s']}/s (target {rate:g}/s), "
          f"ingress ack p50 {summary['latency_ms']['p50']} ms p99 {summary['latency_ms']['p99']} ms, "
          f"statuses {summary['statuses']}; {want:,} non-duplicate, raw archived {r['archived']:,}; "
          f"answered from the ingress spool {r['spooled']:,.0f}")
    if extra:
        print("settings:", " ".join(extra))
    print(f"ingress receipt → queryable in ClickHouse over {q['events']:,} events: "
          f"p50 {q['p50']:.0f} ms, p99 {q['p99']:.0f} ms, max {q['max']:.0f} ms; load average "
          f"{r['load']:.1f} on {os.cpu_count()} cores")
    print("  of which receipt → emitted by the worker p50 {:.0f} / p99 {:.0f} ms; emitted → loaded by the sink "
          "p50 {:.0f} / p99 {:.0f} ms".format(*q["worker"], *q["sink"]))
    print(f"  CPU over those {took:.0f}s, % of one core: " + ", ".join(
        f"{k} {100 * v / took:.0f}%" for k, v in sorted(cpu.items(), key=lambda kv: -kv[1]) if v > 0.05))
    print(f"  CPU ms per delivery: {_per_delivery(r)}")


def _per_delivery(r: dict[str, Any]) -> str:
    n = max(1, r["summary"]["sent"])
    return ", ".join(f"{k} {1000 * v / n:.2f}" for k, v in sorted(r["cpu"].items(), key=lambda kv: -kv[1])
                     if v > 0.05) + (f"; total {1000 * sum(r['cpu'].values()) / n:.2f}"
                                     f" (+ the sender, {_sender_name(r)}, {1000 * r['sender_cpu'] / n:.3f})")


def _sender_name(r: dict[str, Any]) -> str:
    own = r["summary"].get("sender")
    if own is None:
        return "attrib send"
    late = own["late_ms"]
    return (f"bench/sender.py, {1000 * own['generate_cpu_s'] / max(1, r['summary']['sent']):.2f} generating "
            f"beforehand, {100 * late['share']:.0f}% sent late by p99 {late['p99']:.0f} ms")


def _find_capacity(p: Pipeline, a: argparse.Namespace) -> None:
    best: tuple[float, dict[str, Any]] | None = None
    rate = a.start
    print(f"stepping the offered rate from {a.start:g}/s ×{a.step:g}, {a.seconds:g} s per step, "
          f"until receipt → queryable p99 > {a.p99_ms:g} ms")
    retried = False
    while rate <= a.max_rate:
        r = p.step(rate, a.seconds)
        q, got = r["q"], float(r["summary"]["rate_per_s"])
        ok = q["events"] > 0 and q["p99"] <= a.p99_ms and got >= 0.9 * rate
        print(f"rate {rate:7.0f}/s (sent {got:7.1f}/s): p50 {q['p50']:6.0f} ms  p99 {q['p99']:6.0f} ms  "
              f"worker p99 {q['worker'][1]:6.0f} ms  ack p50 {r['summary']['latency_ms']['p50']:5.0f} ms  "
              f"spooled {r['spooled']:5.0f}  load {r['load']:4.1f}  "
              f"{'ok' if ok else 'OVER'}")
        print(f"    CPU ms per delivery: {_per_delivery(r)}")
        if not ok:
            if retried or a.no_retry:
                break
            retried = True  # one miss may be a neighbour's burst on a shared machine: the same rate once more
            continue
        best, retried = (got, r), False
        rate *= a.step
    if best is None:
        print(f"capacity: below {a.start:g}/s (p99 > {a.p99_ms:g} ms at the first step)")
        return
    print(f"capacity: {best[0]:.0f} deliveries/s with receipt → queryable p99 ≤ {a.p99_ms:g} ms "
          f"(p99 {best[1]['q']['p99']:.0f} ms); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"  CPU ms per delivery at that rate: {_per_delivery(best[1])}")


def main(pipeline: type[Pipeline] = Pipeline, doc: str | None = __doc__) -> int:
    a = _args(doc)
    pipeline.sender, pipeline.concurrency = a.sender, a.concurrency
    p = pipeline(a.set)
    try:
        if not p.up():
            print(f"{pipeline.__name__}: exited before the pipeline was up", file=sys.stderr)
            return 1
        if not a.no_warmup:
            p.warmup()
            if a.warm_seconds > 0:
                p.step(a.start if a.find_capacity else a.rate, a.warm_seconds)
        if a.find_capacity:
            _find_capacity(p, a)
        else:
            _report(p.step(a.rate, a.seconds), a.rate, a.set)
        return 0
    finally:
        p.stop()


if __name__ == "__main__":
    sys.exit(main())
