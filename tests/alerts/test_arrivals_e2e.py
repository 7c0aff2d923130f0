"""A source that stops, judged from arrival, end to end on a real broker: `attrib ingest` (real server, heartbeats),
`attrib alerts` (the arrivals agent), `attrib notify` and the fake Slack. Default settings (budget 1 false page per
source-week, a day of history needed) except the heartbeat: every 5 s instead of 30 s. This test proves the wiring
(real heartbeats → arrivals agent → notify → Slack: one page, one resolve, their text, the alert records), not the
10-minute bound at default settings, which the pure tests in tests/alerts/test_arrivals.py prove; the interval only
sets how often silence is judged (the threshold depends on the source's rate alone: ~25 s at 30/min), so a shorter one
judges the same scenario in fewer seconds. The source's usual rate comes from a week of heartbeats of an earlier
ingress instance, produced to the arrivals topic before the services start (what a running system has)."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from attrib.settings import Settings
from attrib.topics import ensure_topics
from ingest.verify import Outbound
from ops.traffic import signing
from schemas import avro
from tests.alerts import pipeline as pl
from tests.alerts.fake_slack import FakeSlack
from tests.support import free_port

RATE_PER_MIN = 30  # >= 1/min: must page within 10 minutes
BEAT_S = 5.0  # ingest.arrivals_interval_s (default 30): see the module docstring
KEY = "lr_priv_e2e_arrivals"


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    f = FakeSlack().start()
    yield f
    f.stop()


def seed_history(s: Settings, now_ms: int, days: int = 8) -> None:
    """A week of heartbeats of an earlier ingress instance, one per 5 minutes, at RATE_PER_MIN."""
    step = 300_000
    beats: list[tuple[bytes | None, bytes]] = []
    for t in range(now_ms - days * 86_400_000, now_ms - 30_000, step):
        rec = {"v": 1, "instance": "earlier", "at": t, "interval_s": step / 1000,
               "sources": {"lr": {"n": RATE_PER_MIN * 5, "last": t - 1000, "mmp": "linkrunner", "app_id": "app1"}}}
        beats.append((b"arrivals", json.dumps(rec).encode()))
    pl.produce(s.kafka.bootstrap_servers, s.topics.arrivals, beats)


def deliver(s: Settings, i: int) -> int:
    src = s.source("lr")
    assert src is not None
    body = json.dumps({"event_type": "install", "gaid": f"00000000-aaaa-4bbb-8ccc-{i:012d}"}).encode()
    out = signing.sign(src, Outbound("POST", "/webhooks/lr", headers={"Content-Type": "application/json"},
                                     body=body), time.time())
    req = urllib.request.Request(signing.url(f"http://127.0.0.1:{s.ingest.port}", out), data=out.body,
                                 headers=out.headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return int(r.status)
    except urllib.error.URLError:
        return 0  # not listening yet


def send_while(s: Settings, going: Callable[[], bool], start: int) -> int:
    """Deliveries at RATE_PER_MIN while ``going()``; returns the next delivery number."""
    i = start
    while going():
        if deliver(s, i) == 200:
            i += 1
        time.sleep(60 / RATE_PER_MIN)
    return i


def for_s(seconds: float) -> Callable[[], bool]:
    end = time.monotonic() + seconds
    return lambda: time.monotonic() < end


def test_a_source_that_stops_pages_slack_within_ten_minutes(make_settings: Callable[..., Settings],
                                                           tmp_path: Path, slack: FakeSlack) -> None:
    tag = uuid.uuid4().hex[:8]
    s = make_settings(
        topics={"partitions": 2},
        sources=[{"name": "lr", "mmp": "linkrunner", "app_id": "app1", "verify": ["token"], "secrets": [KEY]}],
        ingest={"host": "127.0.0.1", "port": free_port(), "arrivals_interval_s": BEAT_S},
        slack_webhook_url=slack.url + "/alerts",
        alerts={"app_id": f"alerts-arr-{tag}",
                "slack": {"group_id": f"notify-arr-{tag}", "min_interval_s": 0.05,
                          "ops_url": "http://ops.example:8080"}})
    ensure_topics(s)
    seed_history(s, int(time.time() * 1000))
    procs = [pl.start(c, s, tmp_path / f"{c}.log") for c in ("alerts", "notify", "ingest")]
    try:
        deadline = time.monotonic() + 60
        while deliver(s, 0) != 200:  # the ingress is up
            assert time.monotonic() < deadline, (tmp_path / "ingest.log").read_text()[-2000:]
            time.sleep(0.5)
        # the source sends as it usually does, long enough for four heartbeats of the new ingress to be judged
        n = send_while(s, for_s(4 * BEAT_S), 1)
        assert slack.accepted() == [], [r.body["text"] for r in slack.accepted()]  # no page while it sends
        stopped = time.time()
        page = slack.wait_for(1, timeout=600)[0]  # then it stops: a page within 10 minutes (the deadline)
        paged_after = page.at - (time.monotonic() - (time.time() - stopped))
        # it comes back, and keeps sending until the services stop (no second silence): one resolve
        deadline = time.monotonic() + 120
        n = send_while(s, lambda: len(slack.accepted()) < 2 and time.monotonic() < deadline, n)
        done = slack.wait_for(2, timeout=1)[1]
        n = send_while(s, for_s(2 * BEAT_S), n)  # two more heartbeats: anything else the services would send
        assert len(slack.accepted()) == 2, [r.body["text"] for r in slack.accepted()]
    finally:
        for p in procs:
            pl.stop(p)
    print(f"paged {paged_after:.0f} s after the source stopped")
    text = page.body["text"]
    assert text.startswith("[CRITICAL] Linkrunner (source `lr`) stopped sending: nothing for "), text
    assert re.search(r"nothing for \d+ s, usually ~30/min · app=app1$", text), text  # seconds at 30/min
    fields = " ".join(f["text"] for f in page.body["blocks"][1]["fields"])
    assert "<http://ops.example:8080/ops/rejections?source=lr|refused from lr>" in fields
    assert done.body["text"].startswith("[RESOLVED] Linkrunner (source `lr`) is sending again after ")
    # the alert records: one incident, silence judged under 10 minutes from the last delivery
    alerts = [avro.decode(v, expect="alert")[1] for v in pl.read_all(s.kafka.bootstrap_servers, s.topics.alerts_drop)]
    assert [a["state"] for a in alerts] == ["firing", "resolved"]
    assert alerts[0]["alert_id"] == alerts[1]["alert_id"]
    assert json.loads(alerts[0]["detail"])["silent_s"] < 600
