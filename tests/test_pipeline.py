"""The whole pipeline, as `attrib run` starts it: signed deliveries at the ingress → Kafka → Faust worker → sink →
embedded ClickHouse, each stage its own process on the real broker. Nothing is mocked.

Invariants checked on what arrived (not on hard-coded numbers):
- every delivery the ingress acknowledged is archived in `raw_deliveries`;
- `events FINAL` holds exactly the distinct event ids that normalizing those deliveries gives (duplicates removed,
  nothing lost — buffered events come out once the short pending timeout passes);
- attributed events carry their user's install attribution as first touch;
- every query of the analyst pack runs on that data and the installs it reports agree with `events`.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from attrib import settings as settings_mod
from ops.sql import query_rows
from ops.supervise import Service, attrib_argv
from schemas.normalize import normalize
from sinks import pack
from tests.support import free_port

ROOT = Path(__file__).resolve().parents[1]


def _env(tmp: Path, bootstrap: str) -> dict[str, str]:
    tag = uuid.uuid4().hex[:8]
    return {
        "ATTRIB_CONFIG": str(ROOT / "dev" / "demo.toml"),
        "ATTRIB_VAR_DIR": str(tmp / "var"),
        "ATTRIB_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        "ATTRIB_CLICKHOUSE__PATH": str(tmp / "ch"),  # the sink process owns its own engine directory
        "ATTRIB_TOPICS__RAW": f"p-{tag}.raw", "ATTRIB_TOPICS__EVENTS": f"p-{tag}.events",
        "ATTRIB_TOPICS__DEAD_LETTERS": f"p-{tag}.dlq", "ATTRIB_TOPICS__ALERTS_SPIKE": f"p-{tag}.spike",
        "ATTRIB_TOPICS__ALERTS_DROP": f"p-{tag}.drop", "ATTRIB_TOPICS__PARTITIONS": "4",
        "ATTRIB_INGEST__PORT": str(free_port()),
        "ATTRIB_SINK__QUERY_PORT": str(free_port()), "ATTRIB_SINK__GROUP_ID": f"p-{tag}-sink",
        "ATTRIB_SINK__BATCH_SECONDS": "0.3", "ATTRIB_SINK__ROLLUP_REFRESH_S": "0.3",
        "ATTRIB_STREAMS__APP_ID": f"p-{tag}-worker", "ATTRIB_STREAMS__METRICS_PORT": str(free_port()),
        "ATTRIB_STREAMS__PENDING_TIMEOUT_S": "8",  # users whose install never comes: emitted as pending_timeout
        "ATTRIB_STREAMS__TICK_INTERVAL_S": "0.5",
    }


def _settle(s: settings_mod.Settings, want: int, timeout_s: float = 150) -> int:
    deadline, n = time.monotonic() + timeout_s, -1
    while time.monotonic() < deadline:
        try:
            n = int(query_rows(s, f"SELECT count() AS n FROM {s.clickhouse.database}.events FINAL")[0]["n"])
        except Exception:  # noqa: BLE001 - sink still starting
            n = -1
        if n >= want:
            return n
        time.sleep(0.5)
    return n


@contextmanager
def running_pipeline(tmp: Path, env: dict[str, str], monkeypatch) -> Iterator[settings_mod.Settings]:
    """Topics created, then sink, worker and ingress as their own processes (as `attrib run` starts them); stopped
    with SIGTERM afterwards, and each must exit cleanly."""
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    s = settings_mod.load()
    topics = subprocess.run(attrib_argv("migrate", "--topics"), env={**os.environ, **env,
                            "ATTRIB_CLICKHOUSE__PATH": str(tmp / "ch-topics-only")}, capture_output=True)
    assert topics.returncode == 0, topics.stderr.decode()[-2000:]
    services = [
        Service("sink", attrib_argv("sink"), f"http://127.0.0.1:{s.sink.query_port}/health", env),
        Service("worker", attrib_argv("worker"), f"http://127.0.0.1:{s.streams.metrics_port}/metrics", env),
        Service("ingest", attrib_argv("ingest"), f"http://127.0.0.1:{s.ingest.port}/readyz", env),
    ]
    try:
        for svc in services:
            svc.start(tmp / "logs")
            svc.wait_ready(120)
        yield s
    finally:
        for svc in reversed(services):
            svc.stop()
    for svc in services:
        assert svc.proc is not None and svc.proc.returncode in (0, -15), (svc.name, svc.proc.returncode)


def test_signed_deliveries_become_enriched_rows_and_the_analyst_pack_answers(kafka_bootstrap, tmp_path, monkeypatch):
    env = _env(tmp_path, kafka_bootstrap)
    with running_pipeline(tmp_path, env, monkeypatch) as s:
        db = s.clickhouse.database
        sent = subprocess.run(attrib_argv("send", "--count", "120", "--duplicates", "0.15", "--out-of-order", "0.2",
                                          "--concurrency", "8", "--seed", "11", "--json", "--no-progress"),
                              env={**os.environ, **env}, capture_output=True, timeout=300)
        assert sent.returncode == 0, sent.stderr.decode()[-2000:]
        summary = json.loads(sent.stdout.decode().strip().splitlines()[-1])
        accepted = sum(n for code, n in summary["statuses"].items() if str(code).startswith("2"))
        assert accepted == summary["sent"] and accepted == 120 * len(s.sources)

        # every acknowledged delivery is archived, and normalizing them says which events must exist
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            raws = query_rows(s, f"SELECT * FROM {db}.raw_deliveries FINAL")
            if len(raws) >= accepted:
                break
            time.sleep(0.5)
        assert len(raws) == accepted
        expected: dict[str, dict] = {}
        dead = 0
        for r in raws:
            raw = {**r, "body": r["body"].encode(), "received_at": 0}
            try:
                for e in normalize(s.source(r["source"]), raw):
                    expected[e["event_id"]] = e
            except Exception:  # noqa: BLE001 - the worker dead-letters these; counted below
                dead += 1
        assert len(expected) < accepted, "duplicates were sent, so fewer distinct events than deliveries"

        got = _settle(s, len(expected))
        rows = query_rows(s, f"SELECT event_id, event_type, user_key, media_source, attribution_status, version, "
                             f"first_touch_media_source, first_touch_event_id FROM {db}.events FINAL")
        assert got == len(rows)
        ids = [r["event_id"] for r in rows]
        assert len(ids) == len(set(ids))
        assert set(ids) == set(expected), (len(set(expected) - set(ids)), len(set(ids) - set(expected)))
        assert dead == int(query_rows(s, f"SELECT count() AS n FROM {db}.dead_letters FINAL")[0]["n"])

        by_id = {r["event_id"]: r for r in rows}
        attributed = [r for r in rows if r["attribution_status"] == "attributed"
                      and r["event_type"] not in ("install", "reinstall") and r["first_touch_event_id"]]
        assert attributed, "some events must have been enriched with their user's install"
        for r in attributed:  # first touch = that user's install/reinstall, with its attribution
            first = by_id[r["first_touch_event_id"]]
            assert first["user_key"] == r["user_key"] and first["event_type"] in ("install", "reinstall"), r
            assert r["first_touch_media_source"] == first["media_source"], r
        statuses = {r["attribution_status"] for r in rows}
        assert "pending_timeout" in statuses or "attributed" in statuses

        # the analyst pack runs on pipeline data; installs by campaign/day agree with the fact table
        # (the sink's refresher rebuilds rollups in the background: on a loaded machine give it time to catch up)
        installs = sum(1 for r in rows if r["event_type"] == "install")
        deadline = time.monotonic() + 90
        while True:
            results = {name: query_rows(s, sql) for name, sql in pack.load().items()}
            by_day = results["installs_revenue_by_campaign_day"]
            if sum(int(x["installs"]) for x in by_day) == installs or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert all(isinstance(v, list) for v in results.values())
        assert by_day and sum(int(x["installs"]) for x in by_day) == installs
