"""`attrib sink` as its own process (owning its own chdb directory), queried live through `attrib sql` and the
report helper; SIGTERM stops it cleanly."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer

from attrib.errors import ConfigurationError
from attrib.settings import Settings
from ops import report
from ops.sql import SqlError, query_rows, run_sql
from schemas import avro
from sinks.command import main
from tests.sinks.fixtures import DAY0, produce, traffic
from tests.sinks.helpers import wait_for
from tests.support import free_port

ROOT = Path(__file__).resolve().parents[2]
ATTRIB = [sys.executable, "-m", "ops.cli"]


def _raw(i: int) -> dict:
    return {"delivery_id": f"d{i:05d}", "source": "af-prod", "mmp": "appsflyer", "app_id": None, "method": "POST",
            "path": "/hooks/af-prod", "query_string": "", "headers": {}, "body": b"{}", "remote_addr": "10.1.2.3",
            "received_at": DAY0.replace(year=2100), "user_key": f"u{i}"}  # far future: inside the archive TTL


def _produce_raw(bootstrap: str, topic: str, n: int) -> list[tuple[int, int]]:
    """n raw deliveries; returns where each landed (partition, offset), as the worker's raw refs would."""
    where: list[tuple[int, int]] = []
    p = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})
    for i in range(n):
        p.produce(topic, key=f"u{i}".encode(), value=avro.encode("raw_delivery", _raw(i)),
                  on_delivery=lambda err, m: where.append((m.partition() or 0, m.offset() or 0)))
    assert p.flush(30) == 0
    return where


def test_sink_process_serves_live_sql_and_the_report(kafka_bootstrap, tmp_path):
    tag = uuid.uuid4().hex[:8]
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATTRIB_")} | {
        "ATTRIB_VAR_DIR": str(tmp_path / "var"),
        "ATTRIB_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "ATTRIB_CLICKHOUSE__PATH": str(tmp_path / "ch"),  # its own directory: chdb allows one process per path
        "ATTRIB_TOPICS__RAW": f"c-{tag}.raw", "ATTRIB_TOPICS__EVENTS": f"c-{tag}.events",
        "ATTRIB_TOPICS__DEAD_LETTERS": f"c-{tag}.dlq", "ATTRIB_TOPICS__ALERTS_SPIKE": f"c-{tag}.spike",
        "ATTRIB_TOPICS__ALERTS_DROP": f"c-{tag}.drop", "ATTRIB_TOPICS__PARTITIONS": "3",
        "ATTRIB_SINK__GROUP_ID": f"c-{tag}", "ATTRIB_SINK__QUERY_PORT": str(port),
        "ATTRIB_SINK__ROLLUP_REFRESH_S": "0.2", "ATTRIB_SINK__BATCH_SECONDS": "0.3",
    }
    s = Settings(var_dir=tmp_path / "var", kafka={"bootstrap_servers": kafka_bootstrap},
                 clickhouse={"path": tmp_path / "ch"}, sink={"query_port": port},
                 topics={"raw": f"c-{tag}.raw", "events": f"c-{tag}.events", "dead_letters": f"c-{tag}.dlq",
                         "alerts_spike": f"c-{tag}.spike", "alerts_drop": f"c-{tag}.drop", "partitions": 3})
    subprocess.run([*ATTRIB, "migrate", "--topics"], env=env, cwd=ROOT, check=True, capture_output=True)
    proc = subprocess.Popen([*ATTRIB, "sink"], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        tr = traffic(users=60, seed=5)
        firsts = [r for r in tr.final.values()]
        resends = 9  # raw deliveries that produced no event of their own (the worker dropped them as re-sends)
        spots = _produce_raw(kafka_bootstrap, s.topics.raw, len(firsts) + resends)
        refs = {e["event_id"]: spot for e, spot in zip(firsts, spots, strict=False)}
        for r in tr.records:
            part, off = refs[r["event_id"]]
            r["raw"] = {"topic": s.topics.raw, "partition": part, "offset": off}
        produce(kafka_bootstrap, s.topics.events, tr.records)

        def loaded() -> bool:
            try:
                got = query_rows(s, "SELECT (SELECT count() FROM events FINAL) AS e, "
                                    "(SELECT sum(events) FROM daily_rollups) AS r, "
                                    "(SELECT count() FROM raw_deliveries) AS d")[0]
            except SqlError:
                return False
            return got == {"e": len(tr.final), "r": len(tr.final), "d": len(spots)}

        wait_for(loaded, "the sink process to load everything")
        csv = subprocess.run([*ATTRIB, "sql", "SELECT event_type, count() AS n FROM events FINAL GROUP BY event_type "
                              "ORDER BY event_type", "--format", "csv"], env=env, cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.splitlines()
        want: dict[str, int] = {}
        for e in tr.final.values():
            want[e["event_type"]] = want.get(e["event_type"], 0) + 1
        assert csv[0] == '"event_type","n"'
        assert dict((k.strip('"'), int(v)) for k, v in (line.split(",") for line in csv[1:])) == want
        js = run_sql(s, "SELECT count() AS n FROM events FINAL WHERE event_type = 'purchase'", "json")
        assert json.loads(js) == {"n": want["purchase"]}
        assert b"purchase" in run_sql(s, "SELECT DISTINCT event_type FROM events", "table")
        denied = subprocess.run([*ATTRIB, "sql", "DROP TABLE events"], env=env, cwd=ROOT, capture_output=True,
                                text=True)
        assert denied.returncode == 1 and "readonly" in denied.stderr.lower()

        pack = subprocess.run([*ATTRIB, "sql", "--format", "json"], input=(ROOT / "docs/queries.sql").read_text(),
                              env=env, cwd=ROOT, capture_output=True, text=True)
        assert pack.returncode == 0, pack.stderr[-2000:]
        first = json.loads(pack.stdout.splitlines()[0])  # the pack's first query, one JSON object per row
        assert set(first) == {"day", "media_source", "campaign", "installs", "reinstalls", "purchases",
                              "revenue_by_currency", "partner_name", "revenue_reporting", "reporting_currency",
                              "purchases_unconverted"}

        text = report.report(s)
        pending = sum(1 for e in tr.final.values() if e["attribution_status"].startswith("pending"))
        assert f"duplicate deliveries removed {resends} " in text
        assert f"pending attribution {pending} " in text and f"events {len(tr.final)} " in text
        assert "Meta" in text and "Facebook Ads" not in text  # the canonical partner, not the MMP's spelling
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert "SQL, /health and /metrics" in out


def test_embedded_sink_refuses_to_serve_sql_beyond_loopback(tmp_path):
    """The query port serves the warehouse's SQL without a login in embedded mode: only server mode may bind 0.0.0.0
    (for Prometheus in docker-compose)."""
    s = Settings(var_dir=tmp_path, sink={"query_host": "0.0.0.0"})
    with pytest.raises(ConfigurationError, match=r"sink\.query_host"):
        main(argparse.Namespace(no_migrate=True, query_port=None), s)
