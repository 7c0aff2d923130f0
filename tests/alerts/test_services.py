"""The alerts as they run for real: ingress → worker (which counts) → alerts → notify → a Slack stand-in, each its own
process on the session broker, traffic sent over HTTP with current timestamps.

- A fresh start of every service at once (no topic created beforehand, as after `attrib stack up` on a new machine)
  evaluates from the first bucket: a source that stops in the first buckets pages.
- A restart that leaves the worker catching up (the ingress kept accepting while the worker and the alerts were
  down) raises no drop: a bucket is judged only once every raw partition is processed past its end + lateness.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from attrib.settings import Settings
from ops.supervise import Service, attrib_argv
from schemas import avro
from tests.alerts import pipeline as pl
from tests.alerts.fake_slack import FakeSlack
from tests.support import free_port

SOURCES = {"a": "meta", "b": "google"}  # ingress source -> the media source its events carry


class Sender:
    """Sends installs from each source at ``rate``/s (event time = now) until stopped; a source can be silenced."""

    def __init__(self, s: Settings, rate: float) -> None:
        self.base, self.rate = f"http://127.0.0.1:{s.ingest.port}/webhooks", rate
        self.silenced: dict[str, int] = {}  # source -> ms since which it sends nothing
        self.first_ms: int | None = None
        self.sent = 0
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def silence(self, source: str) -> int:
        self.silenced[source] = int(time.time() * 1000)
        return self.silenced[source]

    def _post(self, source: str, i: int) -> None:
        now = int(time.time() * 1000)
        body = {"event_id": f"{source}-{i}-{uuid.uuid4().hex[:6]}", "event_name": "install",
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now / 1000)) + f".{now % 1000:03d}Z",
                "attribution": {"source": SOURCES[source], "campaign": "c1"},
                "user": {"customer_id": f"u-{source}-{i}-{uuid.uuid4().hex[:6]}"}}
        req = urllib.request.Request(f"{self.base}/{source}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                r.read()
            self.sent += 1
            self.first_ms = self.first_ms or now
        except OSError as exc:
            self.errors.append(str(exc))

    def _run(self) -> None:
        start, i = time.monotonic(), 0
        while not self.stop.is_set():
            for src in SOURCES:
                if src not in self.silenced:
                    self._post(src, i)
            i += 1
            self.stop.wait(max(0.0, start + i / self.rate - time.monotonic()))

    def __enter__(self) -> Sender:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(30)


def readyz(s: Settings) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{s.alerts.ready_port}/readyz", timeout=5) as r:
            out: dict[str, Any] = json.loads(r.read())
            return out
    except OSError:  # 503 while it rebalances (HTTPError is an OSError), or not listening yet
        return {"ready": False}


def wait(what: str, cond: Callable[[], Any], services: list[Service], limit_s: float = 240) -> Any:
    """Until ``cond()`` is truthy; fails naming ``what`` (and a service that died) — a condition, not a timing."""
    end = time.monotonic() + limit_s
    while True:
        got = cond()
        if got:
            return got
        for svc in services:
            assert svc.alive(), f"{svc.name} exited: {svc.log.read_text()[-3000:] if svc.log else ''}"
        assert time.monotonic() < end, f"gave up waiting for {what}"
        time.sleep(0.5)


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    f = FakeSlack().start()
    yield f
    f.stop()


def settings_for(make_settings: Callable[..., Settings], slack: FakeSlack, bucket_s: int, lateness_s: int) -> Settings:
    tag = uuid.uuid4().hex[:8]
    return make_settings(
        topics={"partitions": 2}, slack_webhook_url=slack.url + "/alerts",
        sources=[{"name": n, "mmp": "generic", "verify": ["none"]} for n in SOURCES],
        ingest={"port": free_port()},
        streams={"tick_interval_s": 1, "metrics_port": 0, "commit_interval_s": 1.0},
        alerts={"app_id": f"alerts-{tag}", "ready_port": free_port(), "tick_interval_s": 1,
                "detect": {"bucket_s": bucket_s, "lateness_s": lateness_s, "thresholds": {"warmup_buckets": 3}},
                "slack": {"group_id": f"notify-{tag}", "min_interval_s": 0.05}})


def services(s: Settings, names: list[str]) -> list[Service]:
    env = pl.env_for(s)
    ready = {"ingest": f"http://127.0.0.1:{s.ingest.port}/readyz",
             "alerts": f"http://127.0.0.1:{s.alerts.ready_port}/readyz"}
    return [Service(n, attrib_argv(n), ready.get(n), env) for n in names]


def stop_all(svcs: list[Service]) -> None:
    """Stop the services at once (each waits for its own graceful shutdown): the scenarios do not depend on the
    order, and one after the other costs the sum of the Faust apps' shutdowns."""
    threads = [threading.Thread(target=svc.stop) for svc in svcs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def alerts_in(s: Settings) -> list[dict[str, Any]]:
    return [avro.decode(v, expect="alert")[1] for t in (s.topics.alerts_spike, s.topics.alerts_drop)
            for v in pl.read_all(s.kafka.bootstrap_servers, t)]


def test_a_fresh_start_of_every_service_judges_from_the_first_bucket(make_settings, slack, tmp_path: Path) -> None:
    # 5-s buckets (were 10 s): the same five buckets before the stop and the same two after it take half as long
    s = settings_for(make_settings, slack, bucket_s=5, lateness_s=3)
    svcs = services(s, ["ingest", "worker", "alerts", "notify"])
    try:
        for svc in svcs:  # all at once: nothing waits for anything, no topic exists yet
            svc.start(tmp_path / "logs")
        for svc in svcs:
            svc.wait_ready(180)
        with Sender(s, rate=4) as sender:  # 20 per bucket and source (30 at 3/s in 10-s buckets)
            first_bucket = wait("the first deliveries", lambda: sender.first_ms, svcs) // 5000 * 5000
            # the first buckets are counted and judged: warm-up (3 buckets) and two more, then source `a` stops
            wait("five buckets judged", lambda: (readyz(s).get("evaluated_until") or 0) >= first_bucket + 5 * 5000,
                 svcs)
            assert readyz(s)["first_bucket"] <= first_bucket  # counted from the first bucket: no blind spot
            stopped = sender.silence("a")
            msgs = wait("the drop page in Slack", lambda: [r for r in slack.accepted() if "DROP" in r.body["text"]],
                        svcs)
        assert sender.errors == []
    finally:
        stop_all(svcs)
    fired = [a for a in alerts_in(s) if a["state"] == "firing" and a["direction"] == "drop"]
    assert fired, msgs
    # the stop itself paged, within two buckets of it (event time, not wall time)
    onset = min(int(a["bucket_start"].timestamp() * 1000) for a in fired)
    assert stopped - 2 * 5000 <= onset <= stopped + 2 * 5000, (onset, stopped, fired)
    assert any(a["media_source"] == "meta" or a["scope"] == "platform" for a in fired), fired


def test_a_restart_that_leaves_the_worker_catching_up_raises_no_drop(make_settings, slack, tmp_path: Path) -> None:
    s = settings_for(make_settings, slack, bucket_s=5, lateness_s=3)
    svcs = services(s, ["worker", "alerts", "ingest"])  # one after the other, as `attrib run` starts them
    worker, alerts, ingest = svcs
    try:
        for svc in svcs:
            svc.start(tmp_path / "logs")
            svc.wait_ready(180)
        with Sender(s, rate=4) as sender:
            first = wait("the first deliveries", lambda: sender.first_ms, svcs) // 5000 * 5000
            # warm-up (3 buckets) and two more judged: empty buckets now would be drops (were 8 buckets: no
            # need, the series is past warm-up after 3)
            wait("warm-up judged", lambda: (readyz(s).get("evaluated_until") or 0) >= first + 5 * 5000, svcs)
            # the worker and the alerts go down; the ingress keeps accepting (senders would retry anyway)
            stop_all([worker, alerts])
            time.sleep(10)  # two buckets of backlog, more with the alerts' restart (a duration of the scenario)
            alerts.start(tmp_path / "logs")  # the alerts first: they must wait for the worker, not judge empty
            alerts.wait_ready(180)
            time.sleep(4)  # alone with the backlog for 4 of their 1-s ticks (wall-clock evaluation would judge it)
            worker.start(tmp_path / "logs")
            back = int(time.time() * 1000)
            up = [ingest, worker, alerts]
            wait("the backlog judged", lambda: (readyz(s).get("evaluated_until") or 0) >= back + 10_000, up)
        assert sender.errors == []
    finally:
        stop_all(svcs)
    fired = [a for a in alerts_in(s) if a["state"] == "firing"]
    assert fired == [], fired
