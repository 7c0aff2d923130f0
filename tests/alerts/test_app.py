"""The `attrib alerts` Faust app end to end on the session broker, with simulated event time and ticks."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from attrib.settings import Settings
from attrib.topics import counts_topic, ensure_topics
from schemas import avro
from tests.alerts import pipeline as pl
from tests.alerts.fake_slack import FakeSlack

START = 1_793_491_200_000  # 2026-11-01T00:00Z
RATES = {"fb": 20.0, "google": 10.0, "tiktok": 6.0}
SCENARIOS: dict[str, Callable[[str, int], float]] = {
    "steady": lambda s, b: 1.0,
    "spike": lambda s, b: 3.0 if s == "fb" and 150 <= b < 153 else 1.0,
    "drop": lambda s, b: 0.0 if s == "fb" and 150 <= b < 158 else 1.0,
    "outage": lambda s, b: 0.0 if 150 <= b < 160 else 1.0,
}


def vip(src: str, b: int, i: int) -> str:
    return "vip" if src == "google" and b in (10, 200) and i == 0 else "c1"


def run_day(s: Settings, tmp_path: Path, buckets: int = pl.DAY) -> list[dict]:
    """A day of traffic for every scenario app, counted as the worker counts it, then every raw partition's progress
    past the day's end: the alerts app judges every bucket; return the alerts."""
    rng = np.random.default_rng(11)
    boot = s.kafka.bootstrap_servers
    ensure_topics(s)
    counts, parts = counts_topic(s), s.topics.partitions
    # the events the vip campaign pings about: the notifier reads them from the events topic
    steady = list(pl.events("steady", RATES, buckets, START, SCENARIOS["steady"], rng, vip))
    pl.produce_events(boot, s.topics.events, (r for r in steady if r["campaign"] == "vip"))
    worker = pl.Counting(parts)
    worker.produce(boot, counts, iter(steady))
    for app, shape in SCENARIOS.items():
        if app != "steady":
            worker.produce(boot, counts, pl.events(app, RATES, buckets, START, shape, rng))
    # the stopping feed carries purchases too: the stop shows in both event types, and must page once
    worker.produce(boot, counts, pl.events("drop", {"fb": 10.0}, buckets, START, SCENARIOS["drop"], rng,
                                           event_type="purchase"))
    proc = pl.start("alerts", s, tmp_path / "alerts.log")
    try:
        pl.produce_progress(boot, counts, parts, START + buckets * pl.B + s.alerts.detect.lateness_s * 1000)
        pl.wait_committed(boot, s.alerts.app_id, counts, proc=proc)
    finally:
        pl.stop(proc)
    return [avro.decode(v, expect="alert")[1] for t in (s.topics.alerts_spike, s.topics.alerts_drop)
            for v in pl.read_all(boot, t)]


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    f = FakeSlack().start()
    yield f
    f.stop()


@pytest.fixture
def alert_settings(make_settings: Callable[..., Settings], tmp_path: Path, slack: FakeSlack) -> Settings:
    tag = uuid.uuid4().hex[:8]
    return make_settings(
        topics={"partitions": 3}, slack_webhook_url=slack.url + "/alerts",
        alerts={"tick_interval_s": 0, "app_id": f"alerts-{tag}", "ready_port": 0,
                "slack": {"group_id": f"notify-{tag}", "min_interval_s": 0.05, "ping_batch_s": 5,
                          "webhooks": {"critical": slack.url + "/pages", "info": slack.url + "/info"},
                          "qualified": {"campaigns": ["vip"]}}})


def test_day_of_scenarios_through_the_alerts_app_and_slack(alert_settings: Settings, tmp_path: Path,
                                                            slack: FakeSlack) -> None:
    s = alert_settings
    alerts = run_day(s, tmp_path)
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
        # the incident starts with its run of abnormal buckets: at the onset, or one bucket before it when the
        # bucket before already leaned that way
        assert start_ms - pl.B <= int(fire["bucket_start"].timestamp() * 1000)
        assert int(fire["bucket_end"].timestamp() * 1000) <= start_ms + 2 * pl.B  # within 2 buckets
        assert got[0]["alert_id"] == got[1]["alert_id"]
    # the purchase incident of the stopped feed (it fires a bucket later here) joined the install alert: no page of
    # its own above, no resolve of its own
    assert json.loads(by_app["drop"][0]["detail"])["event_types"][0] == "install"
    assert json.loads(by_app["drop"][0]["detail"])["feeds"] == [["af", "appsflyer"]]
    out = by_app["outage"]
    assert [(a["state"], a["scope"], a["direction"], a["severity"]) for a in out] == [
        ("firing", "platform", "drop", "critical"), ("resolved", "platform", "drop", "critical")]

    # the notifier delivers all of it: 4 warnings, 2 critical (routed to their own webhook), 1 batched info ping;
    # Slack first rate-limits, then fails: both retried, nothing lost
    slack.script = [(429, {"Retry-After": "1"}, "rate_limited"), (503, {}, "down")]
    proc = pl.start("notify", s, tmp_path / "notify.log")
    try:
        slack.wait_for(7)
        for t in (s.topics.alerts_spike, s.topics.alerts_drop):
            pl.wait_committed(s.kafka.bootstrap_servers, s.alerts.slack.group_id, t, proc=proc)
        pl.wait_committed(s.kafka.bootstrap_servers, s.alerts.slack.group_id, s.topics.events, proc=proc)
    finally:
        pl.stop(proc)
    got = slack.accepted()
    assert [r.status for r in slack.requests[:3]] == [429, 503, 200]
    assert slack.requests[1].at - slack.requests[0].at >= 1.0 and slack.requests[2].body == slack.requests[0].body
    assert sorted(r.path for r in got) == ["/alerts"] * 4 + ["/info"] + ["/pages"] * 2, [
        (r.path, r.body.get("text")) for r in got]
    pages = [r.body["text"] for r in got if r.path == "/pages"]
    assert pages[0].startswith("[CRITICAL] install DROP −100% · app=outage · all sources")
    assert pages[1].startswith("[RESOLVED] install DROP") and "shortfall" in pages[1]
    # the stopped feed: one message for both event types, naming the app and the MMP, linking to what the ingress
    # refused from that source (they stopped vs we refuse them)
    drop = [r.body for r in got if r.path == "/alerts" and "DROP" in r.body["text"]]
    assert [d["text"].split(" DROP")[0] for d in drop] == ["[WARNING] install", "[RESOLVED] install"], drop
    head = drop[0]["blocks"][0]["text"]["text"]
    assert "drop · fb via appsflyer" in head, head
    ops = f"http://127.0.0.1:{s.ingest.port}/ops/rejections?source=af"
    assert any(ops in f["text"] for f in drop[0]["blocks"][1]["fields"]), drop[0]["blocks"][1]
    info = next(r.body for r in got if r.path == "/info")
    assert info["text"] == "[INFO] 2 qualified installs" and info["blocks"][1]["text"]["text"].count("`vip`") == 2
