"""`attrib notify` on the session broker: while Slack is down nothing is committed, so a restarted notifier still
delivers every alert (Slack down = late, not lost)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from attrib.settings import Settings
from attrib.topics import ensure_topics
from schemas import avro
from tests.alerts import pipeline as pl
from tests.alerts.fake_slack import FakeSlack


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    f = FakeSlack().start()
    yield f
    f.stop()


def alert(aid: str, direction: str) -> dict:
    return {"alert_id": aid, "state": "firing", "direction": direction, "severity": "warning", "scope": "source",
            "app_id": "com.foo", "media_source": "fb", "event_type": "install", "observed": 0.0, "expected": 50.0,
            "bucket_start": 1_793_541_900_000, "bucket_end": 1_793_542_500_000, "created_at": 1_793_543_100_000,
            "p_value": 1e-9, "detail": json.dumps({"buckets": 2, "method": "daily"})}


def test_alerts_survive_a_slack_outage_across_a_notifier_restart(make_settings: Callable[..., Settings],
                                                                  tmp_path: Path, slack: FakeSlack) -> None:
    s = make_settings(topics={"partitions": 1}, slack_webhook_url=slack.url + "/w",
                      alerts={"slack": {"group_id": f"notify-{uuid.uuid4().hex[:8]}", "min_interval_s": 0}})
    ensure_topics(s)
    boot = s.kafka.bootstrap_servers
    pl.produce(boot, s.topics.alerts_drop, [(b"a1", avro.encode("alert", alert("a1", "drop")))])
    pl.produce(boot, s.topics.alerts_spike, [(b"a2", avro.encode("alert", alert("a2", "spike")))])
    slack.script = [(503, {}, "down")] * 1000
    proc = pl.start("notify", s, tmp_path / "notify-1.log")
    try:
        while len(slack.requests) < 2:  # it is trying (and failing)
            assert proc.poll() is None
            pl.time.sleep(0.1)
    finally:
        pl.stop(proc)
    slack.script.clear()
    proc = pl.start("notify", s, tmp_path / "notify-2.log")
    try:
        got = slack.wait_for(2)
        for t in (s.topics.alerts_spike, s.topics.alerts_drop):
            pl.wait_committed(boot, s.alerts.slack.group_id, t, proc=proc)
    finally:
        pl.stop(proc)
    assert sorted(r.body["blocks"][3]["elements"][0]["text"].split("`")[1] for r in got) == ["a1", "a2"]
    assert all(r.status == 503 for r in slack.requests[: len(slack.requests) - 2])
