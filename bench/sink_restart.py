"""Restart-to-resume of the sink (on demand, not in CI), the one sink-crash bench, at two levels:

    .venv/bin/python bench/sink_restart.py [--kills 3] [--rate 400] [--bootstrap host:port] [--modes static,…]
    .venv/bin/python bench/sink_restart.py --pipeline [--kills 1] [--set ATTRIB_…=…]

The sink alone (default): SIGKILL `attrib sink` while events flow, start it again at once, and time until its group
commits past the offsets it had committed before the kill.

Three modes, each with its own group and database: ``static`` (the default now: group.instance.id from attrib.kafka,
session 30 s), ``dynamic-30`` (static membership off, session 30 s) and ``before`` (static membership off, librdkafka's
default 45 s session, as every consumer had before the factory). ``fresh start`` is the floor: the same process
starting in a new group (migrations, engine open, first batch), no dead member in the way.

``--pipeline``: the whole pipeline under `attrib run`, one broker, 50 signed installs/s, the sink SIGKILLed (and
restarted by `attrib run`) every time it has resumed; prints kill → answering and kill → loading again, and lost /
duplicated acknowledged events in `events FINAL` (what `bench/faults.py sink-kill` runs).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from confluent_kafka import KafkaException, Producer, TopicPartition

from attrib import kafka
from attrib.settings import Settings
from attrib.topics import ensure_topics
from bench.sink import _events
from tests.support import free_port, given_or_throwaway

MODES = {"static": {}, "dynamic-30": {"ATTRIB_KAFKA__GROUP_INSTANCE_IDS": '{"sink": ""}'},
         "before": {"ATTRIB_KAFKA__GROUP_INSTANCE_IDS": '{"sink": ""}', "ATTRIB_KAFKA__SESSION_TIMEOUT_S": "45"}}


def committed(s: Settings, probe) -> int:
    t = s.topics.events
    parts = probe.list_topics(t, timeout=10).topics[t].partitions
    while True:
        try:
            return sum(max(tp.offset, 0) for tp in probe.committed([TopicPartition(t, p) for p in parts], timeout=10))
        except KafkaException:  # e.g. NOT_COORDINATOR while the group's coordinator moves: ask again
            time.sleep(0.1)


def until_past(s: Settings, probe, mark: int, limit_s: float = 180) -> float:
    t0 = time.monotonic()
    while committed(s, probe) <= mark:
        if time.monotonic() - t0 > limit_s:
            raise SystemExit(f"no progress past {mark} within {limit_s:.0f} s")
        time.sleep(0.1)
    return time.monotonic() - t0


def pipeline_kills(kills: int = 1, settings: dict[str, str] | None = None) -> dict[str, Any]:
    """The sink SIGKILLed ``kills`` times under `attrib run` (tests/ops/pipeline.py's scenario): the summary."""
    from tests.ops.pipeline import sink_kill_run, summary

    extra = settings or {}
    tmp = Path(tempfile.mkdtemp(prefix="attrib-faults-"))
    traffic, counts, facts = sink_kill_run(tmp, kills=kills, rate=50.0, **extra)
    return {"fault": "sink-kill", "settings": extra, **summary(traffic, counts, facts)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, help="SIGKILLs (default 3 for the sink alone, 1 with --pipeline)")
    ap.add_argument("--rate", type=int, default=400, help="events/s produced throughout")
    ap.add_argument("--bootstrap")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--pipeline", action="store_true", help="the whole pipeline under `attrib run` instead")
    ap.add_argument("--set", action="append", default=[], metavar="ATTRIB_KEY=VALUE",
                    help="--pipeline: extra settings for every process of the pipeline (repeatable)")
    a = ap.parse_args()
    if a.pipeline:
        print(json.dumps(pipeline_kills(a.kills or 1, dict(kv.split("=", 1) for kv in a.set)), indent=1))
        return
    a.kills = a.kills or 3
    tmp = Path(tempfile.mkdtemp(prefix="bench-sink-restart-"))
    broker, bootstrap = given_or_throwaway(a.bootstrap, tmp / "stack")
    stop = threading.Event()
    try:
        tag = uuid.uuid4().hex[:8]
        topics = {"raw": f"r-{tag}.raw", "events": f"r-{tag}.events", "dead_letters": f"r-{tag}.dlq",
                  "alerts_spike": f"r-{tag}.spike", "alerts_drop": f"r-{tag}.drop"}
        base = Settings(var_dir=tmp / "var", kafka={"bootstrap_servers": bootstrap}, topics=topics)
        ensure_topics(base)

        def produce() -> None:
            p = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "linger.ms": 20})
            for key, value in _events(10**9):
                if stop.is_set():
                    break
                p.produce(base.topics.events, key=key, value=value)
                p.poll(0)
                time.sleep(1 / a.rate)
            p.flush(10)

        threading.Thread(target=produce, daemon=True).start()
        for mode in a.modes.split(","):
            group = f"restart-{mode}-{tag}"
            env = {**os.environ, "ATTRIB_VAR_DIR": str(tmp / "var"), "ATTRIB_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
                   **{f"ATTRIB_TOPICS__{k.upper()}": v for k, v in topics.items()},
                   "ATTRIB_SINK__GROUP_ID": group, "ATTRIB_SINK__ARCHIVE_RAW": "false",
                   "ATTRIB_CLICKHOUSE__PATH": str(tmp / f"ch-{mode}"), "ATTRIB_SINK__QUERY_PORT": str(free_port()),
                   "ATTRIB_CLICKHOUSE__DATABASE": f"restart_{mode.replace('-', '_')}", **MODES[mode]}
            s = base.model_copy(update={"sink": base.sink.model_copy(update={"group_id": group})})
            probe = kafka.consumer(s, "admin", group, {"logger": logging.getLogger("bench.probe"), "log_level": 0})
            log = (tmp / f"sink-{mode}.log").open("ab")

            def start() -> subprocess.Popen[bytes]:
                return subprocess.Popen([sys.executable, "-m", "ops.cli", "sink"], env=env, stdout=log,  # noqa: B023
                                        stderr=subprocess.STDOUT)

            t0 = time.monotonic()
            proc = start()
            until_past(s, probe, 0)
            fresh = time.monotonic() - t0
            times = []
            for _ in range(a.kills):
                time.sleep(3)  # loading steadily
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                mark = committed(s, probe)
                proc = start()
                times.append(until_past(s, probe, mark))
            proc.terminate()
            proc.wait(30)
            probe.close()
            print(f"{mode:>10}: fresh start {fresh:5.1f} s; restart→resume "
                  f"{', '.join(f'{t:.1f}' for t in times)} s (median {statistics.median(times):.1f} s)", flush=True)
    finally:
        stop.set()
        if broker:
            broker.stop(log=lambda *_: None)


if __name__ == "__main__":
    main()
