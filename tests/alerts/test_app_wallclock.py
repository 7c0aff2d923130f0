"""The production path: the leader timer's wall-clock ticks (not test-produced ones) evaluate buckets, so a source
that stops sending is judged without any further event. Scaled down: 1-s buckets, 5 s lateness."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np

from attrib.settings import Settings
from attrib.topics import ensure_topics
from schemas import avro
from tests.alerts import pipeline as pl


def test_wall_clock_ticks_catch_a_source_that_goes_silent(make_settings: Callable[..., Settings],
                                                         tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    s = make_settings(topics={"partitions": 2}, alerts={
        "app_id": f"alerts-wc-{tag}", "tick_interval_s": 0.5, "batch_within_s": 0.2,
        "detect": {"bucket_s": 1, "lateness_s": 5, "thresholds": {"warmup_buckets": 3}}})
    ensure_topics(s)
    boot = s.kafka.bootstrap_servers
    proc = pl.start("alerts", s, tmp_path / "alerts.log")
    rng = np.random.default_rng(3)
    fire = None
    stop_after = time.monotonic() + 15  # traffic from both sources long enough for start-up and warm-up
    stopped_at: int | None = None
    next_sec = int(time.time())
    last_read = 0.0
    try:
        while fire is None:
            assert proc.poll() is None, "alerts app exited"
            assert time.monotonic() < stop_after + 120, "no drop alert from wall-clock ticks"
            if stopped_at is None and time.monotonic() > stop_after:
                stopped_at = next_sec * 1000
            now_sec = int(time.time())
            recs = []
            for sec in range(next_sec, now_sec + 1):  # every second gets its events, even if this loop lagged
                recs += [r for r in pl.events("wc", {"a": 20.0, "b": 20.0}, 1, sec * 1000, lambda s, b: 1.0, rng,
                                              bucket_ms=1000)
                         if stopped_at is None or r["media_source"] != "a"]
            next_sec = now_sec + 1
            pl.produce_events(boot, s.topics.events, iter(recs))
            if stopped_at is not None and time.monotonic() - last_read > 2:
                last_read = time.monotonic()
                alerts = [avro.decode(v, expect="alert")[1] for v in pl.read_all(boot, s.topics.alerts_drop)]
                fire = next((a for a in alerts if a["state"] == "firing" and a["media_source"] == "a"), None)
            time.sleep(max(0.0, 1 - (time.time() % 1)))
    finally:
        pl.stop(proc)
    assert (fire["scope"], fire["direction"]) == ("source", "drop")
    assert int(fire["bucket_start"].timestamp() * 1000) >= stopped_at - 1000
