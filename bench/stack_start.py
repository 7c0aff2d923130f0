"""How long the local stack's Kafka takes to come up (on demand, not in CI): one node and a 3-node cluster, cold
(fresh var dir, jars present) and warm (formatted storage, stopped), each start timed from the call to the first
metadata answer listing every broker. Phases from the start's own log lines: format (all nodes), then spawn → up.

    .venv/bin/python bench/stack_start.py [--runs 3] [--brokers 1 3]

The machine's 1-minute load average is printed with every run: on a shared machine the figures move with it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from attrib.settings import KafkaSettings, Settings, StackSettings
from ops.stack import Cluster, fetch_jars
from tests.support import free_port


def _settings(var: Path, n: int) -> Settings:
    ports = ",".join(f"127.0.0.1:{free_port()}" for _ in range(n))
    return Settings(var_dir=var, kafka=KafkaSettings.model_validate({"bootstrap_servers": ports}),
                    stack=StackSettings.model_validate({"controller_port": free_port(),
                                                        "controller_ports": [free_port() for _ in range(n)]}))


def _timed_start(c: Cluster) -> dict[str, float]:
    t0 = time.monotonic()
    marks: dict[str, float] = {}

    def log(msg: str) -> None:
        if msg.startswith("formatted"):
            marks["format_s"] = round(time.monotonic() - t0, 2)

    c.start(log=log)
    marks["up_s"] = round(time.monotonic() - t0, 2)
    return marks


def run(n: int, runs: int) -> dict[str, list[dict[str, float]]]:
    out: dict[str, list[dict[str, float]]] = {"cold": [], "warm": []}
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="attrib-stack-bench-") as tmp:
            s = _settings(Path(tmp) / "var", n)
            fetch_jars(s)
            c = Cluster.from_settings(s, n)
            for kind in ("cold", "warm"):
                load = os.getloadavg()[0]
                try:
                    marks = _timed_start(c)
                finally:
                    c.stop(log=lambda *_: None)
                out[kind].append({**marks, "load1": round(load, 2)})
                print(f"brokers={n} {kind}: {json.dumps(out[kind][-1])}", flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--brokers", type=int, nargs="+", default=[1, 3])
    args = ap.parse_args()
    summary = {}
    for n in args.brokers:
        res = run(n, args.runs)
        for kind, rows in res.items():
            ups = [r["up_s"] for r in rows]
            summary[f"{n}-{kind}"] = {"median_s": statistics.median(ups), "max_s": max(ups),
                                      "load1": [r["load1"] for r in rows]}
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
