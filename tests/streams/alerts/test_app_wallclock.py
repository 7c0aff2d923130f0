"""The production path: the leader timer's wall-clock ticks (not test-produced ones) evaluate buckets, so a source
that stops sending is judged without any further event. Scaled down: 1-s buckets, 2 s lateness."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np

from attrib.settings import Settings
from attrib.topics import ensure_topics
from schemas import avro
from tests.streams.alerts import pipeline as pl


def test_wall_clock_ticks_catch_a_source_that_goes_silent(make_settings: Callable[..., Settings],
                                                         tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    s = make_settings(topics={"partitions": 2}, alerts={
        "app_id": f"alerts-wc-{tag}", "bucket_s": 1, "lateness_s": 2, "tick_interval_s": 0.5, "batch_within_s": 0.2,
        "thresholds": {"warmup_buckets": 3}})
    ensure_topics(s)
    boot = s.kafka.bootstrap_servers
    proc = pl.start("alerts", s, tmp_path / "alerts.log")
    rng = np.random.default_rng(3)
    try:
        # live traffic: ~40 events per second for both sources until both are counted and evaluated for a while
        t_end = None
        stopped_at = None
        while True:
            now = int(time.time() * 1000)
            recs = list(pl.events("wc", {"a": 20.0, "b": 20.0}, 1, now - now % 1000, lambda s, b: 1.0, rng,
                                  bucket_ms=1000))
            if stopped_at is not None:
                recs = [r for r in recs if r["media_source"] != "a"]
            pl.produce_events(boot, s.topics.events, iter(recs))
            if proc.poll() is not None:
                raise RuntimeError("alerts app exited")
            alerts = [avro.decode(v, expect="alert")[1] for v in pl.read_all(boot, s.topics.alerts_drop)]
            if any(a["state"] == "firing" for a in alerts):
                break
            if stopped_at is None and t_end is None:
                t_end = time.monotonic() + 12  # long enough for start-up + warm-up on a busy machine
            if stopped_at is None and time.monotonic() > t_end:
                stopped_at = now
            time.sleep(max(0.0, 1 - (time.time() % 1)))
            assert time.monotonic() < t_end + 120, "no drop alert from wall-clock ticks"
    finally:
        pl.stop(proc)
    fire = next(a for a in alerts if a["state"] == "firing")
    assert (fire["scope"], fire["media_source"], fire["direction"]) == ("source", "a", "drop")
    assert int(fire["bucket_start"].timestamp() * 1000) >= stopped_at - 1000
