"""Kafka requests per delivery, by client and request type, counted by the broker (on demand, not in CI).

    .venv/bin/python bench/kafka_requests.py -- --find-capacity --start 600 --max-rate 600 --seconds 30 [--set K=V]

Runs ``bench/e2e.py`` with the arguments after ``--``; as soon as its broker answers, turns the broker's request log
on (``kafka.request.logger=DEBUG``, a dynamic broker-logger setting: nothing about the pipeline changes) and, once the
bench is done, counts the "Completed request" lines of ``broker.log`` by ``clientId`` and API over the last sending
period (the measured step: the last run of seconds with ≥ 20 of the ingress's Produce requests). Per delivery =
requests per second over that period / the rate the sender reached (the bench prints it). The request log costs the
broker CPU: compare CPU per delivery from runs without it.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
API = {0: "Produce", 1: "Fetch", 2: "ListOffsets", 3: "Metadata", 8: "OffsetCommit", 9: "OffsetFetch",
       10: "FindCoordinator", 11: "JoinGroup", 12: "Heartbeat", 13: "LeaveGroup", 14: "SyncGroup", 18: "ApiVersions",
       19: "CreateTopics", 22: "InitProducerId", 32: "DescribeConfigs", 60: "DescribeCluster"}
LINE = re.compile(r'^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d+\] DEBUG Completed request:.*?"requestApiKey":(\d+).*?'
                  r'"clientId":"([^"]*)"')
RATE = re.compile(r"sent +([\d.]+)/s\)")


def enable_request_log(started: float, jars: Path, out: dict[str, Path]) -> None:
    """Find the bench's broker (a var dir created after ``started``), wait until it listens, switch its request
    logger to DEBUG (retried until the broker takes it)."""
    deadline = time.time() + 180
    while time.time() < deadline:
        time.sleep(1)
        homes = [p for p in Path(tempfile.gettempdir()).glob("attrib-e2e-*/var/kafka")
                 if p.stat().st_mtime >= started and (p / "server.properties").is_file()]
        port = _listening(homes[0]) if homes else None
        if port is None:
            continue
        cmd = ["java", "-cp", f"{jars}/*", "kafka.admin.ConfigCommand", "--bootstrap-server", f"127.0.0.1:{port}",
               "--entity-type", "broker-loggers", "--entity-name", "1", "--alter", "--add-config",
               "kafka.request.logger=DEBUG"]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode == 0:
            print(f"[kafka_requests] request log on: {r.stdout.strip()[:200]}", file=sys.stderr)
            out["home"] = homes[0]
            return


def _listening(home: Path) -> int | None:
    m = re.search(r"PLAINTEXT://([^:]+):(\d+)", (home / "server.properties").read_text())
    if m is None:
        return None
    with socket.socket() as s:
        s.settimeout(1)
        return int(m.group(2)) if s.connect_ex((m.group(1), int(m.group(2)))) == 0 else None


def count(log: Path) -> tuple[dict[tuple[str, str], int], float]:
    """Requests by (client, API) over the last sending period, and its length in seconds."""
    per_second: dict[datetime, Counter[tuple[str, str]]] = {}
    for line in log.read_text(errors="replace").splitlines():
        m = LINE.match(line)
        if m:
            t = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")
            key = (m.group(3), API.get(int(m.group(2)), m.group(2)))
            per_second.setdefault(t, Counter())[key] += 1
    # (the ingress's arrivals heartbeat is one Produce every 30 s: a sending second has many)
    sending = sorted(t for t, c in per_second.items() if c[("attrib-ingest", "Produce")] >= 20)
    if not sending:
        return {}, 0.0
    end = start = sending[-1]
    for t in reversed(sending[:-1]):  # back to the first gap of > 3 s: the measured step
        if (start - t).total_seconds() > 3:
            break
        start = t
    total: Counter[tuple[str, str]] = Counter()
    for t, c in per_second.items():
        if start <= t <= end:
            total.update(c)
    return dict(total), (end - start).total_seconds() + 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bench_args", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    args = [x for x in a.bench_args if x != "--"]
    started = time.time() - 1
    found: dict[str, Path] = {}
    t = threading.Thread(target=enable_request_log, args=(started, ROOT / "var" / "kafka" / "lib", found),
                         daemon=True)
    t.start()
    p = subprocess.run([sys.executable, str(ROOT / "bench" / "e2e.py"), *args], capture_output=True, text=True)
    print(p.stdout, end="")
    print(p.stderr[-2000:], end="", file=sys.stderr)
    rates = RATE.findall(p.stdout)
    if "home" not in found or not rates:
        print("no broker or no rate found", file=sys.stderr)
        return 1
    rate = float(rates[-1])
    total, seconds = count(found["home"] / "broker.log")
    print(f"requests over the last sending period ({seconds:.0f} s at {rate:g} deliveries/s), per delivery:")
    for (client, api), n in sorted(total.items(), key=lambda kv: -kv[1]):
        if n / seconds >= 0.2:
            print(f"  {client:<22} {api:<16} {n / seconds:8.1f}/s  {n / seconds / rate:7.3f}")
    print(json.dumps({"rate": rate, "seconds": seconds,
                      "per_delivery": {f"{c} {api}": round(n / seconds / rate, 4) for (c, api), n in total.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
