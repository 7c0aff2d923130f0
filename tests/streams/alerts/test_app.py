"""The `attrib alerts` Faust app end to end on the session broker, with simulated event time and ticks."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from attrib.settings import Settings
from attrib.topics import ensure_topics
from schemas import avro
from streams.alerts.app import counts_topic_name
from tests.streams.alerts import pipeline as pl

START = 1_793_491_200_000  # 2026-11-01T00:00Z
RATES = {"fb": 20.0, "google": 10.0, "tiktok": 6.0}
SCENARIOS: dict[str, Callable[[str, int], float]] = {
    "steady": lambda s, b: 1.0,
    "spike": lambda s, b: 3.0 if s == "fb" and 150 <= b < 153 else 1.0,
    "drop": lambda s, b: 0.0 if s == "fb" and 150 <= b < 158 else 1.0,
    "outage": lambda s, b: 0.0 if 150 <= b < 160 else 1.0,
}


def run_day(s: Settings, tmp_path: Path, buckets: int = pl.DAY) -> list[dict]:
    """Produce a day of traffic for every scenario app, run the alerts app over it, return the alerts."""
    rng = np.random.default_rng(11)
    boot = s.kafka.bootstrap_servers
    ensure_topics(s)
    n = 0
    for app, shape in SCENARIOS.items():
        n += pl.produce_events(boot, s.topics.events, pl.events(app, RATES, buckets, START, shape, rng))
    proc = pl.start("alerts", s, tmp_path / "alerts.log")
    try:
        pl.wait_committed(boot, s.alerts.app_id, s.topics.events, proc=proc)  # every count is in the counts topic
        lateness = s.alerts.lateness_s * 1000
        ticks = [(b"c", json.dumps({"tick": START + (b + 1) * pl.B + lateness}).encode()) for b in range(buckets)]
        pl.produce(boot, counts_topic_name(s), ticks)
        pl.wait_committed(boot, s.alerts.app_id, counts_topic_name(s), proc=proc)
    finally:
        pl.stop(proc)
    return [avro.decode(v, expect="alert")[1] for t in (s.topics.alerts_spike, s.topics.alerts_drop)
            for v in pl.read_all(boot, t)]


@pytest.fixture
def alert_settings(make_settings: Callable[..., Settings], tmp_path: Path) -> Settings:
    tag = tmp_path.name[-20:].replace("_", "-")
    return make_settings(topics={"partitions": 3}, alerts={"tick_interval_s": 0, "app_id": f"alerts-{tag}"})


def test_day_of_scenarios_through_the_alerts_app(alert_settings: Settings, tmp_path: Path) -> None:
    alerts = run_day(alert_settings, tmp_path)
    by_app: dict[str, list[dict]] = {}
    for a in sorted(alerts, key=lambda a: (a["created_at"], a["state"] == "resolved")):
        by_app.setdefault(a["app_id"], []).append(a)
    assert "steady" not in by_app
    for app, direction in (("spike", "spike"), ("drop", "drop")):
        got = by_app[app]
        assert [(a["state"], a["direction"], a["scope"], a["media_source"]) for a in got] == [
            ("firing", direction, "source", "fb"), ("resolved", direction, "source", "fb")]
        fire = got[0]
        start_ms = START + 150 * pl.B
        assert start_ms <= int(fire["bucket_start"].timestamp() * 1000)
        assert int(fire["bucket_end"].timestamp() * 1000) <= start_ms + 2 * pl.B  # within 2 buckets
        assert got[0]["alert_id"] == got[1]["alert_id"]
    out = by_app["outage"]
    assert [(a["state"], a["scope"], a["direction"], a["severity"]) for a in out] == [
        ("firing", "platform", "drop", "critical"), ("resolved", "platform", "drop", "critical")]
